//! What a connection speaks, from its first bytes.
//!
//! The official framework reads the first four bytes of a message: `FPNN` is a binary frame,
//! `POST` or `GET ` (with the space) an HTTP request; anything else closes the connection.
//! A TLS listener also sees a ClientHello first: a handshake record (`0x16`) of TLS 1.x
//! (`0x03`). [`detect`] decides from as few bytes as it can and consumes none of them: the
//! layer it picks reads the same bytes again.

/// What the first bytes of a connection (or of the next message on it) announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Detected {
    /// A binary FPNN frame (`FPNN`).
    Fpnn,
    /// An HTTP request (`POST` or `GET `): a call over HTTP/JSON, or a WebSocket upgrade.
    Http,
    /// A TLS ClientHello (`16 03`), when the listener accepts TLS.
    Tls,
}

/// What [`detect`] may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// Binary FPNN frames.
    pub fpnn: bool,
    /// HTTP requests and WebSocket upgrades.
    pub http: bool,
    /// A TLS ClientHello. Only a listener with a certificate sets it, and only before TLS:
    /// inside TLS another ClientHello is garbage.
    pub tls: bool,
}

impl Accept {
    /// Everything a plain (non-TLS) listener serves: FPNN and HTTP.
    pub const PLAIN: Accept = Accept {
        fpnn: true,
        http: true,
        tls: false,
    };
    /// What the first bytes of a TLS listener may be: FPNN, HTTP, or a ClientHello.
    pub const ANY: Accept = Accept {
        fpnn: true,
        http: true,
        tls: true,
    };
}

/// Why a connection was refused from its first bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The bytes match nothing the listener accepts (an unknown magic, an HTTP method other
    /// than `POST`/`GET`, TLS on a listener without a certificate, ...). Close the connection.
    #[error("unrecognised first bytes {0:02x?}: neither an FPNN frame, an HTTP request nor a TLS handshake this listener accepts")]
    Unrecognised(Vec<u8>),
}

/// The signatures, longest first. `GET ` includes its space, as in the framework.
const SIGNATURES: [(&[u8], Detected); 4] = [
    (b"FPNN", Detected::Fpnn),
    (b"POST", Detected::Http),
    (b"GET ", Detected::Http),
    (&[0x16, 0x03], Detected::Tls),
];

/// The longest signature: [`detect`] never needs more bytes than this.
pub const MAX_DETECT_LEN: usize = 4;

/// Decides what `bytes` (the start of a connection, nothing consumed yet) are.
///
/// `Ok(None)`: every byte so far is the start of something accepted; read more (never more
/// than [`MAX_DETECT_LEN`] in all). An error is returned as soon as no accepted signature can
/// match, with as few bytes as show it (a single `X` is refused at once).
pub fn detect(bytes: &[u8], accept: Accept) -> Result<Option<Detected>, DetectError> {
    let mut possible = false;
    for (signature, detected) in SIGNATURES {
        let allowed = match detected {
            Detected::Fpnn => accept.fpnn,
            Detected::Http => accept.http,
            Detected::Tls => accept.tls,
        };
        if !allowed {
            continue;
        }
        let n = bytes.len().min(signature.len());
        if bytes[..n] != signature[..n] {
            continue;
        }
        if n == signature.len() {
            return Ok(Some(detected));
        }
        possible = true;
    }
    if possible {
        Ok(None)
    } else {
        let shown = bytes.len().min(MAX_DETECT_LEN);
        Err(DetectError::Unrecognised(bytes[..shown].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signature_with_the_fewest_bytes() {
        assert_eq!(
            detect(b"FPNN\x01\x80", Accept::PLAIN),
            Ok(Some(Detected::Fpnn))
        );
        assert_eq!(detect(b"FPN", Accept::PLAIN), Ok(None));
        assert_eq!(
            detect(b"POST /service/x", Accept::PLAIN),
            Ok(Some(Detected::Http))
        );
        assert_eq!(detect(b"GET ", Accept::PLAIN), Ok(Some(Detected::Http)));
        assert_eq!(detect(b"GET", Accept::PLAIN), Ok(None));
        assert_eq!(
            detect(&[0x16, 0x03, 0x01], Accept::ANY),
            Ok(Some(Detected::Tls))
        );
        assert_eq!(detect(&[0x16, 0x03], Accept::ANY), Ok(Some(Detected::Tls)));
        assert_eq!(detect(&[0x16], Accept::ANY), Ok(None));
        assert_eq!(detect(b"", Accept::ANY), Ok(None));
    }

    #[test]
    fn refused_as_soon_as_nothing_can_match() {
        assert!(detect(b"X", Accept::ANY).is_err());
        assert!(detect(b"GETX", Accept::PLAIN).is_err());
        // Other HTTP methods are refused, as by the framework (a CORS preflight too).
        assert!(detect(b"PUT ", Accept::PLAIN).is_err());
        assert!(detect(b"OPTI", Accept::PLAIN).is_err());
        assert!(detect(b"HEAD", Accept::PLAIN).is_err());
        assert!(detect(b"P", Accept::PLAIN).is_ok());
        assert!(detect(b"PO", Accept::PLAIN).is_ok());
        assert!(detect(b"PU", Accept::PLAIN).is_err());
        // TLS only where a certificate is configured; SSL 2 / other record types refused.
        assert!(detect(&[0x16], Accept::PLAIN).is_err());
        assert!(detect(&[0x16, 0x02], Accept::ANY).is_err());
        assert!(detect(&[0x17, 0x03], Accept::ANY).is_err());
        // HTTP can be switched off.
        let fpnn_only = Accept {
            fpnn: true,
            http: false,
            tls: false,
        };
        assert_eq!(
            detect(b"GET ", fpnn_only),
            Err(DetectError::Unrecognised(b"GET ".to_vec()))
        );
    }
}
