//! WebSocket frames after the handshake (RFC 6455 §5), for either end, with no I/O.
//!
//! Each message carries exactly one FPNN frame. [`WebSocket::read`] takes whole messages off
//! the input (reassembling fragments, answering pings, seeing closes) and checks that each
//! is one whole FPNN frame; [`WebSocket::write_frame`] wraps one FPNN frame in one binary
//! message. Frame headers are parsed by `tungstenite` (`FrameHeader::parse`); the header we
//! write is the three-case length encoding of §5.2, written here because tungstenite's writer
//! goes through `io::Write` and an error path that cannot happen on a buffer.

use crate::frame::{CodecError, Header, HEADER_LEN, MAGIC};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io::Cursor;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The server: client frames must be masked, ours are not.
    Server,
    /// The client: server frames must not be masked, ours are, with a random key each.
    Client,
}

/// Why the WebSocket stream cannot be read any more. Every one closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// A reserved opcode (3–7, 11–15).
    #[error("reserved WebSocket opcode {0}")]
    Opcode(u8),
    /// A frame header that is not WebSocket.
    #[error("bad WebSocket frame: {0}")]
    Protocol(String),
    /// A client frame without a mask (RFC 6455 §5.1: the server must close).
    #[error("unmasked frame from a WebSocket client")]
    Unmasked,
    /// A server frame with a mask (RFC 6455 §5.1: the client must close).
    #[error("masked frame from a WebSocket server")]
    Masked,
    /// RSV bits set though no extension was agreed.
    #[error("reserved bits {0:#x} set in a WebSocket frame")]
    Reserved(u8),
    /// A ping, pong or close that is fragmented or longer than 125 bytes.
    #[error("bad control frame: {0}")]
    BadControl(&'static str),
    /// A continuation frame with no message to continue, or a new message before the last
    /// one ended.
    #[error("bad fragmentation: {0}")]
    Fragmentation(&'static str),
    /// A message over the limit (the max FPNN frame), refused before it is buffered.
    #[error("WebSocket message of {len} bytes or more exceeds the limit of {max} bytes")]
    TooLarge {
        /// The message's length so far, with the frame announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message that is not exactly one FPNN frame.
    #[error("WebSocket message is not one FPNN frame: {0}")]
    NotOneFrame(CodecError),
}

/// What [`WebSocket::read`] took off the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// One whole message: the bytes of exactly one FPNN frame (header included).
    Frame(Bytes),
    /// The peer sent a close frame (its status code, if any). A close frame has been queued
    /// in answer ([`WebSocket::take_control`]); send it and close the connection. Nothing is
    /// read after this.
    Closed(Option<u16>),
}

/// The largest payload of a ping, pong or close.
const MAX_CONTROL: u64 = 125;
/// `FIN` + binary.
const FIN_BINARY: u8 = 0x82;
const FIN_PONG: u8 = 0x8a;
const FIN_CLOSE: u8 = 0x88;
/// The length byte with which the framework announces a message of exactly 126 bytes
/// (without the extended length it then owes).
const QUIRK_LEN: u8 = 126;

/// One end of a WebSocket connection carrying FPNN frames.
#[derive(Debug)]
pub struct WebSocket {
    role: Role,
    max_message: usize,
    /// The fragments of a message still open.
    partial: Option<BytesMut>,
    /// The answer to the latest ping not yet sent (RFC 6455 §5.5.3 lets an end answer only
    /// the most recent one: a ping flood costs at most one pong of 125 bytes).
    pong: Option<Bytes>,
    /// The close frame to send, once the peer's close has been read.
    close: Option<Option<u16>>,
    closed: bool,
}

impl WebSocket {
    /// The server end: messages up to `max_message` bytes (the max FPNN frame).
    pub fn server(max_message: usize) -> WebSocket {
        WebSocket::new(Role::Server, max_message)
    }

    /// The client end: messages up to `max_message` bytes.
    pub fn client(max_message: usize) -> WebSocket {
        WebSocket::new(Role::Client, max_message)
    }

    /// An end in `role`.
    pub fn new(role: Role, max_message: usize) -> WebSocket {
        WebSocket {
            role,
            max_message,
            partial: None,
            pong: None,
            close: None,
            closed: false,
        }
    }

    /// The end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Takes the next whole message (one FPNN frame) off the front of `buf`.
    ///
    /// Control frames are handled on the way: a ping queues a pong, a pong is ignored, a
    /// close ends the stream. `Ok(None)`: more bytes are needed (a partial frame is left in
    /// `buf`, and nothing is reserved for what a header merely announces). After an error
    /// or [`Incoming::Closed`], close the connection.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, WsError> {
        while !self.closed {
            let Some((header, header_len, len)) = self.parse_header(buf)? else {
                return Ok(None);
            };
            let is_control = matches!(header.opcode, OpCode::Control(_));
            if is_control {
                if !header.is_final {
                    return Err(WsError::BadControl("fragmented"));
                }
                if len > MAX_CONTROL {
                    return Err(WsError::BadControl("payload over 125 bytes"));
                }
            } else {
                let open = self.partial.as_ref().map_or(0, BytesMut::len) as u64;
                let total = open.saturating_add(len);
                if total > self.max_message as u64 {
                    return Err(WsError::TooLarge {
                        len: total,
                        max: self.max_message,
                    });
                }
            }
            // Bounded by the message limit or by 125 just above, so it fits; checked anyway.
            let Ok(len) = usize::try_from(len) else {
                return Err(WsError::TooLarge {
                    len,
                    max: self.max_message,
                });
            };
            if buf.len() - header_len < len {
                return Ok(None);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(len);
            if let Some(mask) = header.mask {
                unmask(&mut payload, mask);
            }
            match header.opcode {
                OpCode::Data(Data::Continue) => {
                    let Some(open) = self.partial.as_mut() else {
                        return Err(WsError::Fragmentation("continuation without a message"));
                    };
                    open.unsplit(payload);
                    if header.is_final {
                        if let Some(message) = self.partial.take() {
                            return self.message(message.freeze()).map(Some);
                        }
                    }
                }
                // Text and binary alike, as in the framework: the payload is an FPNN frame.
                OpCode::Data(_) => {
                    if self.partial.is_some() {
                        return Err(WsError::Fragmentation("new message before the last ended"));
                    }
                    if header.is_final {
                        return self.message(payload.freeze()).map(Some);
                    }
                    self.partial = Some(payload);
                }
                OpCode::Control(Control::Ping) => self.pong = Some(payload.freeze()),
                OpCode::Control(Control::Pong) => {}
                OpCode::Control(Control::Close) => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    self.closed = true;
                    self.close = Some(code);
                    return Ok(Some(Incoming::Closed(code)));
                }
                // Refused by the header parser already.
                OpCode::Control(Control::Reserved(op)) => return Err(WsError::Opcode(op)),
            }
        }
        Ok(None)
    }

    /// How many bytes `buf` must hold in all for the WebSocket frame at its front to be
    /// read, when its header is there (so that a driver can read a frame longer than its
    /// read buffer). `None` without a whole header, or when the header is refused (the next
    /// [`WebSocket::read`] reports why).
    pub fn needed(&self, buf: &[u8]) -> Option<usize> {
        let (_, header_len, len) = self.parse_header(buf).ok().flatten()?;
        if len > self.max_message as u64 {
            return None;
        }
        // Fits: bounded by the message limit just above.
        Some(header_len + len as usize)
    }

    /// Parses the header at the front of `buf`: the header, its length and the payload's.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<(FrameHeader, usize, u64)>, WsError> {
        if self.role == Role::Client {
            match quirk_126(buf) {
                Quirk::Yes => {
                    let header = FrameHeader {
                        opcode: OpCode::Data(Data::Binary),
                        ..FrameHeader::default()
                    };
                    return Ok(Some((header, 2, u64::from(QUIRK_LEN))));
                }
                Quirk::NeedMore => return Ok(None),
                Quirk::No => {}
            }
        }
        let mut cursor = Cursor::new(buf);
        let parsed = FrameHeader::parse(&mut cursor).map_err(|e| match e {
            tungstenite::Error::Protocol(ProtocolError::InvalidOpcode(op)) => WsError::Opcode(op),
            other => WsError::Protocol(other.to_string()),
        })?;
        let Some((header, len)) = parsed else {
            return Ok(None);
        };
        let reserved =
            u8::from(header.rsv1) << 2 | u8::from(header.rsv2) << 1 | u8::from(header.rsv3);
        if reserved != 0 {
            return Err(WsError::Reserved(reserved << 4));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::Unmasked),
            (Role::Client, true) => return Err(WsError::Masked),
            _ => {}
        }
        // At most 14: the cursor walked a header.
        let header_len = cursor.position() as usize;
        Ok(Some((header, header_len, len)))
    }

    /// Checks that a whole message is exactly one FPNN frame.
    fn message(&self, message: Bytes) -> Result<Incoming, WsError> {
        let len = Header::parse(&message)
            .and_then(|h| h.frame_len(self.max_message))
            .map_err(WsError::NotOneFrame)?;
        if len != message.len() {
            return Err(WsError::NotOneFrame(CodecError::LengthMismatch {
                expected: len,
                actual: message.len(),
            }));
        }
        Ok(Incoming::Frame(message))
    }

    /// Appends one FPNN frame as one binary message: unmasked from a server, masked with a
    /// fresh random key from a client.
    ///
    /// Lengths use the shortest form, 126 bytes included: the framework's bug of announcing a
    /// 126-byte message with the length byte 126 and no extended length is not reproduced.
    pub fn write_frame(&self, frame: &[u8], out: &mut BytesMut) {
        self.write(FIN_BINARY, frame, out);
    }

    /// Appends a close frame with `code` (e.g. 1000), to send before closing the connection
    /// ourselves. The framework closes without one; browsers then report code 1006.
    pub fn write_close(&self, code: u16, out: &mut BytesMut) {
        self.write(FIN_CLOSE, &code.to_be_bytes(), out);
    }

    /// Appends the control frames owed to the peer (the pong to its latest ping, the answer
    /// to its close). `true` when something was written. Call it after [`WebSocket::read`],
    /// before or between the frames to send.
    pub fn take_control(&mut self, out: &mut BytesMut) -> bool {
        let mut wrote = false;
        if let Some(pong) = self.pong.take() {
            if !self.closed {
                self.write(FIN_PONG, &pong, out);
                wrote = true;
            }
        }
        if let Some(code) = self.close.take() {
            let payload = code.map(u16::to_be_bytes);
            self.write(FIN_CLOSE, payload.as_ref().map_or(&[][..], |p| &p[..]), out);
            wrote = true;
        }
        wrote
    }

    fn write(&self, first: u8, payload: &[u8], out: &mut BytesMut) {
        let mask = match self.role {
            Role::Server => None,
            Role::Client => Some(rand::random::<[u8; 4]>()),
        };
        write_frame_with(first, payload, mask, out);
    }
}

/// Appends a frame: `first` (FIN, RSV, opcode), the length in its shortest form, the mask
/// key if any, and the payload masked with it.
pub(crate) fn write_frame_with(
    first: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut BytesMut,
) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(14 + payload.len());
    out.put_u8(first);
    match payload.len() {
        n @ 0..=125 => out.put_u8(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    match mask {
        None => out.put_slice(payload),
        Some(key) => {
            out.put_slice(&key);
            let start = out.len();
            out.put_slice(payload);
            unmask(&mut out[start..], key);
        }
    }
}

/// XORs `payload` with the mask key (masking and unmasking are the same).
fn unmask(payload: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let x = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

enum Quirk {
    Yes,
    No,
    NeedMore,
}

/// Whether `buf` starts with the framework's broken header for a 126-byte message:
/// `82 7e` followed directly by the FPNN frame (`FPNN...`) instead of a u16 length.
///
/// A correct header for a message of 0x4650 (18 000) bytes also starts `82 7e 46 50`, but its
/// payload, an FPNN frame, then begins with `FPNN`: bytes 2..6 are `46 50 46 50`, never
/// `FPNN`. Four bytes after the length byte tell the two apart. The FPNN header that follows
/// is checked too: it must announce a frame of exactly 126 bytes.
fn quirk_126(buf: &[u8]) -> Quirk {
    if buf.len() < 2 || buf[0] != FIN_BINARY || buf[1] != QUIRK_LEN {
        return Quirk::No;
    }
    let after = &buf[2..];
    let n = after.len().min(MAGIC.len());
    if after[..n] != MAGIC[..n] {
        return Quirk::No;
    }
    if after.len() < HEADER_LEN {
        return Quirk::NeedMore;
    }
    match Header::parse(after).and_then(|h| h.frame_len(usize::MAX)) {
        Ok(126) => Quirk::Yes,
        _ => Quirk::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Quest, Value};

    /// An FPNN frame of exactly `len` bytes (`len` ≥ 20).
    fn fpnn_frame(len: usize) -> Vec<u8> {
        // twoway "m": 16 + 1 + payload; the payload {"x": str}: 1 + 2 + str header + str.
        let str_len = [1, 2, 3, 5]
            .into_iter()
            .map(|head| len - 20 - head)
            .find(|&n| match n {
                0..=31 => len - 20 - n == 1,
                32..=255 => len - 20 - n == 2,
                256..=65535 => len - 20 - n == 3,
                _ => len - 20 - n == 5,
            })
            .unwrap();
        let s = "a".repeat(str_len);
        let q = Quest::twoway("m", 1, &Value::map().with("x", s.as_str())).unwrap();
        let bytes = Frame::Quest(q).encode().unwrap().to_vec();
        assert_eq!(bytes.len(), len, "adjust the payload");
        bytes
    }

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_with(first, payload, Some([1, 2, 3, 4]), &mut out);
        out.to_vec()
    }

    #[test]
    fn a_masked_client_message_is_one_frame() {
        let frame = fpnn_frame(40);
        let mut ws = WebSocket::server(1 << 20);
        let mut buf = BytesMut::from(&masked(0x82, &frame)[..]);
        assert_eq!(
            ws.read(&mut buf),
            Ok(Some(Incoming::Frame(Bytes::from(frame.clone()))))
        );
        assert!(buf.is_empty());
        // Text frames carry frames too.
        let mut buf = BytesMut::from(&masked(0x81, &frame)[..]);
        assert_eq!(
            ws.read(&mut buf),
            Ok(Some(Incoming::Frame(Bytes::from(frame))))
        );
    }

    #[test]
    fn unmasked_client_frames_close() {
        let frame = fpnn_frame(40);
        let mut out = BytesMut::new();
        write_frame_with(0x82, &frame, None, &mut out);
        assert_eq!(
            WebSocket::server(1 << 20).read(&mut out),
            Err(WsError::Unmasked)
        );
        let mut masked = BytesMut::from(&masked(0x82, &frame)[..]);
        assert_eq!(
            WebSocket::client(1 << 20).read(&mut masked),
            Err(WsError::Masked)
        );
    }

    #[test]
    fn fragments_with_a_ping_between() {
        let frame = fpnn_frame(300);
        let mut input = Vec::new();
        input.extend(masked(0x02, &frame[..100])); // binary, not final
        input.extend(masked(0x89, b"hi")); // ping in between
        input.extend(masked(0x00, &frame[100..200])); // continuation
        input.extend(masked(0x8a, b"")); // an unsolicited pong: ignored
        input.extend(masked(0x80, &frame[200..])); // final continuation
        let mut ws = WebSocket::server(1 << 20);
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            ws.read(&mut buf),
            Ok(Some(Incoming::Frame(Bytes::from(frame))))
        );
        let mut out = BytesMut::new();
        assert!(ws.take_control(&mut out));
        assert_eq!(
            &out[..],
            b"\x8a\x02hi",
            "the pong echoes the ping, unmasked"
        );
        assert!(!ws.take_control(&mut out));
    }

    #[test]
    fn a_ping_flood_owes_one_pong() {
        let mut input = Vec::new();
        for i in 0..1000u32 {
            input.extend(masked(0x89, &i.to_be_bytes()));
        }
        let mut ws = WebSocket::server(1 << 20);
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(ws.read(&mut buf), Ok(None));
        let mut out = BytesMut::new();
        ws.take_control(&mut out);
        assert_eq!(&out[..], b"\x8a\x04\x00\x00\x03\xe7");
    }

    #[test]
    fn close_is_answered_and_ends_reading() {
        let mut input = masked(0x88, &1000u16.to_be_bytes());
        input.extend(masked(0x82, &fpnn_frame(40)));
        let mut ws = WebSocket::server(1 << 20);
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(ws.read(&mut buf), Ok(Some(Incoming::Closed(Some(1000)))));
        assert_eq!(ws.read(&mut buf), Ok(None), "nothing is read after a close");
        let mut out = BytesMut::new();
        ws.take_control(&mut out);
        assert_eq!(&out[..], b"\x88\x02\x03\xe8");
    }

    #[test]
    fn protocol_violations_close() {
        let frame = fpnn_frame(40);
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (
                masked(0x80, &frame),
                WsError::Fragmentation("continuation without a message"),
            ),
            (
                [masked(0x02, &frame[..10]), masked(0x82, &frame)].concat(),
                WsError::Fragmentation("new message before the last ended"),
            ),
            (masked(0x09, b""), WsError::BadControl("fragmented")),
            (
                masked(0x89, &[0; 126]),
                WsError::BadControl("payload over 125 bytes"),
            ),
            (masked(0xc2, &frame), WsError::Reserved(0x40)),
            (masked(0x83, &frame), WsError::Opcode(3)),
            (masked(0x8b, &frame), WsError::Opcode(11)),
            (
                masked(0x82, &[frame.clone(), frame.clone()].concat()),
                WsError::NotOneFrame(CodecError::LengthMismatch {
                    expected: 40,
                    actual: 80,
                }),
            ),
            (
                masked(0x82, &frame[..39]),
                WsError::NotOneFrame(CodecError::LengthMismatch {
                    expected: 40,
                    actual: 39,
                }),
            ),
            (
                masked(0x82, b"GET / HTTP/1.1"),
                WsError::NotOneFrame(CodecError::BadMagic(*b"GET ")),
            ),
        ];
        for (input, expected) in cases {
            let mut ws = WebSocket::server(1 << 20);
            let mut buf = BytesMut::from(&input[..]);
            assert_eq!(ws.read(&mut buf), Err(expected), "{input:02x?}");
        }
    }

    #[test]
    fn oversize_messages_are_refused_from_their_header() {
        // A header announcing 2^40 bytes, with no payload behind it.
        let mut buf = BytesMut::from(&[0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]);
        assert_eq!(
            WebSocket::server(1 << 20).read(&mut buf),
            Err(WsError::TooLarge {
                len: 1 << 40,
                max: 1 << 20
            })
        );
        // Fragments adding up past the limit.
        let mut input = masked(0x02, &[0; 600]);
        input.extend(masked(0x00, &[0; 600]));
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            WebSocket::server(1000).read(&mut buf),
            Err(WsError::TooLarge {
                len: 1200,
                max: 1000
            })
        );
    }

    #[test]
    fn lengths_in_their_shortest_form_126_included() {
        for (len, head) in [
            (125usize, vec![0x82, 125]),
            (126, vec![0x82, 126, 0, 126]),
            (127, vec![0x82, 126, 0, 127]),
            (65535, vec![0x82, 126, 0xff, 0xff]),
            (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let frame = fpnn_frame(len);
            let mut out = BytesMut::new();
            WebSocket::server(1 << 20).write_frame(&frame, &mut out);
            assert_eq!(&out[..head.len()], &head[..], "{len}");
            assert_eq!(&out[head.len()..], &frame[..]);
            // And the client reads it back.
            let mut ws = WebSocket::client(1 << 20);
            assert_eq!(
                ws.read(&mut out),
                Ok(Some(Incoming::Frame(Bytes::from(frame))))
            );
        }
    }

    #[test]
    fn the_client_tolerates_the_framework_126_byte_bug() {
        // What the framework sends for a 126-byte message: 82 7e, then the frame at once.
        let frame = fpnn_frame(126);
        let mut quirky = vec![0x82, 126];
        quirky.extend(&frame);
        quirky.extend([0x82, 0x00]); // an empty message after it, not read here
        for cut in 0..quirky.len() - 2 {
            let mut ws = WebSocket::client(1 << 20);
            let mut buf = BytesMut::from(&quirky[..cut]);
            assert_eq!(ws.read(&mut buf), Ok(None), "{cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut ws = WebSocket::client(1 << 20);
        let mut buf = BytesMut::from(&quirky[..]);
        assert_eq!(
            ws.read(&mut buf),
            Ok(Some(Incoming::Frame(Bytes::from(frame))))
        );
        assert_eq!(&buf[..], &[0x82, 0x00]);

        // A correct message of 0x4650 bytes, which also starts 82 7e 46 50, is read normally.
        let big = fpnn_frame(0x4650);
        let mut out = BytesMut::new();
        WebSocket::server(1 << 20).write_frame(&big, &mut out);
        assert_eq!(&out[..6], &[0x82, 126, 0x46, 0x50, b'F', b'P']);
        let mut ws = WebSocket::client(1 << 20);
        assert_eq!(
            ws.read(&mut out),
            Ok(Some(Incoming::Frame(Bytes::from(big))))
        );

        // The server side has no such tolerance: from a client it is garbage.
        let mut buf = BytesMut::from(&quirky[..]);
        assert_eq!(
            WebSocket::server(1 << 20).read(&mut buf),
            Err(WsError::Unmasked)
        );
    }

    #[test]
    fn client_frames_are_masked_with_fresh_keys() {
        let frame = fpnn_frame(40);
        let ws = WebSocket::client(1 << 20);
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        ws.write_frame(&frame, &mut a);
        ws.write_frame(&frame, &mut b);
        assert_eq!(a[1], 0x80 | 40);
        assert_ne!(&a[2..6], &b[2..6], "a new key per frame");
        assert_ne!(&a[6..], &frame[..]);
        let mut server = WebSocket::server(1 << 20);
        assert_eq!(
            server.read(&mut a),
            Ok(Some(Incoming::Frame(Bytes::from(frame))))
        );
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, [9, 8, 7, 6]);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [9, 8, 7, 6][i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
