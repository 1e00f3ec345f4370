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
//! Built in: `*ping` answers `{ts: <ms>}`; `*key` runs the key exchange of an encrypted
//! connection when the server has a key ([`ServerBuilder::encryption`]) and closes the
//! connection otherwise; an unknown method is answered 20004; a quest that
//! arrives while the server stops is answered 20014; a bad frame or an undecodable payload
//! closes that connection only, silently, as the official framework does.
//!
//! Each connection is one task driving a [`crate::proto::Connection`]: it reads, polls each
//! quest's handler once right there and answers inline when the handler is ready (most are:
//! no I/O), and writes the answers of a whole read itself, in one write. A handler that is
//! not ready goes on in a task of its own and answers when done. Memory per connection is
//! bounded ([`ServerConfig`]): past `outbound_high_water` queued bytes the connection stops
//! reading until the peer takes them, quests beyond `max_in_flight` are answered 20011, a
//! peer that takes no bytes for `write_stall_timeout` is closed.

mod connection;
#[cfg(feature = "encryption")]
mod encryption;

pub use connection::Connection;
#[cfg(feature = "encryption")]
pub use encryption::{EncryptionPolicy, ServerEncryption};

use crate::driver::{self, Handled, Link, QuestHandler};
use crate::error::{code, ErrorAnswer};
use crate::frame::{Quest, DEFAULT_MAX_FRAME};
use crate::proto::{self, CloseReason, FrameMemory};
use crate::router::{HandlerResult, Router};
use crate::value::Value;
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
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Limits and timeouts of a server.
///
/// The memory the connections can hold is bounded by them: at most about
/// `max_connections × (read_buffer + outbound_budget + the largest answer)` for buffers, plus
/// `frame_memory` for frames longer than `read_buffer`, plus what the handlers of at most
/// `max_in_flight` quests per connection hold while they wait.
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
    /// Input bytes each connection holds; frames up to this size need nothing more. Default
    /// 16 KiB.
    pub read_buffer: usize,
    /// Memory shared by all connections for frames longer than `read_buffer`; a connection
    /// whose frame does not fit waits (not reading) until it does. Default 64 MiB.
    pub frame_memory: usize,
    /// Bytes queued for one peer past which a push fails and an answer closes the
    /// connection. Default 64 KiB.
    pub outbound_budget: usize,
    /// Bytes queued for one peer past which the server stops reading that connection until
    /// the peer takes them. Default 32 KiB.
    pub outbound_high_water: usize,
    /// Quests of one connection being handled at once; a two-way quest beyond it is answered
    /// 20011 (`FPNN_EC_CORE_WORK_QUEUE_FULL`). Default 1024.
    pub max_in_flight: usize,
    /// Quests of all connections being handled at once (the C++ framework's work queue);
    /// a two-way quest beyond it is answered 20011 "Server queue is full!". This bounds the
    /// memory of handlers that wait (for a store, say) whatever the number of connections.
    /// Default 16 384.
    pub max_in_flight_total: usize,
    /// Close a connection whose peer takes no bytes for this long while some wait for it.
    /// Default 30 s.
    pub write_stall_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 100_000,
            idle_timeout: Some(Duration::from_secs(60)),
            max_frame: DEFAULT_MAX_FRAME,
            push_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            read_buffer: proto::DEFAULT_READ_BUFFER,
            frame_memory: proto::DEFAULT_FRAME_MEMORY,
            outbound_budget: proto::DEFAULT_OUTBOUND_BUDGET,
            outbound_high_water: proto::DEFAULT_OUTBOUND_HIGH_WATER,
            max_in_flight: proto::DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_total: DEFAULT_MAX_IN_FLIGHT_TOTAL,
            write_stall_timeout: Some(proto::DEFAULT_WRITE_STALL_TIMEOUT),
        }
    }
}

/// Default [`ServerConfig::max_in_flight_total`]: 16 384.
pub const DEFAULT_MAX_IN_FLIGHT_TOTAL: usize = 16 * 1024;

impl ServerConfig {
    /// The configuration of each connection's state machine.
    fn connection_config(&self, frame_memory: &FrameMemory) -> proto::Config {
        proto::Config {
            max_frame: self.max_frame,
            read_buffer: self.read_buffer,
            frame_memory: frame_memory.clone(),
            idle_timeout: self.idle_timeout,
            write_stall_timeout: self.write_stall_timeout,
            outbound_budget: self.outbound_budget,
            outbound_high_water: Some(self.outbound_high_water),
            max_in_flight: self.max_in_flight,
            keep_alive: None,
            ..proto::Config::default()
        }
    }
}

type ConnectHook = Arc<dyn Fn(&Connection) + Send + Sync>;
type CloseHook = Arc<dyn Fn(&Connection, &CloseReason) + Send + Sync>;

/// Configures and starts a [`Server`].
pub struct ServerBuilder {
    config: ServerConfig,
    router: Router<Connection>,
    on_connect: Option<ConnectHook>,
    on_close: Option<CloseHook>,
    #[cfg(feature = "encryption")]
    encryption: Option<ServerEncryption>,
    #[cfg(feature = "encryption")]
    on_key_exchange: Option<ConnectHook>,
}

impl ServerBuilder {
    /// Called when a connection has switched to encryption (a `*key` exchange succeeded),
    /// before its next quest is read: for metrics of encrypted and plain connections
    /// ([`Connection::is_encrypted`] tells them apart in [`ServerBuilder::on_close`]).
    #[cfg(feature = "encryption")]
    pub fn on_key_exchange(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Self {
        self.on_key_exchange = Some(Arc::new(hook));
        self
    }

    /// Lets clients encrypt their connections with the `*key` exchange, with this static key
    /// and policy (see [`ServerEncryption`]). Without it, `*key` closes the connection.
    #[cfg(feature = "encryption")]
    pub fn encryption(mut self, encryption: ServerEncryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

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

    /// Sets the outbound budget and the high-water mark of each connection, in bytes.
    pub fn outbound_budget(mut self, budget: usize, high_water: usize) -> Self {
        self.config.outbound_budget = budget;
        self.config.outbound_high_water = high_water;
        self
    }

    /// Sets the cap on quests in flight per connection.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Sets the cap on quests in flight on all connections together.
    pub fn max_in_flight_total(mut self, n: usize) -> Self {
        self.config.max_in_flight_total = n;
        self
    }

    /// Sets the write-stall timeout (`None`: never).
    pub fn write_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.write_stall_timeout = timeout;
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
    pub fn on_close(
        mut self,
        hook: impl Fn(&Connection, &CloseReason) + Send + Sync + 'static,
    ) -> Self {
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
        let frame_memory = FrameMemory::new(self.config.frame_memory);
        let shared = Arc::new(Shared {
            connection_config: self.config.connection_config(&frame_memory),
            config: self.config,
            router: self.router,
            on_connect: self.on_connect,
            on_close: self.on_close,
            #[cfg(feature = "encryption")]
            encryption: self.encryption,
            #[cfg(feature = "encryption")]
            on_key_exchange: self.on_key_exchange,
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
    connection_config: proto::Config,
    router: Router<Connection>,
    on_connect: Option<ConnectHook>,
    on_close: Option<CloseHook>,
    #[cfg(feature = "encryption")]
    encryption: Option<ServerEncryption>,
    #[cfg(feature = "encryption")]
    on_key_exchange: Option<ConnectHook>,
    connections: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    /// Connections accepted and not finished: what `max_connections` limits.
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
        if n > 0
            && self.in_flight.fetch_sub(n, Ordering::SeqCst) == n
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
            #[cfg(feature = "encryption")]
            encryption: None,
            #[cfg(feature = "encryption")]
            on_key_exchange: None,
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
            conn.link().close(CloseReason::ClosedLocally);
        }
        let closed = || async {
            for conn in &connections {
                conn.link().finished().await;
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
                conn.link().abort(CloseReason::ClosedLocally);
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
                let conn = register(&stream, peer, &shared);
                tokio::spawn(serve_connection(stream, conn, shared.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Gives an accepted socket its id and state machine, and counts it among the open
/// connections.
fn register(stream: &TcpStream, peer: SocketAddr, shared: &Shared) -> Connection {
    let local = stream.local_addr().unwrap_or(peer);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let state = proto::Connection::new(shared.connection_config.clone(), driver::now());
    let link = Link::new(state, peer);
    let conn = Connection::new(id, local, link, shared.config.push_timeout);
    shared.connections().insert(id, conn.clone());
    conn
}

async fn serve_connection(stream: TcpStream, conn: Connection, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (id, peer) = (conn.id(), conn.peer_addr());
    if let Some(hook) = &shared.on_connect {
        hook(&conn);
    }
    let handler = ServerHandler {
        shared: shared.clone(),
        conn: conn.clone(),
        answered: 0,
        encrypted: false,
    };
    let link = conn.link_arc();
    let reason = driver::drive(stream, link.clone(), handler).await;
    tracing::debug!(%peer, id, reason = %reason, "connection closed");
    shared.connections().remove(&id);
    shared.open.fetch_sub(1, Ordering::AcqRel);
    // The hook runs before the connection counts as finished, so that a graceful shutdown
    // returns only once every closed connection's hook has run.
    if let Some(hook) = &shared.on_close {
        hook(&conn, &reason);
    }
    link.mark_finished();
}

/// Handles the quests of one connection, in its driver's task.
///
/// A handler's future is polled once right here: most complete at once (no I/O), and their
/// answers are queued at once, to go out with the others of the same read in one write. A
/// handler that is not finished on its first poll (it waits for a store, a timer, a push
/// answer) goes on in a task of its own and answers when done.
struct ServerHandler {
    shared: Arc<Shared>,
    conn: Connection,
    /// Quests finished inline since the last batch: counted as answered once the batch's
    /// answers are queued, so that a graceful shutdown cannot close the connection before
    /// their answers are on their way.
    answered: usize,
    /// The connection switched to encryption (`*key`).
    #[cfg_attr(not(feature = "encryption"), allow(dead_code))]
    encrypted: bool,
}

impl ServerHandler {
    /// `*key`: the key exchange, finished on the connection itself; or a close without an
    /// answer when the server has no key.
    fn key_exchange(&mut self, link: &Arc<Link>, quest: &Quest) -> Handled {
        #[cfg(feature = "encryption")]
        if let Some(encryption) = &self.shared.encryption {
            let key = &encryption.key;
            match link.update(|conn, _| conn.accept_key(key, quest)) {
                Ok(request) => {
                    self.encrypted = true;
                    if let Some(hook) = &self.shared.on_key_exchange {
                        hook(&self.conn);
                    }
                    tracing::debug!(peer = %link.peer(), mode = ?request.mode, bits = request.bits.bits(), "connection encrypted");
                }
                Err(reason) => {
                    tracing::debug!(peer = %link.peer(), %reason, "key exchange refused")
                }
            }
            return Handled::Finished;
        }
        let _ = (link, quest);
        Handled::Close(CloseReason::Protocol(proto::ProtocolError::KeyExchange(
            "this server has no encryption key".into(),
        )))
    }

    /// Whether a plain connection must be closed for calling `method` (encryption required).
    fn plain_refused(&self, method: &str) -> bool {
        #[cfg(feature = "encryption")]
        if let Some(encryption) = &self.shared.encryption {
            return !self.encrypted
                && encryption.policy == EncryptionPolicy::Require
                && method != "*ping";
        }
        let _ = method;
        false
    }
}

impl QuestHandler for ServerHandler {
    fn quest(&mut self, link: &Arc<Link>, quest: Quest) -> Handled {
        if quest.method == "*ping" {
            return Handled::Inline(Ok(Value::map().with("ts", driver::unix_ms())));
        }
        if quest.method == "*key" {
            return self.key_exchange(link, &quest);
        }
        if self.plain_refused(&quest.method) {
            return Handled::Close(CloseReason::Protocol(
                proto::ProtocolError::EncryptionRequired {
                    method: quest.method.clone(),
                },
            ));
        }
        let params = match driver::params_or_close(&quest) {
            Ok(params) => params,
            Err(close) => return close,
        };
        // Counted before `stopping` is read, and `shutdown` sets `stopping` before it reads
        // the count (both SeqCst): either this quest sees the server stopping, or shutdown
        // sees this quest and waits for its answer.
        let busy = self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        self.answered += 1;
        if self.shared.stopping.load(Ordering::SeqCst) {
            let error = ErrorAnswer::new(code::CORE_SERVER_STOPPING, "server is stopping");
            return Handled::Inline(Err(error));
        }
        if busy >= self.shared.config.max_in_flight_total {
            let error = ErrorAnswer::new(code::CORE_WORK_QUEUE_FULL, "Server queue is full!");
            return Handled::Inline(Err(error));
        }
        let Some(mut future) =
            self.shared
                .router
                .dispatch(&quest.method, self.conn.clone(), params)
        else {
            let error = ErrorAnswer::new(
                code::CORE_UNKNOWN_METHOD,
                format!("unknown method: {}", quest.method),
            );
            return Handled::Inline(Err(error));
        };
        // The future is polled here with a waker that does nothing; if it is not ready, the
        // task below polls it again with its own waker, as the `Future` contract requires of
        // every future (use the waker of the latest poll).
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => Handled::Inline(result),
            Poll::Pending => {
                self.answered -= 1;
                let shared = self.shared.clone();
                let link = self.conn.link_arc();
                let (seq, format) = (quest.seq, quest.format);
                tokio::spawn(async move {
                    let result = future.await;
                    link.finish(seq, format, result);
                    shared.quest_done();
                });
                Handled::Later
            }
        }
    }

    fn batch_done(&mut self) {
        self.shared.quests_done(std::mem::take(&mut self.answered));
    }
}
