//! The service's state and what may be done with it, by intent: mint a token, revoke a
//! user's tokens, record a device, kick a user out, log a session in or out.
//!
//! The server API and the gate go through these methods; nothing else reaches the store,
//! the sessions, the session registry or the counters. Every store operation is timed for
//! the metrics and bounded in time ([`State::store_call`]).

use crate::clock::{Clock, Now};
use crate::config::{Config, Limits, Project};
use crate::fingerprint::Fingerprint;
use crate::metrics::{AuthResult, Metrics};
use crate::registry::{Kick, NodeLink, Registry};
use crate::sessions::{endpoint, kick_connection, Login, Session, Sessions};
use crate::store::{DeviceRecord, Store, StoreError};
use crate::token::Tokens;
use fpnn::server::Connection;
use rtm_protocol::Int;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything the handlers share.
pub struct State {
    config: Config,
    projects: HashMap<i32, Project>,
    store: Arc<dyn Store>,
    tokens: Tokens,
    sessions: Arc<Sessions>,
    registry: Box<dyn Registry>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

/// Why a login failed (an error answer, not a refusal).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The connection is logged in already (two `auth` quests raced).
    #[error("already logged in on this connection")]
    AlreadyLoggedIn,
    /// The store or the registry could not be reached: the login fails closed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl State {
    /// The state of a node: `store` keeps the data, `tokens` were keyed with its ring,
    /// `registry` knows the other nodes' sessions. Kicks that other nodes send for this
    /// node's sessions come out of the returned receiver, for the gate to drain
    /// ([`State::apply_kick`]).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        tokens: Tokens,
        registry: Box<dyn Registry>,
        clock: Clock,
    ) -> (State, mpsc::UnboundedReceiver<Kick>) {
        let projects = config.projects.iter().map(|p| (p.pid, p.clone())).collect();
        let sessions = Arc::new(Sessions::new());
        let metrics = Arc::new(Metrics::new());
        // Unbounded: a kick names a session of this node, each kicked once at most, so what
        // waits here is bounded by the sessions this node holds.
        let (kicks, kicked) = mpsc::unbounded_channel();
        registry.start(NodeLink {
            sessions: sessions.clone(),
            metrics: metrics.clone(),
            kicks,
        });
        let state = State {
            config,
            projects,
            store,
            tokens,
            sessions,
            registry,
            metrics,
            clock,
        };
        (state, kicked)
    }

    /// The time now, read once per call.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// The projects, by pid.
    pub fn projects(&self) -> &HashMap<i32, Project> {
        &self.projects
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The token service (tests mint and verify tokens with it).
    #[cfg(feature = "testing")]
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The logged-in sessions of this node.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The logged-in sessions of one user on this node.
    #[cfg(feature = "testing")]
    pub fn sessions_of(&self, pid: i32, uid: i64) -> usize {
        self.sessions
            .snapshot()
            .iter()
            .filter(|(p, u, _, _)| (*p, *u) == (pid, uid))
            .count()
    }

    // ----- the server API

    /// Records a server API request in the replay window: `true` the first time, `false` for
    /// a replay within `ttl`.
    pub async fn remember_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store_call(self.store.check_and_record_request(pid, fingerprint, ttl))
            .await
    }

    /// A login token for `uid` of `project`, issued `now`, valid for the project's
    /// `token_ttl`. It carries the user's current revocation generation.
    pub async fn mint_token(
        &self,
        project: &Project,
        uid: i64,
        now: Now,
    ) -> Result<String, StoreError> {
        let generation = self
            .store_call(self.store.generation(project.pid, uid))
            .await?;
        let issued = u64::try_from(now.secs()).unwrap_or(0);
        Ok(self.tokens.mint(
            project.pid,
            uid,
            generation,
            issued,
            project.token_ttl.as_secs(),
        ))
    }

    /// Revokes every token `uid` holds now (and, where the project says so, kicks the
    /// user's sessions).
    pub async fn revoke(&self, project: &Project, uid: i64) -> Result<(), StoreError> {
        self.store_call(self.store.bump_generation(project.pid, uid))
            .await?;
        if project.removetoken_kicks {
            self.kickout(project.pid, uid, None).await?;
        }
        Ok(())
    }

    /// Records a device token of `uid`, added `now` (the project's device cap applies).
    pub async fn add_device(
        &self,
        project: &Project,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now: Now,
    ) -> Result<(), StoreError> {
        self.store_call(self.store.add_device(
            project.pid,
            uid,
            apptype,
            device_token,
            now.ms(),
            project.max_devices,
        ))
        .await
    }

    /// Removes a device token of `uid`, if the user owns it.
    pub async fn remove_device(
        &self,
        pid: i32,
        uid: i64,
        device_token: &str,
    ) -> Result<bool, StoreError> {
        self.store_call(self.store.remove_device(pid, uid, device_token))
            .await
    }

    /// The device tokens of `uid`, oldest first.
    pub async fn devices(&self, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>, StoreError> {
        self.store_call(self.store.devices(pid, uid)).await
    }

    /// Kicks the user's sessions (only the one at endpoint `ce`, when given), on every node.
    /// Returns how many were kicked.
    ///
    /// This node's sessions end at once ([`kick_connection`]); the kicks for other nodes
    /// are dispatched once this returns. When the registry cannot be reached, this node's
    /// own sessions are still kicked and the call fails.
    pub async fn kickout(&self, pid: i32, uid: i64, ce: Option<&str>) -> Result<usize, StoreError> {
        let taken = self.sessions.take(pid, uid, ce, None);
        let kicked = self.kick_connections(&taken);
        let remote = self
            .store_call(self.registry.kick_remote(pid, uid, ce, None))
            .await?;
        Ok(kicked + remote)
    }

    // ----- the gate

    /// Logs `conn` in as `uid` of `pid` with `token`, `now`: [`AuthResult::Ok`], or why the
    /// token was refused (answered `{ok: false}`).
    ///
    /// A store or registry that cannot be reached fails the login closed. In cluster mode the session is recorded in the registry before the
    /// answer, so that a kickout on any node finds it; without multi-login the user's other
    /// sessions, here and elsewhere, are kicked. Every outcome is counted.
    pub async fn login(
        &self,
        conn: &Connection,
        pid: Int,
        uid: Int,
        token: &str,
        now: Now,
    ) -> Result<AuthResult, LoginError> {
        let result = self.try_login(conn, pid, uid, token, now).await;
        let counted = match &result {
            Ok(outcome) => *outcome,
            Err(LoginError::Store(_)) => AuthResult::StoreError,
            Err(LoginError::AlreadyLoggedIn) => return result,
        };
        self.metrics.auth(counted);
        let reason = (counted != AuthResult::Ok).then_some(&counted as &dyn std::fmt::Display);
        crate::audit::login(now, &pid, &uid, conn.peer_addr(), counted.label(), reason);
        result
    }

    async fn try_login(
        &self,
        conn: &Connection,
        pid: Int,
        uid: Int,
        token: &str,
        now: Now,
    ) -> Result<AuthResult, LoginError> {
        let Some(project) = pid.to_i32().and_then(|pid| self.projects.get(&pid)) else {
            return Ok(AuthResult::UnknownProject);
        };
        // No token can name a uid outside int64.
        let Some(uid) = uid.to_i64() else {
            return Ok(AuthResult::WrongUser);
        };
        let pid = project.pid;
        let now_secs = u64::try_from(now.secs()).unwrap_or(0);
        let claims = match self.tokens.verify(token, pid, uid, now_secs) {
            Ok(claims) => claims,
            Err(e) => return Ok(e.into()),
        };
        let generation = self.store_call(self.store.generation(pid, uid)).await?;
        if let Err(e) = claims.check_generation(generation) {
            return Ok(e.into());
        }
        let session = Session {
            pid,
            uid,
            ce: endpoint(conn.peer_addr()),
        };
        // Cluster mode: kickouts from any node must find the session before it is confirmed.
        self.store_call(self.registry.register(&session, conn.id()))
            .await?;
        if !conn.set_data(Login::new(session.clone())) {
            // Two `auth` quests raced on one connection; the other one won.
            self.registry.deregister(&session, conn.id());
            return Err(LoginError::AlreadyLoggedIn);
        }
        if project.multi_login {
            self.sessions.add(&session, conn);
        } else {
            // Taking the older sessions on this node and adding this one in one step: of two
            // logins at once, one stays.
            self.kick_connections(&self.sessions.replace(&session, conn));
            // Then the user's logins on other nodes (cluster mode).
            let elsewhere = self
                .registry
                .kick_remote(pid, uid, None, Some((&session, conn.id())));
            if let Err(e) = self.store_call(elsewhere).await {
                // The other logins could not all be reached: this one does not stand either.
                self.end_session(&session, conn.id());
                conn.close_after_answers();
                return Err(e.into());
            }
        }
        if project.removetoken_kicks {
            // A `removetoken` that ran after the check above kicked the sessions it found, and
            // this one was not registered yet. It moved the generation before kicking, so a
            // second read, now that the session is registered, sees it.
            let current = self.store_call(self.store.generation(pid, uid)).await;
            if !matches!(current, Ok(g) if claims.check_generation(g).is_ok()) {
                self.sessions.remove(&session, conn.id());
                // The connection carries the session and cannot log in again: close it after
                // the answer.
                conn.close_after_answers();
                current?;
                return Ok(AuthResult::Revoked);
            }
        }
        if conn.is_closed() {
            // It closed while we checked the token; `on_close` may have run before `add`.
            self.end_session(&session, conn.id());
        }
        Ok(AuthResult::Ok)
    }

    /// Forgets the session of a connection that closed, here and in the registry (a kicked
    /// session left this node's table when it was kicked; the registry is told again, in
    /// case the kick could not reach it).
    pub fn logout(&self, conn: &Connection) {
        if let Some(login) = conn.data::<Login>() {
            self.end_session(&login.session, conn.id());
        }
    }

    fn end_session(&self, session: &Session, conn_id: u64) {
        self.sessions.remove(session, conn_id);
        self.registry.deregister(session, conn_id);
    }

    /// Kicks a session of this node that another node kicked.
    pub fn apply_kick(&self, kick: Kick) {
        let taken = self.sessions.take_ids(kick.pid, kick.uid, &[kick.conn_id]);
        let n = self.kick_connections(&taken);
        self.metrics.kicks_received(n, kick.by_refresh);
    }

    /// Kicks connections already taken out of the session table (each session ends, is
    /// pushed the one-way `kickout`, and its connection is closed after
    /// `limits.kickout_grace` unless the client closes it first). Returns how many.
    fn kick_connections(&self, taken: &[Connection]) -> usize {
        let grace = self.config.limits.kickout_grace;
        for conn in taken {
            let metrics = self.metrics.clone();
            kick_connection(conn, grace, move |by| metrics.kicked_connection_closed(by));
        }
        self.metrics.sessions_kicked(taken.len());
        taken.len()
    }

    // ----- the service

    /// Checks that the store serves, for `/healthz` and `rtmd_store_up`.
    pub async fn check_store(&self) -> Result<(), StoreError> {
        let result = self.store_call(self.store.ping()).await;
        self.metrics.set_store_up(result.is_ok());
        result
    }

    /// The store's periodic upkeep ([`Store::maintain`]) after a health check.
    pub async fn maintain_store(&self) {
        if self.check_store().await.is_ok() {
            if let Err(e) = self.store_call(self.store.maintain()).await {
                tracing::debug!(error = %e, "store maintenance failed; retrying at the next check");
            }
        }
    }

    /// The metrics page.
    pub fn render_metrics(&self) -> String {
        let mut body = self.metrics.render(self.sessions.len());
        if let Some(window) = self.store.replay_window() {
            crate::metrics::render_replay_window(&mut body, &window);
        }
        crate::process::render(&mut body);
        body
    }

    /// Takes this node out of the cluster (graceful shutdown, before the connections close).
    pub async fn leave_cluster(&self) {
        self.registry.leave().await;
    }

    /// Finishes the store's writes and closes it.
    pub async fn close_store(&self) -> Result<(), StoreError> {
        self.store.close().await
    }

    /// Runs a store (or registry) operation, timing it for the metrics and bounding it in
    /// time, so that a store that hangs turns into an error instead of a hung call.
    ///
    /// Most operations of the in-process stores answer from memory (generations, the replay
    /// window): their future is ready on its first poll. Those are counted as taking no time
    /// (under the smallest latency bucket, which they are) without reading the clock or
    /// arming a timer; only an operation that has to wait is timed and bounded.
    async fn store_call<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut op = pin!(op);
        if let Poll::Ready(result) = poll_once(op.as_mut()).await {
            self.metrics.store_op(Duration::ZERO, result.is_ok());
            return result;
        }
        let started = Instant::now();
        let limit = self.store_timeout();
        let result = match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {limit:?}"
            ))),
        };
        self.metrics.store_op(started.elapsed(), result.is_ok());
        result
    }

    fn store_timeout(&self) -> Duration {
        // Embedded writes wait for an fsync; Redis commands have their own timeout inside.
        self.config
            .redis
            .command_timeout
            .max(Duration::from_secs(5))
    }
}

/// Polls `future` once (with the caller's waker): its output if it is ready, else `Pending`,
/// leaving it to be polled again.
async fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    let mut future = future;
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}
