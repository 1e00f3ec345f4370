//! WebSocket frames on arbitrary bytes, for either end.
//!
//! Input: a byte `k` (bit 3: the client end, else the server; bits 0–2: how many chunk-size
//! bytes follow, each `b` a chunk of `b + 1` bytes), then the stream. A small message limit
//! (2 KiB) so that it is reached.
//!
//! Checked:
//! * no panic, and nothing reserved for what a header merely announces;
//! * reading in chunks gives exactly the messages (and the close, and whether it fails) of
//!   reading the whole stream at once;
//! * every message is exactly one FPNN frame within the limit;
//! * the control frames owed are at most a pong and a close;
//! * the client end accepts the framework's 126-byte quirk only where a correct length could
//!   not be meant (a message it returns decodes as a frame either way).
#![no_main]

use bytes::{Bytes, BytesMut};
use fpnn::web::ws::{Incoming, WebSocket};
use fpnn::Frame;
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;

const MAX: usize = 2048;

#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Bytes),
    Closed(Option<u16>),
}

fn drain(ws: &mut WebSocket, buf: &mut BytesMut, seen: &mut Vec<Seen>) -> Result<bool, ()> {
    loop {
        match ws.read(buf) {
            Ok(Some(Incoming::Frame(bytes))) => {
                assert!(bytes.len() <= MAX);
                Frame::decode(&bytes, MAX).expect("a message is one whole FPNN frame");
                seen.push(Seen::Frame(bytes));
            }
            Ok(Some(Incoming::Closed(code))) => {
                seen.push(Seen::Closed(code));
                return Ok(true);
            }
            Ok(Some(_)) => unreachable!("no other events"),
            Ok(None) => return Ok(false),
            Err(_) => return Err(()),
        }
    }
}

fn end(client: bool) -> WebSocket {
    if client {
        WebSocket::client(MAX)
    } else {
        WebSocket::server(MAX)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((k, sizes, stream)) = pieces::split(data) else {
        return;
    };
    let client = k & 8 != 0;

    let mut whole_seen = Vec::new();
    let mut ws = end(client);
    let mut buf = BytesMut::from(stream);
    let whole = drain(&mut ws, &mut buf, &mut whole_seen);
    let mut control = BytesMut::new();
    ws.take_control(&mut control);
    assert!(control.len() <= 2 * (14 + 125));

    let mut chunked_seen = Vec::new();
    let mut ws = end(client);
    let mut buf = BytesMut::new();
    let mut chunked = Ok(false);
    for piece in pieces::pieces(stream, sizes) {
        buf.extend_from_slice(piece);
        chunked = drain(&mut ws, &mut buf, &mut chunked_seen);
        assert!(buf.capacity() <= stream.len().max(64) * 2 + 64, "reserved {}", buf.capacity());
        if chunked != Ok(false) {
            break;
        }
    }
    assert_eq!(chunked_seen, whole_seen);
    assert_eq!(chunked.is_err(), whole.is_err());
});
