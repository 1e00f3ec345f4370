//! The state shared by the server API, the gate and the admin port.

use crate::cluster::Cluster;
use crate::config::{Config, Project};
use crate::metrics::Metrics;
use crate::sessions::{kick_connection, Session, Sessions};
use crate::store::{Store, StoreError};
use crate::token::Tokens;
use fpnn::server::Connection;
use fpnn::ErrorAnswer;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything a handler needs.
pub struct State {
    /// The configuration in force.
    pub config: Config,
    /// The projects, by pid.
    pub projects: HashMap<i32, Project>,
    /// Where the state is kept.
    pub store: Arc<dyn Store>,
    /// Mints and checks login tokens.
    pub tokens: Tokens,
    /// The sessions on this node.
    pub sessions: Sessions,
    /// Counters for `/metrics` (shared with the tasks that close kicked connections).
    pub metrics: Arc<Metrics>,
    /// The session registry and kickout fan-out of cluster mode (Redis store); `None` on a
    /// single node.
    pub cluster: Option<Cluster>,
}

/// Unix time in seconds.
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a store failure is answered: RTM's unknown error, saying what failed.
pub fn store_unavailable(e: &StoreError) -> ErrorAnswer {
    ErrorAnswer::new(
        rtm_server_sdk::code::UNKNOWN_ERROR,
        format!("store unavailable: {e}"),
    )
}

impl State {
    /// Runs a store operation, timing it for the metrics and bounding it in time, so that a
    /// store that hangs turns into an error answer instead of a hung call.
    ///
    /// Most operations of the in-process stores answer from memory (generations, the replay
    /// window): their future is ready on its first poll. Those are counted as taking no time
    /// (under the smallest latency bucket, which they are) without reading the clock or
    /// arming a timer; only an operation that has to wait is timed and bounded.
    pub async fn store_call<T>(
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

    /// Kicks the user's sessions (only the one at endpoint `ce`, when given): each session
    /// ends at once and is pushed the one-way `kickout`; its connection is closed after the
    /// grace ([`kick_connection`]). Returns how many were kicked.
    ///
    /// In cluster mode this reaches the user's sessions on every node, and returns once the
    /// kicks for other nodes are published; when Redis cannot be reached, this node's own
    /// sessions are still kicked and the call answers an error.
    pub async fn kickout(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
    ) -> Result<usize, ErrorAnswer> {
        self.kick(pid, uid, ce, None).await
    }

    /// Kicks the user's logins held by other nodes, except `session` (a login to a project
    /// without multi-login; this node's own logins were replaced by the gate already).
    pub async fn kick_other_logins_elsewhere(
        &self,
        session: &Session,
        conn_id: u64,
    ) -> Result<usize, ErrorAnswer> {
        self.kick_remote(session.pid, session.uid, None, Some((session, conn_id)))
            .await
    }

    async fn kick(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
        keep: Option<(&Session, u64)>,
    ) -> Result<usize, ErrorAnswer> {
        let taken = self.sessions.take(pid, uid, ce, keep.map(|(_, id)| id));
        let kicked = self.kick_connections(&taken);
        Ok(kicked + self.kick_remote(pid, uid, ce, keep).await?)
    }

    /// Kicks connections already taken out of the registry (each session ends, is pushed
    /// the one-way `kickout`, and its connection is closed after `limits.kickout_grace`
    /// unless the client closes it first), and counts them. Returns how many.
    pub fn kick_connections(&self, taken: &[Connection]) -> usize {
        let grace = self.config.limits.kickout_grace;
        for conn in taken {
            let metrics = self.metrics.clone();
            kick_connection(conn, grace, move |by| metrics.kicked_connection_closed(by));
        }
        self.metrics
            .kicked_sessions
            .fetch_add(taken.len() as u64, std::sync::atomic::Ordering::Relaxed);
        taken.len()
    }

    /// The cluster part of a kick: the sessions other nodes hold (none on a single node).
    async fn kick_remote(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
        keep: Option<(&Session, u64)>,
    ) -> Result<usize, ErrorAnswer> {
        let Some(cluster) = &self.cluster else {
            return Ok(0);
        };
        self.store_op(cluster.kick_remote(pid, uid, ce, keep)).await
    }

    /// Records a new session where kickouts from any node find it (cluster mode; nothing to
    /// do on a single node). A login that cannot be recorded must fail.
    pub async fn register_session(
        &self,
        session: &Session,
        conn_id: u64,
    ) -> Result<(), StoreError> {
        match &self.cluster {
            None => Ok(()),
            Some(cluster) => self.store_call(cluster.register(session, conn_id)).await,
        }
    }

    /// Forgets a closed session, here and in the cluster registry.
    pub fn session_closed(&self, session: &Session, conn_id: u64) {
        self.sessions.remove(session, conn_id);
        if let Some(cluster) = &self.cluster {
            cluster.deregister(session, conn_id);
        }
    }

    /// [`State::store_call`] for a handler: a failure becomes the error answer 200999 with
    /// what failed ("store unavailable: …").
    pub async fn store_op<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ErrorAnswer> {
        self.store_call(op).await.map_err(|e| store_unavailable(&e))
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
