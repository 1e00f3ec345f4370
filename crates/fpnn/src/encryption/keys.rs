//! Keys: the server's static private key and its public key, in the forms the official tools
//! read and write.
//!
//! * A **private key** is the raw big-endian scalar, exactly [`Curve::secret_len`] bytes: the
//!   content of the file that `FPNN.server.security.ecdh.privateKey` names.
//! * A **public key** is given to clients as a PEM or DER SubjectPublicKeyInfo (RFC 5480:
//!   `id-ecPublicKey`, the curve as `namedCurve`, an uncompressed point), or as the raw
//!   `X ‖ Y` plus the curve's name, as `TCPClient::enableEncryptor` takes it.

pub use super::curve::KeyError;

use super::curve::{self, Curve, ID_EC_PUBLIC_KEY};
use spki::der::asn1::{AnyRef, BitStringRef};
use spki::der::{Decode, Encode};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// A server's static private key: the raw big-endian scalar of its curve.
///
/// The scalar is validated (not zero, below the curve's order), wiped from memory when the key
/// is dropped, and never printed: `Debug` shows the curve only.
#[derive(Clone)]
pub struct PrivateKey {
    curve: Curve,
    scalar: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl PrivateKey {
    /// The private key whose raw scalar is `scalar` (exactly [`Curve::secret_len`] bytes).
    pub fn from_bytes(curve: Curve, scalar: &[u8]) -> Result<PrivateKey, KeyError> {
        PrivateKey::new(curve, Zeroizing::new(scalar.to_vec()))
    }

    fn new(curve: Curve, scalar: Zeroizing<Vec<u8>>) -> Result<PrivateKey, KeyError> {
        let xy = curve::public_of(curve, &scalar)?;
        Ok(PrivateKey {
            curve,
            scalar,
            public: PublicKey { curve, xy },
        })
    }

    /// Reads the file the C++ framework's `FPNN.server.security.ecdh.privateKey` names: the
    /// raw scalar and nothing else (no newline, no PEM), as the key tool's `-private.key`.
    pub fn from_file(curve: Curve, path: impl AsRef<Path>) -> Result<PrivateKey, KeyError> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| KeyError::io(path, e))?);
        PrivateKey::from_bytes(curve, &bytes).map_err(|e| match e {
            KeyError::Length { .. } if bytes.starts_with(b"-----BEGIN") => KeyError::Pem(format!(
                "{} is a PEM file; the private key file holds the raw {} scalar ({} bytes), \
                 as the key tool's <name>-private.key",
                path.display(),
                curve,
                curve.secret_len()
            )),
            other => other,
        })
    }

    /// A fresh random private key.
    pub fn generate(curve: Curve) -> Result<PrivateKey, KeyError> {
        PrivateKey::new(curve, curve::random_scalar(curve)?)
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The matching public key, for the clients.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The raw scalar, for writing the key file. Handle with care.
    pub fn secret_bytes(&self) -> &[u8] {
        &self.scalar
    }

    /// The ECDH shared secret with a peer's raw `X ‖ Y` (validated).
    pub(crate) fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        curve::shared_secret(self.curve, &self.scalar, peer)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("curve", &self.curve)
            .field("scalar", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// A public key of one of the four curves: a point known to be on its curve.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    curve: Curve,
    /// `X ‖ Y`, big-endian.
    xy: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, ", self.curve)?;
        for b in &self.xy {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The PEM label of a SubjectPublicKeyInfo.
const PEM_LABEL: &str = "PUBLIC KEY";
/// The line width of the official `eccKeyMaker`'s PEM files (RFC 7468 says 64).
const ECC_KEY_MAKER_PEM_WIDTH: usize = 76;

impl PublicKey {
    /// The public key whose raw form is `xy` (`X ‖ Y`, [`Curve::public_key_len`] bytes, no
    /// `0x04` prefix), as `TCPClient::enableEncryptor(curve, rawPublicKey)` takes it and the
    /// key tool's `-public.key` holds it.
    pub fn from_raw(curve: Curve, xy: &[u8]) -> Result<PublicKey, KeyError> {
        curve::check_public(curve, xy)?;
        Ok(PublicKey {
            curve,
            xy: xy.to_vec(),
        })
    }

    /// Reads a DER SubjectPublicKeyInfo; the curve comes from its `namedCurve`.
    ///
    /// As in the official framework, the point must be uncompressed.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki =
            SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Der(e.to_string()))?;
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(KeyError::NotEcKey(spki.algorithm.oid.to_string()));
        }
        let curve_oid = spki.algorithm.parameters_oid().map_err(|e| {
            KeyError::Der(format!("the curve (namedCurve parameter) is missing: {e}"))
        })?;
        let curve = Curve::from_oid(&curve_oid)
            .ok_or_else(|| KeyError::UnsupportedCurve(curve_oid.to_string()))?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Der("the public key BIT STRING has unused bits".to_owned()))?;
        match point.split_first() {
            Some((0x04, xy)) => PublicKey::from_raw(curve, xy),
            Some((0x02 | 0x03, _)) => Err(KeyError::CompressedPoint),
            _ => Err(KeyError::Der(
                "the public key is not an uncompressed point (0x04 ‖ X ‖ Y)".to_owned(),
            )),
        }
    }

    /// Reads a PEM `PUBLIC KEY` (a SubjectPublicKeyInfo); the curve comes from the key.
    ///
    /// Base64 lines of 64 columns (RFC 7468, OpenSSL) and of 76 (the official `eccKeyMaker`)
    /// are both accepted.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let pem = pem.trim_ascii();
        let (label, der) = match pem_rfc7468::decode_vec(pem) {
            Ok(decoded) => decoded,
            Err(strict) => decode_pem_wrapped(pem, ECC_KEY_MAKER_PEM_WIDTH)
                .map_err(|_| KeyError::Pem(strict.to_string()))?,
        };
        if label != PEM_LABEL {
            return Err(KeyError::Pem(format!(
                "the label is {label:?}, not {PEM_LABEL:?} (a SubjectPublicKeyInfo)"
            )));
        }
        PublicKey::from_der(&der)
    }

    /// Reads a key in any of the forms the official tools write: PEM, DER, or (with `curve`
    /// given) the raw `X ‖ Y`. When `curve` is given, a PEM or DER key must be on it.
    ///
    /// The forms cannot be confused: PEM is text that starts with `-----BEGIN`, and a DER
    /// SubjectPublicKeyInfo of these curves is 75 to 91 bytes long, never the 48, 56 or 64
    /// bytes of a raw key.
    pub fn decode(bytes: &[u8], curve: Option<Curve>) -> Result<PublicKey, KeyError> {
        let key = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            PublicKey::from_pem(bytes)?
        } else if let Some(curve) = curve.filter(|c| bytes.len() == c.public_key_len()) {
            PublicKey::from_raw(curve, bytes)?
        } else {
            PublicKey::from_der(bytes)?
        };
        match curve {
            Some(expected) if expected != key.curve => Err(KeyError::CurveMismatch {
                expected,
                found: key.curve,
            }),
            _ => Ok(key),
        }
    }

    /// Reads a key file with [`PublicKey::decode`]: the key tool's `-public.pem`,
    /// `-public.der`, or `-public.key` (raw, `curve` needed).
    pub fn from_file(path: impl AsRef<Path>, curve: Option<Curve>) -> Result<PublicKey, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| KeyError::io(path, e))?;
        PublicKey::decode(&bytes, curve)
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The raw `X ‖ Y` (what the `*key` quest carries, and the key tool's `-public.key`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.xy
    }

    /// The compressed SEC1 point, `0x02`/`0x03` ‖ X (the key tool's
    /// `-compressed-public.key`).
    pub fn to_compressed(&self) -> Vec<u8> {
        // SEC1 §2.3.3: 0x02 for an even Y, 0x03 for an odd one, then X.
        let (x, y) = self.xy.split_at(self.curve.secret_len());
        let parity = y.last().map_or(0, |b| b & 1);
        let mut out = Vec::with_capacity(1 + x.len());
        out.push(0x02 | parity);
        out.extend_from_slice(x);
        out
    }

    /// The DER SubjectPublicKeyInfo, byte for byte what the official tools write.
    pub fn to_der(&self) -> Vec<u8> {
        let mut point = Vec::with_capacity(1 + self.xy.len());
        point.push(0x04);
        point.extend_from_slice(&self.xy);
        let curve_oid = self.curve.oid();
        let encoded = BitStringRef::from_bytes(&point).and_then(|key| {
            SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: ID_EC_PUBLIC_KEY,
                    parameters: Some(AnyRef::from(&curve_oid)),
                },
                subject_public_key: key,
            }
            .to_der()
        });
        match encoded {
            Ok(der) => der,
            // Fixed structure, at most 91 bytes: encoding cannot fail.
            Err(e) => unreachable!(
                "a SubjectPublicKeyInfo of {} bytes encodes: {e}",
                point.len()
            ),
        }
    }

    /// The PEM `PUBLIC KEY` (RFC 7468: base64 in lines of 64 columns, `\n` line ends).
    pub fn to_pem(&self) -> String {
        let der = self.to_der();
        match pem_rfc7468::encode_string(PEM_LABEL, pem_rfc7468::LineEnding::LF, &der) {
            Ok(pem) => pem,
            Err(e) => unreachable!("{} DER bytes encode as PEM: {e}", der.len()),
        }
    }
}

/// Decodes a PEM document whose base64 lines are up to `width` columns.
fn decode_pem_wrapped(pem: &[u8], width: usize) -> Result<(&str, Vec<u8>), pem_rfc7468::Error> {
    let mut decoder = pem_rfc7468::Decoder::new_wrapped(pem, width)?;
    let label = decoder.type_label();
    let mut der = Vec::new();
    decoder.decode_to_end(&mut der)?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(curve: Curve) -> PrivateKey {
        PrivateKey::from_bytes(curve, &vec![0x22; curve.secret_len()]).unwrap()
    }

    #[test]
    fn compression_agrees_with_the_curve_crates() {
        for curve in Curve::ALL {
            let public = key(curve).public_key().clone();
            assert_eq!(
                public.to_compressed(),
                curve::compress(curve, public.as_bytes()).unwrap()
            );
        }
    }

    #[test]
    fn debug_never_shows_the_scalar() {
        let text = format!("{:?}", key(Curve::Secp256r1));
        assert!(text.contains("Secp256r1"), "{text}");
        assert!(text.contains("redacted"), "{text}");
        // The public key is shown, in hex; the scalar (0x22 × 32) is not, in any form.
        assert!(text.contains("d65a93977caa3d1b"), "{text}");
        assert!(
            !text.contains("2222222222") && !text.contains("34, 34"),
            "{text}"
        );
    }

    #[test]
    fn der_and_pem_round_trip_on_every_curve() {
        for curve in Curve::ALL {
            let public = key(curve).public_key().clone();
            assert_eq!(PublicKey::from_der(&public.to_der()).unwrap(), public);
            assert_eq!(
                PublicKey::from_pem(public.to_pem().as_bytes()).unwrap(),
                public
            );
            for form in [public.to_der(), public.to_pem().into_bytes()] {
                assert_eq!(PublicKey::decode(&form, None).unwrap(), public);
                assert_eq!(PublicKey::decode(&form, Some(curve)).unwrap(), public);
            }
            assert_eq!(
                PublicKey::decode(public.as_bytes(), Some(curve)).unwrap(),
                public
            );
            let der_len = public.to_der().len();
            assert!(
                (75..=91).contains(&der_len)
                    && !Curve::ALL.iter().any(|c| c.public_key_len() == der_len),
                "{curve}: {der_len}"
            );
        }
    }

    #[test]
    fn a_key_on_another_curve_is_refused() {
        let public = key(Curve::Secp256k1).public_key().clone();
        assert!(matches!(
            PublicKey::decode(&public.to_der(), Some(Curve::Secp256r1)),
            Err(KeyError::CurveMismatch {
                expected: Curve::Secp256r1,
                found: Curve::Secp256k1
            })
        ));
    }

    #[test]
    fn compressed_points_and_other_labels_are_refused() {
        let public = key(Curve::Secp256r1).public_key().clone();
        let mut der = public.to_der();
        // Swap 0x04 ‖ X ‖ Y for a compressed point with its own (shorter) lengths re-encoded.
        let compressed = public.to_compressed();
        let oid = Curve::Secp256r1.oid();
        let spki = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&oid)),
            },
            subject_public_key: BitStringRef::from_bytes(&compressed).unwrap(),
        };
        assert!(matches!(
            PublicKey::from_der(&spki.to_der().unwrap()),
            Err(KeyError::CompressedPoint)
        ));
        // A flipped Y makes a point off the curve.
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(matches!(
            PublicKey::from_der(&der),
            Err(KeyError::NotOnCurve { .. })
        ));
        let pem = public.to_pem().replace("PUBLIC KEY", "EC PUBLIC KEY");
        assert!(matches!(
            PublicKey::from_pem(pem.as_bytes()),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            PublicKey::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(KeyError::Der(_))
        ));
    }
}
