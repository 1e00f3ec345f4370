//! Reading HTTP/1.x requests (`httparse` for the head), one at a time, with no I/O.

use super::{HttpError, Limits};
use crate::payload::Format;
use crate::value::Value;
use crate::web::ws::{has_token, header, Upgrade};
use crate::Quest;
use bytes::{Buf, Bytes, BytesMut};

/// One request read off the connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `POST|GET /service/<method>`: a call, to run as a two-way quest.
    Call(Call),
    /// A `GET` asking for a WebSocket upgrade, checked.
    Upgrade(Upgrade),
}

/// A call over HTTP: the method from the path and the JSON object of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The FPNN method: the second segment of `/service/<method>`.
    pub method: String,
    /// The parameters (a map).
    pub params: Value,
    /// The parameters as JSON text, as received (sent on as the quest's payload).
    payload: Bytes,
    /// The request carried `Origin`: the answer gets the CORS headers.
    pub cors: bool,
    /// The connection stays open after the answer (HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Call {
    /// The call as a two-way quest with a JSON payload (flag `0x40`), as the framework makes
    /// it (it uses seq 0 for all; a connection needs distinct ones to match the answers).
    pub fn quest(&self, seq: u32) -> Quest {
        Quest {
            method: self.method.clone(),
            seq: Some(seq),
            format: Format::Json,
            payload: self.payload.clone(),
        }
    }
}

/// The head of a request whose body is still to come.
#[derive(Debug)]
struct Pending {
    method: String,
    post: bool,
    query: Option<String>,
    cors: bool,
    keep_alive: bool,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// `Content-Length: n` (or none: n = 0).
    Length(usize),
    /// `Transfer-Encoding: chunked`, decoded as it arrives.
    Chunked(Chunked),
}

#[derive(Debug, Default)]
struct Chunked {
    data: BytesMut,
    /// Bytes of the current chunk still to take, then its CRLF.
    remaining: usize,
    in_chunk: bool,
    /// The last chunk was seen; trailers (skipped) until an empty line.
    trailers: bool,
    /// Trailer bytes skipped so far.
    trailer_len: usize,
}

/// Reads requests off the front of a buffer, one at a time.
///
/// It never consumes bytes of the next request (pipelining) and never reserves memory for
/// what a header merely announces. Any error means the connection is to be closed, as the
/// framework does (it sends no `400`).
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    pending: Option<Pending>,
    /// How much of the buffer was searched for the end of the head, so that a head arriving
    /// a byte at a time is not parsed again for every byte.
    scanned: usize,
}

/// The most headers a request may have.
const MAX_HEADERS: usize = 64;

impl RequestDecoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> RequestDecoder {
        RequestDecoder {
            limits,
            pending: None,
            scanned: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes the next whole request off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed. The head is consumed as soon as it is complete,
    /// and a chunked body as its chunks arrive; nothing after the request is touched.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, HttpError> {
        if self.pending.is_none() {
            match self.head(buf)? {
                None => return Ok(None),
                Some(Head::Upgrade(up)) => return Ok(Some(Request::Upgrade(up))),
                Some(Head::Call(pending)) => self.pending = Some(pending),
            }
        }
        let Some(pending) = self.pending.as_mut() else {
            return Ok(None);
        };
        let body = match &mut pending.body {
            Body::Length(n) => {
                if buf.len() < *n {
                    return Ok(None);
                }
                buf.split_to(*n).freeze()
            }
            Body::Chunked(chunked) => match chunked.read(buf, &self.limits)? {
                None => return Ok(None),
                Some(body) => body,
            },
        };
        let Some(pending) = self.pending.take() else {
            return Ok(None);
        };
        pending.into_call(body).map(|c| Some(Request::Call(c)))
    }

    /// How many bytes `buf` must hold in all for the request being read to complete, when
    /// that is known: the body of a request whose head has been read, with its
    /// `Content-Length`. `None` while the head or a chunked body is being read (those are
    /// consumed as they arrive, or bounded by the head limit).
    pub fn needed(&self, buf: &[u8]) -> Option<usize> {
        match self.pending.as_ref().map(|p| &p.body) {
            Some(Body::Length(n)) if *n > buf.len() => Some(*n),
            _ => None,
        }
    }

    /// Parses the head once it is complete.
    fn head(&mut self, buf: &mut BytesMut) -> Result<Option<Head>, HttpError> {
        let from = self.scanned.saturating_sub(3);
        let ended = buf[from.min(buf.len())..]
            .windows(2)
            .any(|w| w == b"\n\n" || w == b"\n\r");
        if !ended {
            self.scanned = buf.len();
            if buf.len() > self.limits.max_head {
                return Err(HttpError::HeadTooLarge(self.limits.max_head));
            }
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let head_len = match request.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                self.scanned = buf.len();
                if buf.len() > self.limits.max_head {
                    return Err(HttpError::HeadTooLarge(self.limits.max_head));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::TooManyHeaders(MAX_HEADERS))
            }
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        };
        if head_len > self.limits.max_head {
            return Err(HttpError::HeadTooLarge(self.limits.max_head));
        }
        let head = parse_head(&request, &self.limits)?;
        buf.advance(head_len);
        self.scanned = 0;
        Ok(Some(head))
    }
}

enum Head {
    Call(Pending),
    Upgrade(Upgrade),
}

fn parse_head(request: &httparse::Request<'_, '_>, limits: &Limits) -> Result<Head, HttpError> {
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HttpError::Malformed("incomplete request line".into()));
    };
    let post = match method {
        "POST" => true,
        "GET" => false,
        other => return Err(HttpError::MethodNotAllowed(other.to_owned())),
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let fpnn_method = service_method(path)?;
    let headers: &[httparse::Header<'_>] = request.headers;
    // An `Upgrade` to anything but WebSocket (`h2c`, say) may be ignored (RFC 9110 §7.8):
    // the request is then an ordinary call.
    if !post && header(headers, "Upgrade").is_some_and(|u| has_token(u, "websocket")) {
        return Upgrade::check(target, headers)
            .map(Head::Upgrade)
            .map_err(HttpError::Upgrade);
    }
    let connection = header(headers, "Connection");
    let keep_alive = match version {
        1 => !connection.is_some_and(|c| has_token(c, "close")),
        _ => connection.is_some_and(|c| has_token(c, "keep-alive")),
    };
    let body = body_kind(headers, limits)?;
    if !post && !matches!(body, Body::Length(0)) {
        return Err(HttpError::BadBody("a GET with a body"));
    }
    Ok(Head::Call(Pending {
        method: fpnn_method.to_owned(),
        post,
        query: query.map(str::to_owned),
        cors: header(headers, "Origin").is_some(),
        keep_alive,
        body,
    }))
}

/// The method of `/service/<method>`: after splitting on `/` and dropping empty segments,
/// exactly two segments, the first `service` (the framework's rule).
pub(crate) fn service_method(path: &str) -> Result<&str, HttpError> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (Some("service"), Some(method), None) if method.len() <= usize::from(u8::MAX) => Ok(method),
        _ => Err(HttpError::BadPath(path.to_owned())),
    }
}

fn body_kind(headers: &[httparse::Header<'_>], limits: &Limits) -> Result<Body, HttpError> {
    let mut length = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
    {
        let text = std::str::from_utf8(h.value).unwrap_or("").trim();
        let n: u64 = text
            .parse()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(HttpError::BadBody("Content-Length is not a number"))?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadBody("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    let chunked = match header(headers, "Transfer-Encoding") {
        None => false,
        Some(te) if te.trim_ascii().eq_ignore_ascii_case(b"chunked") => true,
        Some(_) => return Err(HttpError::BadBody("a Transfer-Encoding other than chunked")),
    };
    match (chunked, length) {
        (true, Some(_)) => Err(HttpError::BadBody(
            "both Content-Length and Transfer-Encoding",
        )),
        (true, None) => Ok(Body::Chunked(Chunked::default())),
        (false, Some(n)) if n > limits.max_body as u64 => Err(HttpError::BodyTooLarge {
            len: n,
            max: limits.max_body,
        }),
        // Bounded by max_body just above, so it fits; checked anyway.
        (false, n) => {
            let n = n.unwrap_or(0);
            usize::try_from(n)
                .map(Body::Length)
                .map_err(|_| HttpError::BodyTooLarge {
                    len: n,
                    max: limits.max_body,
                })
        }
    }
}

impl Chunked {
    /// Takes chunks off `buf` into `data`; the whole body once the last chunk and the
    /// trailers are in.
    fn read(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Bytes>, HttpError> {
        loop {
            if self.trailers {
                // Trailer lines (ignored) until an empty line.
                let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                    if self.trailer_len + buf.len() > limits.max_head {
                        return Err(HttpError::HeadTooLarge(limits.max_head));
                    }
                    return Ok(None);
                };
                let line = buf.split_to(end + 1);
                self.trailer_len += line.len();
                if self.trailer_len > limits.max_head {
                    return Err(HttpError::HeadTooLarge(limits.max_head));
                }
                if line.trim_ascii().is_empty() {
                    return Ok(Some(std::mem::take(&mut self.data).freeze()));
                }
                continue;
            }
            if self.in_chunk {
                if self.remaining > 0 {
                    let n = self.remaining.min(buf.len());
                    if n == 0 {
                        return Ok(None);
                    }
                    self.data.extend_from_slice(&buf.split_to(n));
                    self.remaining -= n;
                    continue;
                }
                let n = buf.len().min(2);
                if buf[..n] != b"\r\n"[..n] {
                    return Err(HttpError::BadChunk("chunk data not followed by CRLF"));
                }
                if n < 2 {
                    return Ok(None);
                }
                buf.advance(2);
                self.in_chunk = false;
                continue;
            }
            match httparse::parse_chunk_size(buf) {
                // Extensions make a size line longer, but not past the head limit: the same
                // verdict whether the line came in one read or many.
                Ok(httparse::Status::Complete((used, _))) if used > limits.max_head => {
                    return Err(HttpError::BadChunk("chunk size line too long"));
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    let total = (self.data.len() as u64).saturating_add(size);
                    if total > limits.max_body as u64 {
                        return Err(HttpError::BodyTooLarge {
                            len: total,
                            max: limits.max_body,
                        });
                    }
                    buf.advance(used);
                    if size == 0 {
                        self.trailers = true;
                    } else {
                        // Bounded by max_body just above, so it fits; checked anyway.
                        self.remaining =
                            usize::try_from(size).map_err(|_| HttpError::BodyTooLarge {
                                len: size,
                                max: limits.max_body,
                            })?;
                        self.in_chunk = true;
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > limits.max_head {
                        return Err(HttpError::BadChunk("chunk size line too long"));
                    }
                    return Ok(None);
                }
                Err(_) => return Err(HttpError::BadChunk("bad chunk size line")),
            }
        }
    }
}

impl Pending {
    fn into_call(self, body: Bytes) -> Result<Call, HttpError> {
        let payload = if self.post {
            if body.iter().all(u8::is_ascii_whitespace) {
                // An empty POST (curl -X POST without data) is the GET default, `{}`.
                Bytes::from_static(b"{}")
            } else {
                body
            }
        } else {
            fpnn_param(self.query.as_deref())?
        };
        let params = Format::Json
            .decode(&payload)
            .map_err(HttpError::BadParams)?;
        Ok(Call {
            method: self.method,
            params,
            payload,
            cors: self.cors,
            keep_alive: self.keep_alive,
        })
    }
}

/// The JSON text of the query's `fpnn` parameter, `{}` when there is none.
///
/// The framework URL-decodes the whole query before splitting it on `&` and `=`, so a value
/// whose decoded text holds `&` or `=` (a base64 token, say) breaks its parsing and closes the
/// connection. We split first and decode each part (`+` is a space, as in HTML forms and
/// `URLSearchParams`): every query the framework reads is read the same here, and more.
fn fpnn_param(query: Option<&str>) -> Result<Bytes, HttpError> {
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_component(name) == b"fpnn" {
            return Ok(Bytes::from(decode_component(value)));
        }
    }
    Ok(Bytes::from_static(b"{}"))
}

fn decode_component(text: &str) -> Vec<u8> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Option<Request>, HttpError> {
        let mut buf = BytesMut::from(input);
        RequestDecoder::new(Limits::default()).decode(&mut buf)
    }

    fn call(input: &[u8]) -> Call {
        match decode_all(input) {
            Ok(Some(Request::Call(c))) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn post_with_content_length() {
        let c = call(
            b"POST /service/gettoken HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"uid\":1}",
        );
        assert_eq!(c.method, "gettoken");
        assert_eq!(c.params, Value::map().with("uid", 1));
        assert!(c.keep_alive && !c.cors);
        let q = c.quest(7);
        assert_eq!(
            (q.seq, q.format, &q.payload[..]),
            (Some(7), Format::Json, &b"{\"uid\":1}"[..])
        );
    }

    #[test]
    fn get_with_the_fpnn_query() {
        let c = call(b"GET /service/echo?a=1&fpnn=%7B%22t%22%3A%22ab%3D%3D%26%22%2C%22s%22%3A%22x+y%22%7D HTTP/1.1\r\nOrigin: http://a\r\n\r\n");
        assert_eq!(c.params, Value::map().with("t", "ab==&").with("s", "x y"));
        assert!(c.cors);
        assert_eq!(
            call(b"GET /service/echo HTTP/1.1\r\n\r\n").params,
            Value::map()
        );
        assert_eq!(
            call(b"GET //service//echo/?x=1 HTTP/1.0\r\n\r\n").method,
            "echo"
        );
        assert!(!call(b"GET /service/echo HTTP/1.0\r\n\r\n").keep_alive);
        assert!(call(b"GET /service/echo HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!call(b"GET /service/echo HTTP/1.1\r\nconnection: close\r\n\r\n").keep_alive);
        assert_eq!(
            decode_all(b"GET /service/echo?fpnn=%5B1%5D HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadParams(crate::CodecError::NotAMap("array")))
        );
    }

    #[test]
    fn chunked_bodies() {
        let input = b"POST /service/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\nGET ";
        for split in 0..input.len() {
            let mut d = RequestDecoder::new(Limits::default());
            let mut buf = BytesMut::from(&input[..split]);
            let first = d.decode(&mut buf).unwrap();
            buf.extend_from_slice(&input[split..]);
            let req = match first {
                Some(r) => r,
                None => d.decode(&mut buf).unwrap().unwrap(),
            };
            let Request::Call(c) = req else { panic!() };
            assert_eq!(c.params, Value::map().with("a", 1));
            assert_eq!(&buf[..], b"GET ", "the next request is left");
        }
        assert_eq!(
            decode_all(b"POST /service/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc"),
            Err(HttpError::BadChunk("chunk data not followed by CRLF"))
        );
        assert_eq!(
            decode_all(b"POST /service/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(HttpError::BadChunk("bad chunk size line"))
        );
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_head: 200,
            max_body: 100,
        };
        let decode =
            |input: &[u8]| RequestDecoder::new(limits.clone()).decode(&mut BytesMut::from(input));
        assert_eq!(
            decode(b"POST /service/e HTTP/1.1\r\nContent-Length: 101\r\n\r\n"),
            Err(HttpError::BodyTooLarge { len: 101, max: 100 })
        );
        assert_eq!(
            decode(b"POST /service/e HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(HttpError::BadBody("Content-Length is not a number"))
        );
        assert_eq!(
            decode(b"POST /service/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"),
            Err(HttpError::BodyTooLarge { len: 101, max: 100 })
        );
        // A size line over the head limit, complete or not (found by the fuzzer).
        let long_ext = [
            &b"POST /service/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x="[..],
            &[b'a'; 300],
        ]
        .concat();
        for end in [&b""[..], b"\r\n"] {
            assert_eq!(
                decode(&[&long_ext[..], end].concat()),
                Err(HttpError::BadChunk("chunk size line too long"))
            );
        }
        let long = [&b"GET /service/e HTTP/1.1\r\nX: "[..], &[b'a'; 300]].concat();
        assert_eq!(decode(&long), Err(HttpError::HeadTooLarge(200)));
        let many: Vec<u8> = [
            &b"GET /service/e HTTP/1.1\r\n"[..],
            &b"X: y\r\n".repeat(65),
            b"\r\n",
        ]
        .concat();
        assert_eq!(
            RequestDecoder::new(Limits::default()).decode(&mut BytesMut::from(&many[..])),
            Err(HttpError::TooManyHeaders(64))
        );
    }

    #[test]
    fn refusals() {
        for (input, expected) in [
            (&b"PUT /service/e HTTP/1.1\r\n\r\n"[..], HttpError::MethodNotAllowed("PUT".into())),
            (b"GET /service HTTP/1.1\r\n\r\n", HttpError::BadPath("/service".into())),
            (b"GET /service/a/b HTTP/1.1\r\n\r\n", HttpError::BadPath("/service/a/b".into())),
            (b"GET /other/a HTTP/1.1\r\n\r\n", HttpError::BadPath("/other/a".into())),
            (b"POST /service/e HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HttpError::BadBody("conflicting Content-Length headers")),
            (b"POST /service/e HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::BadBody("both Content-Length and Transfer-Encoding")),
            (b"POST /service/e HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", HttpError::BadBody("a Transfer-Encoding other than chunked")),
            (b"POST /service/e HTTP/1.1\r\nContent-Length: +1\r\n\r\n", HttpError::BadBody("Content-Length is not a number")),
            (b"GET /service/e HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", HttpError::BadBody("a GET with a body")),
            (b"POST /service/e HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]", HttpError::BadParams(crate::CodecError::NotAMap("array"))),
        ] {
            assert_eq!(decode_all(input), Err(expected), "{}", String::from_utf8_lossy(input));
        }
        assert!(matches!(
            decode_all(b"GET\x01 / HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            decode_all(b"POST /service/e HTTP/1.1\r\nContent-Length: 1\r\n\r\n{"),
            Err(HttpError::BadParams(_))
        ));
    }

    #[test]
    fn empty_post_is_an_empty_map() {
        assert_eq!(
            call(b"POST /service/e HTTP/1.1\r\n\r\n").params,
            Value::map()
        );
    }

    #[test]
    fn an_upgrade_is_told_apart() {
        let input = b"GET /service/websocket HTTP/1.1\r\nHost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n\x81";
        let mut buf = BytesMut::from(&input[..]);
        let Ok(Some(Request::Upgrade(up))) =
            RequestDecoder::new(Limits::default()).decode(&mut buf)
        else {
            panic!()
        };
        assert_eq!(up.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(&buf[..], b"\x81");
        // Another upgrade is ignored: an ordinary call.
        let Ok(Some(Request::Call(c))) = decode_all(
            b"GET /service/echo HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        ) else {
            panic!()
        };
        assert_eq!(c.method, "echo");
        // Upgrade only on /service/<anything>.
        assert_eq!(
            decode_all(b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            Err(HttpError::BadPath("/chat".into()))
        );
        assert!(matches!(
            decode_all(b"GET /service/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
            Err(HttpError::Upgrade(_))
        ));
    }

    #[test]
    fn a_head_arriving_a_byte_at_a_time() {
        let input = b"POST /service/echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let mut d = RequestDecoder::new(Limits::default());
        let mut buf = BytesMut::new();
        for (i, &b) in input.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let r = d.decode(&mut buf).unwrap();
            assert_eq!(r.is_some(), i == input.len() - 1);
        }
    }
}
