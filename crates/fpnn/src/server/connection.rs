//! A handle on one client connection of the server.

use crate::driver::Link;
use crate::error::Error;
use crate::payload::Format;
use crate::proto::CloseReason;
use crate::value::Value;
use std::any::Any;
use std::net::SocketAddr;
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

    /// Why the connection closed, once it is closing.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.link.close_reason()
    }

    /// Completes once the connection is closing or closed: for tasks that serve one
    /// connection (timers, pings) and must end with it.
    pub async fn closed(&self) {
        self.inner.link.closing().await
    }

    /// Whether the client encrypted the connection (the `*key` exchange).
    #[cfg(feature = "encryption")]
    pub fn is_encrypted(&self) -> bool {
        self.inner.link.read(|conn| conn.is_encrypted())
    }

    /// Bytes queued for the client and not yet taken by it.
    pub fn queued_bytes(&self) -> usize {
        self.inner.link.read(|conn| conn.queued())
    }

    /// Sends a one-way quest to the client.
    ///
    /// Fails with [`Error::SendQueueFull`] when the connection's outbound budget is used up
    /// (the client does not read), and with [`Error::Closed`] once it is closing. A caller
    /// that means to end the session (a kickout) closes the connection either way.
    pub fn push_oneway(&self, method: &str, params: &Value) -> Result<(), Error> {
        self.inner.link.oneway(method, Format::MsgPack, params)
    }

    /// Sends a two-way quest to the client and waits for its answer; `None` (or zero) for the
    /// server's default push timeout. Fails at once like [`Connection::push_oneway`] when it
    /// cannot be queued.
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
            .quest(method, Format::MsgPack, params, timeout, false)
            .await
    }

    /// Closes the connection after what is already queued (answers, pushes) has been sent.
    /// Quests pushed to it and still waiting fail with 20002.
    pub fn close(&self) {
        self.inner.link.close(CloseReason::ClosedLocally);
    }

    /// Closes the connection once every quest being handled on it has been answered: the
    /// way to end a session from inside a handler (`bye`), after its own answer.
    pub fn close_after_answers(&self) {
        self.inner.link.close_after_answers();
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
