//! Property tests of `fpnn::web`'s parsers: requests and WebSocket frames fed in arbitrary
//! pieces give the same result as whole, round trips between our writers and readers, and
//! the detector's decisions never change as more bytes arrive.
//!
//! Deterministic (a fixed seed) unless `PROPTEST_RNG_SEED` is set; `PROPTEST_CASES` runs more.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use fpnn::web::detect::{detect, Accept, MAX_DETECT_LEN};
use fpnn::web::http::{HttpSession, Incoming as HttpIncoming, Limits, Request, RequestDecoder};
use fpnn::web::ws::{Incoming, Upgrade, WebSocket};
use fpnn::{Format, Frame, Quest, Value, DEFAULT_MAX_FRAME};
use proptest::prelude::*;

/// `cases` cases, from this file's fixed seed unless the environment names one.
fn config(cases: u32) -> ProptestConfig {
    common::proptest_config(cases, 0x_3e_b5_0c_e7)
}

/// Feeds `input` to `step` in pieces of the given sizes (cycled), collecting what it yields
/// after each piece; `step` drains the buffer as far as it can.
fn in_pieces<T>(
    input: &[u8],
    sizes: &[usize],
    mut step: impl FnMut(&mut BytesMut) -> Vec<T>,
) -> (Vec<T>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(piece);
        out.extend(step(&mut buf));
    }
    (out, buf)
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A JSON object of a few simple fields.
fn params() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[ -~é✓&=+%]{0,12}".prop_map(|s| Value::from(s.as_str())),
        any::<bool>().prop_map(Value::from),
    ];
    prop::collection::vec(("[a-z]{1,6}", leaf), 0..5).prop_map(|fields| {
        fields
            .into_iter()
            .fold(Value::map(), |m, (k, v)| m.with(k.as_str(), v))
    })
}

#[derive(Debug, Clone)]
enum Shape {
    Length,
    Chunked(Vec<usize>),
    Get,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Length),
        prop::collection::vec(1usize..20, 1..6).prop_map(Shape::Chunked),
        Just(Shape::Get),
    ]
}

/// The bytes of one request for `method` with `params`, in the given shape.
fn request(method: &str, params: &Value, shape: &Shape, header_case: bool) -> Vec<u8> {
    let json = serde_json::to_vec(params).unwrap();
    let name = |canonical: &str| {
        if header_case {
            canonical.to_owned()
        } else {
            canonical.to_ascii_lowercase()
        }
    };
    let mut out = Vec::new();
    match shape {
        Shape::Get => {
            let query: String =
                percent_encoding::percent_encode(&json, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            out.extend(
                format!("GET /service/{method}?x=1&fpnn={query} HTTP/1.1\r\nHost: h\r\n\r\n")
                    .bytes(),
            );
        }
        Shape::Length => {
            out.extend(
                format!(
                    "POST /service/{method} HTTP/1.1\r\n{}: {}\r\n\r\n",
                    name("Content-Length"),
                    json.len()
                )
                .bytes(),
            );
            out.extend(&json);
        }
        Shape::Chunked(sizes) => {
            out.extend(
                format!(
                    "POST /service/{method} HTTP/1.1\r\n{}: chunked\r\n\r\n",
                    name("Transfer-Encoding")
                )
                .bytes(),
            );
            let mut rest = &json[..];
            let mut sizes = sizes.iter().copied().cycle();
            while !rest.is_empty() {
                let n = sizes.next().unwrap_or(1).min(rest.len());
                out.extend(format!("{n:x}\r\n").bytes());
                out.extend(&rest[..n]);
                out.extend(b"\r\n");
                rest = &rest[n..];
            }
            out.extend(b"0\r\n\r\n");
        }
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// Pipelined requests of every shape, cut anywhere: each is read once, in order, with its
    /// parameters, and nothing of the next is consumed early.
    #[test]
    fn pipelined_requests_in_pieces(
        calls in prop::collection::vec(("[a-z]{1,12}", params(), shape(), any::<bool>()), 1..5),
        sizes in prop::collection::vec(1usize..64, 0..8),
    ) {
        let input: Vec<u8> = calls.iter().flat_map(|(m, p, s, c)| request(m, p, s, *c)).collect();
        let mut decoder = RequestDecoder::new(Limits::default());
        let (got, left) = in_pieces(&input, &sizes, |buf| {
            let mut out = Vec::new();
            while let Some(req) = decoder.decode(buf).unwrap() {
                out.push(req);
            }
            out
        });
        prop_assert!(left.is_empty());
        prop_assert_eq!(got.len(), calls.len());
        for (req, (method, params, _, _)) in got.into_iter().zip(&calls) {
            let Request::Call(call) = req else { panic!("not a call") };
            prop_assert_eq!(&call.method, method);
            prop_assert_eq!(&call.params, params);
            let quest = call.quest(1);
            prop_assert_eq!(quest.format, Format::Json);
            prop_assert_eq!(&Format::Json.decode(&quest.payload).unwrap(), params);
        }
    }

    /// Answers completing in any order go out in request order.
    #[test]
    fn responses_in_request_order(order in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle()) {
        let mut session = HttpSession::new(Limits::default());
        let input: Vec<u8> = (0..8).flat_map(|i| format!("GET /service/m{i} HTTP/1.1\r\n\r\n").into_bytes()).collect();
        let mut buf = BytesMut::from(&input[..]);
        let mut quests = Vec::new();
        while let Some(HttpIncoming::Quest(q)) = session.read(&mut buf).unwrap() {
            quests.push(q);
        }
        prop_assert_eq!(quests.len(), 8);
        let mut out = BytesMut::new();
        for &i in &order {
            let q = &quests[i];
            let answer = fpnn::Answer::ok(q.seq.unwrap(), Format::Json, &Value::map().with("i", i as i64)).unwrap();
            session.answer(&answer, std::time::SystemTime::UNIX_EPOCH).unwrap();
            session.poll_transmit(&mut out);
        }
        let text = String::from_utf8(out.to_vec()).unwrap();
        let positions: Vec<usize> = (0..8).map(|i| text.find(&format!("{{\"i\":{i}}}")).unwrap()).collect();
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{:?}", positions);
    }

    /// Any bytes: the decoder returns or fails, never panics, and never holds more than the
    /// head limit plus the body limit.
    #[test]
    fn arbitrary_bytes_never_panic(prefix in prop::sample::select(vec![&b"GET /service/a?fpnn="[..], b"POST /service/a HTTP/1.1\r\n", b""]), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut decoder = RequestDecoder::new(Limits { max_head: 256, max_body: 256 });
        let mut buf = BytesMut::from(&[prefix, &bytes[..]].concat()[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

fn fpnn_frame() -> impl Strategy<Value = Bytes> {
    (
        "[a-z*]{1,10}",
        prop::option::of(any::<u32>()),
        "[ -~]{0,300}",
    )
        .prop_map(|(method, seq, text)| {
            let q = Quest::new(
                method,
                seq,
                Format::MsgPack,
                &Value::map().with("t", text.as_str()),
            )
            .unwrap();
            Frame::Quest(q).encode().unwrap()
        })
}

/// A masked client frame, written here independently of the crate's writer (RFC 6455 §5.2).
fn client_frame(first: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

proptest! {
    #![proptest_config(config(256))]

    /// Messages fragmented anywhere, with pings between fragments, read in any pieces: the
    /// server gets each FPNN frame whole and in order, and owes a pong iff a ping came.
    #[test]
    fn fragmented_client_messages_in_pieces(
        frames in prop::collection::vec((fpnn_frame(), prop::collection::vec(1usize..100, 0..4), any::<bool>(), any::<[u8; 4]>()), 1..5),
        pings in any::<bool>(),
        sizes in prop::collection::vec(1usize..50, 0..8),
    ) {
        let mut input = Vec::new();
        for (frame, cuts, text, mask) in &frames {
            let mut rest = &frame[..];
            let mut first = true;
            let mut cuts = cuts.iter().copied();
            loop {
                let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                let fin = n == rest.len();
                let opcode = if first { if *text { 1 } else { 2 } } else { 0 };
                client_frame(opcode | if fin { 0x80 } else { 0 }, &rest[..n], *mask, &mut input);
                if pings && !fin {
                    client_frame(0x89, b"p", *mask, &mut input);
                }
                rest = &rest[n..];
                first = false;
                if fin { break; }
            }
        }
        let mut ws = WebSocket::server(DEFAULT_MAX_FRAME);
        let (got, left) = in_pieces(&input, &sizes, |buf| {
            let mut out = Vec::new();
            while let Some(Incoming::Frame(f)) = ws.read(buf).unwrap() {
                out.push(f);
            }
            out
        });
        prop_assert!(left.is_empty());
        let expected: Vec<Bytes> = frames.iter().map(|f| f.0.clone()).collect();
        prop_assert_eq!(got, expected);
        let mut control = BytesMut::new();
        // A message has a non-final fragment iff its first cut falls inside it.
        let fragmented = frames.iter().any(|(f, cuts, _, _)| cuts.first().is_some_and(|&c| c < f.len()));
        prop_assert_eq!(ws.take_control(&mut control), pings && fragmented);
    }

    /// Our client's frames read back on our server, and our server's on our client, in any
    /// pieces (every length encoding, 126 included).
    #[test]
    fn client_and_server_round_trip(
        frames in prop::collection::vec(fpnn_frame(), 1..6),
        sizes in prop::collection::vec(1usize..40, 0..8),
    ) {
        for (writer, mut reader) in [
            (WebSocket::client(DEFAULT_MAX_FRAME), WebSocket::server(DEFAULT_MAX_FRAME)),
            (WebSocket::server(DEFAULT_MAX_FRAME), WebSocket::client(DEFAULT_MAX_FRAME)),
        ] {
            let mut wire = BytesMut::new();
            for f in &frames {
                writer.write_frame(f, &mut wire);
            }
            let (got, left) = in_pieces(&wire, &sizes, |buf| {
                let mut out = Vec::new();
                while let Some(Incoming::Frame(f)) = reader.read(buf).unwrap() {
                    out.push(f);
                }
                out
            });
            prop_assert!(left.is_empty());
            prop_assert_eq!(&got, &frames);
        }
    }

    /// Any bytes, either role: no panic; what is refused stays refused.
    #[test]
    fn arbitrary_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), server in any::<bool>()) {
        let mut ws = if server { WebSocket::server(1024) } else { WebSocket::client(1024) };
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(Incoming::Frame(f))) = ws.read(&mut buf) {
            prop_assert!(Frame::decode(&f, 1024).is_ok());
        }
        let mut out = BytesMut::new();
        ws.take_control(&mut out);
        prop_assert!(out.len() <= 2 * (14 + 125));
    }

    /// Upgrade header names in any case are accepted.
    #[test]
    fn upgrade_headers_in_any_case(flips in prop::collection::vec(any::<bool>(), 64)) {
        let names = ["Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key"];
        let mut flip = flips.iter().cycle();
        let spelled: Vec<String> = names.iter().map(|n| n.chars().map(|c| if *flip.next().unwrap() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()).collect();
        let values = ["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ=="];
        let headers: Vec<httparse::Header<'_>> = spelled.iter().zip(values).map(|(n, v)| httparse::Header { name: n, value: v.as_bytes() }).collect();
        let up = Upgrade::check("/service/websocket", &headers).unwrap();
        prop_assert_eq!(up.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    /// The detector's answer never changes as more bytes arrive, and is always given by
    /// [`MAX_DETECT_LEN`] bytes.
    #[test]
    fn detection_is_stable(bytes in prop::collection::vec(prop_oneof![Just(b'F'), Just(b'P'), Just(b'N'), Just(b'G'), Just(b'E'), Just(b'T'), Just(b' '), Just(b'O'), Just(b'S'), Just(0x16), Just(0x03), any::<u8>()], 0..8), tls in any::<bool>()) {
        let accept = if tls { Accept::ANY } else { Accept::PLAIN };
        let mut decided = None;
        for n in 0..=bytes.len() {
            // The refusal shows the bytes seen; only the decision has to stay.
            let now = detect(&bytes[..n], accept).map_err(|_| ());
            if let Some(before) = &decided {
                prop_assert_eq!(&now, before);
            } else if !matches!(now, Ok(None)) {
                decided = Some(now);
            }
            if n >= MAX_DETECT_LEN {
                prop_assert!(decided.is_some());
            }
        }
    }
}

#[test]
fn a_frame_writer_helper_matches_the_rfc_example() {
    // RFC 6455 §5.7: a masked "Hello" from a client.
    let mut out = Vec::new();
    client_frame(0x81, b"Hello", [0x37, 0xfa, 0x21, 0x3d], &mut out);
    assert_eq!(
        out,
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    let mut b = BytesMut::new();
    b.put_slice(&out);
    // Not an FPNN frame, so the server refuses the message, after unmasking it.
    assert!(WebSocket::server(1024).read(&mut b).is_err());
}
