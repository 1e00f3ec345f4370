//! `gettoken {uid}` → `{token}`: a login token for the user, carrying the user's current
//! revocation generation, valid for the project's `token_ttl` from now.

use super::error::ApiError;
use super::handler::Handler;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use rtm_protocol::api::{GetToken, GetTokenAnswer};

impl Handler for GetToken {
    async fn handle(
        state: &State,
        call: Signed<'_, Self>,
        now: Now,
    ) -> Result<GetTokenAnswer, ApiError> {
        let token = state
            .mint_token(call.project, call.request.uid, now)
            .await?;
        Ok(GetTokenAnswer { token })
    }
}
