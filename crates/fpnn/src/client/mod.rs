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

mod regressive;

pub use regressive::RegressiveStrategy;

use crate::conn::{self, Link, QuestSink, ReadOptions};
use crate::error::{code, Error};
use crate::frame::{Quest, DEFAULT_MAX_FRAME};
use crate::payload::Format;
use crate::router::{HandlerResult, Router};
use crate::value::{from_value, to_value, Value};
use regressive::RegressiveState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Keep-alive: ping a quiet server and declare it lost when it stays silent.
///
/// When nothing has been received for `interval`, the client sends `*ping` (at most once per
/// `ping_timeout`). When nothing has been received for `interval + ping_timeout * max_retries`,
/// the connection is closed and its quests fail with 20012. The defaults are the C++
/// framework's: 20 s, 3 retries, ping timeout = the quest timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence before the first ping.
    pub interval: Duration,
    /// Pings without an answer before the connection is declared lost.
    pub max_retries: u32,
    /// Timeout of each ping; `None` for the client's quest timeout.
    pub ping_timeout: Option<Duration>,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            interval: Duration::from_secs(20),
            max_retries: 3,
            ping_timeout: None,
        }
    }
}

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
    /// the client still connects again lazily on the next quest.
    pub auto_reconnect: bool,
    /// Delays between reconnect attempts.
    pub regressive: RegressiveStrategy,
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

/// Configures a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    config: ClientConfig,
    router: Router<Client>,
    on_event: Option<EventHook>,
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

    /// Builds the client. It connects on [`Client::connect`] or on the first quest.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                config: self.config,
                router: self.router,
                on_event: self.on_event,
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
    state: Mutex<State>,
    /// Serialises connection attempts, so concurrent quests share one.
    connect_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    link: Option<Arc<Link>>,
    /// Set by [`Client::close`]: no background reconnect until the next explicit use.
    closed_by_user: bool,
    /// While a background reconnect waits, quests fail at once instead of connecting.
    backoff_until: Option<Instant>,
    reconnecting: bool,
    regressive: RegressiveState,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            if let Some(link) = state.link.take() {
                link.close(Error::ConnectionClosed("client dropped".into()));
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
        self.state()
            .link
            .as_ref()
            .map_or(0, |link| link.pending_len())
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
            link.close(Error::ConnectionClosed("closed by the client".into()));
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
        link.quest(method, Format::MsgPack, params, remaining)
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

    /// The open connection, connecting first when there is none.
    async fn link(&self, deadline: Instant, timeout: Duration) -> Result<Arc<Link>, Error> {
        {
            let state = self.state();
            if let Some(link) = &state.link {
                if !link.is_closed() {
                    return Ok(link.clone());
                }
            }
            if let Some(until) = state.backoff_until {
                let now = Instant::now();
                if until > now {
                    return Err(Error::InvalidConnection(format!(
                        "not connected to {}; reconnecting in {:.1} s",
                        self.inner.endpoint,
                        (until - now).as_secs_f64()
                    )));
                }
            }
        }
        match self.connect_by(deadline, false).await {
            Err(Error::Timeout(_)) => Err(Error::Timeout(timeout)),
            other => other,
        }
    }

    /// Connects unless connected, before `deadline`. Concurrent callers share one attempt.
    async fn connect_by(&self, deadline: Instant, is_reconnect: bool) -> Result<Arc<Link>, Error> {
        let lock = tokio::time::timeout_at(deadline.into(), self.inner.connect_lock.lock()).await;
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
            if tokio::time::timeout_at(deadline.into(), link.finished())
                .await
                .is_err()
            {
                return Err(Error::Timeout(Duration::ZERO));
            }
        }
        if !self.may_connect(is_reconnect) {
            return Err(Error::ConnectionClosed("closed by the client".into()));
        }
        let endpoint = &self.inner.endpoint;
        let connect_deadline = deadline.min(Instant::now() + self.inner.config.connect_timeout);
        let started = Instant::now();
        let attempt =
            tokio::time::timeout_at(connect_deadline.into(), TcpStream::connect(endpoint)).await;
        let stream = match attempt {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let error = Error::InvalidConnection(format!("cannot connect to {endpoint}: {e}"));
                self.emit(ConnectionEvent::ConnectFailed {
                    error: error.clone(),
                    is_reconnect,
                });
                return Err(error);
            }
            Err(_) if connect_deadline < deadline => {
                let error = Error::InvalidConnection(format!(
                    "cannot connect to {endpoint}: timed out after {:?}",
                    self.inner.config.connect_timeout
                ));
                self.emit(ConnectionEvent::ConnectFailed {
                    error: error.clone(),
                    is_reconnect,
                });
                return Err(error);
            }
            Err(_) => return Err(Error::Timeout(started.elapsed())),
        };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .map_err(|e| Error::InvalidConnection(format!("cannot connect to {endpoint}: {e}")))?;
        let (link, out) = Link::new(peer);
        {
            let mut state = self.state();
            if is_reconnect && state.closed_by_user {
                // Closed by the user while this attempt was under way.
                return Err(Error::ConnectionClosed("closed by the client".into()));
            }
            state.link = Some(link.clone());
            state.backoff_until = None;
        }
        // Reported before the connection's task starts, so that it comes before `Closed`.
        self.emit(ConnectionEvent::Connected { peer, is_reconnect });
        let sink = ClientSink {
            client: Arc::downgrade(&self.inner),
            link: link.clone(),
        };
        let options = ReadOptions {
            max_frame: self.inner.config.max_frame,
            idle_timeout: None,
        };
        let weak = Arc::downgrade(&self.inner);
        let run_link = link.clone();
        tokio::spawn(async move {
            let reason = conn::run(stream, run_link.clone(), out, sink, options).await;
            if let Some(inner) = weak.upgrade() {
                Client { inner }.on_closed(&run_link, reason, started);
            }
            run_link.mark_finished();
        });
        if let Some(keep_alive) = &self.inner.config.keep_alive {
            let ping_timeout = keep_alive
                .ping_timeout
                .unwrap_or(self.inner.config.quest_timeout);
            tokio::spawn(keep_alive_loop(
                link.clone(),
                keep_alive.clone(),
                ping_timeout,
            ));
        }
        Ok(link)
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
    fn on_closed(&self, link: &Arc<Link>, reason: Error, started: Instant) {
        let will_reconnect = {
            let mut state = self.state();
            if state.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                state.link = None;
            }
            let reconnect =
                self.inner.config.auto_reconnect && !state.closed_by_user && !state.reconnecting;
            if reconnect {
                state.reconnecting = true;
            }
            reconnect
        };
        let by_error = !matches!(reason, Error::ConnectionClosed(_));
        self.emit(ConnectionEvent::Closed {
            by_error,
            reason,
            will_reconnect,
        });
        if will_reconnect {
            tokio::spawn(reconnect_loop(
                Arc::downgrade(&self.inner),
                started.elapsed(),
            ));
        }
    }
}

/// Reconnects with the regressive strategy until connected, closed by the user, or dropped.
async fn reconnect_loop(weak: Weak<Inner>, mut lived: Duration) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        let delay = {
            let mut state = client.state();
            if state.closed_by_user || state.link.as_ref().is_some_and(|l| !l.is_closed()) {
                state.reconnecting = false;
                state.backoff_until = None;
                return;
            }
            let strategy = &client.inner.config.regressive;
            let delay = state.regressive.on_closed(strategy, lived);
            state.backoff_until = (!delay.is_zero()).then(|| Instant::now() + delay);
            delay
        };
        drop(client);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        if client.state().closed_by_user {
            client.state().reconnecting = false;
            return;
        }
        let started = Instant::now();
        let deadline = started + client.inner.config.connect_timeout;
        match client.connect_by(deadline, true).await {
            Ok(_) => {
                let mut state = client.state();
                state.reconnecting = false;
                state.backoff_until = None;
                return;
            }
            Err(_) => lived = started.elapsed(),
        }
    }
}

async fn keep_alive_loop(link: Arc<Link>, keep_alive: KeepAlive, ping_timeout: Duration) {
    let lost_after = keep_alive.interval + ping_timeout * keep_alive.max_retries;
    let tick = keep_alive
        .interval
        .min(ping_timeout)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10))
        / 2;
    let mut last_ping: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        if link.is_closed() {
            return;
        }
        let quiet = link.since_read();
        if quiet > lost_after {
            link.close(Error::InvalidConnection(format!(
                "keep-alive: nothing received from the server for {:.1} s",
                quiet.as_secs_f64()
            )));
            return;
        }
        let ping_due = last_ping.is_none_or(|at| at.elapsed() >= ping_timeout);
        if quiet >= keep_alive.interval && ping_due {
            last_ping = Some(Instant::now());
            let link = link.clone();
            tokio::spawn(async move {
                // Any answer counts as traffic; the result itself does not matter.
                let _ = link
                    .quest("*ping", Format::MsgPack, &Value::map(), ping_timeout)
                    .await;
            });
        }
    }
}

/// Handles quests the server pushes.
struct ClientSink {
    client: Weak<Inner>,
    link: Arc<Link>,
}

impl QuestSink for ClientSink {
    fn quest(&mut self, quest: Quest) -> Result<(), Error> {
        let Some(inner) = self.client.upgrade() else {
            return Err(Error::ConnectionClosed("client dropped".into()));
        };
        let params = quest.params().map_err(|e| {
            Error::InvalidConnection(format!(
                "bad payload in pushed quest '{}': {e}",
                quest.method
            ))
        })?;
        let dispatcher = inner.clone();
        let client = Client { inner };
        let Some(future) = dispatcher.router.dispatch(&quest.method, client, params) else {
            self.link.answer_error(
                &quest,
                code::CORE_UNKNOWN_METHOD,
                format!("unknown method: {}", quest.method),
            );
            return Ok(());
        };
        let link = self.link.clone();
        let (seq, format) = (quest.seq, quest.format);
        tokio::spawn(async move {
            let result = future.await;
            link.answer_result(seq, format, result);
        });
        Ok(())
    }
}
