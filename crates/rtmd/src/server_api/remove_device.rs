//! `removedevice {uid, devicetoken}` → `{}`: removes the device token if the user owns it,
//! and answers OK either way.

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use rtm_protocol::api::{Empty, RemoveDevice};

impl Handler for RemoveDevice {
    async fn handle(state: &State, call: Signed<'_, Self>, _now: Now) -> Result<Empty, ApiError> {
        let RemoveDevice { uid, devicetoken } = &call.request;
        state
            .remove_device(call.project.pid, *uid, devicetoken)
            .await?;
        crate::audit::device(call.project.pid, *uid, "removed", None);
        Ok(Empty)
    }
}
