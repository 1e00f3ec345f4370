//! The SDK's error type.

use crate::code;
pub use fpnn::{CloseReason, ConnectError};
use std::time::Duration;

/// Why a call failed.
///
/// [`Error::code`] is the number the official SDKs return (RTM codes `2000xx` from the
/// server, FPNN codes for transport failures), and the variants tell the kinds apart:
/// the server refused the call ([`Error::Server`]), no answer came in time
/// ([`Error::Timeout`]), the connection closed ([`Error::Closed`], with its typed
/// [`CloseReason`]) or could not be made ([`Error::Connect`]).
///
/// Its `Debug` form reads like its message, so that an error returned from `main` (which
/// prints `Error: {:?}`) reads `Error: server error 200002 (RTM_EC_INVALID_PID_OR_SIGN):
/// invalid sign for project 11000001`; the alternate form (`{:#?}`) lists the code, its
/// official name and the message as fields.
///
/// ```
/// use rtm_server_sdk::Error;
///
/// let e = Error::Server { code: 200002, message: "invalid sign".into() };
/// assert_eq!(
///     format!("{e:?}"),
///     "server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): invalid sign"
/// );
/// assert_eq!(format!("{e:?}"), e.to_string());
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error: an RTM code (e.g. 200002, bad signature) or an
    /// FPNN code (e.g. 10009, missing key), and its message.
    #[error("server error {code}{}: {message}", code_name(*.code))]
    Server {
        /// The error code.
        code: i32,
        /// The server's explanation (`ex`).
        message: String,
    },
    /// No answer within the call's timeout (20003).
    #[error("no answer within {0:?} (20003)")]
    Timeout(Duration),
    /// The connection closed before the answer came: 20002 when either side closed it in
    /// order (or it was idle), 20012 when it broke ([`CloseReason::code`]).
    #[error("connection closed before the answer came ({code}): {0}", code = .0.code())]
    Closed(CloseReason),
    /// The connection could not be made (20012).
    #[error("cannot connect to {endpoint} (20012): {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: ConnectError,
    },
    /// The client's outbound queue stayed full: the server does not take the calls already
    /// sent (20007).
    #[error("send queue full (20007): {queued} bytes wait for the server")]
    SendQueueFull {
        /// Bytes waiting.
        queued: usize,
    },
    /// The quest could not be encoded or the answer not understood (20005/20006).
    #[error("protocol error {code}: {message}")]
    Protocol {
        /// The error code.
        code: i32,
        /// What went wrong.
        message: String,
    },
    /// The blocking client was used inside an async runtime, or its runtime could not start.
    #[error("blocking client misuse: {0}")]
    Runtime(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            let code = self.code();
            f.debug_struct("Error")
                .field("code", &code)
                .field("name", &code::name(code))
                .field("message", &self.to_string())
                .finish()
        } else {
            std::fmt::Display::fmt(self, f)
        }
    }
}

fn code_name(code: i32) -> String {
    code::name(code)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default()
}

impl Error {
    /// The numeric code, as the official SDKs report it.
    pub fn code(&self) -> i32 {
        match self {
            Error::Server { code, .. } | Error::Protocol { code, .. } => *code,
            Error::Timeout(_) => code::CORE_TIMEOUT,
            Error::Closed(reason) => reason.code(),
            Error::Connect { .. } => code::CORE_INVALID_CONNECTION,
            Error::SendQueueFull { .. } => code::CORE_SEND_ERROR,
            Error::Runtime(_) => code::CORE_UNKNOWN_ERROR,
        }
    }

    /// The server's message for [`Error::Server`], else a description.
    pub fn message(&self) -> String {
        match self {
            Error::Server { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// `true` for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

impl From<fpnn::Error> for Error {
    fn from(e: fpnn::Error) -> Error {
        match e {
            fpnn::Error::Answer(a) => Error::Server {
                code: a.code,
                message: a.ex,
            },
            fpnn::Error::Timeout(t) => Error::Timeout(t),
            fpnn::Error::Closed(reason) => Error::Closed(reason),
            fpnn::Error::Connect { endpoint, reason } => Error::Connect { endpoint, reason },
            fpnn::Error::SendQueueFull { queued, .. } => Error::SendQueueFull { queued },
            fpnn::Error::Codec(message, code) => Error::Protocol { code, message },
            other => Error::Protocol {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

/// The result of an SDK call.
pub type Result<T> = std::result::Result<T, Error>;
