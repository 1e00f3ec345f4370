//! Error codes and error answers.
//!
//! FPNN carries failures as *error answers*: an answer frame whose status byte is non-zero and
//! whose payload is `{code: int, ex: str}` (the C++ helper `FPAWriter::errorAnswer` adds
//! `raiser: str`). The numbers are fixed by the official framework (`base/FpnnError.h`) and are
//! listed in [`code`].

use crate::proto::CloseReason;
use crate::value::Value;

/// The FPNN error codes, with the numbers of the official framework.
///
/// Codes `1000x` are encoding/decoding failures, `200xx` core (transport) failures, `300xx`
/// compression failures. Applications use their own ranges (RTM uses `200000..`).
pub mod code {
    /// Success.
    pub const OK: i32 = 0;
    /// Unknown encode/decode error.
    pub const PROTO_UNKNOWN_ERROR: i32 = 10001;
    /// Unsupported protocol or format.
    pub const PROTO_NOT_SUPPORTED: i32 = 10002;
    /// Invalid package.
    pub const PROTO_INVALID_PACKAGE: i32 = 10003;
    /// JSON conversion failed.
    pub const PROTO_JSON_CONVERT: i32 = 10004;
    /// A map key is not a string.
    pub const PROTO_STRING_KEY: i32 = 10005;
    /// The payload root is not a map.
    pub const PROTO_MAP_VALUE: i32 = 10006;
    /// Bad message type, or a quest/answer misuse.
    pub const PROTO_METHOD_TYPE: i32 = 10007;
    /// Unsupported pack type.
    pub const PROTO_PROTO_TYPE: i32 = 10008;
    /// A required key is missing.
    pub const PROTO_KEY_NOT_FOUND: i32 = 10009;
    /// A value has the wrong type.
    pub const PROTO_TYPE_CONVERT: i32 = 10010;
    /// File signature invalid.
    pub const PROTO_FILE_SIGN: i32 = 10011;
    /// File not found.
    pub const PROTO_FILE_NOT_EXIST: i32 = 10012;
    /// Unknown error.
    pub const CORE_UNKNOWN_ERROR: i32 = 20001;
    /// The connection was closed.
    pub const CORE_CONNECTION_CLOSED: i32 = 20002;
    /// The quest timed out.
    pub const CORE_TIMEOUT: i32 = 20003;
    /// The method is not registered.
    pub const CORE_UNKNOWN_METHOD: i32 = 20004;
    /// Encoding error.
    pub const CORE_ENCODING: i32 = 20005;
    /// Decoding error.
    pub const CORE_DECODING: i32 = 20006;
    /// Sending failed.
    pub const CORE_SEND_ERROR: i32 = 20007;
    /// Receiving failed.
    pub const CORE_RECV_ERROR: i32 = 20008;
    /// Invalid package.
    pub const CORE_INVALID_PACKAGE: i32 = 20009;
    /// HTTP error.
    pub const CORE_HTTP_ERROR: i32 = 20010;
    /// The worker queue is full.
    pub const CORE_WORK_QUEUE_FULL: i32 = 20011;
    /// The connection is invalid (I/O failure, lost keep-alive, not connected).
    pub const CORE_INVALID_CONNECTION: i32 = 20012;
    /// Forbidden.
    pub const CORE_FORBIDDEN: i32 = 20013;
    /// The server is stopping.
    pub const CORE_SERVER_STOPPING: i32 = 20014;
    /// Cancelled (C++ framework only).
    pub const CORE_CANCELLED: i32 = 20015;
    /// Compression failed.
    pub const ZIP_COMPRESS: i32 = 30001;
    /// Decompression failed.
    pub const ZIP_DECOMPRESS: i32 = 30002;

    /// The symbolic name of a framework code (`"FPNN_EC_CORE_TIMEOUT"`), if it is one.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            OK => "FPNN_EC_OK",
            PROTO_UNKNOWN_ERROR => "FPNN_EC_PROTO_UNKNOWN_ERROR",
            PROTO_NOT_SUPPORTED => "FPNN_EC_PROTO_NOT_SUPPORTED",
            PROTO_INVALID_PACKAGE => "FPNN_EC_PROTO_INVALID_PACKAGE",
            PROTO_JSON_CONVERT => "FPNN_EC_PROTO_JSON_CONVERT",
            PROTO_STRING_KEY => "FPNN_EC_PROTO_STRING_KEY",
            PROTO_MAP_VALUE => "FPNN_EC_PROTO_MAP_VALUE",
            PROTO_METHOD_TYPE => "FPNN_EC_PROTO_METHOD_TYPE",
            PROTO_PROTO_TYPE => "FPNN_EC_PROTO_PROTO_TYPE",
            PROTO_KEY_NOT_FOUND => "FPNN_EC_PROTO_KEY_NOT_FOUND",
            PROTO_TYPE_CONVERT => "FPNN_EC_PROTO_TYPE_CONVERT",
            PROTO_FILE_SIGN => "FPNN_EC_PROTO_FILE_SIGN",
            PROTO_FILE_NOT_EXIST => "FPNN_EC_PROTO_FILE_NOT_EXIST",
            CORE_UNKNOWN_ERROR => "FPNN_EC_CORE_UNKNOWN_ERROR",
            CORE_CONNECTION_CLOSED => "FPNN_EC_CORE_CONNECTION_CLOSED",
            CORE_TIMEOUT => "FPNN_EC_CORE_TIMEOUT",
            CORE_UNKNOWN_METHOD => "FPNN_EC_CORE_UNKNOWN_METHOD",
            CORE_ENCODING => "FPNN_EC_CORE_ENCODING",
            CORE_DECODING => "FPNN_EC_CORE_DECODING",
            CORE_SEND_ERROR => "FPNN_EC_CORE_SEND_ERROR",
            CORE_RECV_ERROR => "FPNN_EC_CORE_RECV_ERROR",
            CORE_INVALID_PACKAGE => "FPNN_EC_CORE_INVALID_PACKAGE",
            CORE_HTTP_ERROR => "FPNN_EC_CORE_HTTP_ERROR",
            CORE_WORK_QUEUE_FULL => "FPNN_EC_CORE_WORK_QUEUE_FULL",
            CORE_INVALID_CONNECTION => "FPNN_EC_CORE_INVALID_CONNECTION",
            CORE_FORBIDDEN => "FPNN_EC_CORE_FORBIDDEN",
            CORE_SERVER_STOPPING => "FPNN_EC_CORE_SERVER_STOPPING",
            CORE_CANCELLED => "FPNN_EC_CORE_CANCELLED",
            ZIP_COMPRESS => "FPNN_EC_ZIP_COMPRESS",
            ZIP_DECOMPRESS => "FPNN_EC_ZIP_DECOMPRESS",
            _ => return None,
        })
    }
}

/// The payload of an error answer: `{code, ex}` and, from some servers, `raiser`.
///
/// Decoding is tolerant the way the official readers are: a missing `code` reads as
/// [`code::CORE_UNKNOWN_ERROR`], and an `ex` that is not a string (the Python SDK writes the
/// integer code there) is rendered as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The numeric error code (FPNN or application).
    pub code: i32,
    /// A human-readable explanation.
    pub ex: String,
    /// Who raised the error, when the peer said so.
    pub raiser: Option<String>,
}

impl ErrorAnswer {
    /// An error answer with a code and an explanation.
    pub fn new(code: i32, ex: impl Into<String>) -> Self {
        ErrorAnswer {
            code,
            ex: ex.into(),
            raiser: None,
        }
    }

    /// Reads an error answer from a decoded payload map.
    pub fn from_value(value: &Value) -> Self {
        let code = value
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(code::CORE_UNKNOWN_ERROR);
        let ex = match value.get("ex") {
            Some(v) => v.as_text().unwrap_or_else(|| v.to_string()),
            None => String::new(),
        };
        let raiser = value.get("raiser").and_then(Value::as_text);
        ErrorAnswer { code, ex, raiser }
    }

    /// The payload map: `{code, ex}`, plus `raiser` when set.
    pub fn to_value(&self) -> Value {
        let mut entries = vec![
            (Value::from("code"), Value::from(self.code)),
            (Value::from("ex"), Value::from(self.ex.as_str())),
        ];
        if let Some(raiser) = &self.raiser {
            entries.push((Value::from("raiser"), Value::from(raiser.as_str())));
        }
        Value::Map(entries)
    }
}

impl std::fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {}: {}", self.code, self.ex)
    }
}

impl std::error::Error for ErrorAnswer {}

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

    pub(crate) fn encode(e: crate::frame::CodecError) -> Error {
        Error::Codec(format!("cannot encode quest: {e}"), code::CORE_ENCODING)
    }

    pub(crate) fn decode(e: crate::frame::CodecError) -> Error {
        Error::Codec(format!("cannot decode answer: {e}"), code::CORE_DECODING)
    }
}

impl From<ErrorAnswer> for Error {
    fn from(a: ErrorAnswer) -> Error {
        Error::Answer(a)
    }
}
