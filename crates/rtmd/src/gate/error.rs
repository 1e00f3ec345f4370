//! [`GateError`]: why a quest on the gate was refused, and the one place that turns it into
//! an error answer.

use crate::store::StoreError;
use fpnn::ErrorAnswer;
use rtm_protocol::{code, ParamError};

/// Why a quest on the gate got an error answer (a refused token is not one: `auth` answers
/// `{ok: false}`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A quest before `auth` (200022).
    #[error("not logged in: send auth first")]
    NotLoggedIn,
    /// A quest on a connection whose session a kickout ended (200022).
    #[error(
        "not logged in: this session was ended by a kickout, and the server closes the connection"
    )]
    Kicked,
    /// A second `auth` on a logged-in connection (200023).
    #[error("already logged in on this connection")]
    AlreadyLoggedIn,
    /// A method the gate does not have, from a logged-in client (20004).
    #[error("unknown method: {0}")]
    UnknownMethod(String),
    /// `auth` without a required key (10009) or with a mistyped one (10010).
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The store could not be read, so the login failed closed (200999); clients retry.
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

impl GateError {
    /// The code of the error answer.
    pub fn code(&self) -> i32 {
        match self {
            GateError::NotLoggedIn | GateError::Kicked => code::UNAUTHORIZED,
            GateError::AlreadyLoggedIn => code::DUPLICATED_AUTH,
            GateError::UnknownMethod(_) => code::CORE_UNKNOWN_METHOD,
            GateError::Params(e) => e.code(),
            GateError::Store(_) => code::UNKNOWN_ERROR,
        }
    }
}

impl From<GateError> for ErrorAnswer {
    fn from(e: GateError) -> ErrorAnswer {
        ErrorAnswer::new(e.code(), e.to_string())
    }
}
