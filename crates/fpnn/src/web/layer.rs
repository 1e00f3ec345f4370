//! The wire layers that put [`http`](super::http) and [`ws`](super::ws) under a
//! [`proto::Connection`](crate::proto::Connection), so that HTTP/JSON calls and WebSocket
//! connections run through the same state machine (limits, budgets, idle and ping rules,
//! handlers) as binary FPNN.
//!
//! * [`Detect`]: the first layer of a server connection that serves the web. From the first
//!   bytes it hands over ([`ReadFrame::Replace`]) to [`Wire::Plain`] for binary FPNN (which
//!   then runs exactly as on a listener without web support: no layer, no copy), or to
//!   [`HttpLayer`] for an HTTP request.
//! * [`HttpLayer`]: each request becomes a two-way JSON quest; each answer frame the
//!   connection queues becomes a response, in request order. A WebSocket upgrade writes the
//!   `101` and hands over to [`WsLayer`]. A request with `Connection: close` ends the
//!   connection after its response.
//! * [`WsLayer`]: one FPNN frame per WebSocket message, both ways; pongs and the answer to
//!   the peer's close go out as control bytes; a connection closed by this side sends a
//!   close frame (1000) first, so that a browser sees a clean close.
//!
//! TLS is not a layer: a driver accepts the TLS session first and runs the connection on
//! the decrypted stream (see `fpnn::server`).

use super::detect::{detect, Accept, Detected};
use super::http::{HttpSession, Incoming as HttpIncoming, Limits};
use super::ws::{Incoming as WsIncoming, WebSocket};
use crate::frame::Frame;
use crate::proto::{ReadFrame, Wire, WireError, WireLayer};
use bytes::BytesMut;
use std::time::SystemTime;

/// The first layer of a server connection: picks binary FPNN or HTTP from the first bytes.
///
/// It consumes nothing. Frames written before the peer sent anything (a push from a
/// connect hook) go out as plain FPNN.
#[derive(Debug, Clone)]
pub struct Detect {
    limits: Limits,
}

impl Detect {
    /// A detector whose HTTP layer, if chosen, has these limits.
    pub fn new(limits: Limits) -> Detect {
        Detect { limits }
    }
}

impl WireLayer for Detect {
    fn name(&self) -> &'static str {
        "detect"
    }

    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        max_frame: usize,
        _control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        match detect(input, Accept::PLAIN) {
            Ok(None) => Ok(ReadFrame::NeedMore { frame_len: None }),
            Ok(Some(Detected::Fpnn)) => Ok(ReadFrame::Replace(Wire::Plain)),
            Ok(Some(Detected::Http)) => {
                let mut limits = self.limits.clone();
                limits.max_body = limits.max_body.min(max_frame);
                Ok(ReadFrame::Replace(HttpLayer::new(limits).into()))
            }
            // `Accept::PLAIN` never reports TLS; refuse it all the same.
            Ok(Some(other)) => Err(WireError::new(format!("unexpected {other:?}"))),
            Err(e) => Err(WireError::new(e.to_string())),
        }
    }

    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// HTTP/1.1 requests in, quests out; answers in, responses out (see [`HttpSession`]).
#[derive(Debug)]
pub struct HttpLayer {
    session: HttpSession,
}

impl HttpLayer {
    /// A layer with these limits.
    pub fn new(limits: Limits) -> HttpLayer {
        HttpLayer {
            session: HttpSession::new(limits),
        }
    }
}

impl WireLayer for HttpLayer {
    fn name(&self) -> &'static str {
        "http"
    }

    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        max_frame: usize,
        control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        if self.session.should_close() {
            // The response to a `Connection: close` request is queued: end here.
            return Ok(ReadFrame::Close);
        }
        match self.session.read(input) {
            Ok(Some(HttpIncoming::Quest(quest))) => {
                let quest = Frame::Quest(quest);
                let mut frame = BytesMut::with_capacity(quest.encoded_len());
                quest
                    .encode_into(&mut frame)
                    .map_err(|e| WireError::new(format!("cannot frame the HTTP call: {e}")))?;
                Ok(ReadFrame::Frame(frame))
            }
            Ok(Some(HttpIncoming::Upgrade(upgrade))) => {
                upgrade.write_response(control);
                Ok(ReadFrame::Replace(WsLayer::server(max_frame).into()))
            }
            Ok(None) => Ok(ReadFrame::NeedMore {
                frame_len: self.session.needed(input),
            }),
            Err(e) => Err(WireError::new(e.to_string())),
        }
    }

    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        let frame = Frame::decode(frame, usize::MAX)
            .map_err(|e| WireError::new(format!("cannot read an outgoing frame: {e}")))?;
        self.session
            .send_frame(&frame, SystemTime::now())
            .map_err(|e| WireError::new(e.to_string()))?;
        self.session.poll_transmit(out);
        Ok(())
    }
}

/// One FPNN frame per WebSocket message, both ways.
#[derive(Debug)]
pub struct WsLayer {
    ws: WebSocket,
    /// A close frame has been queued (ours, or the answer to the peer's).
    close_sent: bool,
}

impl WsLayer {
    /// The server end, with messages up to `max_message` bytes (the max FPNN frame).
    pub fn server(max_message: usize) -> WsLayer {
        WsLayer {
            ws: WebSocket::server(max_message),
            close_sent: false,
        }
    }

    /// The client end, after a successful handshake.
    pub fn client(max_message: usize) -> WsLayer {
        WsLayer {
            ws: WebSocket::client(max_message),
            close_sent: false,
        }
    }
}

impl WireLayer for WsLayer {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        _max_frame: usize,
        control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        let read = self.ws.read(input);
        self.ws.take_control(control);
        match read {
            Ok(Some(WsIncoming::Frame(bytes))) => Ok(ReadFrame::Frame(BytesMut::from(bytes))),
            Ok(Some(WsIncoming::Closed(_))) => {
                self.close_sent = true;
                Ok(ReadFrame::Close)
            }
            Ok(None) => Ok(ReadFrame::NeedMore {
                frame_len: self.ws.needed(input),
            }),
            Err(e) => Err(WireError::new(e.to_string())),
        }
    }

    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        self.ws.write_frame(frame, out);
        Ok(())
    }

    fn write_close(&mut self, out: &mut BytesMut) {
        if !self.close_sent {
            self.close_sent = true;
            self.ws.write_close(1000, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Config, Connection, Event};
    use crate::{Format, Quest, Value};
    use bytes::BufMut as _;
    use std::time::{Duration, Instant};

    fn server(now: Instant) -> Connection<()> {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(60)),
            ..Config::default()
        };
        let mut conn = Connection::new(config, now);
        conn.set_wire(Detect::new(Limits::default()).into());
        conn
    }

    fn feed(conn: &mut Connection<()>, bytes: &[u8], now: Instant) {
        let mut buf = conn.recv_buffer().expect("reading");
        buf.get_mut().extend_from_slice(bytes);
        conn.handle_input(bytes.len(), now);
    }

    fn take_output(conn: &mut Connection<()>, now: Instant) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(bytes) = conn.poll_transmit() {
            conn.on_transmitted(bytes.len(), now);
            all.extend_from_slice(&bytes);
        }
        all
    }

    /// Answers every quest with its params.
    fn echo_all(conn: &mut Connection<()>) -> usize {
        let mut n = 0;
        while let Some(event) = conn.poll_event() {
            if let Event::Quest(q) = event {
                conn.answer(q.seq.unwrap(), q.format, Ok(q.params().unwrap()));
                n += 1;
            }
        }
        n
    }

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mask = [9u8, 8, 7, 6];
        let mut out = vec![first, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn binary_fpnn_hands_over_to_the_plain_wire() {
        let now = Instant::now();
        let mut conn = server(now);
        assert_eq!(conn.wire().name(), "detect");
        let quest = Frame::Quest(Quest::twoway("echo", 1, &Value::map()).unwrap());
        let bytes = quest.encode().unwrap();
        // The detector waits for 4 bytes.
        feed(&mut conn, &bytes[..2], now);
        assert_eq!(echo_all(&mut conn), 0);
        feed(&mut conn, &bytes[2..], now);
        assert_eq!(echo_all(&mut conn), 1);
        assert_eq!(conn.wire().name(), "plain");
        assert!(take_output(&mut conn, now).starts_with(b"FPNN"));
    }

    #[test]
    fn http_connection_close_ends_after_the_response() {
        let now = Instant::now();
        let mut conn = server(now);
        feed(
            &mut conn,
            b"GET /service/a HTTP/1.1\r\n\r\nPOST /service/b HTTP/1.0\r\nContent-Length: 7\r\n\r\n{\"b\":2}",
            now,
        );
        assert_eq!(echo_all(&mut conn), 2);
        assert_eq!(conn.wire().name(), "http");
        let out = String::from_utf8(take_output(&mut conn, now)).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("Connection: close\r\n\r\n{\"b\":2}"), "{out}");
        assert!(conn.is_closed());
    }

    #[test]
    fn websocket_frames_pongs_and_close_frames() {
        let now = Instant::now();
        let mut conn = server(now);
        feed(&mut conn, b"GET /service/websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", now);
        let quest = Frame::Quest(Quest::twoway("echo", 5, &Value::map().with("a", 1)).unwrap());
        let mut frames = masked(0x89, b"hi");
        frames.extend(masked(0x82, &quest.encode().unwrap()));
        feed(&mut conn, &frames, now);
        assert_eq!(echo_all(&mut conn), 1);
        assert_eq!(conn.wire().name(), "websocket");
        let out = take_output(&mut conn, now);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{text}"
        );
        let after = &out[text.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(&after[..4], b"\x8a\x02hi");
        assert_eq!(after[4], 0x82);
        assert!(after[6..].starts_with(b"FPNN"));

        // A server push goes out as a message too.
        conn.send_oneway("kickout", Format::MsgPack, &Value::map(), now)
            .unwrap();
        let push = take_output(&mut conn, now);
        assert!(push[0] == 0x82 && push[2..].starts_with(b"FPNN"));

        // The idle rule of the connection, on simulated time: closed with a close frame.
        let later = now + Duration::from_secs(61);
        conn.handle_timeout(later);
        assert!(conn.is_closing());
        assert_eq!(take_output(&mut conn, later), b"\x88\x02\x03\xe8");
        assert!(conn.is_closed());
    }

    #[test]
    fn a_websocket_close_from_the_peer_is_answered_once() {
        let now = Instant::now();
        let mut conn = server(now);
        let mut input = b"GET /service/x HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
        input.extend(masked(0x88, &1001u16.to_be_bytes()));
        feed(&mut conn, &input, now);
        assert_eq!(echo_all(&mut conn), 0);
        let out = take_output(&mut conn, now);
        assert!(out.ends_with(b"\x88\x02\x03\xe9"), "{out:?}");
        assert_eq!(out.iter().filter(|&&b| b == 0x88).count(), 1);
        assert!(conn.is_closed());
    }

    #[test]
    fn a_websocket_message_longer_than_the_read_buffer_is_read() {
        let now = Instant::now();
        let config = Config {
            read_buffer: 1024,
            ..Config::default()
        };
        let mut conn: Connection<()> = Connection::new(config, now);
        conn.set_wire(WsLayer::server(crate::DEFAULT_MAX_FRAME).into());
        let big = Value::map().with("s", "q".repeat(5000));
        let frame = Frame::Quest(Quest::twoway("echo", 1, &big).unwrap())
            .encode()
            .unwrap();
        let mut wire = vec![0x82, 0x80 | 126];
        wire.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        wire.extend_from_slice(&[0, 0, 0, 0]);
        wire.extend_from_slice(&frame);
        let mut fed = 0;
        while fed < wire.len() {
            let mut buf = conn.recv_buffer().expect("the frame's length is known");
            let n = buf.remaining_mut().min(wire.len() - fed);
            buf.get_mut().extend_from_slice(&wire[fed..fed + n]);
            conn.handle_input(n, now);
            fed += n;
            if fed < wire.len() {
                assert_eq!(echo_all(&mut conn), 0);
            }
        }
        assert_eq!(echo_all(&mut conn), 1);
    }
}
