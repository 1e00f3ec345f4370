//! `kickout {uid, ce?}` → `{kicked}`: ends the user's sessions (only the one at endpoint `ce`
//! when it is a non-empty string) on every node; answers OK also when the user is offline.
//!
//! `kicked` is an extension: the sessions closed here and dispatched to the other nodes of a
//! cluster (the official SDKs ignore answer keys they do not read).

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::sessions::normalize_ce;
use crate::state::State;
use rtm_protocol::api::{Kickout, KickoutAnswer};

impl Handler for Kickout {
    async fn handle(
        state: &State,
        call: Signed<'_, Self>,
        now: Now,
    ) -> Result<KickoutAnswer, ApiError> {
        let Kickout { uid, ce } = &call.request;
        // Absent, nil and "" all mean every login of the user.
        let ce = ce.as_deref().filter(|ce| !ce.is_empty()).map(normalize_ce);
        let kicked = state.kickout(call.project.pid, *uid, ce.as_deref()).await?;
        crate::audit::kickout(now, call.project.pid, *uid, ce.as_deref(), kicked);
        Ok(KickoutAnswer {
            kicked: Some(u64::try_from(kicked).unwrap_or(u64::MAX)),
        })
    }
}
