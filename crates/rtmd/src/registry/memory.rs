//! [`MemoryCluster`]: the session registry of several nodes in one process.
//!
//! It keeps what the Redis registry keeps (which node holds which session of a user) in a
//! map shared by the nodes, and delivers a kick to another node on that node's channel, as
//! Redis pub/sub would. No message is lost, so there are no tombstones and no refresh. It
//! lets a test run two or three nodes in one process (sharing one store) and kick across
//! them without a Redis.

use super::{Kick, NodeLink, Registry};
use crate::metrics::Metrics;
use crate::sessions::Session;
use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tokio::sync::mpsc;

/// The registry the nodes of one in-process cluster share. Cheap to clone (clones share it).
#[derive(Clone, Default)]
pub struct MemoryCluster {
    hub: Arc<Mutex<Hub>>,
}

impl std::fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hub = self.lock();
        f.debug_struct("MemoryCluster")
            .field("nodes", &hub.nodes.len())
            .field("users", &hub.sessions.len())
            .finish()
    }
}

#[derive(Default)]
struct Hub {
    /// Each node's kick channel, by node number; `None` before it starts and after it
    /// leaves.
    nodes: Vec<Option<mpsc::UnboundedSender<Kick>>>,
    /// The sessions of every node, by user.
    sessions: HashMap<(i32, i64), Vec<Member>>,
}

/// One session in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    node: usize,
    conn_id: u64,
    ce: String,
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> MemoryCluster {
        MemoryCluster::default()
    }

    /// The registry of one more node of this cluster.
    pub fn node(&self) -> MemoryRegistry {
        let mut hub = self.lock();
        hub.nodes.push(None);
        MemoryRegistry {
            cluster: self.clone(),
            node: hub.nodes.len() - 1,
            metrics: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        // Every update leaves the maps consistent before it could panic.
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node's view of a [`MemoryCluster`].
pub struct MemoryRegistry {
    cluster: MemoryCluster,
    node: usize,
    metrics: OnceLock<Arc<Metrics>>,
}

#[async_trait]
impl Registry for MemoryRegistry {
    fn start(&self, link: NodeLink) {
        link.metrics.cluster_started();
        let _ = self.metrics.set(link.metrics);
        self.cluster.lock().nodes[self.node] = Some(link.kicks);
    }

    async fn register(&self, session: &Session, conn_id: u64) -> Result<(), StoreError> {
        self.cluster
            .lock()
            .sessions
            .entry((session.pid, session.uid))
            .or_default()
            .push(Member {
                node: self.node,
                conn_id,
                ce: session.ce.clone(),
            });
        Ok(())
    }

    fn deregister(&self, session: &Session, conn_id: u64) {
        let mut hub = self.cluster.lock();
        let key = (session.pid, session.uid);
        if let Some(members) = hub.sessions.get_mut(&key) {
            members.retain(|m| !(m.node == self.node && m.conn_id == conn_id));
            if members.is_empty() {
                hub.sessions.remove(&key);
            }
        }
    }

    async fn kick_remote(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
        keep: Option<(&Session, u64)>,
    ) -> Result<usize, StoreError> {
        let mut hub = self.cluster.lock();
        let Some(members) = hub.sessions.get_mut(&(pid, uid)) else {
            return Ok(0);
        };
        let kept = |m: &Member| keep.is_some_and(|(_, id)| m.node == self.node && m.conn_id == id);
        let mut taken = Vec::new();
        members.retain(|m| {
            let pick = !kept(m) && ce.is_none_or(|ce| m.ce == ce);
            if pick {
                taken.push(m.clone());
            }
            !pick
        });
        if members.is_empty() {
            hub.sessions.remove(&(pid, uid));
        }
        let mut sent = 0;
        for member in taken.iter().filter(|m| m.node != self.node) {
            let kick = Kick {
                pid,
                uid,
                conn_id: member.conn_id,
                by_refresh: false,
            };
            let delivered = hub.nodes[member.node]
                .as_ref()
                .is_some_and(|node| node.send(kick).is_ok());
            if let Some(metrics) = self.metrics.get() {
                metrics.kicks_sent(1, !delivered);
            }
            sent += 1;
        }
        Ok(sent)
    }

    async fn leave(&self) {
        let mut hub = self.cluster.lock();
        hub.nodes[self.node] = None;
        hub.sessions.retain(|_, members| {
            members.retain(|m| m.node != self.node);
            !members.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::Sessions;

    fn session(uid: i64, ce: &str) -> Session {
        Session {
            pid: 1,
            uid,
            ce: ce.into(),
        }
    }

    fn started(registry: &MemoryRegistry) -> mpsc::UnboundedReceiver<Kick> {
        let (kicks, rx) = mpsc::unbounded_channel();
        registry.start(NodeLink {
            sessions: Arc::new(Sessions::new()),
            metrics: Arc::new(Metrics::new()),
            kicks,
        });
        rx
    }

    #[tokio::test]
    async fn kicks_reach_the_other_nodes_sessions_only() {
        let cluster = MemoryCluster::new();
        let (a, b, c) = (cluster.node(), cluster.node(), cluster.node());
        let (mut on_a, mut on_b, mut on_c) = (started(&a), started(&b), started(&c));
        a.register(&session(7, "1.1.1.1:1"), 10).await.unwrap();
        b.register(&session(7, "2.2.2.2:2"), 20).await.unwrap();
        c.register(&session(7, "3.3.3.3:3"), 30).await.unwrap();
        c.register(&session(8, "3.3.3.3:4"), 31).await.unwrap();

        // Only the login at one endpoint.
        assert_eq!(
            a.kick_remote(1, 7, Some("2.2.2.2:2"), None).await.unwrap(),
            1
        );
        let kick = on_b.try_recv().unwrap();
        assert_eq!((kick.uid, kick.conn_id, kick.by_refresh), (7, 20, false));
        assert!(on_c.try_recv().is_err());

        // Every login but the one kept (a single-login project's new session on c).
        let keep = session(7, "3.3.3.3:3");
        assert_eq!(
            c.kick_remote(1, 7, None, Some((&keep, 30))).await.unwrap(),
            1
        );
        assert_eq!(on_a.try_recv().unwrap().conn_id, 10);
        // The kicking node's own sessions leave the registry, but are its to kick: nothing
        // is sent to it.
        c.register(&session(7, "3.3.3.3:9"), 32).await.unwrap();
        assert_eq!(c.kick_remote(1, 7, None, None).await.unwrap(), 0);
        assert!(on_c.try_recv().is_err());
        // Nothing left of user 7; user 8 untouched until kicked.
        assert_eq!(a.kick_remote(1, 7, None, None).await.unwrap(), 0);
        assert_eq!(b.kick_remote(1, 8, None, None).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn closed_sessions_and_nodes_that_left_are_forgotten() {
        let cluster = MemoryCluster::new();
        let (a, b) = (cluster.node(), cluster.node());
        let (_on_a, _on_b) = (started(&a), started(&b));
        b.register(&session(7, "x"), 1).await.unwrap();
        b.register(&session(7, "y"), 2).await.unwrap();
        b.deregister(&session(7, "x"), 1);
        b.leave().await;
        assert_eq!(a.kick_remote(1, 7, None, None).await.unwrap(), 0);
        assert!(format!("{cluster:?}").contains("users: 0"));
    }
}
