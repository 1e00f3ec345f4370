//! FPNN frames: the 12-byte header, quests and answers, and their byte encoding.
//!
//! ```text
//! off size field
//!   0    4 magic    "FPNN"
//!   4    1 version  1 (0 from the Python SDK; both accepted)
//!   5    1 flag     0x80 msgpack | 0x40 JSON
//!   6    1 mtype    0 oneway quest, 1 twoway quest, 2 answer
//!   7    1 ss       quest: method length (1..=255); answer: status (0 ok, else error)
//!   8    4 psize    payload length, u32 little-endian
//!  12      body     oneway: method, payload
//!                   twoway: seq (u32 LE), method, payload
//!                   answer: seq (u32 LE), payload
//! ```
//!
//! This module does no I/O. [`FrameDecoder`] turns bytes into frames as they arrive;
//! [`Frame::encode_into`] turns frames into bytes.

pub use crate::codec_error::CodecError;

use crate::answer::ErrorAnswer;
use crate::payload::Format;
use crate::value::Value;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The magic bytes that open every frame.
pub const MAGIC: [u8; 4] = *b"FPNN";
/// The protocol version we send.
pub const VERSION: u8 = 1;
/// The size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// The default largest frame (header + body) accepted: 8 MiB, as in the C++ framework.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

const MTYPE_ONEWAY: u8 = 0;
const MTYPE_TWOWAY: u8 = 1;
const MTYPE_ANSWER: u8 = 2;

/// A quest: a call of `method`, one-way (no answer, no seq) or two-way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quest {
    /// The method name (1..=255 bytes). On decoding, bytes that are not UTF-8 are replaced by
    /// U+FFFD, and the result is cut to 255 bytes if the replacements made it longer.
    pub method: String,
    /// The sequence number of a two-way quest; `None` for a one-way quest.
    pub seq: Option<u32>,
    /// The payload's format.
    pub format: Format,
    /// The encoded payload.
    pub payload: Bytes,
}

/// An answer to the two-way quest with the same `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The sequence number of the quest answered.
    pub seq: u32,
    /// 0 for success; anything else marks an error answer (we send 1, like the C++ framework).
    pub status: u8,
    /// The payload's format.
    pub format: Format,
    /// The encoded payload.
    pub payload: Bytes,
}

/// One FPNN frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A one-way or two-way quest.
    Quest(Quest),
    /// An answer, normal or error.
    Answer(Answer),
}

impl Quest {
    /// A two-way quest with a msgpack payload.
    pub fn twoway(
        method: impl Into<String>,
        seq: u32,
        params: &Value,
    ) -> Result<Quest, CodecError> {
        Quest::new(method, Some(seq), Format::MsgPack, params)
    }

    /// A one-way quest with a msgpack payload.
    pub fn oneway(method: impl Into<String>, params: &Value) -> Result<Quest, CodecError> {
        Quest::new(method, None, Format::MsgPack, params)
    }

    /// A quest in any format.
    pub fn new(
        method: impl Into<String>,
        seq: Option<u32>,
        format: Format,
        params: &Value,
    ) -> Result<Quest, CodecError> {
        let method = method.into();
        check_method(&method)?;
        Ok(Quest {
            method,
            seq,
            format,
            payload: format.encode(params)?,
        })
    }

    /// `true` when the quest expects an answer.
    pub fn is_twoway(&self) -> bool {
        self.seq.is_some()
    }

    /// Decodes the payload (its root must be a map).
    pub fn params(&self) -> Result<Value, CodecError> {
        self.format.decode(&self.payload)
    }
}

impl Answer {
    /// A success answer to quest `seq`, in `format`.
    pub fn ok(seq: u32, format: Format, body: &Value) -> Result<Answer, CodecError> {
        Ok(Answer {
            seq,
            status: 0,
            format,
            payload: format.encode(body)?,
        })
    }

    /// An error answer `{code, ex[, raiser]}` to quest `seq`, with status 1.
    pub fn error(seq: u32, format: Format, error: &ErrorAnswer) -> Answer {
        let payload = format.encode(&error.to_value()).unwrap_or_else(|_| {
            // Only a failure to encode the text could get here; send the code alone.
            let fallback = ErrorAnswer::new(error.code, "");
            format
                .encode(&fallback.to_value())
                .unwrap_or_else(|_| Bytes::from_static(&[0x80]))
        });
        Answer {
            seq,
            status: 1,
            format,
            payload,
        }
    }

    /// `true` for an error answer.
    pub fn is_error(&self) -> bool {
        self.status != 0
    }

    /// Decodes the payload (its root must be a map).
    pub fn body(&self) -> Result<Value, CodecError> {
        self.format.decode(&self.payload)
    }

    /// The answer as a result: the body of a normal answer, or the error of an error answer.
    ///
    /// The outer error is a payload that could not be decoded.
    pub fn into_result(self) -> Result<Result<Value, ErrorAnswer>, CodecError> {
        let body = self.body()?;
        Ok(if self.is_error() {
            Err(ErrorAnswer::from_value(&body))
        } else {
            Ok(body)
        })
    }
}

/// The longest method name: its length is the header's one-byte `ss`.
const MAX_METHOD_LEN: usize = u8::MAX as usize;

fn check_method(method: &str) -> Result<(), CodecError> {
    match method.len() {
        0 => Err(CodecError::EmptyMethod),
        1..=MAX_METHOD_LEN => Ok(()),
        n => Err(CodecError::MethodTooLong(n)),
    }
}

fn payload_len(payload: &[u8]) -> Result<u32, CodecError> {
    match payload.len() {
        0 => Err(CodecError::EmptyPayload),
        n => u32::try_from(n).map_err(|_| CodecError::FrameTooLarge {
            len: n,
            max: u32::MAX as usize,
        }),
    }
}

impl Frame {
    /// The number of bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Quest(q) => {
                HEADER_LEN + q.seq.map_or(0, |_| 4) + q.method.len() + q.payload.len()
            }
            Frame::Answer(a) => HEADER_LEN + 4 + a.payload.len(),
        }
    }

    /// Appends the frame's bytes to `out`.
    ///
    /// Fails, writing nothing, when the method name is empty or over 255 bytes or the payload
    /// is empty or over 4 GiB.
    pub fn encode_into(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        let (flag, mtype, ss, payload) = match self {
            Frame::Quest(q) => {
                check_method(&q.method)?;
                let mtype = if q.seq.is_some() {
                    MTYPE_TWOWAY
                } else {
                    MTYPE_ONEWAY
                };
                (q.format.flag(), mtype, q.method.len() as u8, &q.payload)
            }
            Frame::Answer(a) => (a.format.flag(), MTYPE_ANSWER, a.status, &a.payload),
        };
        let psize = payload_len(payload)?;
        out.reserve(self.encoded_len());
        out.put_slice(&MAGIC);
        out.put_u8(VERSION);
        out.put_u8(flag);
        out.put_u8(mtype);
        out.put_u8(ss);
        out.put_u32_le(psize);
        match self {
            Frame::Quest(q) => {
                if let Some(seq) = q.seq {
                    out.put_u32_le(seq);
                }
                out.put_slice(q.method.as_bytes());
            }
            Frame::Answer(a) => out.put_u32_le(a.seq),
        }
        out.put_slice(payload);
        Ok(())
    }

    /// Appends the bytes of an answer frame whose payload is already encoded, without an
    /// [`Answer`] (and the payload's own buffer) in between; the same bytes as
    /// `Frame::Answer(..).encode_into(out)`.
    pub(crate) fn encode_answer_into(
        out: &mut BytesMut,
        seq: u32,
        status: u8,
        format: Format,
        payload: &[u8],
    ) -> Result<(), CodecError> {
        let psize = payload_len(payload)?;
        out.reserve(HEADER_LEN + 4 + payload.len());
        out.put_slice(&MAGIC);
        out.put_u8(VERSION);
        out.put_u8(format.flag());
        out.put_u8(MTYPE_ANSWER);
        out.put_u8(status);
        out.put_u32_le(psize);
        out.put_u32_le(seq);
        out.put_slice(payload);
        Ok(())
    }

    /// Appends the bytes of a quest frame whose payload is already encoded, without a
    /// [`Quest`] (and the payload's own buffer) in between; the same bytes as
    /// `Frame::Quest(..).encode_into(out)`.
    pub(crate) fn encode_quest_into(
        out: &mut BytesMut,
        method: &str,
        seq: Option<u32>,
        format: Format,
        payload: &[u8],
    ) -> Result<(), CodecError> {
        check_method(method)?;
        let psize = payload_len(payload)?;
        let mtype = if seq.is_some() {
            MTYPE_TWOWAY
        } else {
            MTYPE_ONEWAY
        };
        out.reserve(HEADER_LEN + 4 + method.len() + payload.len());
        out.put_slice(&MAGIC);
        out.put_u8(VERSION);
        out.put_u8(format.flag());
        out.put_u8(mtype);
        out.put_u8(method.len() as u8);
        out.put_u32_le(psize);
        if let Some(seq) = seq {
            out.put_u32_le(seq);
        }
        out.put_slice(method.as_bytes());
        out.put_slice(payload);
        Ok(())
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out.freeze())
    }

    /// Reads exactly one frame that fills `bytes` (a WebSocket message, a test vector).
    pub fn decode(bytes: &[u8], max_frame: usize) -> Result<Frame, CodecError> {
        let header = Header::parse(bytes)?;
        let len = header.frame_len(max_frame)?;
        if len != bytes.len() {
            return Err(CodecError::LengthMismatch {
                expected: len,
                actual: bytes.len(),
            });
        }
        Ok(header.frame(Bytes::copy_from_slice(&bytes[HEADER_LEN..])))
    }
}

impl Frame {
    /// Reads exactly one frame that fills `bytes`, without copying its payload (a frame a
    /// [`crate::proto::WireLayer`] has taken off the stream).
    pub fn from_bytes(mut bytes: BytesMut, max_frame: usize) -> Result<Frame, CodecError> {
        let header = Header::parse(&bytes)?;
        let len = header.frame_len(max_frame)?;
        if len != bytes.len() {
            return Err(CodecError::LengthMismatch {
                expected: len,
                actual: bytes.len(),
            });
        }
        bytes.advance(HEADER_LEN);
        Ok(header.frame(bytes.freeze()))
    }
}

impl From<Quest> for Frame {
    fn from(q: Quest) -> Frame {
        Frame::Quest(q)
    }
}

impl From<Answer> for Frame {
    fn from(a: Answer) -> Frame {
        Frame::Answer(a)
    }
}

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    format: Format,
    mtype: u8,
    ss: u8,
    psize: u32,
}

impl Header {
    /// Reads and validates the first 12 bytes of a frame.
    ///
    /// `Err(CodecError::LengthMismatch)` when fewer than 12 bytes are given.
    pub fn parse(bytes: &[u8]) -> Result<Header, CodecError> {
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(CodecError::LengthMismatch {
                expected: HEADER_LEN,
                actual: bytes.len(),
            })?;
        let magic = [h[0], h[1], h[2], h[3]];
        if magic != MAGIC {
            return Err(CodecError::BadMagic(magic));
        }
        if h[4] > VERSION {
            return Err(CodecError::UnsupportedVersion(h[4]));
        }
        let format = Format::from_flag(h[5])?;
        let (mtype, ss) = (h[6], h[7]);
        match mtype {
            MTYPE_ONEWAY | MTYPE_TWOWAY if ss == 0 => return Err(CodecError::EmptyMethod),
            MTYPE_ONEWAY | MTYPE_TWOWAY | MTYPE_ANSWER => {}
            other => return Err(CodecError::BadMessageType(other)),
        }
        let psize = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if psize == 0 {
            return Err(CodecError::EmptyPayload);
        }
        Ok(Header {
            format,
            mtype,
            ss,
            psize,
        })
    }

    /// The whole frame's length (header + body), checked against `max_frame`.
    pub fn frame_len(&self, max_frame: usize) -> Result<usize, CodecError> {
        let body = match self.mtype {
            MTYPE_ONEWAY => usize::from(self.ss),
            MTYPE_TWOWAY => 4 + usize::from(self.ss),
            _ => 4,
        };
        // Checked: on a 32-bit target a psize near 4 GiB would wrap the sum.
        let len = usize::try_from(self.psize)
            .ok()
            .and_then(|psize| (HEADER_LEN + body).checked_add(psize))
            .unwrap_or(usize::MAX);
        if len > max_frame {
            return Err(CodecError::FrameTooLarge {
                len,
                max: max_frame,
            });
        }
        Ok(len)
    }

    /// Builds the frame from the bytes that follow the header (exactly `frame_len - 12`).
    fn frame(&self, mut body: Bytes) -> Frame {
        match self.mtype {
            MTYPE_ANSWER => {
                let seq = body.get_u32_le();
                Frame::Answer(Answer {
                    seq,
                    status: self.ss,
                    format: self.format,
                    payload: body,
                })
            }
            mtype => {
                let seq = (mtype == MTYPE_TWOWAY).then(|| body.get_u32_le());
                let method = method_name(&body.split_to(usize::from(self.ss)));
                Frame::Quest(Quest {
                    method,
                    seq,
                    format: self.format,
                    payload: body,
                })
            }
        }
    }
}

/// The method name of a received quest: its bytes as text, with every sequence that is not
/// UTF-8 replaced by U+FFFD.
///
/// A replacement takes three bytes where the bad sequence may have taken one, so the result is
/// cut (on a character boundary) to the 255 bytes a method name can have: a decoded quest must
/// always be encodable again. Such a name matches no registered method either way.
fn method_name(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(m) => m.to_owned(),
        Err(_) => {
            let mut name = String::from_utf8_lossy(bytes).into_owned();
            let mut end = name.len().min(MAX_METHOD_LEN);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
            name
        }
    }
}

/// Turns a byte stream into frames, sans I/O.
///
/// Feed it the bytes read so far; it takes whole frames off the front of the buffer and leaves
/// a partial frame in place until the rest arrives. A frame over the limit is refused as soon
/// as its header is seen, before its body is buffered.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes (header included).
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder { max_frame }
    }

    /// The limit in force.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// How many bytes the frame at the front of `buf` needs in all, once its header is there.
    ///
    /// `Ok(None)` while fewer than 12 bytes are buffered.
    pub fn needed(&self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        Header::parse(buf)?.frame_len(self.max_frame).map(Some)
    }

    /// Takes the next whole frame off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed. An error means the stream is corrupt; the
    /// buffer is left as it was.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Header::parse(buf)?;
        let len = header.frame_len(self.max_frame)?;
        if buf.len() < len {
            // Not reserving `len` here: a peer announcing large frames must not make us
            // allocate before it has sent the bytes.
            return Ok(None);
        }
        let mut frame = buf.split_to(len);
        frame.advance(HEADER_LEN);
        Ok(Some(header.frame(frame.freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_from_an_encoded_payload_is_the_answer_frame() {
        let body = Value::map().with("token", "x".repeat(80));
        let payload = crate::msgpack::encode(&body).unwrap();
        for status in [0, 1] {
            let mut out = BytesMut::new();
            Frame::encode_answer_into(&mut out, 7, status, Format::MsgPack, &payload).unwrap();
            let mut answer = Answer::ok(7, Format::MsgPack, &body).unwrap();
            answer.status = status;
            assert_eq!(out.freeze(), Frame::Answer(answer).encode().unwrap());
        }
        let mut out = BytesMut::new();
        assert_eq!(
            Frame::encode_answer_into(&mut out, 7, 0, Format::MsgPack, &[]),
            Err(CodecError::EmptyPayload)
        );
        assert!(out.is_empty());
    }
}
