//! What the embedded store's handle and its writer thread share: the database, and the
//! state the writer publishes once a commit is durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use redb::Database;

use crate::store::{Result, StoreError, TokenKey};

/// What the store's handle and its writer share.
pub(super) struct Shared {
    /// `None` once the store is closed.
    pub(super) db: RwLock<Option<Arc<Database>>>,
    pub(super) closed: AtomicBool,
    pub(super) commits: AtomicU64,
    pub(super) committed_ops: AtomicU64,
    pub(super) devices: AtomicU64,
    pub(super) generations: RwLock<HashMap<(i32, i64), u64>>,
    pub(super) token_keys: RwLock<Vec<TokenKey>>,
}

impl Shared {
    pub(super) fn database(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Called by the writer once the batch that produced these values is durable.
    pub(super) fn apply(
        &self,
        generations: Vec<((i32, i64), u64)>,
        token_keys: Option<Vec<TokenKey>>,
    ) {
        if !generations.is_empty() {
            let mut map = self
                .generations
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            map.extend(generations);
        }
        if let Some(ring) = token_keys {
            *self
                .token_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner) = ring;
        }
    }

    /// Counts a durable commit of `ops` operations, after which `devices` are stored.
    pub(super) fn count_commit(&self, ops: usize, devices: usize) {
        self.devices.store(devices as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_ops
            .fetch_add(u64::try_from(ops).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}
