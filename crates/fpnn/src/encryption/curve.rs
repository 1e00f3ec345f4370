//! The four curves of the FPNN key exchange, and the elliptic-curve operations on raw bytes.
//!
//! Keys travel and are stored the way the official framework (micro-ecc) holds them: a private
//! key is the big-endian scalar of exactly [`Curve::secret_len`] bytes, a public key is the
//! point's `X ‖ Y`, big-endian, [`Curve::public_key_len`] bytes, with no `0x04` prefix. The
//! arithmetic is RustCrypto's (`p192`, `p224`, `p256`, `k256`), whose scalar multiplication
//! runs in constant time; this file only converts between the raw forms and theirs.

use elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ModulusSize, ToEncodedPoint};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use spki::ObjectIdentifier;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use zeroize::Zeroizing;

/// An elliptic curve the FPNN key exchange supports.
///
/// The names are those of the official configuration (`FPNN.server.security.ecdh.curve`) and
/// of `TCPClient::enableEncryptor`: `secp192r1`, `secp224r1`, `secp256r1`, `secp256k1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-192.
    Secp192r1,
    /// NIST P-224.
    Secp224r1,
    /// NIST P-256 (prime256v1).
    Secp256r1,
    /// The Koblitz curve of Bitcoin; the Python SDK's default.
    Secp256k1,
}

/// `id-ecPublicKey` (RFC 5480), the algorithm of every EC SubjectPublicKeyInfo.
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

impl Curve {
    /// Every supported curve.
    pub const ALL: [Curve; 4] = [
        Curve::Secp192r1,
        Curve::Secp224r1,
        Curve::Secp256r1,
        Curve::Secp256k1,
    ];

    /// The curve's name, as the official SDKs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Curve::Secp192r1 => "secp192r1",
            Curve::Secp224r1 => "secp224r1",
            Curve::Secp256r1 => "secp256r1",
            Curve::Secp256k1 => "secp256k1",
        }
    }

    /// The size in bytes of a private key, of a coordinate and of the shared secret:
    /// 24, 28 or 32.
    pub const fn secret_len(self) -> usize {
        match self {
            Curve::Secp192r1 => 24,
            Curve::Secp224r1 => 28,
            Curve::Secp256r1 | Curve::Secp256k1 => 32,
        }
    }

    /// The size in bytes of a raw public key, `X ‖ Y`: twice [`Curve::secret_len`].
    pub const fn public_key_len(self) -> usize {
        2 * self.secret_len()
    }

    /// The curve's object identifier, the `namedCurve` of a SubjectPublicKeyInfo.
    pub const fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::Secp192r1 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.1"),
            Curve::Secp224r1 => ObjectIdentifier::new_unwrap("1.3.132.0.33"),
            Curve::Secp256r1 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            Curve::Secp256k1 => ObjectIdentifier::new_unwrap("1.3.132.0.10"),
        }
    }

    /// The curve with this object identifier, if it is one of the four.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.oid() == *oid)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Curve {
    type Err = KeyError;

    /// Reads a curve name (`secp256r1`, …). `prime256v1` and `P-256` are accepted for
    /// secp256r1, and `prime192v1` / `P-192` / `P-224` for the other NIST curves.
    fn from_str(s: &str) -> Result<Curve, KeyError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "secp192r1" | "prime192v1" | "p-192" | "p192" => Curve::Secp192r1,
            "secp224r1" | "p-224" | "p224" => Curve::Secp224r1,
            "secp256r1" | "prime256v1" | "p-256" | "p256" => Curve::Secp256r1,
            "secp256k1" => Curve::Secp256k1,
            _ => return Err(KeyError::UnknownCurve(s.to_owned())),
        })
    }
}

/// Runs `$body` with `$C` bound to the RustCrypto type of `$curve`.
macro_rules! with_curve {
    ($curve:expr, $C:ident => $body:expr) => {
        match $curve {
            Curve::Secp192r1 => {
                type $C = p192::NistP192;
                $body
            }
            Curve::Secp224r1 => {
                type $C = p224::NistP224;
                $body
            }
            Curve::Secp256r1 => {
                type $C = p256::NistP256;
                $body
            }
            Curve::Secp256k1 => {
                type $C = k256::Secp256k1;
                $body
            }
        }
    };
}

/// The secret key of `scalar` (exactly `secret_len` bytes, checked by the caller), or an
/// error when it is zero or not below the curve's order.
fn secret_key<C: CurveArithmetic>(curve: Curve, scalar: &[u8]) -> Result<SecretKey<C>, KeyError>
where
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    SecretKey::<C>::from_slice(scalar).map_err(|_| KeyError::InvalidPrivateKey { curve })
}

/// The public key of a raw `X ‖ Y` (length checked by the caller), or an error when the point
/// is not on the curve.
fn public_key<C: CurveArithmetic>(curve: Curve, xy: &[u8]) -> Result<PublicKey<C>, KeyError>
where
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let half = xy.len() / 2;
    let point =
        EncodedPoint::<C>::from_affine_coordinates(xy[..half].into(), xy[half..].into(), false);
    Option::from(PublicKey::<C>::from_encoded_point(&point)).ok_or(KeyError::NotOnCurve { curve })
}

/// `X ‖ Y` of a public key.
fn raw_point<C: CurveArithmetic>(key: &PublicKey<C>) -> Vec<u8>
where
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    // The uncompressed SEC1 form is 0x04 ‖ X ‖ Y.
    key.to_encoded_point(false).as_bytes()[1..].to_vec()
}

fn check_len(curve: Curve, what: KeyKind, bytes: &[u8]) -> Result<(), KeyError> {
    let expected = match what {
        KeyKind::Private => curve.secret_len(),
        KeyKind::Public => curve.public_key_len(),
    };
    if bytes.len() != expected {
        return Err(KeyError::Length {
            what,
            curve,
            expected,
            actual: bytes.len(),
        });
    }
    Ok(())
}

/// Which kind of key a length error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// A raw private scalar.
    Private,
    /// A raw public `X ‖ Y`.
    Public,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Private => "private key",
            KeyKind::Public => "public key",
        })
    }
}

/// Checks that `scalar` is a valid private key of `curve`: the right length, not zero, below
/// the order.
pub(crate) fn check_private(curve: Curve, scalar: &[u8]) -> Result<(), KeyError> {
    check_len(curve, KeyKind::Private, scalar)?;
    with_curve!(curve, C => secret_key::<C>(curve, scalar).map(drop))
}

/// Checks that `xy` is a point of `curve`: the right length, on the curve.
pub(crate) fn check_public(curve: Curve, xy: &[u8]) -> Result<(), KeyError> {
    check_len(curve, KeyKind::Public, xy)?;
    with_curve!(curve, C => public_key::<C>(curve, xy).map(drop))
}

/// The raw public key (`X ‖ Y`) of a valid private key.
pub(crate) fn public_of(curve: Curve, scalar: &[u8]) -> Result<Vec<u8>, KeyError> {
    check_len(curve, KeyKind::Private, scalar)?;
    with_curve!(curve, C => {
        let secret = secret_key::<C>(curve, scalar)?;
        Ok(raw_point(&secret.public_key()))
    })
}

/// The compressed SEC1 form of a valid public key: `0x02`/`0x03` (the parity of Y) ‖ X.
///
/// `PublicKey::to_compressed` writes it from the definition; this checks it against the
/// curve crates.
/// Why a key could not be read, made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A curve name that is not one of the four.
    #[error("unknown curve {0:?}: expected secp192r1, secp224r1, secp256r1 or secp256k1")]
    UnknownCurve(String),
    /// A raw key of the wrong length for its curve.
    #[error("a raw {curve} {what} is {expected} bytes, not {actual}")]
    Length {
        /// Which key.
        what: KeyKind,
        /// Its curve.
        curve: Curve,
        /// The length the curve requires.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A private scalar that is zero or not below the curve's order.
    #[error("not a valid {curve} private key: the scalar is zero or not below the curve's order")]
    InvalidPrivateKey {
        /// The curve.
        curve: Curve,
    },
    /// A public point that is not on its curve.
    #[error("not a {curve} public key: the point is not on the curve")]
    NotOnCurve {
        /// The curve.
        curve: Curve,
    },
    /// A SubjectPublicKeyInfo holding a compressed point.
    #[error(
        "the public key is a compressed point; the official framework reads only uncompressed \
         points (0x04 ‖ X ‖ Y), so give the key tool's -public.der or -public.pem file"
    )]
    CompressedPoint,
    /// A DER document that is not a SubjectPublicKeyInfo of an EC key.
    #[error("bad public key DER: {0}")]
    Der(String),
    /// A PEM document that could not be read, or with another label than `PUBLIC KEY`.
    #[error("bad public key PEM: {0}")]
    Pem(String),
    /// A SubjectPublicKeyInfo whose algorithm is not `id-ecPublicKey`.
    #[error("not an EC public key: the algorithm is {0}, not id-ecPublicKey (1.2.840.10045.2.1)")]
    NotEcKey(String),
    /// An EC key on a curve the key exchange does not support.
    #[error(
        "unsupported curve {0}: the key exchange supports secp192r1, secp224r1, secp256r1 \
         and secp256k1"
    )]
    UnsupportedCurve(String),
    /// A key on another curve than the one asked for.
    #[error("the key is on {found}, not on {expected}")]
    CurveMismatch {
        /// The curve asked for.
        expected: Curve,
        /// The key's curve.
        found: Curve,
    },
    /// The operating system's random source failed.
    #[error("cannot draw a random key: {0}")]
    Random(String),
    /// A key file could not be read or written.
    #[error("{}: {source}{}", path.display(), io_hint(source))]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AlreadyExists => " (refusing to overwrite an existing key file)",
        _ => "",
    }
}

impl KeyError {
    pub(crate) fn io(path: &Path, source: io::Error) -> KeyError {
        KeyError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
pub(crate) fn compress(curve: Curve, xy: &[u8]) -> Result<Vec<u8>, KeyError> {
    check_len(curve, KeyKind::Public, xy)?;
    with_curve!(curve, C => {
        let key = public_key::<C>(curve, xy)?;
        Ok(key.to_encoded_point(true).as_bytes().to_vec())
    })
}

/// The ECDH shared secret: the X coordinate of `scalar × peer`, big-endian, `secret_len`
/// bytes, with no key derivation function (micro-ecc's `uECC_shared_secret`).
///
/// The peer's point is validated first (micro-ecc does not check it; we refuse a point that
/// is not on the curve rather than multiply it).
pub(crate) fn shared_secret(
    curve: Curve,
    scalar: &[u8],
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    check_len(curve, KeyKind::Private, scalar)?;
    check_len(curve, KeyKind::Public, peer)?;
    with_curve!(curve, C => {
        let secret = secret_key::<C>(curve, scalar)?;
        let peer = public_key::<C>(curve, peer)?;
        let shared =
            elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    })
}

/// How many draws [`random_scalar`] makes before it gives up. For these curves the order is so
/// close to 2^(8·L) that a draw is rejected with a probability of at most about 2^-32
/// (secp256r1, whose order is near 2^256 - 2^224; the others are below 2^-90), so reaching
/// the limit means a broken random source.
const MAX_DRAWS: usize = 16;

/// A fresh private key of `curve` from the operating system's random source, uniformly
/// distributed over `1..n` (draws that are zero or not below the order are rejected).
pub(crate) fn random_scalar(curve: Curve) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut bytes = Zeroizing::new(vec![0u8; curve.secret_len()]);
    for _ in 0..MAX_DRAWS {
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        if check_private(curve, &bytes).is_ok() {
            return Ok(bytes);
        }
    }
    Err(KeyError::Random(format!(
        "{MAX_DRAWS} random draws in a row were not valid {curve} scalars"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_oids_round_trip() {
        for curve in Curve::ALL {
            assert_eq!(curve.name().parse::<Curve>().ok(), Some(curve));
            assert_eq!(curve.to_string(), curve.name());
            assert_eq!(Curve::from_oid(&curve.oid()), Some(curve));
            assert_eq!(curve.public_key_len(), 2 * curve.secret_len());
        }
        assert_eq!("prime256v1".parse::<Curve>().ok(), Some(Curve::Secp256r1));
        assert!(matches!(
            "secp384r1".parse::<Curve>(),
            Err(KeyError::UnknownCurve(name)) if name == "secp384r1"
        ));
        assert_eq!(Curve::from_oid(&ID_EC_PUBLIC_KEY), None);
    }

    #[test]
    fn scalars_out_of_range_are_refused() {
        for curve in Curve::ALL {
            let zero = vec![0u8; curve.secret_len()];
            assert!(matches!(
                check_private(curve, &zero),
                Err(KeyError::InvalidPrivateKey { .. })
            ));
            let too_big = vec![0xffu8; curve.secret_len()];
            assert!(matches!(
                check_private(curve, &too_big),
                Err(KeyError::InvalidPrivateKey { .. })
            ));
            let short = vec![0x11u8; curve.secret_len() - 1];
            assert!(matches!(
                check_private(curve, &short),
                Err(KeyError::Length {
                    what: KeyKind::Private,
                    ..
                })
            ));
        }
    }

    #[test]
    fn random_keys_are_valid_and_differ() {
        for curve in Curve::ALL {
            let a = random_scalar(curve).unwrap();
            let b = random_scalar(curve).unwrap();
            assert_ne!(a, b);
            let public = public_of(curve, &a).unwrap();
            check_public(curve, &public).unwrap();
            // Both sides of an exchange reach the same secret.
            let b_public = public_of(curve, &b).unwrap();
            assert_eq!(
                shared_secret(curve, &a, &b_public).unwrap(),
                shared_secret(curve, &b, &public).unwrap()
            );
        }
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        for curve in Curve::ALL {
            let scalar = vec![0x11u8; curve.secret_len()];
            let mut point = public_of(curve, &scalar).unwrap();
            let last = point.len() - 1;
            point[last] ^= 1;
            assert!(matches!(
                shared_secret(curve, &scalar, &point),
                Err(KeyError::NotOnCurve { .. })
            ));
            assert!(matches!(
                check_public(curve, &[0u8; 7]),
                Err(KeyError::Length {
                    what: KeyKind::Public,
                    actual: 7,
                    ..
                })
            ));
        }
    }
}
