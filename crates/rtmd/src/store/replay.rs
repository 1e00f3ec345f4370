//! The replay window: server API requests seen recently, kept in memory.
//!
//! A request is remembered until its time to live has passed, then forgotten. Each entry is
//! a 64-bit key — the request's [`Fingerprint`] (16 uniformly distributed bytes) folded into
//! 8, with the project id folded in too — in a table (key → expiry) that answers "seen?",
//! and again in a bucket by the second in which it expires, so that purging costs only the
//! entries that did expire. Purging runs on every call, on the shard the call touches. Two
//! different requests share a key with probability 2^-64 per pair, which would refuse the
//! later one as a replay: with `N` live entries, `N / 2^64` per call (at the default
//! capacity of 4 Mi, 2^-42, about one call in 4 × 10^12).
//!
//! The table is far larger than the CPU's caches and entries land in it at random, so each
//! call's lookup is a cache miss, and that miss is most of what the window costs. Its slots
//! hold the key and the expiry side by side ([`EntryTable`]): the lookup and the insert that
//! follows touch one cache line.
//!
//! Memory is bounded by a capacity: a full window refuses new requests with
//! [`StoreError::ReplayWindowFull`] instead of forgetting one early, since forgetting would let
//! a replay through. An entry costs about 35 bytes (a 16-byte slot in a table filled to
//! between 3/8 and 3/4, 8 in its bucket), so the default capacity, [`DEFAULT_REPLAY_CAPACITY`]
//! (4 Mi requests), holds at most about 200 MiB and, at the default 300-second window, covers
//! some 14,000 signed calls a second.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Result, StoreError};
use crate::fingerprint::Fingerprint;

/// How many requests the replay window of the in-process stores keeps by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 4 << 20;

/// Shards, so that concurrent calls rarely wait for each other, and so that each shard's
/// table stays small: a table that grows rehashes every entry in it under the shard's lock,
/// and the shards fill (and grow) at the same pace. With 16 shards of 64 Ki entries, those
/// pauses reached milliseconds; with 256, a tenth of that. (Allocating the tables at their
/// full size up front would avoid the pauses, but entries land at random places in them, so
/// the whole capacity soon becomes resident memory even at low call rates.)
const SHARDS: usize = 256;

/// The window's key: see the module documentation.
type Key = u64;

/// The requests seen recently, with their expiry.
pub(crate) struct ReplayWindow {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    capacity: usize,
    epoch: Instant,
}

#[derive(Default)]
struct Shard {
    /// The expiry of each request.
    table: EntryTable,
    /// Signs by the second (since `epoch`) at whose start all of them have expired.
    buckets: BTreeMap<u64, Vec<Key>>,
}

impl ReplayWindow {
    /// A window that keeps at most about `capacity` requests (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let shard_capacity = capacity.div_ceil(SHARDS).max(1);
        ReplayWindow {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_capacity,
            capacity: shard_capacity * SHARDS,
            epoch: Instant::now(),
        }
    }

    /// Records `(pid, fingerprint)`; `true` if it was not seen within its time to live.
    pub(crate) fn check_and_record(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.check_and_record_at(pid, fingerprint, ttl, now)
    }

    /// [`check_and_record`](Self::check_and_record) at `now` (milliseconds since `epoch`).
    pub(crate) fn check_and_record_at(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: u64,
    ) -> Result<bool> {
        let key = key(pid, fingerprint);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expiry = now.saturating_add(ttl);

        let shard = &self.shards[(key >> 56) as usize % SHARDS];
        // A panic elsewhere cannot leave a shard half-updated in a way that matters: at worst
        // an entry is in a bucket but not in the table, and purging tolerates that.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.purge(now);

        let found = shard.table.find(key);
        if let Ok(at) = found {
            if shard.table.expiry_at(at) > now {
                return Ok(false);
            }
        }
        if expiry <= now {
            // A zero time to live: nothing to remember.
            return Ok(true);
        }
        match found {
            // Expired but not purged yet: remembered again, with the new expiry.
            Ok(at) => shard.table.set_expiry_at(at, expiry),
            Err(_) if shard.table.len() >= self.shard_capacity => {
                return Err(StoreError::ReplayWindowFull {
                    capacity: self.capacity,
                })
            }
            Err(empty) => shard.table.insert_at(empty, key, expiry),
        }
        shard
            .buckets
            .entry(expiry.div_ceil(1000))
            .or_default()
            .push(key);
        Ok(true)
    }

    /// How many requests are kept (expired ones included until purged).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).table.len())
            .sum()
    }
}

impl Shard {
    /// Forgets the requests expired at `now`.
    fn purge(&mut self, now: u64) {
        while let Some(entry) = self.buckets.first_entry() {
            if entry.key().saturating_mul(1000) > now {
                break;
            }
            for key in entry.remove() {
                // The request may have been recorded again since (after it expired), with a
                // later expiry: keep it then.
                if let Ok(at) = self.table.find(key) {
                    if self.table.expiry_at(at) <= now {
                        self.table.remove_at(at);
                    }
                }
            }
        }
    }
}

/// A hash table from key to expiry, with open addressing and linear probing: a key lives in
/// the first free slot at or after its home slot (taken from the key's low bits, which are
/// uniformly distributed), and a lookup reads slots from the home on until it finds the key
/// or a free slot. Each slot holds the key and its expiry together, 16 bytes, four to a
/// cache line, so a lookup and the insert after it mostly touch one line.
///
/// It is kept between 3/8 and 3/4 full (then a lookup of an absent key reads about 8.5
/// slots at worst, 2.5 on average); it starts small and doubles.
#[derive(Default)]
struct EntryTable {
    /// A power of two in length (or empty).
    slots: Vec<Slot>,
    len: usize,
}

/// A slot of a [`EntryTable`]: free while its expiry is 0 (an expiry is always after the
/// time it was recorded at, so never 0).
#[derive(Clone, Copy, Default)]
struct Slot {
    key: Key,
    expiry: u64,
}

impl Slot {
    fn is_free(&self) -> bool {
        self.expiry == 0
    }
}

/// The size of a table's first allocation.
const FIRST_SLOTS: usize = 16;

impl EntryTable {
    fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where the search for `key` starts.
    fn home(&self, key: Key) -> usize {
        key as usize & self.mask()
    }

    /// The slot holding `key`, or else the free slot where it would go.
    fn find(&self, key: Key) -> std::result::Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let mut at = self.home(key);
        loop {
            let slot = &self.slots[at];
            if slot.is_free() {
                return Err(at);
            }
            if slot.key == key {
                return Ok(at);
            }
            at = (at + 1) & self.mask();
        }
    }

    fn expiry_at(&self, at: usize) -> u64 {
        self.slots[at].expiry
    }

    fn set_expiry_at(&mut self, at: usize, expiry: u64) {
        self.slots[at].expiry = expiry;
    }

    /// Adds `key` at `at`, the free slot [`find`](Self::find) gave for it (growing the table
    /// first when it is getting full, which moves the key's place).
    fn insert_at(&mut self, at: usize, key: Key, expiry: u64) {
        debug_assert!(expiry != 0, "an expiry of 0 marks a free slot");
        let at = if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
            self.find(key).expect_err("a key is inserted once")
        } else {
            at
        };
        self.slots[at] = Slot { key, expiry };
        self.len += 1;
    }

    /// Frees the slot at `at`, then moves later keys of the same run back into the hole
    /// where their search would otherwise stop early (deletion without tombstones).
    fn remove_at(&mut self, at: usize) {
        let mask = self.mask();
        let mut hole = at;
        let mut next = (hole + 1) & mask;
        loop {
            let slot = self.slots[next];
            if slot.is_free() {
                break;
            }
            // The key at `next` may fill the hole if its search passes the hole on its way:
            // if the hole is no further from its home than `next` is.
            let from_home = next.wrapping_sub(self.home(slot.key)) & mask;
            let from_hole = next.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = slot;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    /// Doubles the table, placing every key anew.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        for slot in old.into_iter().filter(|s| !s.is_free()) {
            let at = self.find(slot.key).expect_err("keys are distinct");
            self.slots[at] = slot;
        }
    }
}

/// The window's key for `(pid, fingerprint)`: the fingerprint's second half mixed into all
/// but the top byte of its first, and the pid folded into the low half. The top byte, the
/// fingerprint's first, picks the shard.
fn key(pid: i32, fingerprint: &Fingerprint) -> Key {
    let bytes = fingerprint.as_bytes();
    let [first, second] = [&bytes[..8], &bytes[8..]].map(|half| {
        let mut word = [0u8; 8];
        word.copy_from_slice(half);
        u64::from_be_bytes(word)
    });
    // Multiplying by an odd constant carries every bit of `second` into the bits kept after
    // the shift, so a change anywhere in the fingerprint changes the key.
    let folded = second.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8;
    first ^ folded ^ u64::from(pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    /// A fingerprint whose first byte (the shard) is `shard` and the rest from `n`.
    fn fp(shard: u8, n: u64) -> Fingerprint {
        let mut bytes = [0u8; 16];
        bytes[0] = shard;
        bytes[8..].copy_from_slice(&n.to_le_bytes());
        Fingerprint::from_bytes(bytes)
    }

    #[test]
    fn a_request_is_new_once_per_ttl() {
        let w = ReplayWindow::new(100 * SHARDS);
        let f = fp(1, 2);
        assert!(w.check_and_record_at(1, &f, TTL, 0).unwrap());
        assert!(!w.check_and_record_at(1, &f, TTL, 1).unwrap());
        assert!(!w.check_and_record_at(1, &f, TTL, 599_999).unwrap());
        assert!(w.check_and_record_at(1, &f, TTL, 600_000).unwrap());
        assert!(!w.check_and_record_at(1, &f, TTL, 600_001).unwrap());
        // Projects are apart.
        assert!(w.check_and_record_at(2, &f, TTL, 600_001).unwrap());
    }

    #[test]
    fn fingerprints_differing_in_any_bit_are_distinct() {
        let base: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        for bit in 0..128 {
            let w = ReplayWindow::new(100 * SHARDS);
            assert!(w
                .check_and_record_at(1, &Fingerprint::from_bytes(base), TTL, 0)
                .unwrap());
            let mut variant = base;
            variant[bit / 8] ^= 1 << (bit % 8);
            assert!(
                w.check_and_record_at(1, &Fingerprint::from_bytes(variant), TTL, 0)
                    .unwrap(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn expired_requests_are_purged() {
        let w = ReplayWindow::new(10_000);
        for i in 0..1000u32 {
            assert!(w
                .check_and_record_at(
                    7,
                    &fp((i % 256) as u8, u64::from(i)),
                    Duration::from_secs(1),
                    u64::from(i)
                )
                .unwrap());
        }
        assert_eq!(w.len(), 1000);
        // Every shard gets a call after all expired: each purges itself.
        for i in 0..=255u8 {
            w.check_and_record_at(8, &fp(i, u64::MAX), Duration::ZERO, 10_000)
                .unwrap();
        }
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_full_window_refuses_new_requests_but_still_detects_replays() {
        let w = ReplayWindow::new(SHARDS); // one request per shard
        let (first, same_shard) = (fp(0, 1), fp(0, 2));
        assert!(w.check_and_record_at(1, &first, TTL, 0).unwrap());
        let err = w.check_and_record_at(1, &same_shard, TTL, 0).unwrap_err();
        assert!(matches!(
            err,
            StoreError::ReplayWindowFull { capacity: 256 }
        ));
        assert!(!w.check_and_record_at(1, &first, TTL, 1).unwrap());
        // Once the first expires there is room again.
        assert!(w.check_and_record_at(1, &same_shard, TTL, 600_000).unwrap());
    }

    #[test]
    fn the_table_keeps_every_key_through_growth_and_removals() {
        let mut table = EntryTable::default();
        // Keys crowded on few home slots, so that runs wrap around and overlap.
        let keys: Vec<Key> = (0..3000u64)
            .map(|i| (i % 7) | (i << 20) | (i.wrapping_mul(0x9e37_79b9) << 40))
            .collect();
        for (i, &key) in keys.iter().enumerate() {
            let at = table.find(key).unwrap_err();
            table.insert_at(at, key, i as u64 + 1);
        }
        assert_eq!(table.len(), keys.len());
        assert!(table.len() * 4 <= table.slots.len() * 3);
        // Remove every other key; the rest must still be found, with their expiry.
        for &key in keys.iter().step_by(2) {
            let at = table.find(key).unwrap();
            table.remove_at(at);
        }
        assert_eq!(table.len(), keys.len() / 2);
        for (i, &key) in keys.iter().enumerate() {
            match table.find(key) {
                Ok(at) => {
                    assert!(i % 2 == 1, "key {i} was removed");
                    assert_eq!(table.expiry_at(at), i as u64 + 1);
                }
                Err(_) => assert!(i % 2 == 0, "key {i} was lost"),
            }
        }
        for &key in keys.iter().skip(1).step_by(2) {
            table.remove_at(table.find(key).unwrap());
        }
        assert_eq!(table.len(), 0);
        assert!(table.slots.iter().all(Slot::is_free));
    }
}
