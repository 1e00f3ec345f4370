//! The client gate: end users' apps log in with `auth {pid, uid, token}` and are pushed
//! `kickout` when the business server asks.
//!
//! * `auth` must come first; the answer is `{ok: true}` or `{ok: false}` (a bad, expired or
//!   revoked token is not an error answer). A second `auth` answers 200023. When the store
//!   cannot be read the login fails closed with 200999 (clients retry), never unchecked. In
//!   cluster mode the session is also recorded in the registry before the answer (and fails
//!   closed the same way), so that a kickout on any node finds it.
//! * Any other quest before `auth` answers 200022; a connection that has not logged in
//!   within `limits.auth_timeout` is closed.
//! * `bye` answers `{}` and closes the connection; `ping` answers `{}`.
//! * The gate pushes the two-way `ping` to logged-in clients every
//!   `limits.client_ping_interval` (the official clients treat a silent gate as lost) and
//!   closes a client that misses two in a row.
//! * A session's `ce` is the client's address as the gate sees it (`ip:port`; an IPv4
//!   client of a dual-stack listener as plain IPv4).
//! * A kickout ends a session at once ([`crate::sessions`]): the connection is pushed
//!   `kickout`, then left to the client to close for `limits.kickout_grace`. Meanwhile every
//!   quest on it but `bye` answers 200022 saying the session was kicked (an official client
//!   has closed the connection by then and never sees it; any other client gets an answer at
//!   once instead of waiting for the close), and no `ping` is pushed to it.
//! * Kicks that other nodes send for this node's sessions arrive as messages from the
//!   session registry; [`drain_kicks`] applies them.

mod access;
mod auth;
mod error;
mod ping;

pub use error::GateError;

use crate::registry::Kick;
use crate::sessions::Login;
use crate::state::State;
use access::logged_in;
use fpnn::server::{Connection, ServerBuilder};
use fpnn::{ErrorAnswer, Value};
use rtm_protocol::gate::Method;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Adds the gate's routes and hooks to a server builder.
pub fn routes(builder: ServerBuilder, state: &Arc<State>) -> ServerBuilder {
    let (on_connect, on_close, auth_state) = (state.clone(), state.clone(), state.clone());
    builder
        .on_connect(move |conn| {
            on_connect.metrics().gate_connection(true);
            tokio::spawn(close_unless_logged_in(
                conn.clone(),
                on_connect.limits().auth_timeout,
            ));
        })
        .on_close(move |conn, _reason| {
            on_close.metrics().gate_connection(false);
            on_close.logout(conn);
        })
        .route(Method::Auth.name(), move |conn, payload: Value| {
            let state = auth_state.clone();
            async move {
                let now = state.now();
                let answer = auth::auth(&state, conn, &payload, now).await?;
                fpnn::to_value(&answer)
                    .map_err(|e| ErrorAnswer::new(fpnn::code::CORE_ENCODING, e.to_string()))
            }
        })
        .route(
            Method::Bye.name(),
            |conn: Connection, _payload| async move {
                conn.close_after_answers();
                Ok(Value::map())
            },
        )
        .route(Method::Ping.name(), |conn: Connection, _payload| {
            let answer = logged_in(&conn)
                .map(|_| Value::map())
                .map_err(ErrorAnswer::from);
            async move { answer }
        })
        .fallback(|conn: Connection, method: &str, _payload| {
            let answer = match logged_in(&conn) {
                Ok(_) => GateError::UnknownMethod(method.to_owned()),
                Err(e) => e,
            };
            async move { Err(answer.into()) }
        })
}

/// Closes a connection that has not logged in within `limit`. Ends with the connection, so
/// that a short session (auth, bye) leaves no timer behind for the rest of the limit.
async fn close_unless_logged_in(conn: Connection, limit: std::time::Duration) {
    tokio::select! {
        _ = tokio::time::sleep(limit) => {}
        _ = conn.closed() => return,
    }
    if conn.data::<Login>().is_none() && !conn.is_closed() {
        tracing::debug!(peer = %conn.peer_addr(), "no auth in time, closing");
        conn.close();
    }
}

/// Applies the kicks that other nodes send for this node's sessions, as they arrive, until
/// the registry stops sending them (or the task is aborted at shutdown).
pub fn drain_kicks(state: Arc<State>, mut kicks: mpsc::UnboundedReceiver<Kick>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(kick) = kicks.recv().await {
            state.apply_kick(kick);
        }
    })
}
