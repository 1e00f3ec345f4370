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

use crate::params::{want_int, want_str};
use crate::sessions::{endpoint, Login, Session};
use crate::state::{store_unavailable, unix_secs, State};
use fpnn::server::{Connection, ServerBuilder};
use fpnn::{Error, ErrorAnswer, HandlerResult, Value};
use rtm_server_sdk::code;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Adds the gate's routes and hooks to a server builder.
pub fn routes(builder: ServerBuilder, state: Arc<State>) -> ServerBuilder {
    let on_connect = state.clone();
    let on_close = state.clone();
    let auth_state = state.clone();
    builder
        .on_connect(move |conn| {
            on_connect
                .metrics
                .gate_connections
                .fetch_add(1, Ordering::Relaxed);
            let conn = conn.clone();
            let limit = on_connect.config.limits.auth_timeout;
            tokio::spawn(async move {
                // Ends with the connection, so that a short session (auth, bye) leaves no
                // timer and no connection state behind for the rest of the limit.
                tokio::select! {
                    _ = tokio::time::sleep(limit) => {}
                    _ = conn.closed() => return,
                }
                if conn.data::<Login>().is_none() && !conn.is_closed() {
                    tracing::debug!(peer = %conn.peer_addr(), "no auth in time, closing");
                    conn.close();
                }
            });
        })
        .on_close(move |conn, _reason| {
            on_close
                .metrics
                .gate_connections
                .fetch_sub(1, Ordering::Relaxed);
            // A kicked session left this node's registry when it was kicked; the cluster
            // registry is told again (best effort), in case the kick could not reach Redis.
            if let Some(login) = conn.data::<Login>() {
                on_close.session_closed(&login.session, conn.id());
            }
        })
        .route("auth", move |conn, params| {
            let state = auth_state.clone();
            async move { auth(&state, conn, &params).await }
        })
        .route("bye", |conn: Connection, _params| async move {
            conn.close_after_answers();
            Ok(Value::map())
        })
        .route("ping", |conn: Connection, _params| {
            let answer = logged_in(&conn).map(|_| Value::map());
            async move { answer }
        })
        .fallback(|conn: Connection, method: &str, _params| {
            let answer = logged_in(&conn).and_then(|_| {
                Err(ErrorAnswer::new(
                    fpnn::code::CORE_UNKNOWN_METHOD,
                    format!("unknown method: {method}"),
                ))
            });
            async move { answer }
        })
}

/// The session of a connection that is logged in, or the answer for one that is not: 200022,
/// before `auth` or after a kickout.
fn logged_in(conn: &Connection) -> Result<&Session, ErrorAnswer> {
    match conn.data::<Login>() {
        Some(login) if login.is_ended() => Err(kicked()),
        Some(login) => Ok(&login.session),
        None => Err(unauthorized()),
    }
}

fn unauthorized() -> ErrorAnswer {
    ErrorAnswer::new(code::UNAUTHORIZED, "not logged in: send auth first")
}

/// The answer to a quest on a connection whose session a kickout ended.
fn kicked() -> ErrorAnswer {
    ErrorAnswer::new(
        code::UNAUTHORIZED,
        "not logged in: this session was ended by a kickout, and the server closes the connection",
    )
}

fn refused(state: &State, reason: &str) -> HandlerResult {
    state.metrics.auth(reason);
    Ok(Value::map().with("ok", false))
}

async fn auth(state: &Arc<State>, conn: Connection, params: &Value) -> HandlerResult {
    match conn.data::<Login>() {
        Some(login) if login.is_ended() => return Err(kicked()),
        Some(_) => {
            return Err(ErrorAnswer::new(
                code::DUPLICATED_AUTH,
                "already logged in on this connection",
            ))
        }
        None => {}
    }
    let pid = want_int(params, "pid")?;
    let uid = want_int(params, "uid")?;
    let token = want_str(params, "token")?;
    // `version`, `attrs` and `lang` are accepted and not used.
    let Some((pid, project)) = i32::try_from(pid)
        .ok()
        .and_then(|pid| Some((pid, state.projects.get(&pid)?)))
    else {
        return refused(state, "unknown_project");
    };
    // No token can name a uid outside int64.
    let Ok(uid) = i64::try_from(uid) else {
        return refused(state, "wrong_user");
    };
    let now = unix_secs().max(0) as u64;
    let claims = match state.tokens.verify(token, pid, uid, now) {
        Ok(claims) => claims,
        Err(e) => return refused(state, e.label()),
    };
    let generation = match state.store_call(state.store.generation(pid, uid)).await {
        Ok(generation) => generation,
        Err(e) => {
            state.metrics.auth("store_error");
            return Err(store_unavailable(&e));
        }
    };
    if let Err(e) = claims.check_generation(generation) {
        return refused(state, e.label());
    }
    let session = Session {
        pid,
        uid,
        ce: endpoint(conn.peer_addr()),
    };
    // Cluster mode: kickouts from any node must find the session before it is confirmed.
    if let Err(e) = state.register_session(&session, conn.id()).await {
        state.metrics.auth("store_error");
        return Err(store_unavailable(&e));
    }
    if !conn.set_data(Login::new(session.clone())) {
        // Two `auth` quests raced on one connection; the other one won.
        state.session_closed(&session, conn.id());
        return Err(ErrorAnswer::new(
            code::DUPLICATED_AUTH,
            "already logged in on this connection",
        ));
    }
    if project.multi_login {
        state.sessions.add(&session, &conn);
    } else {
        // Taking the older sessions on this node and adding this one in one step: of two
        // logins at once, one stays.
        state.kick_connections(&state.sessions.replace(&session, &conn));
        // Then the user's logins on other nodes (cluster mode).
        if let Err(e) = state.kick_other_logins_elsewhere(&session, conn.id()).await {
            // The other logins could not all be reached: this one does not stand either.
            state.metrics.auth("store_error");
            state.session_closed(&session, conn.id());
            conn.close_after_answers();
            return Err(e);
        }
    }
    if project.removetoken_kicks {
        // A `removetoken` that ran after the check above kicked the sessions it found, and
        // this one was not registered yet. It moved the generation before kicking, so a
        // second read, now that the session is registered, sees it.
        let current = state.store_call(state.store.generation(pid, uid)).await;
        if !matches!(current, Ok(g) if claims.check_generation(g).is_ok()) {
            state.sessions.remove(&session, conn.id());
            // The connection carries the session and cannot log in again: close it after
            // the answer.
            conn.close_after_answers();
            return match current {
                Ok(_) => refused(state, "revoked"),
                Err(e) => {
                    state.metrics.auth("store_error");
                    Err(store_unavailable(&e))
                }
            };
        }
    }
    if conn.is_closed() {
        // It closed while we checked the token; `on_close` may have run before `add`.
        state.session_closed(&session, conn.id());
    } else {
        tokio::spawn(ping_loop(conn, state.config.limits.client_ping_interval));
    }
    state.metrics.auth("ok");
    Ok(Value::map().with("ok", true))
}

/// Pushes `ping` to a logged-in client every `interval`; two missed answers in a row close
/// the connection (a client that vanished without a FIN leaves no ghost session). Ends with
/// the session (a kickout) or the connection.
async fn ping_loop(conn: Connection, interval: Duration) {
    let mut missed = 0;
    loop {
        // Ends with the connection, not up to `interval` later.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = conn.closed() => return,
        }
        if logged_in(&conn).is_err() {
            return;
        }
        match conn.push_quest("ping", &Value::map(), Some(interval)).await {
            // Any answer, even an error answer, shows the client is there.
            Ok(_) | Err(Error::Answer(_)) => missed = 0,
            Err(Error::Timeout(_)) => {
                missed += 1;
                if missed >= 2 {
                    tracing::debug!(peer = %conn.peer_addr(), "client missed two pings, closing");
                    conn.close();
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
