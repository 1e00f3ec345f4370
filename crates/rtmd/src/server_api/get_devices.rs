//! `getdevices {uid}` → `{devices: [{apptype, devicetoken, time}]}`: the user's device
//! tokens, oldest first. An extension of `rtmd`.

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use rtm_protocol::api::{Device, GetDevices, GetDevicesAnswer};

impl Handler for GetDevices {
    async fn handle(
        state: &State,
        call: Signed<'_, Self>,
        _now: Now,
    ) -> Result<GetDevicesAnswer, ApiError> {
        let devices = state.devices(call.project.pid, call.request.uid).await?;
        let devices = devices
            .into_iter()
            .map(|d| Device {
                apptype: d.apptype,
                devicetoken: d.device_token,
                time: d.time_ms,
            })
            .collect();
        Ok(GetDevicesAnswer { devices })
    }
}
