//! [`RedisStore`]: the store of cluster mode, shared by every `rtmd` node through Redis.
//!
//! Selected with `store = "redis://host:port/db"` in the configuration. Several nodes on one
//! Redis see the same generations, devices, replay window and token keys, so a token minted
//! on one node logs in on any node, and `removetoken` on any node revokes it everywhere.
//!
//! # Key layout
//!
//! `P` is `redis.key_prefix` (default `rtm`; never contains braces). The part in braces is the
//! Redis Cluster *hash tag*: keys with the same tag live in the same slot, so each Lua script
//! below touches a single slot and the same code runs on a standalone Redis and on Redis
//! Cluster.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{P:<pid>:<uid>}:gen` | string | the user's revocation generation (absent = 0) |
//! | `{P:<pid>:<uid>}:sessions` | sorted set | live sessions: member `<node>\|<conn>\|<ce>`, score = expiry (ms, Redis clock); see [`crate::cluster`] |
//! | `{P:<pid>:<uid>}:kicked` | sorted set | sessions removed by a kickout (tombstones), score = expiry (ms) |
//! | `{P:<pid>}:dev:owner` | hash | device token → owner uid |
//! | `{P:<pid>}:dev:<uid>` | hash | device token → `<time_ms>:<seq>:<apptype>` |
//! | `{P:<pid>}:dev:seq` | string | the project's device sequence (orders devices added in the same millisecond) |
//! | `P:replay:<pid>:<FINGERPRINT>` | string, with a TTL | a server API request seen recently, by its [`Fingerprint`] in 32 upper-case hex digits (`SET NX PX`) |
//! | `P:token_keys` | hash | key id → 64 hex digits of secret (created once with `HSETNX`) |
//!
//! Pub/sub channels (not keys): `P:node:<node id>`, one per node, carry kickouts
//! ([`crate::cluster`]).
//!
//! A project's devices share one tag, so that moving a device from one user to another is
//! one atomic script; a user's generation and sessions share another. Replay keys have no
//! tag: each is touched alone, and they spread over the whole cluster.
//!
//! # Atomicity
//!
//! * `adddevice` reads the current owner, then runs a script that re-checks that owner (and
//!   retries if it changed in between), moves the device, gives it the next sequence number
//!   and drops the user's oldest devices beyond the cap, all in one step.
//! * `removedevice` is one script that removes the device only if the user owns it.
//! * `removetoken` is one `INCR`.
//!
//! # Failures
//!
//! The connection is a [`ConnectionManager`]: it reconnects by itself after Redis restarts or
//! the network breaks. Every operation is bounded by `redis.command_timeout`; past it, or
//! when Redis cannot be reached, it fails with [`StoreError::Unavailable`] naming the Redis
//! address (its password redacted). Nothing is cached in the node: an acknowledged write is
//! as durable as the Redis configuration makes it (run Redis with `appendonly yes` if a
//! revocation must survive a Redis crash).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use rtm_protocol::hex;

use super::{DeviceRecord, Result, Store, StoreError, TokenKey, FIRST_TOKEN_KEY_ID};
use crate::config::{redact_url, RedisSettings};
use crate::fingerprint::Fingerprint;

/// How often `adddevice` retries when the device's owner changed between its read and its
/// script (another node moved it at that very moment).
const ADD_DEVICE_ATTEMPTS: usize = 8;

/// The names of every key and channel, from the prefix. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The user's hash tag: `{P:pid:uid}`.
    fn user(&self, pid: i32, uid: i64) -> String {
        format!("{{{}:{pid}:{uid}}}", self.prefix)
    }

    pub(crate) fn generation(&self, pid: i32, uid: i64) -> String {
        format!("{}:gen", self.user(pid, uid))
    }

    pub(crate) fn sessions(&self, pid: i32, uid: i64) -> String {
        format!("{}:sessions", self.user(pid, uid))
    }

    pub(crate) fn kicked(&self, pid: i32, uid: i64) -> String {
        format!("{}:kicked", self.user(pid, uid))
    }

    /// The project's hash tag: `{P:pid}`.
    fn project(&self, pid: i32) -> String {
        format!("{{{}:{pid}}}", self.prefix)
    }

    fn device_owners(&self, pid: i32) -> String {
        format!("{}:dev:owner", self.project(pid))
    }

    fn user_devices(&self, pid: i32, uid: i64) -> String {
        format!("{}:dev:{uid}", self.project(pid))
    }

    fn device_seq(&self, pid: i32) -> String {
        format!("{}:dev:seq", self.project(pid))
    }

    fn replay(&self, pid: i32, fingerprint: &Fingerprint) -> String {
        format!("{}:replay:{pid}:{}", self.prefix, fingerprint.to_hex())
    }

    fn token_keys(&self) -> String {
        format!("{}:token_keys", self.prefix)
    }

    /// The pub/sub channel of a node.
    pub(crate) fn node_channel(&self, node_id: &str) -> String {
        format!("{}:node:{node_id}", self.prefix)
    }
}

/// Moves or adds a device, then applies the cap. Returns 0 when the owner is not the one the
/// caller read (the caller reads again and retries), 1 when done.
///
/// KEYS: owners hash, the new owner's devices, the project's sequence, the previous owner's
/// devices (the new owner's again when there is none).
/// ARGV: token, uid, expected previous owner ("" for none), apptype, time_ms, cap (≥ 1).
const ADD_DEVICE: &str = r#"
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then owner = '' end
if owner ~= ARGV[3] then return 0 end
if owner ~= '' and owner ~= ARGV[2] then
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5] .. ':' .. seq .. ':' .. ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cap = tonumber(ARGV[6])
local n = redis.call('HLEN', KEYS[2])
if n > cap then
  local all = redis.call('HGETALL', KEYS[2])
  local list = {}
  for i = 1, #all, 2 do
    local v = all[i + 1]
    local a = string.find(v, ':', 2, true)
    local b = string.find(v, ':', a + 1, true)
    list[#list + 1] = {tonumber(string.sub(v, 1, a - 1)), tonumber(string.sub(v, a + 1, b - 1)), all[i]}
  end
  table.sort(list, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end)
  for i = 1, n - cap do
    redis.call('HDEL', KEYS[2], list[i][3])
    redis.call('HDEL', KEYS[1], list[i][3])
  end
end
return 1
"#;

/// Removes a device if the user owns it. KEYS: owners hash, the user's devices.
/// ARGV: token, uid. Returns 1 when removed.
const REMOVE_DEVICE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#;

/// The Redis [`Store`]. See the [module documentation](self).
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
    /// The URL with its password redacted, for messages.
    url: String,
    timeout: Duration,
    closed: AtomicBool,
    add_device: Script,
    remove_device: Script,
    /// The key ring as last read, which [`Store::maintain`] keeps in Redis.
    ring: Mutex<Vec<TokenKey>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The connection settings both the store and the cluster's subscriber use: each attempt
/// and each answer bounded by `timeout`, few quick retries (the caller's own bound is what
/// counts; the next command tries again).
pub(crate) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

impl RedisStore {
    /// Connects to Redis at `url` (`redis://[user:password@]host:port/db`), waiting at most
    /// `settings.command_timeout` for the first connection.
    pub async fn connect(url: &str, settings: &RedisSettings) -> Result<RedisStore> {
        let shown = redact_url(url);
        let timeout = settings.command_timeout;
        let client = redis::Client::open(url).map_err(|e| StoreError::InvalidInput {
            what: "Redis URL",
            detail: format!("{shown}: {e} (expected redis://host:port/db)"),
        })?;
        let connect = client.get_connection_manager_with_config(manager_config(timeout));
        let conn = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(unavailable(&shown, &e)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "Redis at {shown} did not answer within {timeout:?}"
                )))
            }
        };
        Ok(RedisStore {
            conn,
            keys: Keys::new(&settings.key_prefix),
            url: shown,
            timeout,
            closed: AtomicBool::new(false),
            add_device: Script::new(ADD_DEVICE),
            remove_device: Script::new(REMOVE_DEVICE),
            ring: Mutex::new(Vec::new()),
        })
    }

    /// A handle on the store's connection (shared with the cluster layer).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The key names.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The Redis URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound of every command.
    pub fn command_timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one Redis operation, unless the store is closed, bounded by the command timeout.
    async fn run<T, F>(&self, op: impl FnOnce(ConnectionManager) -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, RedisError>>,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        bounded(&self.url, self.timeout, op(self.conn.clone())).await
    }

    /// Writes the keys of `ring` that Redis lacks (after Redis lost its data, say), so that
    /// nodes started later agree with the running ones. Returns how many were written.
    async fn restore_token_keys(&self, ring: &[TokenKey]) -> Result<usize> {
        let name = self.keys.token_keys();
        self.run(|mut c| async move {
            let mut written = 0;
            for key in ring {
                let added: bool = c.hset_nx(&name, key.id, secret_text(&key.secret)).await?;
                written += usize::from(added);
            }
            Ok(written)
        })
        .await
    }
}

/// Bounds a Redis future in time and turns its error into a [`StoreError`].
pub(crate) async fn bounded<T>(
    url: &str,
    timeout: Duration,
    op: impl Future<Output = std::result::Result<T, RedisError>>,
) -> Result<T> {
    let late =
        || StoreError::Unavailable(format!("Redis at {url} did not answer within {timeout:?}"));
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(value)) => Ok(value),
        // The connection's own response timeout, the same bound.
        Ok(Err(e)) if e.is_timeout() => Err(late()),
        Ok(Err(e)) => Err(redis_error(url, e)),
        Err(_) => Err(late()),
    }
}

/// Connection-level failures are [`StoreError::Unavailable`]; errors Redis answered are
/// [`StoreError::Backend`].
pub(crate) fn redis_error(url: &str, e: RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        unavailable(url, &e)
    } else {
        StoreError::backend("run a Redis command", e)
    }
}

fn unavailable(url: &str, e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("cannot reach Redis at {url}: {e}"))
}

/// A key's secret as Redis keeps it: 64 lower-case hex digits.
fn secret_text(secret: &[u8; 32]) -> String {
    hex::lower(secret)
}

/// Reads `<time_ms>:<seq>:<apptype>`.
fn parse_device(token: String, value: &str) -> Result<((i64, u64), DeviceRecord)> {
    let corrupt = || StoreError::Corrupt(format!("device record '{value}'"));
    let mut parts = value.splitn(3, ':');
    let time_ms: i64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(corrupt)?;
    let seq: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(corrupt)?;
    let apptype = parts.next().ok_or_else(corrupt)?;
    Ok((
        (time_ms, seq),
        DeviceRecord {
            apptype: apptype.to_owned(),
            device_token: token,
            time_ms,
        },
    ))
}

#[async_trait]
impl Store for RedisStore {
    async fn generation(&self, pid: i32, uid: i64) -> Result<u64> {
        let key = self.keys.generation(pid, uid);
        let value: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        match value {
            None => Ok(0),
            Some(text) => text
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("generation '{text}'"))),
        }
    }

    async fn bump_generation(&self, pid: i32, uid: i64) -> Result<u64> {
        let key = self.keys.generation(pid, uid);
        let bumped = self
            .run(|mut c| async move { c.incr::<_, _, i64>(key, 1).await })
            .await;
        match bumped {
            Ok(value) => {
                u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("generation {value}")))
            }
            // INCR refuses to pass i64::MAX.
            Err(StoreError::Backend { source, .. }) if source.to_string().contains("overflow") => {
                Err(StoreError::GenerationOverflow { pid, uid })
            }
            Err(e) => Err(e),
        }
    }

    async fn add_device(
        &self,
        pid: i32,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> Result<()> {
        let owners = self.keys.device_owners(pid);
        let mine = self.keys.user_devices(pid, uid);
        let seq = self.keys.device_seq(pid);
        for _ in 0..ADD_DEVICE_ATTEMPTS {
            let owner: Option<String> = self
                .run(|mut c| {
                    let owners = owners.clone();
                    async move { c.hget(owners, device_token).await }
                })
                .await?;
            let previous = match owner.as_deref().map(str::parse::<i64>) {
                Some(Ok(previous)) if previous != uid => self.keys.user_devices(pid, previous),
                Some(Err(_)) => {
                    return Err(StoreError::Corrupt(format!(
                        "owner of a device of pid {pid}: '{}'",
                        owner.unwrap_or_default()
                    )))
                }
                _ => mine.clone(),
            };
            let done: i64 = self
                .run(|mut c| {
                    let mut call = self.add_device.prepare_invoke();
                    call.key(&owners)
                        .key(&mine)
                        .key(&seq)
                        .key(&previous)
                        .arg(device_token)
                        .arg(uid)
                        .arg(owner.as_deref().unwrap_or(""))
                        .arg(apptype)
                        .arg(now_ms)
                        .arg(max_per_user.max(1));
                    async move { call.invoke_async(&mut c).await }
                })
                .await?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "device of pid {pid} kept changing owner during {ADD_DEVICE_ATTEMPTS} attempts"
        )))
    }

    async fn remove_device(&self, pid: i32, uid: i64, device_token: &str) -> Result<bool> {
        let owners = self.keys.device_owners(pid);
        let mine = self.keys.user_devices(pid, uid);
        let removed: i64 = self
            .run(|mut c| {
                let mut call = self.remove_device.prepare_invoke();
                call.key(&owners).key(&mine).arg(device_token).arg(uid);
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        Ok(removed == 1)
    }

    async fn devices(&self, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>> {
        let key = self.keys.user_devices(pid, uid);
        let all: Vec<(String, String)> = self
            .run(|mut c| async move { c.hgetall(key).await })
            .await?;
        let mut listed = all
            .into_iter()
            .map(|(token, value)| parse_device(token, &value))
            .collect::<Result<Vec<_>>>()?;
        listed.sort_unstable_by_key(|(age, _)| *age);
        Ok(listed.into_iter().map(|(_, record)| record).collect())
    }

    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            // Nothing to remember (as in the other stores); still refuse a closed store.
            return self.run(|_| async { Ok(true) }).await;
        }
        let key = self.keys.replay(pid, fingerprint);
        let set: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn token_keys(&self) -> Result<Vec<TokenKey>> {
        let name = self.keys.token_keys();
        let candidate = TokenKey::generate(FIRST_TOKEN_KEY_ID)?;
        let ring: Vec<(u8, String)> = self
            .run(|mut c| async move {
                let ring: Vec<(u8, String)> = c.hgetall(&name).await?;
                if !ring.is_empty() {
                    return Ok(ring);
                }
                // The first node to get here creates the key; everyone reads the winner.
                let _: bool = c
                    .hset_nx(&name, candidate.id, secret_text(&candidate.secret))
                    .await?;
                c.hgetall(&name).await
            })
            .await?;
        let mut keys = ring
            .into_iter()
            .map(|(id, secret)| {
                hex::decode(&secret)
                    .map(|secret| TokenKey { id, secret })
                    .ok_or_else(|| StoreError::Corrupt(format!("token key {id}")))
            })
            .collect::<Result<Vec<_>>>()?;
        keys.sort_by_key(|k| k.id);
        // Kept, so that maintenance can put the ring back if Redis loses it.
        *self.ring.lock().unwrap_or_else(PoisonError::into_inner) = keys.clone();
        Ok(keys)
    }

    /// Puts back the keys of the ring this node read that Redis lacks (Redis restarted
    /// without its data, say), so that nodes started later agree with the running ones.
    async fn maintain(&self) -> Result<()> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if ring.is_empty() {
            return Ok(());
        }
        let restored = self.restore_token_keys(&ring).await?;
        if restored > 0 {
            tracing::warn!(
                restored,
                "the token key ring was missing from Redis: put back"
            );
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_slot_where_scripts_need_it() {
        let k = Keys::new("rtm");
        assert_eq!(k.generation(5, -7), "{rtm:5:-7}:gen");
        assert_eq!(k.sessions(5, -7), "{rtm:5:-7}:sessions");
        assert_eq!(k.kicked(5, -7), "{rtm:5:-7}:kicked");
        assert_eq!(k.device_owners(5), "{rtm:5}:dev:owner");
        assert_eq!(k.user_devices(5, 9), "{rtm:5}:dev:9");
        assert_eq!(k.device_seq(5), "{rtm:5}:dev:seq");
        let fingerprint = Fingerprint::from_bytes([0xab; 16]);
        assert_eq!(
            k.replay(5, &fingerprint),
            format!("rtm:replay:5:{}", "AB".repeat(16))
        );
        assert_eq!(k.token_keys(), "rtm:token_keys");
        assert_eq!(k.node_channel("n1"), "rtm:node:n1");
    }

    #[test]
    fn hex_round_trip_and_records() {
        let secret = [0xa5u8; 32];
        assert_eq!(secret_text(&secret), "a5".repeat(32));
        assert_eq!(hex::decode(&secret_text(&secret)), Some(secret));
        let (age, record) = parse_device("t".into(), "-5:7:apns").unwrap();
        assert_eq!(age, (-5, 7));
        assert_eq!(record.apptype, "apns");
        assert!(parse_device("t".into(), "5:apns").is_err());
    }
}
