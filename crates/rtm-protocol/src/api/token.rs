//! `gettoken` and `removetoken`.

use super::method::Method;
use super::request::{Empty, Request};
use crate::params::{ParamError, Params};
use fpnn::Value;
use serde::{Deserialize, Serialize};

/// `gettoken {uid}`: a login token for the user, which the user's app passes to the gate's
/// `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GetToken {
    /// The user.
    pub uid: i64,
}

/// The answer to [`GetToken`]: `{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTokenAnswer {
    /// The token.
    pub token: String,
}

impl Request for GetToken {
    const METHOD: Method = Method::GetToken;
    type Answer = GetTokenAnswer;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        Ok(GetToken {
            uid: Params::new(payload).uid()?,
        })
    }
}

/// `removetoken {uid}`: revokes every token the user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoveToken {
    /// The user.
    pub uid: i64,
}

impl Request for RemoveToken {
    const METHOD: Method = Method::RemoveToken;
    type Answer = Empty;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        Ok(RemoveToken {
            uid: Params::new(payload).uid()?,
        })
    }
}
