//! The async FPNN server.
//!
//! ```no_run
//! use fpnn::server::Server;
//! use fpnn::{ErrorAnswer, Value};
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::builder()
//!     .route("echo", |_conn, params: Value| async move { Ok(params) })
//!     .route("fail", |_conn, _params| async move { Err(ErrorAnswer::new(200001, "no such user")) })
//!     .bind("127.0.0.1:13315")
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Built in: `*ping` answers `{ts: <ms>}`; an unknown method is answered 20004; a quest that
//! arrives while the server stops is answered 20014; a bad frame or an undecodable payload
//! closes that connection only, silently, as the official framework does.

mod connection;

pub use connection::Connection;

use crate::conn::{self, Link, Outgoing, QuestSink, ReadOptions};
use crate::error::{code, Error, ErrorAnswer};
use crate::frame::{Quest, DEFAULT_MAX_FRAME};
use crate::router::{HandlerResult, Router};
use crate::value::Value;
use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Limits and timeouts of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections accepted at once; more are closed right after accept. Default 100 000.
    pub max_connections: usize,
    /// Close a connection after this long without bytes in either direction. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// The largest frame accepted, header included. Default 8 MiB.
    pub max_frame: usize,
    /// Default timeout of two-way quests pushed to clients. Default 5 s.
    pub push_timeout: Duration,
    /// How long [`Server::shutdown`] waits for in-flight quests, and then for connections to
    /// take their last bytes. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 100_000,
            idle_timeout: Some(Duration::from_secs(60)),
            max_frame: DEFAULT_MAX_FRAME,
            push_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

type ConnectHook = Arc<dyn Fn(&Connection) + Send + Sync>;
type CloseHook = Arc<dyn Fn(&Connection, &Error) + Send + Sync>;

/// Configures and starts a [`Server`].
pub struct ServerBuilder {
    config: ServerConfig,
    router: Router<Connection>,
    on_connect: Option<ConnectHook>,
    on_close: Option<CloseHook>,
}

impl ServerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the maximum number of connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Sets the idle timeout (`None`: never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sets the largest frame accepted.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// Sets the default timeout of pushed two-way quests.
    pub fn push_timeout(mut self, timeout: Duration) -> Self {
        self.config.push_timeout = timeout;
        self
    }

    /// Routes `method` to a handler of the raw payload; see [`Router::route`].
    pub fn route<F, Fut>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Connection, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.router = self.router.route(method, handler);
        self
    }

    /// Routes `method` to a handler of a typed payload; see [`Router::route_typed`].
    pub fn route_typed<P, R, F, Fut>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Connection, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorAnswer>> + Send + 'static,
    {
        self.router = self.router.route_typed(method, handler);
        self
    }

    /// Handles every method without a route of its own; see [`Router::fallback`].
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, &str, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.router = self.router.fallback(handler);
        self
    }

    /// Uses a router built elsewhere (replacing routes added so far).
    pub fn router(mut self, router: Router<Connection>) -> Self {
        self.router = router;
        self
    }

    /// Called for every accepted connection, before its first quest is read.
    pub fn on_connect(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Called when a connection has closed, with the reason.
    pub fn on_close(mut self, hook: impl Fn(&Connection, &Error) + Send + Sync + 'static) -> Self {
        self.on_close = Some(Arc::new(hook));
        self
    }

    /// Binds a TCP listener and starts serving.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener)
    }

    /// Starts serving on a listener.
    pub fn serve(self, listener: TcpListener) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config: self.config,
            router: self.router,
            on_connect: self.on_connect,
            on_close: self.on_close,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            drained: Notify::new(),
            stop_accept: Notify::new(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Server {
            shared,
            local_addr,
            accept,
        })
    }
}

/// A running FPNN server. Dropping it stops accepting; [`Server::shutdown`] also answers
/// in-flight quests and closes every connection.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

struct Shared {
    config: ServerConfig,
    router: Router<Connection>,
    on_connect: Option<ConnectHook>,
    on_close: Option<CloseHook>,
    connections: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    /// Connections accepted and not finished: what `max_connections` limits. (The
    /// `connections` map is filled by each connection's own task, too late to hold back a
    /// burst of accepts.)
    open: AtomicUsize,
    drained: Notify,
    stop_accept: Notify,
}

impl Shared {
    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn quest_done(&self) {
        self.quests_done(1);
    }

    fn quests_done(&self, n: usize) {
        if self.in_flight.fetch_sub(n, Ordering::SeqCst) == n
            && self.stopping.load(Ordering::SeqCst)
        {
            self.drained.notify_waiters();
        }
    }
}

impl Server {
    /// A builder with the default configuration and no routes.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: ServerConfig::default(),
            router: Router::new(),
            on_connect: None,
            on_close: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connections().len()
    }

    /// The open connection with this id.
    pub fn connection(&self, id: u64) -> Option<Connection> {
        self.shared.connections().get(&id).cloned()
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections().values().cloned().collect()
    }

    /// The number of quests being handled.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Graceful shutdown: stop accepting, answer new quests with 20014, wait (up to the
    /// configured grace) for in-flight quests to be answered, then close every connection,
    /// letting queued answers go out first. A client that has not taken its last bytes
    /// after another grace period is cut off.
    pub async fn shutdown(mut self) {
        let shared = self.shared.clone();
        shared.stopping.store(true, Ordering::SeqCst);
        shared.stop_accept.notify_one();
        let _ = (&mut self.accept).await;
        let grace = shared.config.shutdown_grace;
        let drained = async {
            loop {
                let notified = shared.drained.notified();
                if shared.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                in_flight = shared.in_flight.load(Ordering::Acquire),
                "shutdown grace elapsed with quests still in flight"
            );
        }
        let connections: Vec<Connection> = shared.connections().values().cloned().collect();
        for conn in &connections {
            conn.close_with(Error::ConnectionClosed("server shutting down".into()));
        }
        let closed = || async {
            while !shared.connections().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(grace, closed()).await.is_err() {
            // Peers that do not take their last bytes are cut off.
            let stuck: Vec<Connection> = shared.connections().values().cloned().collect();
            tracing::warn!(
                connections = stuck.len(),
                "shutdown grace elapsed with connections still flushing; cutting them off"
            );
            for conn in &stuck {
                conn.link()
                    .abort(Error::ConnectionClosed("server shutting down".into()));
            }
            let _ = tokio::time::timeout(grace, closed()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop_accept.notify_one();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.stop_accept.notified() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if shared.open.fetch_add(1, Ordering::AcqRel) >= shared.config.max_connections {
                    shared.open.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(%peer, max = shared.config.max_connections, "connection limit reached, closing new connection");
                    drop(stream);
                    continue;
                }
                // Registered here, before the next accept, so that a burst of connections
                // cannot get past the limit while their tasks are still starting.
                let (conn, out) = register(&stream, peer, &shared);
                tokio::spawn(serve_connection(stream, conn, out, shared.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Gives an accepted socket its id and link, and counts it among the open connections.
fn register(
    stream: &TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> (Connection, mpsc::UnboundedReceiver<Outgoing>) {
    let local = stream.local_addr().unwrap_or(peer);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (link, out) = Link::new(peer);
    let conn = Connection::new(id, local, link, shared.config.push_timeout);
    shared.connections().insert(id, conn.clone());
    (conn, out)
}

async fn serve_connection(
    stream: TcpStream,
    conn: Connection,
    out: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let (id, peer) = (conn.id(), conn.peer_addr());
    let link = conn.link_arc();
    if let Some(hook) = &shared.on_connect {
        hook(&conn);
    }
    let sink = ServerSink {
        shared: shared.clone(),
        conn: conn.clone(),
        batch: BytesMut::new(),
        scratch: Vec::new(),
        answered: 0,
    };
    let options = ReadOptions {
        max_frame: shared.config.max_frame,
        idle_timeout: shared.config.idle_timeout,
    };
    let reason = conn::run(stream, link, out, sink, options).await;
    tracing::debug!(%peer, id, reason = %reason, "connection closed");
    shared.connections().remove(&id);
    shared.open.fetch_sub(1, Ordering::AcqRel);
    if let Some(hook) = &shared.on_close {
        hook(&conn, &reason);
    }
}

/// Handles the quests of one connection, in its reader task.
///
/// A handler's future is polled once right here: most complete at once (no I/O), and their
/// answers are encoded into `batch`, which goes to the writer in one piece when the reader
/// has handled every frame of a read ([`QuestSink::flush`]). So a read of 30 pipelined
/// quests costs one hand-over to the writer and one `write`, not 30 tasks and 30 wake-ups.
/// A handler that is not finished on its first poll (it waits for a store, a timer, a push
/// answer) goes on in a task of its own and answers when done.
struct ServerSink {
    shared: Arc<Shared>,
    conn: Connection,
    /// Answers of quests completed inline, not yet handed to the writer.
    batch: BytesMut,
    /// Where each answer's payload is encoded before it joins `batch` (kept, so that
    /// answering allocates nothing).
    scratch: Vec<u8>,
    /// Quests whose answers are in `batch`: counted as answered once the batch is queued,
    /// so that neither `close_after_answers` nor a graceful shutdown can close the
    /// connection before their answers are on their way.
    answered: usize,
}

/// A batch this large goes to the writer without waiting for the end of the read.
const FLUSH_AT: usize = 32 * 1024;

impl QuestSink for ServerSink {
    fn quest(&mut self, quest: Quest) -> Result<(), Error> {
        let link = self.conn.link();
        if quest.method == "*ping" {
            if let Some(seq) = quest.seq {
                let body = Value::map().with("ts", conn::unix_ms());
                Link::encode_result(
                    &mut self.batch,
                    &mut self.scratch,
                    seq,
                    quest.format,
                    Ok(body),
                );
            }
            return Ok(());
        }
        // An undecodable payload closes the connection without an answer (C++ behaviour).
        let params = quest.params().map_err(|e| {
            Error::InvalidConnection(format!("bad payload in quest '{}': {e}", quest.method))
        })?;
        // Counted before `stopping` is read, and `shutdown` sets `stopping` before it reads
        // the count (both SeqCst): either this quest sees the server stopping, or shutdown
        // sees this quest and waits for its answer.
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.shared.stopping.load(Ordering::SeqCst) {
            link.answer_error(&quest, code::CORE_SERVER_STOPPING, "server is stopping");
            self.shared.quest_done();
            return Ok(());
        }
        let Some(mut future) =
            self.shared
                .router
                .dispatch(&quest.method, self.conn.clone(), params)
        else {
            link.answer_error(
                &quest,
                code::CORE_UNKNOWN_METHOD,
                format!("unknown method: {}", quest.method),
            );
            self.shared.quest_done();
            return Ok(());
        };
        self.conn.quest_started();
        let (seq, format) = (quest.seq, quest.format);
        // The future is polled here with a waker that does nothing; if it is not ready, the
        // task below polls it again with its own waker, as the `Future` contract requires of
        // every future (use the waker of the latest poll).
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => {
                if let Some(seq) = seq {
                    Link::encode_result(&mut self.batch, &mut self.scratch, seq, format, result);
                }
                self.answered += 1;
                if self.batch.len() >= FLUSH_AT {
                    self.flush();
                }
            }
            Poll::Pending => {
                let shared = self.shared.clone();
                let conn = self.conn.clone();
                tokio::spawn(async move {
                    let result = future.await;
                    conn.link().answer_result(seq, format, result);
                    conn.quest_answered();
                    shared.quest_done();
                });
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            // A connection that closed meanwhile cannot take the answers; nothing to do.
            let _ = self.conn.link().send_bytes(self.batch.split().freeze());
        }
        if self.answered > 0 {
            let n = std::mem::take(&mut self.answered);
            self.conn.quests_answered(n);
            self.shared.quests_done(n);
        }
    }
}
