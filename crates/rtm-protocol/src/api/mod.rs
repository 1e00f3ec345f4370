//! The server API: what a business server asks of RTM over the server port (13315).
//!
//! | method | request | answer |
//! |---|---|---|
//! | `gettoken` | [`GetToken`] `{uid}` | [`GetTokenAnswer`] `{token}` |
//! | `removetoken` | [`RemoveToken`] `{uid}` | [`Empty`] `{}` |
//! | `adddevice` | [`AddDevice`] `{uid, apptype, devicetoken}` | [`Empty`] `{}` |
//! | `removedevice` | [`RemoveDevice`] `{uid, devicetoken}` | [`Empty`] `{}` |
//! | `kickout` | [`Kickout`] `{uid, ce?}` | [`KickoutAnswer`] `{kicked?}` |
//! | `getdevices` (an `rtmd` extension) | [`GetDevices`] `{uid}` | [`GetDevicesAnswer`] `{devices}` |
//!
//! Every quest carries the [`Envelope`] first (`pid, sign, salt, ts`, signed as
//! [`crate::sign`] says), then the request's own keys, in the order of the official C++ SDK
//! ([`Signer::payload`]). A request is written with `serde` and read with
//! [`Request::parse`], which answers what the server answers for bad parameters
//! ([`ParamError`]).

mod device;
mod envelope;
mod kickout;
mod token;

pub use device::{
    app_type, AddDevice, Device, GetDevices, GetDevicesAnswer, RemoveDevice, MAX_DEVICE_TOKEN,
};
pub use envelope::{Envelope, Signer};
pub use kickout::{Kickout, KickoutAnswer};
pub use token::{GetToken, GetTokenAnswer, RemoveToken};

use crate::params::ParamError;
use fpnn::Value;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A method of the server API, by its name on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `gettoken`: a login token for a user.
    GetToken,
    /// `removetoken`: revokes the user's tokens.
    RemoveToken,
    /// `adddevice`: registers a push device token.
    AddDevice,
    /// `removedevice`: removes a push device token.
    RemoveDevice,
    /// `kickout`: forces the user's logins offline.
    Kickout,
    /// `getdevices`: the user's device tokens (an `rtmd` extension; the hosted service
    /// answers 20004).
    GetDevices,
}

impl Method {
    /// Every method, in this order (metrics count them in it).
    pub const ALL: [Method; 6] = [
        Method::GetToken,
        Method::RemoveToken,
        Method::AddDevice,
        Method::RemoveDevice,
        Method::Kickout,
        Method::GetDevices,
    ];

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Method::GetToken => "gettoken",
            Method::RemoveToken => "removetoken",
            Method::AddDevice => "adddevice",
            Method::RemoveDevice => "removedevice",
            Method::Kickout => "kickout",
            Method::GetDevices => "getdevices",
        }
    }

    /// The method named `name` (exactly: the wire's names are lower case).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its position in [`Method::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

#[cfg(test)]
mod tests;
