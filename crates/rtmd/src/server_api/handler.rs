//! [`Handler`]: what a server API method does once its call passed [`Signed`], and the route
//! that runs the two and answers.

use super::error::ApiError;
use super::signed::Signed;
use crate::clock::Now;
use crate::state::State;
use fpnn::server::{Connection, ServerBuilder};
use fpnn::{HandlerResult, Value};
use rtm_protocol::api::Request;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// A server API method's handler, implemented on the method's request type: it acts on a
/// call whose signature, parameters and freshness were checked, at `now` (the time the
/// checks used).
pub trait Handler: Request + Send + 'static {
    /// Acts and answers.
    fn handle(
        state: &State,
        call: Signed<'_, Self>,
        now: Now,
    ) -> impl Future<Output = Result<Self::Answer, ApiError>> + Send;
}

/// Routes `P`'s method: every quest goes through [`Signed`] then [`Handler::handle`], and is
/// counted by its result.
pub fn route<P: Handler>(builder: ServerBuilder, state: &Arc<State>) -> ServerBuilder {
    let state = state.clone();
    builder.route(P::METHOD.name(), move |conn: Connection, payload: Value| {
        let state = state.clone();
        async move { serve::<P>(&state, conn.peer_addr(), &payload).await }
    })
}

async fn serve<P: Handler>(state: &State, peer: SocketAddr, payload: &Value) -> HandlerResult {
    // One reading of the clock serves the signature's `ts` check and the handler (a token's
    // issue time, a device's time).
    let now = state.now();
    let answered = async {
        let call = Signed::<P>::extract(state, payload, now).await?;
        let answer = P::handle(state, call, now).await?;
        Ok::<_, ApiError>(fpnn::to_value(&answer)?)
    };
    let result = answered.await;
    if let Err(
        e @ (ApiError::UnknownProject(_)
        | ApiError::BadSign(_)
        | ApiError::LegacySignRefused(_)
        | ApiError::Clock { .. }
        | ApiError::Replayed(_)),
    ) = &result
    {
        crate::audit::call_refused(now, P::METHOD.name(), peer, e.code(), e);
    }
    state
        .metrics()
        .server_call(P::METHOD, result.as_ref().err().map(ApiError::code));
    result.map_err(|e| e.to_answer())
}
