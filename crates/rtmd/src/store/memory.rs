//! [`MemoryStore`]: the store's semantics with nothing kept, for tests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::replay::{ReplayWindow, ReplayWindowStats, DEFAULT_REPLAY_CAPACITY};
use super::{DeviceRecord, Result, Store, StoreError, TokenKey, FIRST_TOKEN_KEY_ID};
use crate::fingerprint::Fingerprint;

/// A [`Store`] in this process's memory: everything is lost when it is dropped.
///
/// For unit tests of the service, and as the reference the other stores are tested against.
pub struct MemoryStore {
    state: Mutex<State>,
    replay: ReplayWindow,
}

#[derive(Default)]
struct State {
    closed: bool,
    generations: HashMap<(i32, i64), u64>,
    /// `(pid, device token)` → owner uid.
    owners: HashMap<(i32, String), i64>,
    /// `(pid, uid)` → devices, oldest first.
    users: HashMap<(i32, i64), Vec<Device>>,
    /// Breaks ties between devices added in the same millisecond.
    next_seq: u64,
    keys: Vec<TokenKey>,
}

struct Device {
    record: DeviceRecord,
    seq: u64,
}

impl Device {
    fn age_key(&self) -> (i64, u64) {
        (self.record.time_ms, self.seq)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_replay_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// An empty store whose replay window keeps at most `capacity` requests.
    pub fn with_replay_capacity(capacity: usize) -> Self {
        MemoryStore {
            state: Mutex::default(),
            replay: ReplayWindow::new(capacity),
        }
    }

    /// The state, unless the store is closed.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        // Every update below leaves the maps consistent before it can panic, so a poisoned
        // lock still guards valid data.
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(StoreError::Closed);
        }
        Ok(state)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// Takes `token` away from `(pid, uid)`'s list.
    fn unlist(&mut self, pid: i32, uid: i64, token: &str) {
        if let Some(list) = self.users.get_mut(&(pid, uid)) {
            list.retain(|d| d.record.device_token != token);
            if list.is_empty() {
                self.users.remove(&(pid, uid));
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn generation(&self, pid: i32, uid: i64) -> Result<u64> {
        Ok(self
            .state()?
            .generations
            .get(&(pid, uid))
            .copied()
            .unwrap_or(0))
    }

    async fn bump_generation(&self, pid: i32, uid: i64) -> Result<u64> {
        let mut state = self.state()?;
        let generation = state.generations.entry((pid, uid)).or_insert(0);
        *generation = generation
            .checked_add(1)
            .ok_or(StoreError::GenerationOverflow { pid, uid })?;
        Ok(*generation)
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
        let mut state = self.state()?;
        let previous = state.owners.insert((pid, device_token.to_owned()), uid);
        if let Some(owner) = previous {
            state.unlist(pid, owner, device_token);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let list = state.users.entry((pid, uid)).or_default();
        let device = Device {
            record: DeviceRecord {
                apptype: apptype.to_owned(),
                device_token: device_token.to_owned(),
                time_ms: now_ms,
            },
            seq,
        };
        let at = list.partition_point(|d| d.age_key() <= device.age_key());
        list.insert(at, device);

        let excess = list.len().saturating_sub(max_per_user.max(1));
        let dropped: Vec<Device> = list.drain(..excess).collect();
        for device in dropped {
            state.owners.remove(&(pid, device.record.device_token));
        }
        Ok(())
    }

    async fn remove_device(&self, pid: i32, uid: i64, device_token: &str) -> Result<bool> {
        let mut state = self.state()?;
        let key = (pid, device_token.to_owned());
        if state.owners.get(&key) != Some(&uid) {
            return Ok(false);
        }
        state.owners.remove(&key);
        state.unlist(pid, uid, device_token);
        Ok(true)
    }

    async fn devices(&self, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>> {
        let state = self.state()?;
        Ok(state
            .users
            .get(&(pid, uid))
            .map(|list| list.iter().map(|d| d.record.clone()).collect())
            .unwrap_or_default())
    }

    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool> {
        drop(self.state()?);
        self.replay.check_and_record(pid, fingerprint, ttl)
    }

    fn replay_window(&self) -> Option<ReplayWindowStats> {
        Some(self.replay.stats())
    }

    async fn token_keys(&self) -> Result<Vec<TokenKey>> {
        let mut state = self.state()?;
        if state.keys.is_empty() {
            state.keys.push(TokenKey::generate(FIRST_TOKEN_KEY_ID)?);
        }
        Ok(state.keys.clone())
    }

    async fn ping(&self) -> Result<()> {
        self.state().map(drop)
    }

    async fn close(&self) -> Result<()> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        Ok(())
    }
}
