//! [`ApiError`]: why a server API call failed, and the one place that turns it into an
//! error answer.

use crate::fingerprint::ReplayMode;
use crate::store::StoreError;
use fpnn::{ErrorAnswer, SerError};
use rtm_protocol::{code, Int, ParamError};

/// Why a server API call failed. [`ApiError::code`] is the code of its error answer,
/// [`ApiError::to_answer`] the answer itself, with the message as its `ex`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A parameter is missing (10009) or mistyped (10010), the `uid` is out of range
    /// (200001), or a device field is refused (200034).
    #[error(transparent)]
    Params(#[from] ParamError),
    /// No project has this pid (200002).
    #[error("unknown project {0}")]
    UnknownProject(Int),
    /// The sign matches no secret of the project (200002).
    #[error("invalid sign for project {0}")]
    BadSign(i32),
    /// A legacy sign (no `ts`) for a project that does not accept them (200002).
    #[error("missing 'ts': project {0} does not accept the legacy signature")]
    LegacySignRefused(i32),
    /// `ts` is outside the project's window of the server clock (200008).
    #[error(
        "ts {ts} is {skew} s away from the server clock ({now}); the window is {window} s: check the clock"
    )]
    Clock {
        /// The quest's `ts`.
        ts: Int,
        /// How far it is from the server clock, in seconds.
        skew: u128,
        /// The server clock, Unix seconds.
        now: i64,
        /// The project's window, in seconds.
        window: u64,
    },
    /// The replay window has seen this request (or sign, as the project's mode says)
    /// (200006).
    #[error("{}", replayed(*.0))]
    Replayed(ReplayMode),
    /// The store could not serve the call (200999).
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The answer could not be encoded (20005).
    #[error("cannot encode the answer: {0}")]
    Encode(#[from] SerError),
}

fn replayed(mode: ReplayMode) -> &'static str {
    match mode {
        ReplayMode::Sign => {
            "replayed: this sign was already used (the project refuses any reuse of a sign): sign every quest with a new salt"
        }
        _ => "replayed: this request, with this sign, was already answered: sign a resend anew",
    }
}

impl ApiError {
    /// The code of the error answer.
    pub fn code(&self) -> i32 {
        match self {
            ApiError::Params(e) => e.code(),
            ApiError::UnknownProject(_) | ApiError::BadSign(_) | ApiError::LegacySignRefused(_) => {
                code::INVALID_PID_OR_SIGN
            }
            ApiError::Clock { .. } => code::INVALID_SERVER_TIME,
            ApiError::Replayed(_) => code::SAME_SIGN,
            ApiError::Store(_) => code::UNKNOWN_ERROR,
            ApiError::Encode(_) => code::CORE_ENCODING,
        }
    }

    /// The error answer: `{code, ex}`.
    pub fn to_answer(&self) -> ErrorAnswer {
        ErrorAnswer::new(self.code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let cases: [(ApiError, i32, &str); 6] = [
            (
                ParamError::Missing { key: "uid" }.into(),
                10009,
                "missing key 'uid'",
            ),
            (
                ApiError::UnknownProject(Int::from(8)),
                200002,
                "unknown project 8",
            ),
            (ApiError::BadSign(7), 200002, "invalid sign for project 7"),
            (
                ApiError::Replayed(ReplayMode::Sign),
                200006,
                "any reuse of a sign",
            ),
            (
                StoreError::Unavailable("down".into()).into(),
                200999,
                "store unavailable: the store is unavailable: down",
            ),
            (
                ApiError::Clock {
                    ts: Int::from(1),
                    skew: 400,
                    now: 401,
                    window: 300,
                },
                200008,
                "check the clock",
            ),
        ];
        for (error, code, text) in cases {
            let answer = error.to_answer();
            assert_eq!(answer.code, code, "{error}");
            assert!(answer.ex.contains(text), "{answer:?}");
        }
    }
}
