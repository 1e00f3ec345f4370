//! The WebSocket opening handshake (RFC 6455 §4, version 13): the server's check of an
//! upgrade request and its `101 Switching Protocols`, and the client's request and its check
//! of that answer.

use bytes::{BufMut, BytesMut};
use tungstenite::handshake::derive_accept_key;

/// The only protocol version the framework (and we) speak.
pub const VERSION: &str = "13";

/// Why an upgrade request (server side) or its answer (client side) was refused.
///
/// The framework closes the connection on any of these; so do we.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// `Upgrade` does not name `websocket`.
    #[error("the Upgrade header is {0:?}, not \"websocket\"")]
    NotWebSocket(String),
    /// `Connection` lacks the `Upgrade` token.
    #[error("the Connection header does not contain the \"Upgrade\" token")]
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("unsupported WebSocket version {0:?} (only 13)")]
    BadVersion(Option<String>),
    /// `Sec-WebSocket-Key` is missing or not the base64 of 16 bytes.
    #[error("missing or malformed Sec-WebSocket-Key")]
    BadKey,
    /// The answer to our upgrade request is not `101`.
    #[error("the server answered {0} instead of 101 Switching Protocols")]
    NotSwitching(u16),
    /// The answer's `Sec-WebSocket-Accept` does not match our key.
    #[error("the server's Sec-WebSocket-Accept does not match the key sent")]
    BadAccept,
    /// The answer is not HTTP, or its head is over the limit.
    #[error("malformed handshake answer: {0}")]
    Malformed(String),
}

/// A checked upgrade request: what the `101` answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The request's path (`/service/websocket` for the RTM clients), query included.
    pub path: String,
    key: String,
    protocol: Option<String>,
    origin: Option<String>,
}

/// The value of header `name`, matched case-insensitively.
///
/// The framework stores header names as received and looks them up case-sensitively, so it
/// only understands the canonical spellings (`Upgrade`, `Connection`, `Sec-WebSocket-Key`,
/// ...). Browsers send those, but HTTP says names are case-insensitive and proxies (and
/// HTTP/2 gateways) lower-case them: we accept any spelling, stricter than nobody.
pub(crate) fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// `true` when the comma-separated header value contains `token` (case-insensitively).
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// A key is the base64 of 16 bytes: 22 characters of the alphabet and `==`.
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl Upgrade {
    /// Checks the headers of a `GET` that asks for an upgrade (the path was checked by the
    /// HTTP layer: `/service/<anything>`).
    pub fn check(path: &str, headers: &[httparse::Header<'_>]) -> Result<Upgrade, HandshakeError> {
        let upgrade = header(headers, "Upgrade").unwrap_or_default();
        if !has_token(upgrade, "websocket") {
            return Err(HandshakeError::NotWebSocket(text(upgrade)));
        }
        // The framework looks for the token `Upgrade` case-sensitively; browsers send
        // `Upgrade`, and HTTP says tokens are case-insensitive.
        if !header(headers, "Connection").is_some_and(|c| has_token(c, "upgrade")) {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        match header(headers, "Sec-WebSocket-Version") {
            Some(v) if v.trim_ascii() == VERSION.as_bytes() => {}
            other => return Err(HandshakeError::BadVersion(other.map(text))),
        }
        let key = header(headers, "Sec-WebSocket-Key")
            .map(<[u8]>::trim_ascii)
            .filter(|k| valid_key(k))
            .ok_or(HandshakeError::BadKey)?;
        // The framework echoes the whole header; a browser that offered several protocols
        // fails the connection unless exactly one of them comes back, so we echo the first.
        let protocol = header(headers, "Sec-WebSocket-Protocol")
            .and_then(|p| p.split(|&b| b == b',').next())
            .map(|p| text(p.trim_ascii()))
            .filter(|p| !p.is_empty());
        Ok(Upgrade {
            path: path.to_owned(),
            key: text(key),
            protocol,
            origin: header(headers, "Origin").map(text),
        })
    }

    /// The client's `Sec-WebSocket-Key`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocol echoed in the answer, if the client offered one.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The request's `Origin` (browsers send it; nothing checks it, as in the framework).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// `Sec-WebSocket-Accept`: base64(SHA-1(key + the RFC's GUID)).
    pub fn accept_key(&self) -> String {
        derive_accept_key(self.key.as_bytes())
    }

    /// Appends the `101 Switching Protocols` answer. Frames follow it at once.
    pub fn write_response(&self, out: &mut BytesMut) {
        out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        out.put_slice(self.accept_key().as_bytes());
        if let Some(protocol) = &self.protocol {
            out.put_slice(b"\r\nSec-WebSocket-Protocol: ");
            out.put_slice(protocol.as_bytes());
        }
        out.put_slice(b"\r\n\r\n");
    }
}

/// The largest handshake answer head a client reads.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// The most headers a client reads in that answer.
const MAX_RESPONSE_HEADERS: usize = 32;

/// Our side of the handshake as a client (`rtm login --ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    key: String,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        ClientHandshake::new()
    }
}

impl ClientHandshake {
    /// A handshake with a fresh random key.
    pub fn new() -> ClientHandshake {
        ClientHandshake {
            key: tungstenite::handshake::client::generate_key(),
        }
    }

    /// A handshake with a given key (for tests and vectors).
    pub fn with_key(key: impl Into<String>) -> ClientHandshake {
        ClientHandshake { key: key.into() }
    }

    /// The key sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends the upgrade request for `path` (e.g. `/service/websocket`) on `host`
    /// (`host[:port]`, the `Host` header).
    pub fn write_request(&self, host: &str, path: &str, out: &mut BytesMut) {
        for part in [
            "GET ",
            path,
            " HTTP/1.1\r\nHost: ",
            host,
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
            &self.key,
            "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ] {
            out.put_slice(part.as_bytes());
        }
    }

    /// Reads the server's answer off the front of `buf`.
    ///
    /// `Ok(None)`: the head is not complete yet. `Ok(Some(()))`: the upgrade is done and the
    /// head was consumed; anything after it in `buf` is already WebSocket frames.
    pub fn read_response(&self, buf: &mut BytesMut) -> Result<Option<()>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(buf) {
            Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => n,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => return Ok(None),
            // A head over the limit is refused whether it is complete yet or not.
            Ok(_) => {
                return Err(HandshakeError::Malformed(format!(
                    "head longer than {MAX_RESPONSE_HEAD} bytes"
                )))
            }
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let code = response.code.unwrap_or(0);
        if code != 101 {
            return Err(HandshakeError::NotSwitching(code));
        }
        let upgrade = header(response.headers, "Upgrade").unwrap_or_default();
        if !has_token(upgrade, "websocket") {
            return Err(HandshakeError::NotWebSocket(text(upgrade)));
        }
        if !header(response.headers, "Connection").is_some_and(|c| has_token(c, "upgrade")) {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        let expected = derive_accept_key(self.key.as_bytes());
        match header(response.headers, "Sec-WebSocket-Accept") {
            Some(accept) if accept.trim_ascii() == expected.as_bytes() => {}
            _ => return Err(HandshakeError::BadAccept),
        }
        let _ = buf.split_to(head_len);
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn the_accept_key_of_the_rfc_and_the_spec() {
        let up = Upgrade::check(
            "/service/websocket",
            &[
                h("Upgrade", "websocket"),
                h("Connection", "Upgrade"),
                h("Sec-WebSocket-Version", "13"),
                h("Sec-WebSocket-Key", KEY),
            ],
        )
        .unwrap();
        assert_eq!(up.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let mut out = BytesMut::new();
        up.write_response(&mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn header_spellings_and_token_lists() {
        // Lower case (proxies, HTTP/2 gateways), upper case, and Firefox's `keep-alive, Upgrade`.
        for (upgrade, connection, version, key) in [
            (
                "upgrade",
                "connection",
                "sec-websocket-version",
                "sec-websocket-key",
            ),
            (
                "UPGRADE",
                "CONNECTION",
                "SEC-WEBSOCKET-VERSION",
                "SEC-WEBSOCKET-KEY",
            ),
        ] {
            for conn_value in [
                "Upgrade",
                "upgrade",
                "keep-alive, Upgrade",
                "Keep-Alive,upgrade",
            ] {
                let up = Upgrade::check(
                    "/service/websocket",
                    &[
                        h(upgrade, "WebSocket"),
                        h(connection, conn_value),
                        h(version, " 13 "),
                        h(key, KEY),
                        h("sec-websocket-protocol", "fpnn, other"),
                    ],
                );
                let up = up.unwrap();
                assert_eq!(up.protocol(), Some("fpnn"));
                let mut out = BytesMut::new();
                up.write_response(&mut out);
                assert!(out.ends_with(b"Sec-WebSocket-Protocol: fpnn\r\n\r\n"));
            }
        }
    }

    #[test]
    fn refusals() {
        let base = [
            h("Upgrade", "websocket"),
            h("Connection", "Upgrade"),
            h("Sec-WebSocket-Version", "13"),
            h("Sec-WebSocket-Key", KEY),
        ];
        let without = |i: usize| {
            let mut v = base.to_vec();
            v.remove(i);
            Upgrade::check("/service/ws", &v)
        };
        assert_eq!(without(0), Err(HandshakeError::NotWebSocket(String::new())));
        assert_eq!(without(1), Err(HandshakeError::NoConnectionUpgrade));
        assert_eq!(without(2), Err(HandshakeError::BadVersion(None)));
        assert_eq!(without(3), Err(HandshakeError::BadKey));
        let mut v = base.to_vec();
        v[2] = h("Sec-WebSocket-Version", "8");
        assert_eq!(
            Upgrade::check("/service/ws", &v),
            Err(HandshakeError::BadVersion(Some("8".into())))
        );
        v[2] = base[2];
        v[1] = h("Connection", "keep-alive");
        assert_eq!(
            Upgrade::check("/", &v),
            Err(HandshakeError::NoConnectionUpgrade)
        );
        v[1] = base[1];
        v[3] = h("Sec-WebSocket-Key", "short==");
        assert_eq!(Upgrade::check("/", &v), Err(HandshakeError::BadKey));
        v[3] = h("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ!!");
        assert_eq!(Upgrade::check("/", &v), Err(HandshakeError::BadKey));
    }

    #[test]
    fn client_request_and_answer() {
        let client = ClientHandshake::with_key(KEY);
        let mut out = BytesMut::new();
        client.write_request("127.0.0.1:13321", "/service/websocket", &mut out);
        assert_eq!(
            &out[..],
            b"GET /service/websocket HTTP/1.1\r\nHost: 127.0.0.1:13321\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );

        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x00";
        for cut in 0..answer.len() - 2 {
            let mut buf = BytesMut::from(&answer[..cut]);
            assert_eq!(client.read_response(&mut buf), Ok(None), "{cut}");
        }
        let mut buf = BytesMut::from(&answer[..]);
        assert_eq!(client.read_response(&mut buf), Ok(Some(())));
        assert_eq!(&buf[..], b"\x82\x00", "the frames after the head are left");

        let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: xxx=\r\n\r\n"[..]);
        assert_eq!(
            client.read_response(&mut buf),
            Err(HandshakeError::BadAccept)
        );
        let mut buf = BytesMut::from(&b"HTTP/1.1 404 Not Found\r\n\r\n"[..]);
        assert_eq!(
            client.read_response(&mut buf),
            Err(HandshakeError::NotSwitching(404))
        );
        assert_ne!(ClientHandshake::new().key(), ClientHandshake::new().key());
        assert_eq!(ClientHandshake::new().key().len(), 24);
    }
}
