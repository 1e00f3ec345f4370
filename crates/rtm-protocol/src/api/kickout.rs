//! `kickout`.

use super::method::Method;
use super::request::Request;
use crate::params::{ParamError, Params};
use fpnn::Value;
use serde::{Deserialize, Deserializer, Serialize};

/// `kickout {uid, ce?}`: forces the user's logins offline; with `ce` (the client endpoint,
/// `ip:port`, that SDKs before API 2.7.0 could send), only that login.
///
/// Absent, `nil` and `""` all mean every login of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kickout {
    /// The user.
    pub uid: i64,
    /// The endpoint of the one login to kick, as sent; not written when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ce: Option<String>,
}

impl Request for Kickout {
    const METHOD: Method = Method::Kickout;
    type Answer = KickoutAnswer;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        let p = Params::new(payload);
        Ok(Kickout {
            uid: p.uid()?,
            ce: p.opt::<&str>("ce")?.map(str::to_owned),
        })
    }
}

/// The answer to [`Kickout`]: `{}` from the hosted service; `{kicked}` from `rtmd`, the
/// sessions the kickout closed on every node.
///
/// A `kicked` that is not a non-negative integer reads as `None`: the kickout itself
/// succeeded, and the official SDKs do not read the answer at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickoutAnswer {
    /// The sessions closed, when the server counts them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count_if_any"
    )]
    pub kicked: Option<u64>,
}

fn count_if_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Value::deserialize(d)?.as_u64())
}
