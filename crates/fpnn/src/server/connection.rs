//! A handle on one client connection of the server.

use crate::conn::Link;
use crate::error::Error;
use crate::payload::Format;
use crate::value::Value;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A client connection, as handlers and hooks see it: who it is, and a way to push quests to
/// it or close it. Cheap to clone; every clone is the same connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    local: SocketAddr,
    link: Arc<Link>,
    push_timeout: Duration,
    data: OnceLock<Box<dyn Any + Send + Sync>>,
    /// Quests of this connection being handled.
    in_flight: AtomicUsize,
    /// Close once `in_flight` drops to zero.
    close_when_answered: AtomicBool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("peer", &self.peer_addr())
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(id: u64, local: SocketAddr, link: Arc<Link>, push_timeout: Duration) -> Self {
        Connection {
            inner: Arc::new(Inner {
                id,
                local,
                link,
                push_timeout,
                data: OnceLock::new(),
                in_flight: AtomicUsize::new(0),
                close_when_answered: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn link(&self) -> &Link {
        &self.inner.link
    }

    pub(crate) fn link_arc(&self) -> Arc<Link> {
        self.inner.link.clone()
    }

    /// The connection's id, unique within the server's lifetime.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The client's address as the server sees it.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.link.peer()
    }

    /// The server address the client connected to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// `true` once the connection is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.inner.link.is_closed()
    }

    /// Completes once the connection is closing or closed: for tasks that serve one
    /// connection (timers, pings) and must end with it.
    pub async fn closed(&self) {
        self.inner.link.closing().await
    }

    /// Sends a one-way quest to the client.
    pub fn push_oneway(&self, method: &str, params: &Value) -> Result<(), Error> {
        self.inner.link.oneway(method, Format::MsgPack, params)
    }

    /// Sends a two-way quest to the client and waits for its answer; `None` (or zero) for the
    /// server's default push timeout.
    pub async fn push_quest(
        &self,
        method: &str,
        params: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let timeout = timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(self.inner.push_timeout);
        self.inner
            .link
            .quest(method, Format::MsgPack, params, timeout)
            .await
    }

    /// Closes the connection after what is already queued (answers, pushes) has been sent.
    /// Quests pushed to it and still waiting fail with 20002.
    pub fn close(&self) {
        self.close_with(Error::ConnectionClosed("closed by the server".into()));
    }

    pub(crate) fn close_with(&self, reason: Error) {
        self.inner.link.close(reason);
    }

    /// Closes the connection once every quest being handled on it has been answered: the
    /// way to end a session from inside a handler (`bye`), after its own answer.
    pub fn close_after_answers(&self) {
        self.inner
            .close_when_answered
            .store(true, Ordering::Release);
        if self.inner.in_flight.load(Ordering::Acquire) == 0 {
            self.close();
        }
    }

    pub(crate) fn quest_started(&self) {
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Called after a quest's answer was queued.
    pub(crate) fn quest_answered(&self) {
        self.quests_answered(1);
    }

    /// Called after the answers of `n` quests were queued.
    pub(crate) fn quests_answered(&self, n: usize) {
        let left = self.inner.in_flight.fetch_sub(n, Ordering::AcqRel) - n;
        if left == 0 && self.inner.close_when_answered.load(Ordering::Acquire) {
            self.close();
        }
    }

    /// Attaches a value to the connection, once (a session, for example). Returns `false`,
    /// dropping `value`, when a value is already attached: a second login can be refused
    /// this way without a race.
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) -> bool {
        self.inner.data.set(Box::new(value)).is_ok()
    }

    /// The value attached with [`Connection::set_data`], if there is one of this type.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.data.get()?.downcast_ref::<T>()
    }
}
