//! `removetoken {uid}` → `{}`: revokes every token the user holds now (and kicks the user's
//! sessions where the project sets `removetoken_kicks`). Idempotent.

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use rtm_protocol::api::{Empty, RemoveToken};

impl Handler for RemoveToken {
    async fn handle(state: &State, call: Signed<'_, Self>, now: Now) -> Result<Empty, ApiError> {
        state.revoke(call.project, call.request.uid).await?;
        crate::audit::remove_token(now, call.project.pid, call.request.uid);
        Ok(Empty)
    }
}
