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
//! ([`ParamError`](crate::ParamError)).

mod device;
mod envelope;
mod kickout;
mod method;
mod request;
mod token;

pub use device::{
    app_type, AddDevice, Device, GetDevices, GetDevicesAnswer, RemoveDevice, MAX_DEVICE_TOKEN,
};
pub use envelope::{Envelope, Signer};
pub use kickout::{Kickout, KickoutAnswer};
pub use method::Method;
pub use request::{Empty, Request};
pub use token::{GetToken, GetTokenAnswer, RemoveToken};

#[cfg(test)]
mod tests;
