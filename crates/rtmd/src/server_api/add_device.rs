//! `adddevice {uid, apptype, devicetoken}` → `{}`: records the device token for the user,
//! added now (moved from its previous owner; the oldest dropped beyond the project's cap).

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use rtm_protocol::api::{AddDevice, Empty};

impl Handler for AddDevice {
    async fn handle(state: &State, call: Signed<'_, Self>, now: Now) -> Result<Empty, ApiError> {
        let AddDevice {
            uid,
            apptype,
            devicetoken,
        } = &call.request;
        state
            .add_device(call.project, *uid, apptype, devicetoken, now)
            .await?;
        crate::audit::device(call.project.pid, *uid, "added", Some(apptype));
        Ok(Empty)
    }
}
