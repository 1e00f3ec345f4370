//! HTTP requests on arbitrary bytes, through the whole session (requests in, answers out).
//!
//! Input: a byte `k`, then `k & 7` chunk sizes (each byte `b` a chunk of `b + 1` bytes, used
//! in turn; none means all at once), then the stream. Small limits (1 KiB heads, 4 KiB
//! bodies) so that they are reached.
//!
//! Checked:
//! * no panic, and the buffer never holds more than the limits allow past a refusal;
//! * decoding in chunks reads exactly the requests of decoding the whole stream at once; it
//!   fails only if that fails (a malformed head may be refused only once it ends);
//! * every call's quest has a JSON payload that reads back as its params (a map);
//! * every answer (normal and error) renders to a response `httparse` reads back, with the
//!   right status and a body of the announced length.
#![no_main]

use bytes::BytesMut;
use fpnn::web::http::{HttpSession, Incoming, Limits};
use fpnn::{Answer, ErrorAnswer, Format, Value};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

#[path = "pieces.rs"]
mod pieces;

fn limits() -> Limits {
    Limits {
        max_head: 1024,
        max_body: 4096,
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Call(String, Value),
    Upgrade(String),
}

/// Reads every request; answers each at once (alternating ok and error) and checks the
/// responses.
fn drain(session: &mut HttpSession, buf: &mut BytesMut, seen: &mut Vec<Seen>) -> Result<(), ()> {
    loop {
        match session.read(buf) {
            Ok(Some(Incoming::Quest(quest))) => {
                assert_eq!(quest.format, Format::Json);
                let params = quest.params().expect("a call's payload is a JSON map");
                let seq = quest.seq.expect("two-way");
                let answer = if seen.len() % 2 == 0 {
                    Answer::ok(seq, Format::MsgPack, &params).expect("encodable")
                } else {
                    Answer::error(seq, Format::Json, &ErrorAnswer::new(20004, "no"))
                };
                session
                    .answer(&answer, SystemTime::UNIX_EPOCH + Duration::from_secs(1))
                    .expect("an answer to a waiting quest");
                let mut out = BytesMut::new();
                assert!(session.poll_transmit(&mut out));
                check_response(&out, answer.is_error());
                seen.push(Seen::Call(quest.method, params));
            }
            Ok(Some(Incoming::Upgrade(up))) => {
                seen.push(Seen::Upgrade(up.accept_key()));
                return Ok(());
            }
            Ok(Some(_)) => unreachable!("no other events"),
            Ok(None) => return Ok(()),
            Err(_) => return Err(()),
        }
    }
}

fn check_response(bytes: &[u8], error: bool) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = response.parse(bytes) else {
        panic!("an unreadable response: {:?}", String::from_utf8_lossy(bytes));
    };
    assert_eq!(response.code, Some(if error { 500 } else { 200 }));
    let length: usize = response
        .headers
        .iter()
        .find(|h| h.name == "Content-Length")
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .expect("Content-Length");
    assert_eq!(bytes.len(), head + length);
    let body: serde_json::Value = serde_json::from_slice(&bytes[head..]).expect("a JSON body");
    assert!(body.is_object());
}

fuzz_target!(|data: &[u8]| {
    let Some((_, sizes, stream)) = pieces::split(data) else {
        return;
    };

    let mut whole_seen = Vec::new();
    let mut session = HttpSession::new(limits());
    let mut buf = BytesMut::from(stream);
    let whole = drain(&mut session, &mut buf, &mut whole_seen);

    let mut chunked_seen = Vec::new();
    let mut session = HttpSession::new(limits());
    let mut buf = BytesMut::new();
    let mut chunked = Ok(());
    for piece in pieces::pieces(stream, sizes) {
        buf.extend_from_slice(piece);
        chunked = drain(&mut session, &mut buf, &mut chunked_seen);
        // What a connection may hold: a head, a body, the bytes of one read.
        assert!(buf.len() <= 1024 + 4096 + 256 + piece.len(), "buffered {} bytes", buf.len());
        if chunked.is_err() || matches!(chunked_seen.last(), Some(Seen::Upgrade(_))) {
            break;
        }
    }
    assert_eq!(chunked_seen, whole_seen);
    // A head is parsed once its end (an empty line) is in: a malformed head still arriving
    // is refused when it ends or passes the head limit, not before. Reading it whole can
    // refuse it earlier; reading in chunks never refuses what a whole read accepts.
    if chunked.is_err() {
        assert!(whole.is_err(), "refused in chunks, accepted whole");
    } else if whole.is_err() {
        assert!(!buf.is_empty(), "refused whole, but nothing is waiting in chunks");
    }
});
