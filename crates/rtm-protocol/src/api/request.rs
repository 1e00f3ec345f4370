//! [`Request`]: what every method's request is, and [`Empty`], the answer of those that
//! return nothing.

use super::method::Method;
use crate::params::ParamError;
use fpnn::Value;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A server API request: the keys of one method after the envelope, and its answer.
///
/// It is written with `serde` (struct fields in the order the official SDKs send them) and
/// read with [`Request::parse`].
pub trait Request: Serialize + Sized {
    /// The method.
    const METHOD: Method;
    /// The answer's body.
    type Answer: Serialize + DeserializeOwned;

    /// Reads the request from a quest's payload (the envelope's keys are not its own), as
    /// the server reads it: a missing key is 10009, a mistyped one 10010, a bad `uid` 200001,
    /// a refused value 200034. Values come back in the form the server works with (an
    /// `apptype` as its current name, say).
    fn parse(payload: &Value) -> Result<Self, ParamError>;
}

/// The answer `{}` of the calls that return nothing.
///
/// Any answer reads as it: the official SDKs do not look at the content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Empty, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Empty)
    }
}
