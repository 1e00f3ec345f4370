//! Who owns each device token: an in-memory index the writer keeps beside `user_devices`.
//!
//! Moving a device needs its current owner, looked up by token. A second table keyed by
//! token would answer that, but every `add_device` would then dirty a random page of it too:
//! measured, that is about 45% of the bytes a batch of adds writes, and the disk's random
//! writes are what limits durable writes per second. So the index lives in memory, rebuilt
//! from `user_devices` at open (which holds the owner in its key), and only the writer thread
//! touches it.
//!
//! Tokens are keyed by a 128-bit hash (two independently, randomly keyed SipHashes), about 40
//! bytes per device whatever the token's length: 1 million devices take some 40 MiB. The
//! index is a hint, never the truth: a remove deletes the `(pid, uid, token)` row and reports
//! what it found there, and a move deletes the row of the owner the index names. A hash
//! collision (odds of 2^-128 per pair, with keys an attacker cannot know) could at worst
//! leave a token listed under two users.
//!
//! Changes made while a batch is applied are logged, so that a batch whose commit fails can
//! be undone in memory as it is on disk.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

/// `(pid, token hash)`; two `u64`s rather than a `u128`, whose 16-byte alignment would pad
/// each entry to 48 bytes instead of 32.
type Key = (i32, [u64; 2]);

/// Token → owner, per project, with an undo log for the batch in progress.
pub(super) struct OwnerIndex {
    owners: HashMap<Key, i64>,
    hashers: [RandomState; 2],
    /// Previous values of the keys changed since the last [`commit`](Self::commit).
    undo: Vec<(Key, Option<i64>)>,
}

impl OwnerIndex {
    pub(super) fn new() -> Self {
        OwnerIndex {
            owners: HashMap::new(),
            hashers: [RandomState::new(), RandomState::new()],
            undo: Vec::new(),
        }
    }

    fn key(&self, pid: i32, token: &str) -> Key {
        let hashes = [
            self.hashers[0].hash_one(token),
            self.hashers[1].hash_one(token),
        ];
        (pid, hashes)
    }

    /// The owner of `token` in `pid`, if any.
    #[cfg(test)]
    pub(super) fn get(&self, pid: i32, token: &str) -> Option<i64> {
        self.owners.get(&self.key(pid, token)).copied()
    }

    /// Makes `uid` the owner; returns the previous one.
    pub(super) fn set(&mut self, pid: i32, token: &str, uid: i64) -> Option<i64> {
        let key = self.key(pid, token);
        let previous = self.owners.insert(key, uid);
        self.undo.push((key, previous));
        previous
    }

    /// Forgets `token`'s owner.
    pub(super) fn remove(&mut self, pid: i32, token: &str) {
        let key = self.key(pid, token);
        if let Some(previous) = self.owners.remove(&key) {
            self.undo.push((key, Some(previous)));
        }
    }

    /// The changes so far are durable: forget how to undo them.
    pub(super) fn commit(&mut self) {
        self.undo.clear();
    }

    /// Undoes the changes since the last [`commit`](Self::commit).
    pub(super) fn rollback(&mut self) {
        while let Some((key, previous)) = self.undo.pop() {
            match previous {
                Some(uid) => self.owners.insert(key, uid),
                None => self.owners.remove(&key),
            };
        }
    }

    /// How many tokens are indexed.
    pub(super) fn len(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove_and_rollback() {
        let mut index = OwnerIndex::new();
        assert_eq!(index.set(1, "a", 10), None);
        assert_eq!(index.set(2, "a", 20), None);
        index.commit();

        assert_eq!(index.set(1, "a", 11), Some(10));
        index.remove(2, "a");
        assert_eq!(index.set(1, "b", 12), None);
        assert_eq!(index.set(1, "b", 13), Some(12));
        assert_eq!(index.get(1, "a"), Some(11));
        assert_eq!(index.get(2, "a"), None);
        index.rollback();

        assert_eq!(index.get(1, "a"), Some(10));
        assert_eq!(index.get(2, "a"), Some(20));
        assert_eq!(index.get(1, "b"), None);
        assert_eq!(index.len(), 2);
    }
}
