//! The logged-in client sessions of this node, by user, and the kick that ends one.
//!
//! A kick ends a session at once: the connection leaves the registry (it is no longer
//! online), its [`Login`] is marked ended (the gate serves no further quest on it), and the
//! one-way `kickout` is pushed. The connection itself is left to the client to close for
//! `limits.kickout_grace` ([`close_after_grace`]): the official clients close it themselves
//! on `kickout`, and the 2018 Java reader drops a frame that arrives in the same read as the
//! server's FIN, so a close right behind the push would hide the push from it. After the
//! grace the server closes the connection; if the push cannot be queued, at once.

use fpnn::server::Connection;
use fpnn::Value;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A user's login on one gate connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The project.
    pub pid: i32,
    /// The user.
    pub uid: i64,
    /// The client's endpoint as the gate sees it (`ip:port`), the `ce` of `kickout`.
    pub ce: String,
}

/// What a logged-in gate connection carries (attached to its [`Connection`] once): its
/// session, and whether a kick has ended it.
#[derive(Debug)]
pub struct Login {
    /// The session.
    pub session: Session,
    ended: AtomicBool,
}

impl Login {
    /// A live login.
    pub fn new(session: Session) -> Login {
        Login {
            session,
            ended: AtomicBool::new(false),
        }
    }

    /// `true` once a kick has ended the session: the connection stays open (for the
    /// client to close) but serves nothing more.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
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

/// Who closed a kicked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickClose {
    /// The connection closed within the grace: the client closed it (as the official
    /// clients do on `kickout`), or it failed, or the server shut down.
    Client,
    /// The server: the grace ran out, or the push could not be queued.
    Server,
}

/// Ends the session of a connection already taken out of the registry: marks its login
/// ended, pushes the one-way `kickout`, and leaves the connection to the client to close
/// for `grace`, after which the server closes it (at once when the push cannot be queued
/// or `grace` is zero). `closed` is told who closed it, once it is closed.
pub fn kick_connection(
    conn: &Connection,
    grace: Duration,
    closed: impl FnOnce(KickClose) + Send + 'static,
) {
    if let Some(login) = conn.data::<Login>() {
        login.end();
    }
    // A connection that is closing (or whose outbound queue is full) cannot take the push:
    // closing it is what matters.
    let pushed = conn.push_oneway("kickout", &Value::map()).is_ok();
    if !pushed || grace.is_zero() {
        conn.close();
        closed(KickClose::Server);
        return;
    }
    let conn = conn.clone();
    tokio::spawn(async move {
        let by = close_after_grace(conn.closed(), grace, || conn.close()).await;
        closed(by);
    });
}

/// Waits for `closed` (the connection closing) for at most `grace`; if it has not happened
/// by then, calls `close`. Returns who closed it. Ends as soon as the connection closes:
/// a kicked connection leaves no timer behind.
pub async fn close_after_grace(
    closed: impl Future<Output = ()>,
    grace: Duration,
    close: impl FnOnce(),
) -> KickClose {
    tokio::select! {
        biased;
        () = closed => KickClose::Client,
        () = tokio::time::sleep(grace) => {
            close();
            KickClose::Server
        }
    }
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

    use std::sync::Arc;
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    const GRACE: Duration = Duration::from_millis(1000);

    /// A closing that counts its calls, and a `closed` future the test completes.
    fn fake() -> (
        Arc<AtomicUsize>,
        oneshot::Sender<()>,
        impl Future<Output = ()>,
    ) {
        let (tx, rx) = oneshot::channel::<()>();
        (Arc::new(AtomicUsize::new(0)), tx, async move {
            let _ = rx.await;
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_closes_when_the_grace_runs_out() {
        let (closes, _keep_open, closed) = fake();
        let counter = closes.clone();
        let started = Instant::now();
        let task = tokio::spawn(close_after_grace(closed, GRACE, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        // Not a moment before the grace.
        tokio::time::sleep(GRACE - Duration::from_millis(1)).await;
        assert_eq!(closes.load(Ordering::SeqCst), 0);
        assert!(!task.is_finished());
        assert_eq!(task.await.unwrap(), KickClose::Server);
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_closes_within_the_grace_leaves_no_timer() {
        let (closes, close_now, closed) = fake();
        let counter = closes.clone();
        let started = Instant::now();
        let task = tokio::spawn(close_after_grace(closed, GRACE, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        close_now.send(()).unwrap();
        assert_eq!(task.await.unwrap(), KickClose::Client);
        // It ended when the connection closed, not at the end of the grace.
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(closes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closed_already_is_the_clients() {
        let (closes, close_now, closed) = fake();
        close_now.send(()).unwrap();
        let counter = closes.clone();
        let by = close_after_grace(closed, Duration::ZERO, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(by, KickClose::Client);
        assert_eq!(closes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_login_ends_once_and_for_all() {
        let login = Login::new(Session {
            pid: 1,
            uid: 2,
            ce: "127.0.0.1:3".into(),
        });
        assert!(!login.is_ended());
        login.end();
        login.end();
        assert!(login.is_ended());
    }

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
