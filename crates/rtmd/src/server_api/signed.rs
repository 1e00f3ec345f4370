//! [`Signed<P>`]: the step every signed server API call passes through before its handler
//! runs, the way an axum extractor does: the envelope is read, the signature and `ts`
//! checked ([`super::signature`]), the method's parameters read into `P` (10009, 10010,
//! 200001, 200034), and finally the request recorded in the replay window by its
//! fingerprint, of the request or of its sign as the project's `replay` mode says (200006
//! when seen before; [`crate::fingerprint`]).
//!
//! The parameters are read before the window records the request, so that a request refused
//! for its parameters does not take a place in the window (and a corrected resend with the
//! same sign is answered).

use super::error::ApiError;
use super::signature;
use crate::clock::Now;
use crate::config::Project;
use crate::state::State;
use fpnn::Value;
use rtm_protocol::api::{Envelope, Request};

/// A server API call that passed every check: its project and its parameters.
#[derive(Debug)]
pub struct Signed<'s, P> {
    /// The project the call was signed for.
    pub project: &'s Project,
    /// The method's parameters.
    pub request: P,
}

impl<'s, P: Request> Signed<'s, P> {
    /// Runs the checks on a quest's `payload` at `now`.
    pub async fn extract(state: &'s State, payload: &Value, now: Now) -> Result<Self, ApiError> {
        let method = P::METHOD.name();
        let envelope = Envelope::parse(payload)?;
        let checked = signature::check(state.projects(), method, &envelope, now.secs())?;
        let request = P::parse(payload)?;
        let project = checked.project;
        let mode = project.replay;
        if let Some(fingerprint) = mode.fingerprint(checked.sign.as_bytes(), method, payload) {
            let fresh = state
                .remember_request(project.pid, &fingerprint, checked.replay_ttl)
                .await?;
            if !fresh {
                return Err(ApiError::Replayed(mode));
            }
        }
        Ok(Signed { project, request })
    }
}
