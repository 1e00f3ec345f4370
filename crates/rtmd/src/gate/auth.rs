//! `auth {pid, uid, token, version?, attrs?, lang?}` → `{ok}`.

use super::access::not_logged_in;
use super::error::GateError;
use super::ping::ping_loop;
use crate::clock::Now;
use crate::metrics::AuthResult;
use crate::state::{LoginError, State};
use fpnn::server::Connection;
use fpnn::Value;
use rtm_protocol::gate::{Auth, AuthAnswer};
use std::sync::Arc;

/// Logs the connection in: `{ok: true}`, or `{ok: false}` for a token refused (bad, expired,
/// revoked, another user's or project's). On success the gate starts pushing `ping`.
pub async fn auth(
    state: &Arc<State>,
    conn: Connection,
    payload: &Value,
    now: Now,
) -> Result<AuthAnswer, GateError> {
    not_logged_in(&conn)?;
    let auth = Auth::parse(payload)?;
    let result = match state
        .login(&conn, auth.pid, auth.uid, auth.token, now)
        .await
    {
        Ok(result) => result,
        Err(LoginError::AlreadyLoggedIn) => return Err(GateError::AlreadyLoggedIn),
        Err(LoginError::Store(e)) => return Err(e.into()),
    };
    if result != AuthResult::Ok {
        // Logged (rtmd::audit) and counted by `State::login`.
        return Ok(AuthAnswer { ok: false });
    }
    if !conn.is_closed() {
        tokio::spawn(ping_loop(conn, state.limits().client_ping_interval));
    }
    Ok(AuthAnswer { ok: true })
}
