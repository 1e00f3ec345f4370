//! [`RedisRegistry`]: the session registry and kickout fan-out of cluster mode, over Redis.
//!
//! Several `rtmd` nodes behind a load balancer share one Redis ([`RedisStore`]). A user's
//! sessions may sit on any node; a `kickout` (or `removetoken` with `removetoken_kicks`, or
//! a login of a single-login project) may arrive at any node. This module makes every kick
//! reach every session, wherever it is.
//!
//! # Node
//!
//! Each process picks a random node id at start (16 hex digits) and subscribes to its own
//! pub/sub channel `P:node:<node id>`.
//!
//! # Registry
//!
//! Each user has a sorted set `{P:<pid>:<uid>}:sessions`. A member is one session,
//! `<node id>|<connection id>|<ce>`, scored by the time (Unix ms, Redis clock) at which it
//! expires. The owning node:
//!
//! * adds the member when the login succeeds (the login fails closed if it cannot);
//! * refreshes all of its members every `redis.session_ttl / 3` (expiry = now + ttl);
//! * removes the member when the connection closes (best effort: if that fails, the member
//!   expires).
//!
//! A member whose score has passed is dead: every script ignores and purges those. So a node
//! that dies (`kill -9`, power loss, partition) leaves its sessions in the registry for at
//! most `redis.session_ttl`. The set itself expires `session_ttl` after its last refresh.
//!
//! # Kickout
//!
//! The node that receives the call first kicks its own matching sessions directly, then runs
//! one script on the user's slot that takes the live, matching members (all of them, or the
//! one whose `ce` matches; never the session a single-login kick keeps) out of the registry
//! and records them as *kicked* (`{P:<pid>:<uid>}:kicked`, a sorted set of tombstones kept
//! for [`KICK_MEMORY`]). It then publishes, to each other node that holds one of them, a
//! message with one line `<pid>|<uid>|<connection id>` per session, and answers the caller
//! once every message is published: the kick has been dispatched. A node receiving a message
//! hands a [`Kick`] per line to its gate, which pushes `kickout` to those connections and
//! closes them.
//!
//! A message can be lost (the receiving node's subscription was down at that moment: Redis
//! restarted, or the network broke). The registry repairs that: the refresh of a member
//! that was kicked finds its tombstone and kicks the session instead of refreshing it, so a
//! kick reaches its session within `session_ttl / 3` even without the message.
//!
//! # Failures
//!
//! Every command is bounded by `redis.command_timeout`. While Redis is unreachable,
//! logins and kickouts fail with an error answer (never an unchecked login), sessions already
//! open stay open, and both connections reconnect by themselves; the subscription is
//! restored on reconnect and checked at every refresh (`PUBSUB NUMSUB`), and the refresh
//! puts back members that expired during the outage. Metrics: `rtmd_cluster_*`. (The token
//! key ring, which Redis may lose with the rest of its data, is put back by the store's own
//! maintenance, [`RedisStore`].)

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Script};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::{Kick, NodeLink, Registry};
use crate::config::{redact_url, RedisSettings};
use crate::metrics::Metrics;
use crate::sessions::{Session, Sessions};
use crate::store::{bounded_redis, manager_config, Keys, RedisStore, StoreError};

/// How long a kicked session is remembered, so that its node kicks it at its next refresh
/// if the message did not reach it. A node cut off from Redis for longer may miss kicks
/// issued meanwhile.
pub const KICK_MEMORY: Duration = Duration::from_secs(3600);

/// How many users' registry entries one refresh updates at once.
const REFRESH_BATCH: usize = 256;

/// Adds or refreshes members, unless they were kicked.
///
/// KEYS: the user's sessions, the user's kicked. ARGV: ttl (ms), then the members.
/// Returns the members that were kicked (the caller kicks them).
const TOUCH: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = string.format('%d', now + tonumber(ARGV[1]))
local kicked = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  local k = redis.call('ZSCORE', KEYS[2], m)
  if k and tonumber(k) > now then
    kicked[#kicked + 1] = m
  else
    redis.call('ZADD', KEYS[1], expiry, m)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return kicked
"#;

/// Takes the live members to kick out of the registry and remembers them as kicked.
///
/// KEYS: the user's sessions, the user's kicked. ARGV: ce ("" for all), the member to keep
/// ("" for none), how long to remember kicks (ms). Returns the members taken.
const KICK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, m in ipairs(live) do
  if m ~= ARGV[2] then
    local pick = true
    if ARGV[1] ~= '' then
      local a = string.find(m, '|', 1, true)
      local b = a and string.find(m, '|', a + 1, true)
      pick = b ~= nil and string.sub(m, b + 1) == ARGV[1]
    end
    if pick then out[#out + 1] = m end
  end
end
if #out > 0 then
  local remember = string.format('%d', now + tonumber(ARGV[3]))
  for _, m in ipairs(out) do
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[2], remember, m)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return out
"#;

/// This node's part of the cluster: its id, its subscription, the registry and the fan-out.
pub struct RedisRegistry {
    inner: Arc<Inner>,
    pushes: Mutex<Option<mpsc::UnboundedReceiver<PushInfo>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Inner {
    node_id: String,
    keys: Keys,
    channel: String,
    url: String,
    timeout: Duration,
    session_ttl: Duration,
    conn: ConnectionManager,
    subscriber: ConnectionManager,
    touch: Script,
    kick: Script,
    /// This node's sessions and metrics, from [`Registry::start`].
    node: OnceLock<(Arc<Sessions>, Arc<Metrics>)>,
}

/// One session as the registry names it.
fn member(node_id: &str, conn_id: u64, ce: &str) -> String {
    format!("{node_id}|{conn_id}|{ce}")
}

/// `(node id, connection id)` of a member.
fn parse_member(member: &str) -> Option<(&str, u64)> {
    let mut parts = member.splitn(3, '|');
    let node = parts.next()?;
    let conn = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((node, conn))
}

/// Lines `<pid>|<uid>|<connection id>`.
fn parse_message(payload: &str) -> impl Iterator<Item = (i32, i64, u64)> + '_ {
    payload.lines().filter_map(|line| {
        let mut parts = line.split('|');
        let pid = parts.next()?.parse().ok()?;
        let uid = parts.next()?.parse().ok()?;
        let conn = parts.next()?.parse().ok()?;
        Some((pid, uid, conn))
    })
}

fn new_node_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::backend("read random bytes", e))?;
    Ok(rtm_protocol::hex::lower(&bytes))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisRegistry {
    /// Joins the cluster of the nodes sharing `store`: picks a node id and subscribes to its
    /// channel (over a second connection to `url`, in RESP3). [`Registry::start`] starts
    /// listening and refreshing.
    pub async fn connect(
        url: &str,
        store: &RedisStore,
        settings: &RedisSettings,
    ) -> Result<RedisRegistry, StoreError> {
        let shown = redact_url(url);
        let timeout = settings.command_timeout;
        let node_id = new_node_id()?;
        let keys = store.keys().clone();
        let channel = keys.node_channel(&node_id);

        let info = url
            .into_connection_info()
            .map_err(|e| StoreError::InvalidInput {
                what: "Redis URL",
                detail: format!("{shown}: {e}"),
            })?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3)).map_err(|e| {
            StoreError::InvalidInput {
                what: "Redis URL",
                detail: format!("{shown}: {e}"),
            }
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let config = manager_config(timeout)
            .set_push_sender(tx)
            .set_automatic_resubscription();
        let mut subscriber = bounded_redis(
            &shown,
            timeout,
            client.get_connection_manager_with_config(config),
        )
        .await?;
        bounded_redis(&shown, timeout, subscriber.subscribe(&channel)).await?;

        Ok(RedisRegistry {
            inner: Arc::new(Inner {
                node_id,
                keys,
                channel,
                url: shown,
                timeout,
                session_ttl: settings.session_ttl,
                conn: store.connection(),
                subscriber,
                touch: Script::new(TOUCH),
                kick: Script::new(KICK),
                node: OnceLock::new(),
            }),
            pushes: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }
}

#[async_trait]
impl Registry for RedisRegistry {
    /// Starts listening for kicks and refreshing the registry; the tasks stop at
    /// [`leave`](Registry::leave), or when the gate stops draining kicks.
    fn start(&self, node: NodeLink) {
        node.metrics.cluster_started();
        let _ = self
            .inner
            .node
            .set((node.sessions.clone(), node.metrics.clone()));
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pushes) = self
            .pushes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            tasks.push(tokio::spawn(listen(node.kicks.clone(), pushes)));
        }
        tasks.push(tokio::spawn(refresh_loop(
            self.inner.clone(),
            node.sessions,
            node.metrics,
            node.kicks,
        )));
    }

    async fn register(&self, session: &Session, conn_id: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        let member = member(&inner.node_id, conn_id, &session.ce);
        inner
            .touch_user(session.pid, session.uid, vec![member])
            .await
            .map(drop)
    }

    /// Removes a closed session from the registry, in the background (it expires anyway).
    fn deregister(&self, session: &Session, conn_id: u64) {
        let inner = self.inner.clone();
        let key = inner.keys.sessions(session.pid, session.uid);
        let member = member(&inner.node_id, conn_id, &session.ce);
        tokio::spawn(async move {
            let mut conn = inner.conn.clone();
            let removed = bounded_redis(
                &inner.url,
                inner.timeout,
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async::<i64>(&mut conn),
            )
            .await;
            if let Err(e) = removed {
                tracing::debug!(error = %e, "could not remove a closed session from the registry; it will expire");
            }
        });
    }

    async fn kick_remote(
        &self,
        pid: i32,
        uid: i64,
        ce: Option<&str>,
        keep: Option<(&Session, u64)>,
    ) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let keep = keep
            .map(|(session, conn_id)| member(&inner.node_id, conn_id, &session.ce))
            .unwrap_or_default();
        let mut conn = inner.conn.clone();
        let mut call = inner.kick.prepare_invoke();
        call.key(inner.keys.sessions(pid, uid))
            .key(inner.keys.kicked(pid, uid))
            .arg(ce.unwrap_or(""))
            .arg(keep)
            .arg(ms(KICK_MEMORY));
        let taken: Vec<String> =
            bounded_redis(&inner.url, inner.timeout, call.invoke_async(&mut conn)).await?;

        let mut by_node: HashMap<&str, String> = HashMap::new();
        for (node, conn_id) in taken.iter().filter_map(|m| parse_member(m)) {
            if node != inner.node_id {
                let lines = by_node.entry(node).or_default();
                let _ = writeln!(lines, "{pid}|{uid}|{conn_id}");
            }
        }
        let mut sent = 0;
        for (node, lines) in by_node {
            let count = lines.lines().count();
            let channel = inner.keys.node_channel(node);
            let receivers: i64 = bounded_redis(
                &inner.url,
                inner.timeout,
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&lines)
                    .query_async(&mut conn),
            )
            .await?;
            sent += count;
            if let Some((_, metrics)) = inner.node.get() {
                metrics.kicks_sent(count, receivers == 0);
            }
            if receivers == 0 {
                // The node is dead (its sessions will expire) or its subscription is down
                // (its next refresh finds the tombstones and kicks them).
                tracing::warn!(node, count, "kick message reached no subscriber; the node's next registry refresh will apply it");
            }
        }
        Ok(sent)
    }

    async fn leave(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        let inner = &self.inner;
        let Some((sessions, _)) = inner.node.get() else {
            return;
        };
        let mut by_user: HashMap<(i32, i64), Vec<String>> = HashMap::new();
        for (pid, uid, conn_id, ce) in sessions.snapshot() {
            by_user
                .entry((pid, uid))
                .or_default()
                .push(member(&inner.node_id, conn_id, &ce));
        }
        if by_user.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for ((pid, uid), members) in &by_user {
            pipe.zrem(inner.keys.sessions(*pid, *uid), members).ignore();
        }
        let mut conn = inner.conn.clone();
        if let Err(e) = bounded_redis(&inner.url, inner.timeout, pipe.exec_async(&mut conn)).await {
            tracing::warn!(error = %e, "could not take this node's sessions out of the registry; they expire within redis.session_ttl");
        }
    }
}

impl Inner {
    /// Runs [`TOUCH`] for some members of one user; returns those that were kicked.
    async fn touch_user(
        &self,
        pid: i32,
        uid: i64,
        members: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.touch.prepare_invoke();
        call.key(self.keys.sessions(pid, uid))
            .key(self.keys.kicked(pid, uid))
            .arg(ms(self.session_ttl));
        for m in &members {
            call.arg(m);
        }
        bounded_redis(&self.url, self.timeout, call.invoke_async(&mut conn)).await
    }

    /// Refreshes every session of this node in the registry, and hands those found kicked
    /// to the gate. Returns `false` once the gate no longer takes kicks.
    async fn refresh(
        self: &Arc<Self>,
        sessions: &Sessions,
        metrics: &Metrics,
        kicks: &mpsc::UnboundedSender<Kick>,
    ) -> bool {
        let mut by_user: HashMap<(i32, i64), Vec<String>> = HashMap::new();
        for (pid, uid, conn_id, ce) in sessions.snapshot() {
            by_user
                .entry((pid, uid))
                .or_default()
                .push(member(&self.node_id, conn_id, &ce));
        }
        let users: Vec<_> = by_user.into_iter().collect();
        let mut failures = 0usize;
        let mut refreshed = 0u64;
        let mut first_error = None;
        for batch in users.chunks(REFRESH_BATCH) {
            let mut calls = JoinSet::new();
            for ((pid, uid), members) in batch.iter().cloned() {
                let inner = self.clone();
                calls.spawn(async move {
                    let count = members.len() as u64;
                    (pid, uid, count, inner.touch_user(pid, uid, members).await)
                });
            }
            while let Some(done) = calls.join_next().await {
                let Ok((pid, uid, count, result)) = done else {
                    failures += 1;
                    continue;
                };
                match result {
                    Ok(kicked) => {
                        refreshed += count;
                        for (_, conn_id) in kicked.iter().filter_map(|m| parse_member(m)) {
                            let kick = Kick {
                                pid,
                                uid,
                                conn_id,
                                by_refresh: true,
                            };
                            if kicks.send(kick).is_err() {
                                return false;
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        let was_up = metrics.registry_refreshed(refreshed, failures);
        if let Some(e) = first_error {
            if was_up {
                tracing::warn!(error = %e, failures, "cannot refresh this node's sessions in the Redis registry; retrying");
            }
        } else if !was_up {
            tracing::info!(
                sessions = refreshed,
                "the Redis registry is refreshed again"
            );
        }
        self.check_subscription(metrics).await;
        true
    }

    /// Makes sure this node's channel is subscribed (Redis may have restarted while the
    /// automatic resubscription could not run).
    async fn check_subscription(&self, metrics: &Metrics) {
        let mut conn = self.conn.clone();
        let numsub: Result<(String, i64), _> = bounded_redis(
            &self.url,
            self.timeout,
            redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&self.channel)
                .query_async(&mut conn),
        )
        .await;
        let subscribed = match numsub {
            Ok((_, n)) if n > 0 => true,
            Ok(_) => self.subscribe_again(metrics.subscribed()).await,
            // Redis is unreachable: the refresh already said so.
            Err(_) => false,
        };
        metrics.set_subscribed(subscribed);
    }

    /// Subscribes to this node's channel again. The first attempt may fail only because it
    /// is what makes the subscriber reconnect (which also restores the subscription), so
    /// there is a second one. `was_subscribed` decides whether a failure is news worth a
    /// warning.
    async fn subscribe_again(&self, was_subscribed: bool) -> bool {
        let mut subscriber = self.subscriber.clone();
        let mut last_error = None;
        for _ in 0..2 {
            match bounded_redis(&self.url, self.timeout, subscriber.subscribe(&self.channel)).await
            {
                Ok(()) => {
                    tracing::info!(channel = %self.channel, "subscribed again to this node's kick channel");
                    return true;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if was_subscribed {
            if let Some(e) = last_error {
                tracing::warn!(error = %e, "cannot subscribe to this node's kick channel; retrying at the next refresh");
            }
        }
        false
    }
}

/// Hands the kick messages of this node's channel to the gate, a [`Kick`] per line. Ends
/// when the gate no longer takes kicks.
async fn listen(kicks: mpsc::UnboundedSender<Kick>, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushes.recv().await {
        if push.kind != PushKind::Message {
            continue;
        }
        let payload = match push.data.get(1) {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(redis::Value::SimpleString(text)) => text.clone(),
            _ => continue,
        };
        for (pid, uid, conn_id) in parse_message(&payload) {
            let kick = Kick {
                pid,
                uid,
                conn_id,
                by_refresh: false,
            };
            if kicks.send(kick).is_err() {
                return;
            }
        }
    }
}

/// Refreshes the registry every `session_ttl / 3`. Ends when the gate no longer takes
/// kicks.
async fn refresh_loop(
    inner: Arc<Inner>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    kicks: mpsc::UnboundedSender<Kick>,
) {
    let period = (inner.session_ttl / 3).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !inner.refresh(&sessions, &metrics, &kicks).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_messages_parse() {
        let m = member("0123abcd", 42, "[::1]:5000");
        assert_eq!(m, "0123abcd|42|[::1]:5000");
        assert_eq!(parse_member(&m), Some(("0123abcd", 42)));
        assert_eq!(parse_member("n|x|ce"), None);
        assert_eq!(parse_member("n|1"), None);
        let lines: Vec<_> = parse_message("1|-2|3\nbad\n4|5|6\n").collect();
        assert_eq!(lines, [(1, -2, 3), (4, 5, 6)]);
    }

    #[test]
    fn node_ids_differ() {
        let a = new_node_id().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, new_node_id().unwrap());
    }
}
