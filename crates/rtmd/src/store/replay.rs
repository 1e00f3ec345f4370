//! The replay window: server API signs seen recently, kept in memory.
//!
//! A sign is remembered until its time to live has passed, then forgotten. Entries are
//! filed twice: in a map (sign → expiry) that answers "seen?", and in buckets by the second in
//! which they expire, so that purging costs only the entries that did expire. Purging runs
//! on every call, on the shard the call touches.
//!
//! Memory is bounded by a capacity: a full window refuses new signs with
//! [`StoreError::ReplayWindowFull`] instead of forgetting one early, since forgetting would let
//! a replay through. One entry costs about 60 bytes (20-byte key and expiry in the map, the
//! key again in its bucket), so the default capacity, [`DEFAULT_REPLAY_CAPACITY`], holds at
//! most about 64 MiB; at a 600-second window it covers some 1,700 signed calls a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Result, StoreError};

/// How many signs the replay window of the in-process stores keeps by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 20;

/// Shards, so that concurrent calls rarely wait for each other, and so that each shard's
/// map stays small: a map that grows rehashes every sign in it under the shard's lock, and
/// the shards fill (and grow) at the same pace. With 16 shards of 64 Ki signs, those
/// pauses reached milliseconds; with 256, a tenth of that. (Allocating the maps at their
/// full size up front would avoid the pauses, but signs land at random places in them, so
/// the whole capacity soon becomes resident memory even at low call rates.)
const SHARDS: usize = 256;

/// `pid` (4 bytes, big endian) then the sign's 16 bytes.
type Key = [u8; 20];

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
    expiry: HashMap<Key, u64>,
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

        let shard = &self.shards[usize::from(key[4]) % SHARDS];
        // A panic elsewhere cannot leave a shard half-updated in a way that matters: at worst
        // a sign is in a bucket but not in the map, and purging tolerates that.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.purge(now);

        if let Some(&seen_until) = shard.expiry.get(&key) {
            if seen_until > now {
                return Ok(false);
            }
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

/// The window's key for `(pid, sign)`: the sign is decoded from hex, which also makes the
/// comparison case-insensitive.
fn key(pid: i32, sign: &str) -> Result<Key> {
    let invalid = || StoreError::InvalidInput {
        what: "sign",
        detail: format!("expected 32 hex digits, got {} bytes", sign.len()),
    };
    let digits = sign.as_bytes();
    if digits.len() != 32 {
        return Err(invalid());
    }
    let mut key = [0u8; 20];
    key[..4].copy_from_slice(&pid.to_be_bytes());
    for (byte, pair) in key[4..].iter_mut().zip(digits.chunks_exact(2)) {
        let hi = hex_value(pair[0]).ok_or_else(invalid)?;
        let lo = hex_value(pair[1]).ok_or_else(invalid)?;
        *byte = hi << 4 | lo;
    }
    Ok(key)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
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
