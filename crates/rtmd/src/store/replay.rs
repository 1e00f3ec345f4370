//! The replay window: server API signs seen recently, kept in memory.
//!
//! A sign is remembered until its time to live has passed, then forgotten. Each entry is a
//! 64-bit key — the sign's 16 bytes (an MD5 digest, so uniformly distributed) folded into 8,
//! with the project id folded in too — in a map (key → expiry) that answers "seen?", and
//! again in a bucket by the second in which it expires, so that purging costs only the
//! entries that did expire. Purging runs on every call, on the shard the call touches. Two
//! different signs share a key with probability 2^-64 per pair, which would refuse the later
//! one as a replay: at ten million live signs, about one call in 10^12.
//!
//! Memory is bounded by a capacity: a full window refuses new signs with
//! [`StoreError::ReplayWindowFull`] instead of forgetting one early, since forgetting would let
//! a replay through. An entry costs about 34 bytes (16 in the map at its load factor, 8 in
//! its bucket), so the default capacity, [`DEFAULT_REPLAY_CAPACITY`] (4 Mi signs), holds at
//! most about 140 MiB and, at the default 300-second window, covers some 14,000 signed calls
//! a second.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Result, StoreError};
use crate::hex::digest_from_hex;

/// How many signs the replay window of the in-process stores keeps by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 4 << 20;

/// Shards, so that concurrent calls rarely wait for each other, and so that each shard's
/// set stays small: a set that grows rehashes every sign in it under the shard's lock, and
/// the shards fill (and grow) at the same pace. With 16 shards of 64 Ki signs, those
/// pauses reached milliseconds; with 256, a tenth of that. (Allocating the sets at their
/// full size up front would avoid the pauses, but signs land at random places in them, so
/// the whole capacity soon becomes resident memory even at low call rates.)
const SHARDS: usize = 256;

/// The window's key: see the module documentation.
type Key = u64;

/// Hashes a key, which is already uniformly distributed, by moving its top byte (the
/// shard's, the same for every key of a shard) out of the bits the table uses.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_right(8)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// The signs seen recently, with their expiry.
pub(crate) struct ReplayWindow {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    capacity: usize,
    epoch: Instant,
}

#[derive(Default)]
struct Shard {
    /// Milliseconds since `epoch` at which each sign expires.
    expiry: HashMap<Key, u64, BuildHasherDefault<KeyHasher>>,
    /// Signs by the second (since `epoch`) at whose start all of them have expired.
    buckets: BTreeMap<u64, Vec<Key>>,
}

impl ReplayWindow {
    /// A window that keeps at most about `capacity` signs (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let shard_capacity = capacity.div_ceil(SHARDS).max(1);
        ReplayWindow {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_capacity,
            capacity: shard_capacity * SHARDS,
            epoch: Instant::now(),
        }
    }

    /// Records `(pid, sign)`; `true` if it was not seen within its time to live.
    pub(crate) fn check_and_record(&self, pid: i32, sign: &str, ttl: Duration) -> Result<bool> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.check_and_record_at(pid, sign, ttl, now)
    }

    /// [`check_and_record`](Self::check_and_record) at `now` (milliseconds since `epoch`).
    pub(crate) fn check_and_record_at(
        &self,
        pid: i32,
        sign: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<bool> {
        let key = key(pid, sign)?;
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expiry = now.saturating_add(ttl);

        let shard = &self.shards[(key >> 56) as usize % SHARDS];
        // A panic elsewhere cannot leave a shard half-updated in a way that matters: at worst
        // a sign is in a bucket but not in the map, and purging tolerates that.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.purge(now);

        let live = shard.expiry.get(&key).is_some_and(|&until| until > now);
        if live {
            return Ok(false);
        }
        if expiry <= now {
            // A zero time to live: nothing to remember.
            return Ok(true);
        }
        if !shard.expiry.contains_key(&key) && shard.expiry.len() >= self.shard_capacity {
            return Err(StoreError::ReplayWindowFull {
                capacity: self.capacity,
            });
        }
        shard.expiry.insert(key, expiry);
        shard
            .buckets
            .entry(expiry.div_ceil(1000))
            .or_default()
            .push(key);
        Ok(true)
    }

    /// How many signs are kept (expired ones included until purged).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expiry
                    .len()
            })
            .sum()
    }
}

impl Shard {
    /// Forgets the signs expired at `now`.
    fn purge(&mut self, now: u64) {
        while let Some(entry) = self.buckets.first_entry() {
            if entry.key().saturating_mul(1000) > now {
                break;
            }
            for key in entry.remove() {
                // The sign may have been recorded again since (after it expired), with a
                // later expiry: keep it then.
                if self.expiry.get(&key).is_some_and(|&e| e <= now) {
                    self.expiry.remove(&key);
                }
            }
        }
    }
}

/// The window's key for `(pid, sign)`: the sign decoded from hex (which also makes the
/// comparison case-insensitive), its second half mixed into all but the top byte of the
/// first, and the pid folded into the low half. The top byte, the sign's first, picks the
/// shard.
fn key(pid: i32, sign: &str) -> Result<Key> {
    let invalid = || StoreError::InvalidInput {
        what: "sign",
        detail: format!("expected 32 hex digits, got {} bytes", sign.len()),
    };
    let bytes = digest_from_hex(sign).ok_or_else(invalid)?;
    let [first, second] = [&bytes[..8], &bytes[8..]].map(|half| {
        let mut word = [0u8; 8];
        word.copy_from_slice(half);
        u64::from_be_bytes(word)
    });
    // Multiplying by an odd constant carries every bit of `second` into the bits kept after
    // the shift, so a change anywhere in the sign changes the key.
    let folded = second.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8;
    Ok(first ^ folded ^ u64::from(pid as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGN: &str = "0123456789ABCDEF0123456789abcdef";
    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn a_sign_is_new_once_per_ttl() {
        let w = ReplayWindow::new(100 * SHARDS);
        assert!(w.check_and_record_at(1, SIGN, TTL, 0).unwrap());
        assert!(!w.check_and_record_at(1, SIGN, TTL, 1).unwrap());
        assert!(!w.check_and_record_at(1, SIGN, TTL, 599_999).unwrap());
        assert!(w.check_and_record_at(1, SIGN, TTL, 600_000).unwrap());
        assert!(!w.check_and_record_at(1, SIGN, TTL, 600_001).unwrap());
    }

    #[test]
    fn case_does_not_matter_and_pids_are_apart() {
        let w = ReplayWindow::new(100 * SHARDS);
        assert!(w.check_and_record_at(1, SIGN, TTL, 0).unwrap());
        assert!(!w
            .check_and_record_at(1, &SIGN.to_lowercase(), TTL, 0)
            .unwrap());
        assert!(!w
            .check_and_record_at(1, &SIGN.to_uppercase(), TTL, 0)
            .unwrap());
        assert!(w.check_and_record_at(2, SIGN, TTL, 0).unwrap());
    }

    #[test]
    fn signs_differing_in_any_half_are_distinct() {
        let w = ReplayWindow::new(100 * SHARDS);
        let base = "00112233445566778899aabbccddeeff";
        assert!(w.check_and_record_at(1, base, TTL, 0).unwrap());
        for i in 0..32 {
            // Change one hex digit at a time: every variant is a new sign.
            let mut digits = base.as_bytes().to_vec();
            digits[i] = if digits[i] == b'0' { b'1' } else { b'0' };
            let variant = String::from_utf8(digits).unwrap();
            assert!(
                w.check_and_record_at(1, &variant, TTL, 0).unwrap(),
                "digit {i}"
            );
        }
    }

    #[test]
    fn malformed_signs_are_refused() {
        let w = ReplayWindow::new(100 * SHARDS);
        for bad in [
            "",
            "abc",
            &SIGN[..31],
            &format!("{SIGN}0"),
            &SIGN.replace('0', "g"),
        ] {
            let err = w.check_and_record_at(1, bad, TTL, 0).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidInput { what: "sign", .. }),
                "{bad}"
            );
        }
        // A multi-byte character must not be split.
        let err = w
            .check_and_record_at(1, &format!("é{}", &SIGN[..30]), TTL, 0)
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }));
    }

    #[test]
    fn expired_signs_are_purged() {
        let w = ReplayWindow::new(10_000);
        for i in 0..1000u32 {
            let sign = format!("{:02x}{i:030x}", i % 256);
            assert!(w
                .check_and_record_at(7, &sign, Duration::from_secs(1), u64::from(i))
                .unwrap());
        }
        assert_eq!(w.len(), 1000);
        // Every shard gets a call after all expired: each purges itself.
        for i in 0..256u32 {
            let sign = format!("{i:02x}{}", "f".repeat(30));
            w.check_and_record_at(8, &sign, Duration::ZERO, 10_000)
                .unwrap();
        }
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_full_window_refuses_new_signs_but_still_detects_replays() {
        let w = ReplayWindow::new(SHARDS); // one sign per shard
        let first = format!("00{}", "1".repeat(30));
        let same_shard = format!("00{}", "2".repeat(30));
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
}
