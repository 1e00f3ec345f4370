//! The logged-in client sessions of this node, by user.

use fpnn::server::Connection;
use fpnn::Value;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a logged-in gate connection carries (attached to its [`Connection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The project.
    pub pid: i32,
    /// The user.
    pub uid: i64,
    /// The client's endpoint as the gate sees it (`ip:port`), the `ce` of `kickout`.
    pub ce: String,
}

/// A client's endpoint as `kickout`'s `ce` names it: `ip:port`, with an IPv4 client of a
/// dual-stack listener written as plain IPv4 (`1.2.3.4:5`, not `[::ffff:1.2.3.4]:5`).
pub fn endpoint(addr: SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

/// A `ce` given to `kickout`, in the form [`endpoint`] writes; text that is not an address
/// is kept as it is (it matches no session).
pub fn normalize_ce(ce: &str) -> String {
    match ce.trim().parse::<SocketAddr>() {
        Ok(addr) => endpoint(addr),
        Err(_) => ce.to_owned(),
    }
}

struct Entry {
    conn: Connection,
    ce: String,
}

const SHARDS: usize = 64;

/// One shard: users to their logged-in connections.
type Shard = HashMap<(i32, i64), Vec<Entry>>;

/// The sessions of this node, sharded by user so that logins do not contend on one lock.
pub struct Sessions {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    count: AtomicUsize,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            count: AtomicUsize::new(0),
        }
    }
}

/// Pushes the one-way `kickout` quest to a client and closes the connection after it.
pub fn kick_connection(conn: &Connection) {
    // A connection that is already closing cannot take the push; closing it is enough.
    let _ = conn.push_oneway("kickout", &Value::map());
    conn.close();
}

impl Sessions {
    /// An empty registry.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    fn shard(&self, pid: i32, uid: i64) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one((pid, uid)) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The number of sessions.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// `true` when nobody is logged in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a logged-in connection.
    pub fn add(&self, session: &Session, conn: &Connection) {
        self.shard(session.pid, session.uid)
            .entry((session.pid, session.uid))
            .or_default()
            .push(Entry {
                conn: conn.clone(),
                ce: session.ce.clone(),
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a logged-in connection as the user's only one (multi-login off): the
    /// user's other connections leave the registry in the same step, and are returned for
    /// the caller to kick. Of two logins at once, only the later one stays.
    pub fn replace(&self, session: &Session, conn: &Connection) -> Vec<Connection> {
        let mut shard = self.shard(session.pid, session.uid);
        let entries = shard.entry((session.pid, session.uid)).or_default();
        let taken: Vec<Connection> = entries.drain(..).map(|e| e.conn).collect();
        entries.push(Entry {
            conn: conn.clone(),
            ce: session.ce.clone(),
        });
        drop(shard);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.count.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    }

    /// Forgets a connection; `false` if it was not registered (already kicked, say).
    pub fn remove(&self, session: &Session, conn_id: u64) -> bool {
        let mut shard = self.shard(session.pid, session.uid);
        let key = (session.pid, session.uid);
        let Some(entries) = shard.get_mut(&key) else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| e.conn.id() != conn_id);
        let removed = before - entries.len();
        if entries.is_empty() {
            shard.remove(&key);
        }
        self.count.fetch_sub(removed, Ordering::Relaxed);
        removed > 0
    }

    /// The connections of a user (only the one at endpoint `ce`, when given), except
    /// `keep`, removed from the registry: the caller kicks them.
    pub fn take(&self, pid: i32, uid: i64, ce: Option<&str>, keep: Option<u64>) -> Vec<Connection> {
        self.take_where(pid, uid, |conn_id, entry_ce| {
            ce.is_none_or(|ce| entry_ce == ce) && Some(conn_id) != keep
        })
    }

    /// The connections of a user whose ids are in `ids`, removed from the registry: the
    /// caller kicks them (a kickout another node resolved to these connections).
    pub fn take_ids(&self, pid: i32, uid: i64, ids: &[u64]) -> Vec<Connection> {
        self.take_where(pid, uid, |conn_id, _| ids.contains(&conn_id))
    }

    fn take_where(
        &self,
        pid: i32,
        uid: i64,
        selected: impl Fn(u64, &str) -> bool,
    ) -> Vec<Connection> {
        let mut shard = self.shard(pid, uid);
        let Some(entries) = shard.get_mut(&(pid, uid)) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        entries.retain(|e| {
            let selected = selected(e.conn.id(), &e.ce);
            if selected {
                taken.push(e.conn.clone());
            }
            !selected
        });
        if entries.is_empty() {
            shard.remove(&(pid, uid));
        }
        drop(shard);
        self.count.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    }

    /// Every session's `(pid, uid, connection id, ce)`, for a cluster registry refresh.
    pub fn snapshot(&self) -> Vec<(i32, i64, u64, String)> {
        let mut out = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for ((pid, uid), entries) in shard.iter() {
                out.extend(
                    entries
                        .iter()
                        .map(|e| (*pid, *uid, e.conn.id(), e.ce.clone())),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_written_one_way() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(endpoint(mapped), "10.1.2.3:4000");
        let v6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        assert_eq!(endpoint(v6), "[2001:db8::1]:5");
        assert_eq!(normalize_ce("[::ffff:10.1.2.3]:4000"), "10.1.2.3:4000");
        assert_eq!(normalize_ce(" 10.1.2.3:4000 "), "10.1.2.3:4000");
        assert_eq!(normalize_ce("not an address"), "not an address");
    }
}
