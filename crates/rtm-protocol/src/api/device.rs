//! `adddevice`, `removedevice` and the extension `getdevices`.

use super::method::Method;
use super::request::{Empty, Request};
use crate::params::{ParamError, Params};
use fpnn::Value;
use serde::{Deserialize, Serialize};

/// The device kinds `adddevice` accepts, by their current names.
pub mod app_type {
    /// Apple Push Notification service.
    pub const APNS: &str = "apns";
    /// Firebase Cloud Messaging (servers also accept the older names `gcm` and `pcm`).
    pub const FCM: &str = "fcm";
}

/// The longest device token a server accepts, in bytes.
pub const MAX_DEVICE_TOKEN: usize = 4096;

/// `adddevice {uid, apptype, devicetoken}`: registers a push device token for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddDevice {
    /// The user.
    pub uid: i64,
    /// The kind: [`app_type::APNS`] or [`app_type::FCM`] (read back in that form, whatever
    /// case or older name was sent).
    pub apptype: String,
    /// The device token.
    pub devicetoken: String,
}

impl Request for AddDevice {
    const METHOD: Method = Method::AddDevice;
    type Answer = Empty;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        let p = Params::new(payload);
        let uid = p.uid()?;
        let apptype = current_app_type(p.want("apptype")?)?;
        Ok(AddDevice {
            uid,
            apptype: apptype.to_owned(),
            devicetoken: device_token(p.want("devicetoken")?)?.to_owned(),
        })
    }
}

/// `removedevice {uid, devicetoken}`: removes the user's device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveDevice {
    /// The user.
    pub uid: i64,
    /// The device token.
    pub devicetoken: String,
}

impl Request for RemoveDevice {
    const METHOD: Method = Method::RemoveDevice;
    type Answer = Empty;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        let p = Params::new(payload);
        let uid = p.uid()?;
        Ok(RemoveDevice {
            uid,
            devicetoken: device_token(p.want("devicetoken")?)?.to_owned(),
        })
    }
}

/// `getdevices {uid}`: the user's device tokens, oldest first. An extension of `rtmd`, not
/// part of the hosted service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GetDevices {
    /// The user.
    pub uid: i64,
}

/// The answer to [`GetDevices`]: `{devices: [{apptype, devicetoken, time}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetDevicesAnswer {
    /// The devices, oldest first.
    pub devices: Vec<Device>,
}

/// A device token registered for a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    /// `apns` or `fcm`.
    pub apptype: String,
    /// The push token.
    pub devicetoken: String,
    /// When it was added, in milliseconds since the Unix epoch.
    pub time: i64,
}

impl Request for GetDevices {
    const METHOD: Method = Method::GetDevices;
    type Answer = GetDevicesAnswer;

    fn parse(payload: &Value) -> Result<Self, ParamError> {
        Ok(GetDevices {
            uid: Params::new(payload).uid()?,
        })
    }
}

/// `apns`, or `fcm` (also under its older names `gcm` and `pcm`), in any case; else 200034.
fn current_app_type(given: &str) -> Result<&'static str, ParamError> {
    if given.eq_ignore_ascii_case(app_type::APNS) {
        Ok(app_type::APNS)
    } else if ["fcm", "gcm", "pcm"]
        .iter()
        .any(|name| given.eq_ignore_ascii_case(name))
    {
        Ok(app_type::FCM)
    } else {
        Err(ParamError::Invalid {
            key: "apptype",
            detail: format!(
                "apptype '{}' is not supported: use \"apns\" or \"fcm\"",
                given.escape_default()
            ),
        })
    }
}

/// A device token of 1 to [`MAX_DEVICE_TOKEN`] bytes; else 200034.
fn device_token(token: &str) -> Result<&str, ParamError> {
    let detail = if token.is_empty() {
        "devicetoken is empty".to_owned()
    } else if token.len() > MAX_DEVICE_TOKEN {
        format!(
            "devicetoken is {} bytes long; the limit is {MAX_DEVICE_TOKEN}",
            token.len()
        )
    } else {
        return Ok(token);
    };
    Err(ParamError::Invalid {
        key: "devicetoken",
        detail,
    })
}
