//! The session registry: where the sessions of every node are, and how a kick reaches the
//! node that holds one.
//!
//! This node's own sessions live in [`crate::sessions`]; a [`Registry`] knows about the
//! others. A kickout (or a `removetoken` that kicks, or a login of a single-login project)
//! kicks the matching sessions of this node itself, then asks the registry to kick those of
//! the other nodes ([`Registry::kick_remote`]). A kick another node sends for a session of
//! this one arrives as a [`Kick`] message on the channel given to [`Registry::start`], which
//! the gate drains: the registry never calls into the service.
//!
//! * [`LocalRegistry`]: a single node; there are no others.
//! * [`RedisRegistry`]: cluster mode, over Redis (a sorted set of sessions per user,
//!   pub/sub to each node, tombstones that a refresh applies if a message is lost).
//! * `MemoryRegistry`: several nodes in one process (tests, with the `testing` feature),
//!   through a shared `MemoryCluster`.

mod local;
#[cfg(any(test, feature = "testing"))]
mod memory;
mod redis;

pub use local::LocalRegistry;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryCluster;
pub use redis::RedisRegistry;

use crate::metrics::Metrics;
use crate::sessions::{Session, Sessions};
use crate::store::StoreError;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A kick another node sent for a session of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kick {
    /// The project.
    pub pid: i32,
    /// The user.
    pub uid: i64,
    /// The session's connection on this node.
    pub conn_id: u64,
    /// How it arrived: `false` by the sender's message, `true` found at a registry refresh
    /// (the message was lost).
    pub by_refresh: bool,
}

/// What the registry's background work needs from its node.
pub struct NodeLink {
    /// This node's sessions (a refresh keeps them in the registry; leaving takes them out).
    pub sessions: Arc<Sessions>,
    /// Where the registry counts what it does.
    pub metrics: Arc<Metrics>,
    /// Where kicks for this node's sessions go; the gate drains it.
    pub kicks: mpsc::UnboundedSender<Kick>,
}

/// Where the sessions of every node are. See the [module documentation](self).
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Starts the registry's background work for this node (once).
    fn start(&self, node: NodeLink);

    /// Records a new session of this node, before its login is answered: a login that
    /// cannot be recorded must fail.
    async fn register(&self, session: &Session, conn_id: u64) -> Result<(), StoreError>;

    /// Forgets a closed session of this node (best effort: in Redis it expires anyway).
    fn deregister(&self, session: &Session, conn_id: u64);

    /// Takes the user's matching sessions (all, or the one at endpoint `ce`; never `keep`,
    /// a session of this node) out of the registry and sends each other node holding one of
    /// them a kick. Returns how many sessions of other nodes were sent a kick; this node's
    /// own are the caller's to kick.
    async fn kick_remote(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
        keep: Option<(&Session, u64)>,
    ) -> Result<usize, StoreError>;

    /// Stops the background work and takes this node's sessions out of the registry (at
    /// graceful shutdown, before the connections close).
    async fn leave(&self);
}
