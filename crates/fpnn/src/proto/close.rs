//! Why a connection closed: one typed reason, with the FPNN code quests in flight see.

use crate::answer::code;
use crate::codec_error::CodecError;
use std::sync::Arc;
use std::time::Duration;

/// Why a connection closed.
///
/// Every reason maps to the code the official framework reports for quests that were waiting
/// when the connection went ([`CloseReason::code`]): an orderly end (either side closing, the
/// idle timeout) is 20002, a broken connection (I/O error, corrupt stream, lost keep-alive,
/// a peer that stopped reading) is 20012.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing was received or sent for the idle timeout (20002).
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// The peer closed the connection (end of stream) (20002).
    #[error("closed by the peer")]
    ClosedByPeer,
    /// This side closed it: `close()`, a dropped client, a server shutting down (20002).
    #[error("closed locally")]
    ClosedLocally,
    /// Keep-alive: nothing received from the peer for this long, pings included (20012).
    #[error("keep-alive lost: nothing received for {0:?}")]
    KeepAliveLost(Duration),
    /// The peer took no bytes for the write-stall timeout while some were waiting (20012).
    #[error("write stalled: the peer took no bytes for {0:?}")]
    WriteStalled(Duration),
    /// Reading or writing the socket failed (20012; a reset is one of these).
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// The peer broke the protocol: a bad frame, an undecodable payload (20012).
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
}

impl CloseReason {
    /// The FPNN code quests waiting on the connection fail with.
    pub fn code(&self) -> i32 {
        match self {
            CloseReason::IdleTimeout(_)
            | CloseReason::ClosedByPeer
            | CloseReason::ClosedLocally => code::CORE_CONNECTION_CLOSED,
            CloseReason::KeepAliveLost(_)
            | CloseReason::WriteStalled(_)
            | CloseReason::Io(_)
            | CloseReason::Protocol(_) => code::CORE_INVALID_CONNECTION,
        }
    }

    /// `true` when the connection broke (any reason with code 20012), `false` for an orderly
    /// close by either side or the idle timeout.
    pub fn is_error(&self) -> bool {
        self.code() != code::CORE_CONNECTION_CLOSED
    }

    /// A reason for an I/O error.
    pub fn io(error: std::io::Error) -> CloseReason {
        CloseReason::Io(Arc::new(error))
    }
}

impl PartialEq for CloseReason {
    /// Equal kinds; I/O errors compare by their [`std::io::ErrorKind`].
    fn eq(&self, other: &Self) -> bool {
        use CloseReason::*;
        match (self, other) {
            (IdleTimeout(a), IdleTimeout(b))
            | (KeepAliveLost(a), KeepAliveLost(b))
            | (WriteStalled(a), WriteStalled(b)) => a == b,
            (ClosedByPeer, ClosedByPeer) | (ClosedLocally, ClosedLocally) => true,
            (Io(a), Io(b)) => a.kind() == b.kind(),
            (Protocol(a), Protocol(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for CloseReason {}

/// How the peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Bytes that are not a frame (bad magic, flag, type, a frame over the limit, …).
    #[error("bad frame: {0}")]
    BadFrame(CodecError),
    /// A quest whose payload cannot be decoded (the official framework closes without an
    /// answer).
    #[error("bad payload in quest '{method}': {error}")]
    BadPayload {
        /// The quest's method.
        method: String,
        /// What is wrong with its payload.
        error: CodecError,
    },
    /// A `*key` quest the connection refused: not the first frame, a bad key or `bits`, a
    /// server with no key (the official framework closes without an answer).
    #[error("key exchange refused: {0}")]
    KeyExchange(String),
    /// A plain connection called a user method on a server that requires encryption (the
    /// C++ framework's `forceEncrypt.userMethods`: closed without an answer).
    #[error("encryption required: plain connection called '{method}'")]
    EncryptionRequired {
        /// The method called.
        method: String,
    },
    /// The wire layer (encryption, WebSocket, …) refused the bytes.
    #[error("{layer}: {message}")]
    Layer {
        /// The layer's name.
        layer: &'static str,
        /// What went wrong.
        message: String,
    },
}
