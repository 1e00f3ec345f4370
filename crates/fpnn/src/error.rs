//! Error codes and error answers.
//!
//! FPNN carries failures as *error answers*: an answer frame whose status byte is non-zero and
//! whose payload is `{code: int, ex: str}` (the C++ helper `FPAWriter::errorAnswer` adds
//! `raiser: str`). The numbers are fixed by the official framework (`base/FpnnError.h`) and are
//! listed in [`code`].

pub use crate::answer::{code, ErrorAnswer};

use crate::codec_error::CodecError;
use crate::proto::close::CloseReason;

/// Why a quest (or a connection) failed, on the client side or for a server push.
///
/// Every variant has an FPNN code ([`Error::code`]), so that callers that follow the official
/// SDKs can switch on numbers, while Rust callers can match on the kind: an error the peer
/// answered ([`Error::Answer`], e.g. 20014 from a server that is stopping) is distinct from
/// a local timeout, a connection that closed (with its typed [`CloseReason`]) or one that
/// could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with an error.
    #[error("{0}")]
    Answer(ErrorAnswer),
    /// No answer came within the quest's timeout (20003).
    #[error("quest timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The connection closed before the answer came: 20002 for an orderly close by either
    /// side or the idle timeout, 20012 when it broke (see [`CloseReason::code`]).
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// The connection could not be made (20012).
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: ConnectError,
    },
    /// The connection's outbound queue is full: the peer does not take what was already
    /// sent (20007, `FPNN_EC_CORE_SEND_ERROR`).
    #[error("cannot send: {queued} bytes already wait for the peer (budget {budget})")]
    SendQueueFull {
        /// Bytes waiting.
        queued: usize,
        /// The connection's outbound budget.
        budget: usize,
    },
    /// The quest could not be encoded, or the answer could not be decoded (20005 / 20006).
    #[error("{0}")]
    Codec(String, i32),
}

/// Why a connection could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connect failed (refused, unreachable, a name that does not resolve).
    #[error("{0}")]
    Io(std::sync::Arc<std::io::Error>),
    /// No connection within the connect timeout.
    #[error("timed out after {0:?}")]
    TimedOut(std::time::Duration),
    /// The connection was made but the `*key` exchange of an encrypted connection failed: the
    /// server closed it (a key on another curve, a server without encryption), its answer
    /// could not be decrypted (a wrong server key), or it refused.
    #[error("key exchange failed: {0}")]
    KeyExchange(String),
}

impl PartialEq for ConnectError {
    /// Equal kinds; I/O errors compare by their [`std::io::ErrorKind`].
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ConnectError::Io(a), ConnectError::Io(b)) => a.kind() == b.kind(),
            (ConnectError::TimedOut(a), ConnectError::TimedOut(b)) => a == b,
            (ConnectError::KeyExchange(a), ConnectError::KeyExchange(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for ConnectError {}

impl Error {
    /// The FPNN (or application) error code.
    pub fn code(&self) -> i32 {
        match self {
            Error::Answer(a) => a.code,
            Error::Timeout(_) => code::CORE_TIMEOUT,
            Error::Closed(reason) => reason.code(),
            Error::Connect { .. } => code::CORE_INVALID_CONNECTION,
            Error::SendQueueFull { .. } => code::CORE_SEND_ERROR,
            Error::Codec(_, code) => *code,
        }
    }

    /// The explanation: the peer's `ex` for an error answer, else a description.
    pub fn message(&self) -> String {
        match self {
            Error::Answer(a) => a.ex.clone(),
            other => other.to_string(),
        }
    }

    /// The close reason, for an error that is a closed connection.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            Error::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn encode(e: CodecError) -> Error {
        Error::Codec(format!("cannot encode quest: {e}"), code::CORE_ENCODING)
    }

    pub(crate) fn decode(e: CodecError) -> Error {
        Error::Codec(format!("cannot decode answer: {e}"), code::CORE_DECODING)
    }
}

impl From<ErrorAnswer> for Error {
    fn from(a: ErrorAnswer) -> Error {
        Error::Answer(a)
    }
}
