//! The byte-stream boundary: how wire bytes become FPNN frames and frames become wire bytes.
//!
//! A [`Connection`](super::Connection) keeps two byte buffers, the bytes read from the
//! transport and the bytes to write to it, and one [`Wire`] between them and the frames:
//!
//! * **Input, one frame at a time.** The connection asks the wire for the next frame only when
//!   it is ready to handle one ([`super::Connection::poll_event`]), so that bytes buffered
//!   after a frame are never consumed early. Between two frames the layer can be replaced
//!   ([`super::Connection::set_wire`]); the bytes already buffered after the last frame are
//!   then read through the new layer. This is how a server switches to decryption right
//!   after the plaintext `*key` frame while a Go or Node client has already pipelined
//!   encrypted frames behind it, and how a connection that starts with an HTTP upgrade goes
//!   on as WebSocket (a layer may also hand over by itself, [`ReadFrame::Replace`]).
//! * **Output, frame by frame.** Every frame is given to the layer on its own, at the moment
//!   it is queued, so a layer sees the boundaries: it can wrap each frame (the 4-byte length
//!   and ciphertext of package-mode encryption, a WebSocket message header) or transform the
//!   stream (stream-mode CFB). A layer replaced between two frames leaves the frames queued
//!   before as it wrote them: after `*key`, the server switches first and then queues the
//!   answer, which becomes its first encrypted output.
//!
//! [`Wire::Plain`] is FPNN over TCP as is, with no copy and no virtual call; any other layer
//! implements [`WireLayer`]. A layer must:
//! 1. in [`WireLayer::read_frame`], take exactly one frame off the front of `input` (it may
//!    transform bytes of that frame in place, e.g. decrypt what it has of it) and leave the
//!    bytes after it as they came off the wire; refuse a frame longer than `max_frame` as
//!    soon as its length is known, and never reserve memory a header merely announces; say
//!    how many input bytes the frame needs in all when it knows ([`ReadFrame::NeedMore`]);
//! 2. in [`WireLayer::write_frame`], append the wire form of one frame to `out`;
//! 3. put any bytes it must send by itself (a WebSocket pong) into `control`; they are
//!    queued before any later frame and count against the connection's outbound budget;
//! 4. report bad input as a [`WireError`]: the connection then closes without an answer.

use bytes::BytesMut;

/// What a layer found at the front of the input.
pub enum ReadFrame {
    /// One whole plaintext FPNN frame, header included.
    Frame(BytesMut),
    /// Not a whole frame yet. `frame_len`: how many bytes of input the frame needs in all,
    /// when the layer knows (from a length prefix or a header); the connection uses it to
    /// read a frame larger than its read buffer.
    NeedMore {
        /// Input bytes the frame at the front needs in all, if known.
        frame_len: Option<usize>,
    },
    /// The layer hands over to another one (e.g. after an HTTP upgrade to WebSocket); the
    /// bytes left in the input are read through the new one.
    Replace(Wire),
    /// The peer asked, in band, to end the connection (e.g. a WebSocket close frame).
    Close,
}

/// Why a layer refused its input or could not write a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// What went wrong, for the logs.
    pub message: String,
}

impl WireError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> WireError {
        WireError {
            message: message.into(),
        }
    }
}

/// A transformation of the byte stream below FPNN frames: encryption, WebSocket, HTTP.
///
/// See the [module docs](self) for the contract.
pub trait WireLayer: Send + 'static {
    /// The layer's name, for logs and close reasons (`"aes-cfb package"`, `"websocket"`).
    fn name(&self) -> &'static str;

    /// Takes the next frame off the front of `input`, refusing frames over `max_frame` bytes.
    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        max_frame: usize,
        control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError>;

    /// Appends the wire form of `frame` (one whole plaintext FPNN frame) to `out`.
    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError>;

    /// Appends what the layer sends when this side closes the connection gracefully (a
    /// WebSocket close frame), before the queued output is flushed. Nothing by default.
    fn write_close(&mut self, _out: &mut BytesMut) {}
}

/// The layer between a connection's buffers and its frames.
pub enum Wire {
    /// FPNN frames as they are (TCP): frames are read and written in place.
    Plain,
    /// Any other layer.
    Layer(Box<dyn WireLayer>),
}

impl Wire {
    /// The layer's name.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Plain => "plain",
            Wire::Layer(layer) => layer.name(),
        }
    }
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<L: WireLayer> From<L> for Wire {
    fn from(layer: L) -> Wire {
        Wire::Layer(Box::new(layer))
    }
}
