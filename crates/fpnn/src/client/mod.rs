//! The async FPNN client.
//!
//! One [`Client`] keeps one connection to one endpoint and multiplexes every quest over it:
//! quests are matched to answers by sequence number, so thousands can be in flight at once
//! and answers may come back in any order. The client is cheap to clone and safe to share
//! between tasks and threads.
//!
//! ```no_run
//! use fpnn::client::Client;
//! use fpnn::Value;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), fpnn::Error> {
//! let client = Client::builder("127.0.0.1:13315")
//!     .quest_timeout(Duration::from_secs(5))
//!     .auto_reconnect(true)
//!     .build();
//! // Connects on the first quest.
//! let answer = client.quest("echo", &Value::map().with("x", 1)).await?;
//! assert_eq!(answer.get("x").and_then(Value::as_i64), Some(1));
//! # Ok(())
//! # }
//! ```
//!
//! Failures carry the codes of the official SDKs: a quest with no answer in time fails with
//! 20003, quests in flight when the server closes the connection with 20002, and with 20012
//! when the connection breaks (I/O error, corrupt stream, lost keep-alive) or cannot be made.
//!
//! A quest made while the client is not connected connects at once, within its own timeout,
//! whether or not a background reconnect is waiting: the [`RegressiveStrategy`] only paces
//! the automatic reconnects.

mod regressive;

pub use crate::proto::KeepAlive;
pub use regressive::RegressiveStrategy;

use crate::driver::{self, Handled, Link, QuestHandler};
use crate::error::{code, ConnectError, Error, ErrorAnswer};
use crate::frame::{Quest, DEFAULT_MAX_FRAME};
use crate::payload::Format;
use crate::proto::{self, CloseReason};
use crate::router::{HandlerResult, Router};
use crate::value::{from_value, to_value, Value};
use regressive::ReconnectSchedule;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Options of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Timeout of a TCP connect. Default 5 s.
    pub connect_timeout: Duration,
    /// Default timeout of a quest. Default 5 s (the FPNN SDKs' default).
    pub quest_timeout: Duration,
    /// The largest frame accepted from the server. Default 8 MiB.
    pub max_frame: usize,
    /// Keep-alive pings; off by default.
    pub keep_alive: Option<KeepAlive>,
    /// Reconnect in the background when the connection is lost. Off by default; without it
    /// the client still connects again on the next quest.
    pub auto_reconnect: bool,
    /// Delays between automatic reconnect attempts.
    pub regressive: RegressiveStrategy,
    /// Bytes of quests queued for the server past which a new quest waits (within its
    /// timeout) for the server to take them. Default 1 MiB.
    pub outbound_budget: usize,
    /// Quests the server pushes being handled at once; a two-way push beyond it is answered
    /// 20011. Default 1024.
    pub max_in_flight: usize,
    /// Close the connection when the server takes no bytes for this long while some wait.
    /// Default 30 s.
    pub write_stall_timeout: Option<Duration>,
    /// Encrypt every connection with the `*key` exchange (the server's public key, the mode
    /// and the key size). Off by default.
    #[cfg(feature = "encryption")]
    pub encryption: Option<crate::encryption::ClientEncryption>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            quest_timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
            keep_alive: None,
            auto_reconnect: false,
            regressive: RegressiveStrategy::default(),
            outbound_budget: 1024 * 1024,
            max_in_flight: proto::DEFAULT_MAX_IN_FLIGHT,
            write_stall_timeout: Some(proto::DEFAULT_WRITE_STALL_TIMEOUT),
            #[cfg(feature = "encryption")]
            encryption: None,
        }
    }
}

impl ClientConfig {
    /// The configuration of each connection's state machine.
    fn connection_config(&self) -> proto::Config {
        let keep_alive = self.keep_alive.clone().map(|k| KeepAlive {
            ping_timeout: Some(k.ping_timeout.unwrap_or(self.quest_timeout)),
            ..k
        });
        proto::Config {
            max_frame: self.max_frame,
            idle_timeout: None,
            write_stall_timeout: self.write_stall_timeout,
            outbound_budget: self.outbound_budget,
            // A client always reads: the answers it waits for are behind what it reads.
            outbound_high_water: None,
            max_in_flight: self.max_in_flight,
            keep_alive,
            ..proto::Config::default()
        }
    }
}

/// A change of the connection's state, reported to [`ClientBuilder::on_event`].
#[derive(Debug, Clone)]
pub enum ConnectionEvent {
    /// A connection was established.
    Connected {
        /// The server's address.
        peer: SocketAddr,
        /// `true` when the background reconnect made it.
        is_reconnect: bool,
    },
    /// An attempt to connect failed.
    ConnectFailed {
        /// Why.
        error: Error,
        /// `true` for a background reconnect attempt.
        is_reconnect: bool,
    },
    /// The connection closed.
    Closed {
        /// `true` when an error closed it (I/O failure, corrupt stream, lost keep-alive);
        /// `false` for an orderly close by either side.
        by_error: bool,
        /// The reason, as quests in flight saw it.
        reason: Error,
        /// `true` when a background reconnect will follow.
        will_reconnect: bool,
    },
}

type EventHook = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// A byte stream to a server.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Connected = std::io::Result<(Box<dyn Stream>, SocketAddr)>;
type Connector =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Connected> + Send>> + Send + Sync>;

fn tcp_connector() -> Connector {
    Arc::new(|endpoint| {
        Box::pin(async move {
            let stream = TcpStream::connect(endpoint).await?;
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr()?;
            Ok((Box::new(stream) as Box<dyn Stream>, peer))
        })
    })
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    config: ClientConfig,
    router: Router<Client>,
    on_event: Option<EventHook>,
    connector: Connector,
}

impl ClientBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets the default quest timeout (zero keeps the current one).
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        if !timeout.is_zero() {
            self.config.quest_timeout = timeout;
        }
        self
    }

    /// Sets the largest frame accepted from the server.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// Turns keep-alive pings on (`Some`) or off.
    pub fn keep_alive(mut self, keep_alive: Option<KeepAlive>) -> Self {
        self.config.keep_alive = keep_alive;
        self
    }

    /// Turns background reconnection on or off.
    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.config.auto_reconnect = on;
        self
    }

    /// Sets the reconnect delays.
    pub fn regressive_strategy(mut self, strategy: RegressiveStrategy) -> Self {
        self.config.regressive = strategy;
        self
    }

    /// Encrypts every connection: `*key` is sent first on every connect and reconnect, with
    /// a fresh ephemeral key, and the connection counts as made only once the server's
    /// answer has been decrypted. A wrong server key fails the connect with
    /// [`ConnectError::KeyExchange`] (the server closes, or its answer does not decrypt).
    ///
    /// ```no_run
    /// use fpnn::client::Client;
    /// use fpnn::encryption::{Bits, ClientEncryption, Mode, PublicKey};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // The server's public key as PEM or DER (or raw X‖Y with `PublicKey::from_raw`).
    /// let server_key = PublicKey::from_file("server-secp256r1-public.pem", None)?;
    /// let client = Client::builder("127.0.0.1:13315")
    ///     .encryption(ClientEncryption::new(server_key).mode(Mode::Stream).bits(Bits::Aes256))
    ///     .build();
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "encryption")]
    pub fn encryption(mut self, encryption: crate::encryption::ClientEncryption) -> Self {
        self.config.encryption = Some(encryption);
        self
    }

    /// Handles quests the server pushes for `method`. Two-way pushes for methods with no
    /// handler are answered 20004.
    pub fn on_push<F, Fut>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Client, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.router = self.router.route(method, handler);
        self
    }

    /// Reports connection events (connected, connect failed, closed).
    pub fn on_event(mut self, hook: impl Fn(&ConnectionEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    /// Connects through `connector` instead of TCP (tests: in-memory streams).
    #[cfg(test)]
    pub(crate) fn connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Builds the client. It connects on [`Client::connect`] or on the first quest.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                config: self.config,
                router: self.router,
                on_event: self.on_event,
                connector: self.connector,
                state: Mutex::new(State::default()),
                connect_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

/// An FPNN client: one connection, many quests in flight. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: String,
    config: ClientConfig,
    router: Router<Client>,
    on_event: Option<EventHook>,
    connector: Connector,
    state: Mutex<State>,
    /// Serialises connection attempts, so concurrent quests share one.
    connect_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    link: Option<Arc<Link>>,
    /// Set by [`Client::close`]: no background reconnect until the next explicit use.
    closed_by_user: bool,
    /// A background reconnect loop is running.
    reconnecting: bool,
    schedule: ReconnectSchedule,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            if let Some(link) = state.link.take() {
                link.close(CloseReason::ClosedLocally);
            }
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Client {
    /// A builder for a client of `endpoint` (`"host:port"`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            config: ClientConfig::default(),
            router: Router::new(),
            on_event: None,
            connector: tcp_connector(),
        }
    }

    /// A client of `endpoint` with the default configuration.
    pub fn new(endpoint: impl Into<String>) -> Client {
        Client::builder(endpoint).build()
    }

    /// The endpoint this client connects to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `true` while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.state()
            .link
            .as_ref()
            .is_some_and(|link| !link.is_closed())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of quests sent on the current connection and still waiting for an answer.
    pub fn in_flight(&self) -> usize {
        let link = self.state().link.clone();
        link.map_or(0, |link| link.pending_len())
    }

    /// Connects now, if not connected yet.
    pub async fn connect(&self) -> Result<(), Error> {
        let timeout = self.inner.config.connect_timeout;
        match self.connect_by(Instant::now() + timeout, false).await {
            Ok(_) => Ok(()),
            Err(Error::Timeout(_)) => Err(Error::Timeout(timeout)),
            Err(e) => Err(e),
        }
    }

    /// Closes the connection. Quests in flight fail with 20002, and no background reconnect
    /// follows; a later quest connects again.
    ///
    /// Returns once the connection is closed and its `Closed` event reported (one-way quests
    /// already queued are sent first), or after the quest timeout if the server does not
    /// take the last bytes.
    pub async fn close(&self) {
        let link = {
            let mut state = self.state();
            state.closed_by_user = true;
            // The link stays in the state until its `Closed` event is reported, so that a
            // new connection cannot report `Connected` before that.
            state.link.clone()
        };
        if let Some(link) = link {
            link.close(CloseReason::ClosedLocally);
            let limit = self.inner.config.quest_timeout;
            let _ = tokio::time::timeout(limit, link.finished()).await;
        }
    }

    /// Sends a two-way quest and waits for its answer, with the default timeout.
    pub async fn quest(&self, method: &str, params: &Value) -> Result<Value, Error> {
        self.quest_with_timeout(method, params, None).await
    }

    /// Sends a two-way quest and waits for its answer. `None` or zero means the client's
    /// default timeout. The timeout covers connecting, when the quest has to connect first.
    pub async fn quest_with_timeout(
        &self,
        method: &str,
        params: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let timeout = self.timeout(timeout);
        let deadline = Instant::now() + timeout;
        let link = self.link(deadline, timeout).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout(timeout));
        }
        link.quest(method, Format::MsgPack, params, remaining, true)
            .await
            .map_err(|e| match e {
                // Report the timeout the caller asked for.
                Error::Timeout(_) => Error::Timeout(timeout),
                other => other,
            })
    }

    /// Sends a typed two-way quest and decodes the typed answer.
    pub async fn call<P, R>(
        &self,
        method: &str,
        params: &P,
        timeout: Option<Duration>,
    ) -> Result<R, Error>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let params =
            to_value(params).map_err(|e| Error::Codec(e.to_string(), code::CORE_ENCODING))?;
        let answer = self.quest_with_timeout(method, &params, timeout).await?;
        from_value(&answer)
            .map_err(|e| Error::Codec(format!("unexpected answer: {e}"), code::CORE_DECODING))
    }

    /// Sends a one-way quest (no answer). Connects first when needed.
    pub async fn oneway(&self, method: &str, params: &Value) -> Result<(), Error> {
        let timeout = self.inner.config.quest_timeout;
        let link = self.link(Instant::now() + timeout, timeout).await?;
        link.oneway(method, Format::MsgPack, params)
    }

    fn timeout(&self, timeout: Option<Duration>) -> Duration {
        timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(self.inner.config.quest_timeout)
    }

    /// The open connection, connecting first when there is none: at once, whatever the
    /// background reconnect schedule says.
    async fn link(&self, deadline: Instant, timeout: Duration) -> Result<Arc<Link>, Error> {
        if let Some(link) = &self.state().link {
            if !link.is_closed() {
                return Ok(link.clone());
            }
        }
        match self.connect_by(deadline, false).await {
            Err(Error::Timeout(_)) => Err(Error::Timeout(timeout)),
            other => other,
        }
    }

    /// Connects unless connected, before `deadline`. Concurrent callers share one attempt.
    async fn connect_by(&self, deadline: Instant, is_reconnect: bool) -> Result<Arc<Link>, Error> {
        let lock = tokio::time::timeout_at(deadline, self.inner.connect_lock.lock()).await;
        let Ok(_guard) = lock else {
            return Err(Error::Timeout(Duration::ZERO));
        };
        let current = self.state().link.clone();
        if let Some(link) = current {
            if !link.is_closed() {
                return Ok(link);
            }
            // The connection is closing: let its task report `Closed` (and decide about a
            // background reconnect) before a new connection reports `Connected`.
            if tokio::time::timeout_at(deadline, link.finished())
                .await
                .is_err()
            {
                return Err(Error::Timeout(Duration::ZERO));
            }
        }
        if !self.may_connect(is_reconnect) {
            return Err(Error::Closed(CloseReason::ClosedLocally));
        }
        let endpoint = &self.inner.endpoint;
        let connect_timeout = self.inner.config.connect_timeout;
        let connect_deadline = deadline.min(Instant::now() + connect_timeout);
        let started = Instant::now();
        let attempt =
            tokio::time::timeout_at(connect_deadline, (self.inner.connector)(endpoint.clone()))
                .await;
        let failed = |reason: ConnectError| {
            let error = Error::Connect {
                endpoint: endpoint.clone(),
                reason,
            };
            self.emit(ConnectionEvent::ConnectFailed {
                error: error.clone(),
                is_reconnect,
            });
            Err(error)
        };
        let (stream, peer) = match attempt {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => return failed(ConnectError::Io(Arc::new(e))),
            Err(_) if connect_deadline < deadline => {
                return failed(ConnectError::TimedOut(connect_timeout))
            }
            Err(_) => return Err(Error::Timeout(started.elapsed())),
        };
        let state_machine =
            proto::Connection::new(self.inner.config.connection_config(), driver::now());
        let link = Link::new(state_machine, peer);
        #[cfg(feature = "encryption")]
        let key_answer = match self.start_key_exchange(&link, connect_deadline) {
            Ok(answer) => answer,
            Err(reason) => return failed(reason),
        };
        // The connection's task reports its close only once the connection counts as made
        // (after the key exchange, when there is one).
        let (made_tx, made_rx) = tokio::sync::oneshot::channel::<bool>();
        let handler = ClientHandler {
            client: Arc::downgrade(&self.inner),
        };
        let weak = Arc::downgrade(&self.inner);
        let run_link = link.clone();
        let register = || {
            {
                let mut state = self.state();
                if is_reconnect && state.closed_by_user {
                    // Closed by the user while this attempt was under way.
                    return Err(Error::Closed(CloseReason::ClosedLocally));
                }
                state.link = Some(link.clone());
            }
            // Reported before the connection's close can be, so that it comes before `Closed`.
            self.emit(ConnectionEvent::Connected { peer, is_reconnect });
            Ok(())
        };
        #[cfg(feature = "encryption")]
        let encrypted = key_answer.is_some();
        #[cfg(not(feature = "encryption"))]
        let encrypted = false;
        if !encrypted {
            register()?;
        }
        tokio::spawn(async move {
            let reason = driver::drive(stream, run_link.clone(), handler).await;
            let made = !encrypted || made_rx.await.unwrap_or(false);
            if made {
                if let Some(inner) = weak.upgrade() {
                    Client { inner }.on_closed(&run_link, reason, started.elapsed());
                }
            }
            run_link.mark_finished();
        });
        #[cfg(feature = "encryption")]
        if let Some(answer) = key_answer {
            let result = match tokio::time::timeout_at(connect_deadline, answer).await {
                Ok(reply) => key_exchange_result(reply),
                Err(_) => {
                    link.abort(CloseReason::ClosedLocally);
                    let _ = made_tx.send(false);
                    if connect_deadline < deadline {
                        return failed(ConnectError::TimedOut(connect_timeout));
                    }
                    return Err(Error::Timeout(started.elapsed()));
                }
            };
            if let Err(reason) = result {
                link.abort(CloseReason::ClosedLocally);
                let _ = made_tx.send(false);
                return failed(reason);
            }
            if let Err(e) = register() {
                link.abort(CloseReason::ClosedLocally);
                let _ = made_tx.send(false);
                return Err(e);
            }
            let _ = made_tx.send(true);
            return Ok(link);
        }
        drop(made_tx);
        Ok(link)
    }

    /// Queues `*key` as the first frame of a new connection when the client encrypts, and
    /// returns where its answer will come.
    #[cfg(feature = "encryption")]
    #[allow(clippy::type_complexity)]
    fn start_key_exchange(
        &self,
        link: &Link,
        deadline: Instant,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<Result<crate::Answer, Error>>>, ConnectError>
    {
        let Some(encryption) = &self.inner.config.encryption else {
            return Ok(None);
        };
        let handshake = encryption
            .start()
            .map_err(|e| ConnectError::KeyExchange(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let timeout = deadline.saturating_duration_since(Instant::now());
        link.update(|conn, now| conn.start_key_exchange(&handshake, timeout, tx, now))
            .map_err(|e| ConnectError::KeyExchange(e.to_string()))?;
        Ok(Some(rx))
    }

    /// Whether an attempt to connect may go ahead. An explicit one (a quest, `connect`)
    /// always may, and cancels an earlier `close`; a background reconnect may not after a
    /// `close`.
    fn may_connect(&self, is_reconnect: bool) -> bool {
        let mut state = self.state();
        if is_reconnect {
            !state.closed_by_user
        } else {
            state.closed_by_user = false;
            true
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        if let Some(hook) = &self.inner.on_event {
            hook(&event);
        }
    }

    /// A connection ended: forget it, report it, and reconnect in the background if asked to.
    fn on_closed(&self, link: &Arc<Link>, reason: CloseReason, lived: Duration) {
        let will_reconnect = {
            let mut state = self.state();
            if state.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                state.link = None;
            }
            let strategy = &self.inner.config.regressive;
            state.schedule.connection_closed(strategy, lived);
            let reconnect = self.inner.config.auto_reconnect && !state.closed_by_user;
            // A reconnect loop already running (its connect may have raced this close) goes
            // on: it stops only once it finds a live connection.
            let spawn = reconnect && !state.reconnecting;
            if spawn {
                state.reconnecting = true;
            }
            (reconnect, spawn)
        };
        let (will_reconnect, spawn) = will_reconnect;
        self.emit(ConnectionEvent::Closed {
            by_error: reason.is_error(),
            reason: Error::Closed(reason),
            will_reconnect,
        });
        if spawn {
            tokio::spawn(reconnect_loop(Arc::downgrade(&self.inner)));
        }
    }
}

/// What the answer to `*key` (or its absence) says about the key exchange.
#[cfg(feature = "encryption")]
fn key_exchange_result(
    reply: Result<Result<crate::Answer, Error>, tokio::sync::oneshot::error::RecvError>,
) -> Result<(), ConnectError> {
    use crate::proto::ProtocolError;
    match reply {
        Ok(Ok(answer)) => crate::encryption::ClientHandshake::check_answer(&answer)
            .map_err(|e| ConnectError::KeyExchange(e.to_string())),
        Ok(Err(Error::Closed(CloseReason::Protocol(
            error @ (ProtocolError::Layer { .. } | ProtocolError::BadFrame(_)),
        )))) => Err(ConnectError::KeyExchange(format!(
            "the server's answer does not decrypt ({error}): wrong server key?"
        ))),
        Ok(Err(Error::Closed(reason))) => Err(ConnectError::KeyExchange(format!(
            "the server closed the connection ({reason}): a key on another curve, or a \
             server without encryption?"
        ))),
        Ok(Err(e)) => Err(ConnectError::KeyExchange(e.to_string())),
        Err(_) => Err(ConnectError::KeyExchange(
            "the connection ended during the key exchange".into(),
        )),
    }
}

/// Reconnects on the regressive schedule until connected (by this loop or by a quest),
/// closed by the user, or dropped.
async fn reconnect_loop(weak: Weak<Inner>) {
    let mut last = Instant::now();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        let due = {
            let mut state = client.state();
            if state.closed_by_user || state.link.as_ref().is_some_and(|l| !l.is_closed()) {
                state.reconnecting = false;
                return;
            }
            let strategy = &client.inner.config.regressive;
            Instant::from_std(state.schedule.next_attempt(strategy, last.into_std()))
        };
        drop(client);
        tokio::time::sleep_until(due).await;
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        if client.state().closed_by_user {
            client.state().reconnecting = false;
            return;
        }
        let deadline = Instant::now() + client.inner.config.connect_timeout;
        // Connected or not, the top of the loop decides: it stops at a live connection, checked
        // under the same lock as `on_closed`, so a close that raced this connect (and found
        // this loop running) is never left without a reconnect.
        let _ = client.connect_by(deadline, true).await;
        last = Instant::now();
    }
}

/// Handles quests the server pushes.
struct ClientHandler {
    client: Weak<Inner>,
}

impl QuestHandler for ClientHandler {
    fn quest(&mut self, link: &Arc<Link>, quest: Quest) -> Handled {
        let Some(inner) = self.client.upgrade() else {
            return Handled::Close(CloseReason::ClosedLocally);
        };
        let params = match driver::params_or_close(&quest) {
            Ok(params) => params,
            Err(close) => return close,
        };
        let dispatcher = inner.clone();
        let client = Client { inner };
        let Some(future) = dispatcher.router.dispatch(&quest.method, client, params) else {
            return Handled::Inline(Err(ErrorAnswer::new(
                code::CORE_UNKNOWN_METHOD,
                format!("unknown method: {}", quest.method),
            )));
        };
        let link = link.clone();
        let (seq, format) = (quest.seq, quest.format);
        tokio::spawn(async move {
            let result = future.await;
            link.finish(seq, format, result);
        });
        Handled::Later
    }
}

#[cfg(test)]
mod tests;
