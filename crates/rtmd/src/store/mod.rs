//! The state `rtmd` keeps, behind one trait.
//!
//! [`Store`] is what the service needs to remember: revocation generations (for
//! `removetoken`), push device tokens (`adddevice`, `removedevice`, `getdevices`), the replay
//! window of server API requests, and the key ring that MACs login tokens. Its implementations:
//!
//! * [`EmbeddedStore`], the default: one data directory, a [redb] database inside; every
//!   acknowledged write is fsynced (it survives `kill -9`) and concurrent writes share one
//!   commit;
//! * [`MemoryStore`], for tests: the same semantics, nothing kept;
//! * [`RedisStore`], for clusters: several nodes share one Redis (or Redis Cluster); its
//!   module documents the key layout.
//!
//! Every method is async and fallible, and no method assumes the data is in this process:
//! a remote store answers them with one round trip each. The trait is object safe; the
//! service holds an `Arc<dyn Store>`.
//!
//! [redb]: https://docs.rs/redb

mod embedded;
mod error;
mod memory;
pub mod redis;
mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::fingerprint::Fingerprint;

pub use embedded::{EmbeddedOptions, EmbeddedStats, EmbeddedStore, DATABASE_FILE};
pub use error::{Result, Source, StoreError};
pub use memory::MemoryStore;
pub use redis::RedisStore;
pub(crate) use redis::{bounded as bounded_redis, manager_config, Keys};
pub use replay::{
    ReplayWindow, ReplayWindowStats, DEFAULT_REPLAY_CAPACITY, MAX_REPLAY_CAPACITY, MAX_REPLAY_TTL,
};

/// The state of the service: revocation generations, devices, the replay window and the
/// token key ring.
///
/// Semantics every implementation keeps (a shared test suite checks every in-tree one):
///
/// * **Generations.** Each `(pid, uid)` has a counter, 0 until the user's tokens are first
///   revoked. [`bump_generation`](Store::bump_generation) adds one and returns the new value;
///   a token minted under an older value is revoked.
/// * **Devices.** A device token belongs to at most one user per project. Adding it for
///   another user moves it; adding it again for its owner refreshes it (its apptype and time
///   become the new ones, so it counts as the newest). A user keeps at most `max_per_user`
///   devices: the oldest are dropped. Removing checks the owner.
/// * **Replay window.** A `(pid, fingerprint)` pair is accepted once per `ttl`. A store
///   may remember it up to a second longer (the in-process window counts whole seconds),
///   never shorter.
/// * **Key ring.** Created on first use, then stable (across restarts and, for a shared store,
///   across nodes).
///
/// Writes return once they are durable (for stores that are durable at all).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The revocation generation of `(pid, uid)`: 0 when the user was never revoked.
    ///
    /// This is on the login path: implementations answer it without I/O where they can.
    async fn generation(&self, pid: i32, uid: i64) -> Result<u64>;

    /// Revokes every token `(pid, uid)` holds now (`removetoken`): adds one to its generation
    /// and returns the new value, once that value is durable.
    async fn bump_generation(&self, pid: i32, uid: i64) -> Result<u64>;

    /// Records that `device_token` (of kind `apptype`, checked by the caller) belongs to
    /// `(pid, uid)`, added at `now_ms` (Unix milliseconds).
    ///
    /// If another user of `pid` owned it, it moves to `uid`. If `uid` already owned it, its
    /// apptype and time are replaced by the new ones. If `uid` then holds more than
    /// `max_per_user` devices, the oldest are dropped (a cap of 0 counts as 1: the device just
    /// added is always kept). Returns once the change is durable.
    async fn add_device(
        &self,
        pid: i32,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> Result<()>;

    /// Removes `device_token` from `(pid, uid)` if that user owns it; does nothing otherwise.
    /// Returns whether it was removed, once the removal is durable.
    async fn remove_device(&self, pid: i32, uid: i64, device_token: &str) -> Result<bool>;

    /// The devices of `(pid, uid)`, oldest first (by time, then by order of adding).
    async fn devices(&self, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>>;

    /// Records a server API request of project `pid`, by its [`Fingerprint`] (of the
    /// request, or of its sign alone, as the project's replay mode chooses), and tells
    /// whether it is new: `true` the first time, `false` when the same fingerprint was
    /// recorded less than `ttl` ago (a replay).
    ///
    /// Call it only after the sign was verified, so that forged requests cannot fill the
    /// window.
    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool>;

    /// The keys that MAC login tokens, creating the first one (32 random bytes, id 1) if the
    /// store has none. Every caller, on every node and after every restart, sees the same
    /// keys.
    async fn token_keys(&self) -> Result<Vec<TokenKey>>;

    /// How full the store's in-process replay window is, for metrics; `None` for a store
    /// that keeps the window elsewhere (Redis).
    fn replay_window(&self) -> Option<ReplayWindowStats> {
        None
    }

    /// Checks that the store can serve requests (for health checks).
    async fn ping(&self) -> Result<()>;

    /// Finishes the writes already submitted and stops the store; later calls fail with
    /// [`StoreError::Closed`]. Calling it again does nothing.
    async fn close(&self) -> Result<()>;
}

/// One device token of a user, as [`Store::devices`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRecord {
    /// The push service kind, e.g. `apns` or `fcm`, as the service recorded it.
    pub apptype: String,
    /// The device token.
    pub device_token: String,
    /// When it was added (Unix milliseconds, as given to [`Store::add_device`]).
    pub time_ms: i64,
}

/// A key that MACs login tokens.
///
/// Its `Debug` output hides the secret, so that logging a key ring leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey {
    /// Key id, carried in tokens so that a verifier picks the right key.
    pub id: u8,
    /// The secret.
    pub secret: [u8; 32],
}

impl TokenKey {
    /// A new key with 32 bytes from the operating system's random source.
    pub fn generate(id: u8) -> Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| StoreError::backend("read random bytes", e))?;
        Ok(TokenKey { id, secret })
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The id of the key [`Store::token_keys`] creates in an empty store.
pub const FIRST_TOKEN_KEY_ID: u8 = 1;
