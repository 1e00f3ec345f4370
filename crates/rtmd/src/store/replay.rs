//! The replay window of the in-process stores: the server API requests seen recently, each
//! remembered until its time to live has passed.
//!
//! # Layout
//!
//! One preallocated table of 64-byte buckets, each a cache line: a header word and seven
//! slots. A slot is one `u64`: the request's **expiry second** (24 bits, the window's own
//! seconds modulo 2^24) and a 40-bit **remainder** of its key. A request's key comes from its
//! [`Fingerprint`] (16 uniformly distributed bytes) and the project id: the first 8 bytes
//! choose a shard and a home bucket, and all 16 bytes and the pid are folded into the
//! remainder. A slot whose expiry second has come is free again; nothing is ever deleted or
//! moved. A request whose home bucket has no free slot goes to the next bucket with one, and
//! every bucket it passes records in its header the latest expiry of such an overflow, so
//! that a lookup goes on to the next bucket only while an entry that passed through may
//! still be alive. A call reads its home bucket — one cache line, one cache miss — and the
//! next ones (adjacent lines) only when an overflow passed through: 1.55 buckets on average
//! at the 3/4 fill the table is sized for, 1.25 at 90 % of the capacity.
//!
//! The expiries are whole seconds: a request recorded at `now` with time to live `ttl` is
//! remembered until the first whole second (of the window's clock) at or after `now + ttl`,
//! never less than `ttl`, at most one second more. Forgetting is lazy: an entry is forgotten
//! when its second comes, by the comparison that reads it. What does cost per second is
//! counting: each shard keeps how many of its entries expire in each coming second (the
//! time-bucketed generations), so that it knows its live entries exactly when a second
//! turns over, without reading the table.
//!
//! Expiry seconds are kept modulo 2^24 (194 days), so an entry left in a slot for longer
//! would look alive again. Each shard therefore sweeps its buckets (zeroing the expired
//! slots) a few at a time as its clock advances, the whole shard at least once every
//! 2^23 seconds, and clears itself whole when it has been idle longer than the longest time
//! to live: no slot is ever read more than `2^23 + 2 × MAX_TTL` seconds after it expired,
//! far less than 2^24. The sweep costs one bucket per shard every 2^22 / `buckets` seconds:
//! nothing.
//!
//! # Capacity and memory
//!
//! `capacity` requests may be alive at once, exactly: the window counts its live entries,
//! and a request that would exceed the count is refused with
//! [`StoreError::ReplayWindowFull`] instead of forgetting an entry early (which would let a
//! replay through). Every refusal is counted, and a warning is logged at most once every 10
//! seconds.
//!
//! The table has room for `capacity` at 3/4 of its slots: `ceil(capacity × 4 / 21)`
//! buckets of 64 bytes, about **12.2 bytes a request**, allocated zeroed up front (the
//! system maps its pages as they are first written: requests land at random, so the whole
//! table becomes resident after a few seconds at a high rate, and only slowly at a low
//! one). At the default capacity, [`DEFAULT_REPLAY_CAPACITY`] (16 Mi requests), that is
//! 195 MiB. A request is kept for `ts + sign_window − now + 1` seconds (the signature check
//! computes it), rounded up to the window's next whole second: a caller whose clock agrees
//! with the server's is remembered for at most `sign_window + 2` seconds, so the default
//! capacity sustains `16 Mi / 302 s` ≈ **55,500 signed calls a second** at the default
//! 300-second window (half of it for callers whose clocks run the full window ahead).
//!
//! The table is split into up to 256 shards, each behind its own lock, so that concurrent
//! calls rarely wait for each other; a shard owns a contiguous part of the table and its
//! overflows stay inside it. Shards have at least 2^16 requests' worth of room each (a window
//! smaller than 2^17 has a single shard), so that a shard cannot fill before the whole
//! window: keys spread over the shards binomially, and the spare third of a shard's room
//! is more than 85 standard deviations of its share. (Should a shard's part of the table fill all the same, its
//! requests are refused like those of a full window: never forgotten early.)
//!
//! # False refusals
//!
//! A distinct request is refused as a replay only when a live entry in a bucket its lookup
//! reads has the same 40-bit remainder. The remainders are uniformly distributed and
//! independent of the home bucket, so for a lookup that reads `k` live slots the
//! probability is `k / 2^40`. A lookup reads its home bucket's 7 slots, and the next
//! bucket's 7 only while an overflow passed: with the table filled to its capacity (3/4 of
//! its slots: the most it ever holds), a lookup reads 1.55 buckets on average (measured in
//! the tests, which check fewer than 12 slots), so:
//!
//! `P(false refusal per call) ≤ 12 / 2^40 ≈ 1.1 × 10^-11`, one call in 90 billion,
//!
//! at any rate and for any duration the configuration allows: the bound depends only on
//! how full the table is, and it is never fuller than its capacity (a full window refuses
//! instead). At 50,000 calls a second that is one wrong 200006 every 21 days. The
//! two other ways are smaller still: two requests with the same 128-bit fingerprint
//! (2^-128 per pair) and the remainder 0, which marks a free slot and is stored as
//! `2^40 − 1` (2^-40 per pair of requests in the same bucket: already counted above).
//! A refusal of that kind is a 200006 for a request never seen; the caller re-signs
//! (a new salt makes a new request) and is answered.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Result, StoreError};
use crate::fingerprint::Fingerprint;

/// How many requests the replay window of the in-process stores keeps by default: 16 Mi,
/// about 55,500 signed calls a second at the default 300-second `sign_window`, in 195 MiB.
pub const DEFAULT_REPLAY_CAPACITY: usize = 16 << 20;

/// The largest capacity a window takes (its counters are 32-bit): 4 Gi − 1 requests, 49 GiB.
pub const MAX_REPLAY_CAPACITY: usize = u32::MAX as usize;

/// The longest time to live the window remembers a request for: twice the longest
/// `sign_window` a project may have (1 hour), plus the second the signature check adds.
pub const MAX_REPLAY_TTL: Duration = Duration::from_secs(MAX_TTL_SECS);

const MAX_TTL_SECS: u64 = 2 * 3600 + 1;

/// The furthest an expiry second lies ahead of the shard's clock: a time to live of
/// [`MAX_REPLAY_TTL`] rounded up to the next whole second.
const HORIZON: u64 = MAX_TTL_SECS + 1;

/// Slots in a bucket; the bucket's first word is its header.
const SLOTS: usize = 7;
/// Words in a bucket: 64 bytes.
const WORDS: usize = SLOTS + 1;
/// The bytes of a bucket.
const BUCKET_BYTES: usize = WORDS * 8;

/// Bits of a slot that hold the expiry second.
const TAG_BITS: u32 = 24;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Bits of a slot that hold the remainder of the key.
const REM_BITS: u32 = 64 - TAG_BITS;
const REM_MASK: u64 = (1 << REM_BITS) - 1;

/// A shard's sweep passes over all its buckets once per this many seconds.
const SWEEP_PERIOD: u64 = 1 << 22;

/// At most this many shards.
const MAX_SHARDS: usize = 256;
/// Every shard has room for at least this many requests (see the module documentation).
const MIN_SHARD_CAPACITY: usize = 1 << 16;

/// How often a full window says so in the log, at most.
const WARN_EVERY_SECS: u64 = 10;

/// The requests seen recently, with their expiry: see the [module documentation](self).
pub struct ReplayWindow {
    shards: Box<[Mutex<Shard>]>,
    /// log2 of the number of shards.
    shard_bits: u32,
    /// Buckets in each shard.
    buckets: usize,
    capacity: usize,
    /// Live entries, as counted by the shards when they last advanced, plus reservations of
    /// calls under way: never fewer than the live entries.
    live: AtomicUsize,
    /// One more than the last second at which every shard was advanced at once.
    settled: AtomicU64,
    /// Calls refused because the window was full.
    refused: AtomicU64,
    /// No warning about a full window before this second.
    quiet_until: AtomicU64,
    epoch: Instant,
}

/// How full a [`ReplayWindow`] is, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindowStats {
    /// Requests remembered now.
    pub entries: usize,
    /// Requests it remembers at most (`limits.replay_capacity`).
    pub capacity: usize,
    /// The bytes of its table.
    pub memory_bytes: usize,
    /// Calls refused so far because it was full.
    pub refused: u64,
}

impl ReplayWindow {
    /// A window that keeps at most `capacity` requests (at least 1, at most
    /// [`MAX_REPLAY_CAPACITY`]).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_REPLAY_CAPACITY);
        let (shard_bits, buckets) = shape(capacity);
        ReplayWindow {
            shards: (0..1usize << shard_bits)
                .map(|_| Mutex::new(Shard::new(buckets)))
                .collect(),
            shard_bits,
            buckets,
            capacity,
            live: AtomicUsize::new(0),
            settled: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            quiet_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// How many requests it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes of a window of `capacity` requests.
    pub fn memory_for(capacity: usize) -> usize {
        let (shard_bits, buckets) = shape(capacity.clamp(1, MAX_REPLAY_CAPACITY));
        (buckets << shard_bits) * BUCKET_BYTES
    }

    /// Records `(pid, fingerprint)`, now; `true` if it was not seen within its time to live.
    pub fn check_and_record(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool> {
        self.check_and_record_at(pid, fingerprint, ttl, self.now_ms())
    }

    /// [`check_and_record`](Self::check_and_record) at `now` (milliseconds of the window's
    /// clock, which starts at 0 when it is made).
    ///
    /// `true` when no request with the same key was recorded at a time whose `ttl` has not
    /// run out: the request is then remembered until the first whole second at or after
    /// `now + ttl` (nothing is remembered for a `ttl` of zero). `false` for a replay. Fails
    /// with [`StoreError::ReplayWindowFull`] when `capacity` requests are remembered, and
    /// with [`StoreError::InvalidInput`] for a `ttl` over [`MAX_REPLAY_TTL`]. A `now`
    /// earlier than one already seen counts as the later one.
    pub fn check_and_record_at(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: u64,
    ) -> Result<bool> {
        if ttl > MAX_REPLAY_TTL {
            return Err(StoreError::InvalidInput {
                what: "replay window time to live",
                detail: format!(
                    "{ttl:?} is longer than the window keeps requests ({MAX_REPLAY_TTL:?})"
                ),
            });
        }
        let (place, rem) = key(pid, fingerprint);
        let (shard_at, home) = self.locate(place);
        let mut settled_once = false;
        loop {
            let mut shard = self.lock(shard_at);
            let now = now.max(shard.now_s.saturating_mul(1000));
            let now_s = now / 1000;
            self.advance(&mut shard, now_s);
            let free = match shard.find(home, rem) {
                Lookup::Found => return Ok(false),
                Lookup::Absent { free } => free,
            };
            if ttl.is_zero() {
                return Ok(true);
            }
            // Whole seconds, rounded up: never less than `ttl`. `ttl` is at most
            // MAX_REPLAY_TTL, so this is at most HORIZON seconds ahead.
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let expiry = now.saturating_add(ttl_ms).div_ceil(1000).max(now_s + 1);

            if self.live.fetch_add(1, Ordering::AcqRel) >= self.capacity {
                self.live.fetch_sub(1, Ordering::AcqRel);
                drop(shard);
                // The count may still hold entries of shards that have not advanced since
                // they expired: count again, at most once a second (entries expire only
                // when a second turns over), and retry.
                if !settled_once && self.settle_once(now_s) {
                    settled_once = true;
                    continue;
                }
                return Err(self.full(now_s));
            }
            if !shard.insert(home, rem, expiry, free) {
                self.live.fetch_sub(1, Ordering::AcqRel);
                drop(shard);
                return Err(self.full(now_s));
            }
            return Ok(true);
        }
    }

    /// How full it is now: every shard is brought to the present first, so the count is
    /// exact.
    pub fn stats(&self) -> ReplayWindowStats {
        self.stats_at(self.now_ms())
    }

    /// [`stats`](Self::stats) at `now` (milliseconds of the window's clock).
    pub fn stats_at(&self, now: u64) -> ReplayWindowStats {
        self.settle(now / 1000);
        ReplayWindowStats {
            entries: self.live.load(Ordering::Acquire),
            capacity: self.capacity,
            memory_bytes: (self.buckets << self.shard_bits) * BUCKET_BYTES,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // A panic cannot leave a shard in a state that matters: a slot is written in one
        // store, and a count out of step only makes the window refuse sooner.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard and the home bucket of a key's first half: its top bits pick the shard,
    /// the rest, as a fraction, the bucket.
    fn locate(&self, place: u64) -> (usize, usize) {
        let shard = place.checked_shr(64 - self.shard_bits).unwrap_or(0) as usize;
        let fraction = place << self.shard_bits;
        let home = ((u128::from(fraction) * self.buckets as u128) >> 64) as usize;
        (shard, home)
    }

    /// Brings `shard` to second `now_s`, taking the entries that expired off the count.
    fn advance(&self, shard: &mut Shard, now_s: u64) {
        let expired = shard.advance(now_s);
        if expired > 0 {
            self.live.fetch_sub(expired, Ordering::AcqRel);
        }
    }

    /// Advances every shard to `now_s`, unless that was already done in this second; tells
    /// whether it did.
    fn settle_once(&self, now_s: u64) -> bool {
        if self.settled.fetch_max(now_s + 1, Ordering::AcqRel) > now_s {
            return false;
        }
        for at in 0..self.shards.len() {
            self.advance(&mut self.lock(at), now_s);
        }
        true
    }

    /// Advances every shard to `now_s`.
    fn settle(&self, now_s: u64) {
        self.settled.fetch_max(now_s + 1, Ordering::AcqRel);
        for at in 0..self.shards.len() {
            self.advance(&mut self.lock(at), now_s);
        }
    }

    /// Counts a refusal, warns (at most once every [`WARN_EVERY_SECS`]), and makes the error.
    fn full(&self, now_s: u64) -> StoreError {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        if now_s >= quiet_until
            && self
                .quiet_until
                .compare_exchange(
                    quiet_until,
                    now_s + WARN_EVERY_SECS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                capacity = self.capacity,
                refused_total = refused,
                "the replay window is full: signed server API calls are refused (200999) until \
                 remembered ones expire; it holds about capacity / (sign_window + 2 s) calls a \
                 second: raise limits.replay_capacity (about 12.2 bytes a request)"
            );
        }
        StoreError::ReplayWindowFull {
            capacity: self.capacity,
        }
    }
}

/// The number of shards (as log2) and the buckets of each, for `capacity` requests.
fn shape(capacity: usize) -> (u32, usize) {
    let mut shard_bits = 0;
    while (1usize << (shard_bits + 1)) <= MAX_SHARDS
        && capacity >> (shard_bits + 1) >= MIN_SHARD_CAPACITY
    {
        shard_bits += 1;
    }
    let share = capacity.div_ceil(1 << shard_bits);
    // Room for `share` at 3/4 of the slots: share × 4/3 slots, 7 a bucket.
    let buckets = share.saturating_mul(4).div_ceil(SLOTS * 3).max(1);
    (shard_bits, buckets)
}

/// The key of `(pid, fingerprint)`: the fingerprint's first 8 bytes place it (shard and
/// home bucket); the remainder is 40 bits into which all 16 bytes and the pid are folded
/// (each bit of the fingerprint flips a bit of the remainder), never 0 (a free slot).
fn key(pid: i32, fingerprint: &Fingerprint) -> (u64, u64) {
    let bytes = fingerprint.as_bytes();
    let [place, low] = [&bytes[..8], &bytes[8..]].map(|half| {
        let mut word = [0u8; 8];
        word.copy_from_slice(half);
        u64::from_le_bytes(word)
    });
    let fold = |x: u64| x ^ (x >> REM_BITS);
    let rem = (fold(low) ^ fold(place) ^ u64::from(pid as u32)) & REM_MASK;
    (place, if rem == 0 { REM_MASK } else { rem })
}

/// A slot (or a header) for an entry that expires at second `expiry` with remainder `rem`.
fn slot(expiry: u64, rem: u64) -> u64 {
    ((expiry & TAG_MASK) << REM_BITS) | rem
}

/// The seconds a slot (or a header) has left at second `now_s`: 0 when it is free or
/// expired.
fn left(word: u64, now_s: u64) -> u64 {
    if word == 0 {
        return 0;
    }
    let left = (word >> REM_BITS).wrapping_sub(now_s) & TAG_MASK;
    if left <= HORIZON {
        left
    } else {
        0
    }
}

/// What a lookup found.
enum Lookup {
    /// A live entry with the key.
    Found,
    /// None; `free` is the first free slot on the way (bucket, word), if any.
    Absent { free: Option<(usize, usize)> },
}

/// A part of the table with its own clock and counts.
struct Shard {
    /// The buckets, from `offset` on (so that each starts a cache line).
    words: Vec<u64>,
    offset: usize,
    buckets: usize,
    /// The latest second a call brought (the window's clock).
    now_s: u64,
    /// `expiring[i]`: the live entries that expire at second `now_s + 1 + i`.
    expiring: VecDeque<u32>,
    /// The next bucket to sweep, and the sweep's progress in bucket-seconds.
    sweep_next: usize,
    sweep_credit: u64,
}

impl Shard {
    fn new(buckets: usize) -> Shard {
        // Zeroed, so the system maps the pages only when they are first written.
        let words = vec![0u64; buckets * WORDS + WORDS - 1];
        // Safe code can see an address; the first bucket starts at the first cache line.
        let misalign = (words.as_ptr() as usize / 8) % WORDS;
        Shard {
            words,
            offset: (WORDS - misalign) % WORDS,
            buckets,
            now_s: 0,
            expiring: VecDeque::new(),
            sweep_next: 0,
            sweep_credit: 0,
        }
    }

    fn bucket(&self, b: usize) -> &[u64] {
        let start = self.offset + b * WORDS;
        &self.words[start..start + WORDS]
    }

    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets {
            0
        } else {
            b + 1
        }
    }

    /// Moves the clock to `now_s` (if later) and returns how many entries expired since.
    fn advance(&mut self, now_s: u64) -> usize {
        if now_s <= self.now_s {
            return 0;
        }
        let elapsed = now_s - self.now_s;
        self.now_s = now_s;
        let gone = usize::try_from(elapsed)
            .unwrap_or(usize::MAX)
            .min(self.expiring.len());
        let expired = self.expiring.drain(..gone).map(|n| n as usize).sum();
        if elapsed >= HORIZON {
            // Every entry was recorded at the previous second or before, and expired at
            // most HORIZON seconds after it: all are gone. Only the pages written to are
            // written again.
            debug_assert!(self.expiring.is_empty());
            for word in &mut self.words {
                if *word != 0 {
                    *word = 0;
                }
            }
            self.sweep_credit = 0;
        } else {
            self.sweep_credit += self.buckets as u64 * elapsed;
            let due = self.sweep_credit / SWEEP_PERIOD;
            self.sweep_credit %= SWEEP_PERIOD;
            for _ in 0..due.min(self.buckets as u64) {
                let start = self.offset + self.sweep_next * WORDS;
                for word in &mut self.words[start..start + WORDS] {
                    if left(*word, now_s) == 0 {
                        *word = 0;
                    }
                }
                self.sweep_next = self.next(self.sweep_next);
            }
        }
        expired
    }

    /// Looks for a live entry with remainder `rem` homed at bucket `home`.
    fn find(&self, home: usize, rem: u64) -> Lookup {
        let now_s = self.now_s;
        let mut free = None;
        let mut b = home;
        loop {
            let bucket = self.bucket(b);
            for (i, &word) in bucket.iter().enumerate().skip(1) {
                let live = left(word, now_s) > 0;
                if live && word & REM_MASK == rem {
                    return Lookup::Found;
                }
                if !live && free.is_none() {
                    free = Some((b, i));
                }
            }
            // Go on only while an overflow that passed this bucket may be alive.
            if left(bucket[0], now_s) == 0 {
                return Lookup::Absent { free };
            }
            b = self.next(b);
            if b == home {
                return Lookup::Absent { free };
            }
        }
    }

    /// Records `rem` homed at `home` until second `expiry`, in `free` (the first free slot
    /// the lookup saw) or else in the first free slot after the buckets it read. Every
    /// bucket from the home to the one before the slot's has its header raised to
    /// `expiry` at least. `false` when the shard has no free slot.
    fn insert(&mut self, home: usize, rem: u64, expiry: u64, free: Option<(usize, usize)>) -> bool {
        let now_s = self.now_s;
        let (target, word) = match free {
            Some(found) => found,
            None => {
                let mut b = home;
                loop {
                    let bucket = self.bucket(b);
                    if let Some(i) = (1..WORDS).find(|&i| left(bucket[i], now_s) == 0) {
                        break (b, i);
                    }
                    b = self.next(b);
                    if b == home {
                        return false;
                    }
                }
            }
        };
        let marker = slot(expiry, 1);
        let mut b = home;
        while b != target {
            let header = &mut self.words[self.offset + b * WORDS];
            if left(*header, now_s) < expiry - now_s {
                *header = marker;
            }
            b = self.next(b);
        }
        self.words[self.offset + target * WORDS + word] = slot(expiry, rem);

        let ahead = (expiry - now_s - 1) as usize;
        if self.expiring.len() <= ahead {
            self.expiring.resize(ahead + 1, 0);
        }
        self.expiring[ahead] += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TTL: Duration = Duration::from_secs(600);

    /// A fingerprint placed by `place` (shard and home), distinguished by `n`.
    fn fp(place: u64, n: u64) -> Fingerprint {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&place.to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
        Fingerprint::from_bytes(bytes)
    }

    /// A fingerprint that looks random, from `n`.
    fn random_fp(n: u64) -> Fingerprint {
        let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            x ^= x >> 30;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x ^= x >> 27;
            x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        fp(next(), next())
    }

    fn fresh(w: &ReplayWindow, f: &Fingerprint, ttl: Duration, now: u64) -> bool {
        w.check_and_record_at(1, f, ttl, now).expect("not full")
    }

    #[test]
    fn a_request_is_new_once_per_ttl() {
        let w = ReplayWindow::new(1000);
        let f = fp(0, 2);
        assert!(fresh(&w, &f, TTL, 0));
        assert!(!fresh(&w, &f, TTL, 1));
        assert!(!fresh(&w, &f, TTL, 599_999));
        assert!(fresh(&w, &f, TTL, 600_000));
        assert!(!fresh(&w, &f, TTL, 600_001));
        // Projects are apart.
        assert!(w.check_and_record_at(2, &f, TTL, 600_001).unwrap());
    }

    #[test]
    fn a_request_is_forgotten_at_the_first_whole_second_after_its_ttl_and_not_before() {
        // Recorded at 12.345 s for 301 s: remembered until 313.345 s, so until 314 s.
        let w = ReplayWindow::new(1000);
        let f = fp(0, 7);
        let ttl = Duration::from_secs(301);
        assert!(fresh(&w, &f, ttl, 12_345));
        for now in [12_346, 100_000, 313_345, 313_999] {
            assert!(!fresh(&w, &f, ttl, now), "forgotten early, at {now} ms");
        }
        assert!(fresh(&w, &f, ttl, 314_000));
        // Recorded on a whole second: exactly `ttl`.
        let g = fp(0, 8);
        assert!(fresh(&w, &g, ttl, 400_000));
        assert!(!fresh(&w, &g, ttl, 700_999));
        assert!(fresh(&w, &g, ttl, 701_000));
        // Below a second of ttl.
        let w = ReplayWindow::new(1000);
        let h = fp(0, 9);
        assert!(fresh(&w, &h, Duration::from_millis(1), 999));
        assert!(fresh(&w, &h, Duration::from_millis(1), 1000));
        // A zero ttl remembers nothing, but still sees what is remembered.
        assert!(!fresh(&w, &h, Duration::ZERO, 1001));
        let z = fp(0, 10);
        assert!(fresh(&w, &z, Duration::ZERO, 2000));
        assert!(fresh(&w, &z, Duration::ZERO, 2000));
    }

    #[test]
    fn the_signature_checks_ttl_covers_the_whole_ts_window() {
        // A request whose ts is `ts` passes the ts check while the server's Unix second is
        // at most ts + window; the check hands the window `ts + window - now_secs + 1`
        // seconds. Whatever the fraction of the second the call arrives at, the request is
        // remembered past the last millisecond of the second ts + window. (Here the
        // window's clock reads the Unix time.)
        let window = 300;
        let now_secs = 10_000u64;
        for ts in [now_secs - window, now_secs - 1, now_secs, now_secs + window] {
            for fraction in [0, 1, 500, 999] {
                let ttl = Duration::from_secs(ts + window - now_secs + 1);
                let w = ReplayWindow::new(100);
                let f = fp(1, 1);
                assert!(fresh(&w, &f, ttl, now_secs * 1000 + fraction));
                let last_accepted = (ts + window) * 1000 + 999;
                assert!(
                    !fresh(&w, &f, ttl, last_accepted),
                    "ts {ts}, at +{fraction} ms: forgotten while ts is in the window"
                );
            }
        }
    }

    #[test]
    fn a_ttl_over_the_maximum_is_refused_not_shortened() {
        let w = ReplayWindow::new(100);
        let err = w
            .check_and_record_at(1, &fp(1, 1), MAX_REPLAY_TTL + Duration::from_millis(1), 0)
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
        assert!(fresh(&w, &fp(1, 1), MAX_REPLAY_TTL, 0));
        assert!(!fresh(&w, &fp(1, 1), MAX_REPLAY_TTL, 7_200_999));
        assert!(fresh(&w, &fp(1, 1), MAX_REPLAY_TTL, 7_201_000));
    }

    #[test]
    fn entries_are_counted_until_their_second_turns_over() {
        let w = ReplayWindow::new(10_000);
        // 10 requests expiring at each of the seconds 2..=6.
        for i in 0..50u64 {
            let ttl = Duration::from_secs(2 + i / 10);
            assert!(fresh(&w, &random_fp(i), ttl, 0));
        }
        assert_eq!(w.stats_at(0).entries, 50);
        assert_eq!(w.stats_at(1999).entries, 50);
        assert_eq!(w.stats_at(2000).entries, 40);
        assert_eq!(w.stats_at(4500).entries, 20);
        assert_eq!(w.stats_at(6000).entries, 0);
        // And the slots are free again.
        for i in 0..50u64 {
            assert!(fresh(&w, &random_fp(i), TTL, 6000));
        }
        assert_eq!(w.stats_at(6000).entries, 50);
    }

    #[test]
    fn fingerprints_differing_in_any_bit_are_distinct() {
        let base: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        for bit in 0..128 {
            let w = ReplayWindow::new(100);
            assert!(fresh(&w, &Fingerprint::from_bytes(base), TTL, 0));
            let mut variant = base;
            variant[bit / 8] ^= 1 << (bit % 8);
            assert!(
                fresh(&w, &Fingerprint::from_bytes(variant), TTL, 0),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn the_capacity_is_exact() {
        // The issue-12 case: 100 requests, then the window is full.
        let w = ReplayWindow::new(100);
        assert_eq!(w.capacity(), 100);
        for i in 0..100 {
            assert!(fresh(&w, &random_fp(i), TTL, 0), "request {i}");
        }
        let err = w
            .check_and_record_at(1, &random_fp(100), TTL, 0)
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::ReplayWindowFull { capacity: 100 }
        ));
        // A window with several shards: still exact, whichever shards the keys land in.
        let capacity = 4 * MIN_SHARD_CAPACITY + 3;
        let w = ReplayWindow::new(capacity);
        assert_eq!(w.shards.len(), 4);
        for i in 0..capacity as u64 {
            assert!(fresh(&w, &random_fp(i), TTL, 0), "request {i}");
        }
        assert!(w
            .check_and_record_at(1, &random_fp(u64::MAX), TTL, 0)
            .is_err());
        assert_eq!(w.stats_at(0).entries, capacity);
    }

    #[test]
    fn a_full_window_refuses_new_requests_but_still_detects_replays() {
        let w = ReplayWindow::new(2);
        let (a, b, c) = (fp(0, 1), fp(0, 2), fp(0, 3));
        assert!(fresh(&w, &a, TTL, 0));
        assert!(fresh(&w, &b, Duration::from_secs(1), 0));
        assert!(w.check_and_record_at(1, &c, TTL, 500).is_err());
        assert!(!fresh(&w, &a, TTL, 999));
        assert!(!fresh(&w, &b, TTL, 999));
        assert!(w.check_and_record_at(1, &c, TTL, 999).is_err());
        // b's second turns over: room for one.
        assert!(fresh(&w, &c, TTL, 1000));
        assert!(w.check_and_record_at(1, &b, TTL, 1000).is_err());
        let stats = w.stats_at(1000);
        assert_eq!((stats.entries, stats.refused), (2, 3));
        // Nothing remembered is forgotten while full.
        assert!(!fresh(&w, &a, TTL, 599_999));
        assert!(!fresh(&w, &c, TTL, 600_999));
    }

    #[test]
    fn a_full_window_counts_again_once_a_second_when_shards_lag() {
        // Four shards. Shards 0 to 2 hold their share of requests that expire at second 1,
        // shard 3 its share of longer ones: the window is full. At second 1 a call to shard
        // 3, which has seen nothing expire, finds the count full; the count is settled
        // (every shard brought to second 1) and the call answered.
        let capacity = 4 * MIN_SHARD_CAPACITY;
        let w = ReplayWindow::new(capacity);
        let in_shard = |shard: u64, i: u64| {
            let f = random_fp(i);
            let place = u64::from_le_bytes(f.as_bytes()[..8].try_into().unwrap());
            fp((shard << 62) | (place >> 2), i)
        };
        let mut i = 0;
        for shard in 0..4 {
            let ttl = if shard < 3 {
                Duration::from_secs(1)
            } else {
                TTL
            };
            for _ in 0..MIN_SHARD_CAPACITY {
                assert!(fresh(&w, &in_shard(shard, i), ttl, 0));
                i += 1;
            }
        }
        let next = in_shard(3, i);
        assert!(w.check_and_record_at(1, &next, TTL, 999).is_err());
        assert!(fresh(&w, &next, TTL, 1000));
        assert_eq!(w.stats_at(1000).entries, MIN_SHARD_CAPACITY + 1);
    }

    #[test]
    fn overflows_are_found_after_the_slots_before_them_expire() {
        // One bucket's worth and more homed on the same bucket: the later ones overflow
        // into the next buckets; when the earlier ones expire, the later ones are still
        // found (the home's header says an overflow passed).
        let w = ReplayWindow::new(100); // one shard of 20 buckets
        let home = 5u64 << 60;
        for n in 0..7 {
            assert!(fresh(&w, &fp(home, n), Duration::from_secs(1), 0));
        }
        for n in 7..20 {
            assert!(fresh(&w, &fp(home, n), Duration::from_secs(30), 0));
        }
        for n in 7..20 {
            assert!(!fresh(&w, &fp(home, n), TTL, 1000), "overflow {n} lost");
        }
        // The freed home slots take new requests, which are found too.
        for n in 20..27 {
            assert!(fresh(&w, &fp(home, n), Duration::from_secs(30), 1000));
        }
        for n in 7..27 {
            assert!(!fresh(&w, &fp(home, n), TTL, 29_999), "{n} lost");
        }
        // All expired: everything is new again.
        for n in 0..27 {
            assert!(
                fresh(&w, &fp(home, n), Duration::from_secs(1), 31_000),
                "{n}"
            );
        }
    }

    #[test]
    fn overflows_wrap_around_the_end_of_the_shard() {
        let w = ReplayWindow::new(100); // 20 buckets
        let last = u64::MAX; // the last bucket
        for n in 0..30 {
            assert!(fresh(&w, &fp(last, n), TTL, 0));
        }
        for n in 0..30 {
            assert!(!fresh(&w, &fp(last, n), TTL, 1), "{n}");
        }
    }

    #[test]
    fn an_old_expiry_never_looks_alive_again() {
        // Expiry seconds are kept modulo 2^24: an entry left in its slot for 2^24 seconds
        // would look alive again. With calls to the shard now and then, the sweep clears
        // it before that.
        let f = fp(3 << 58, 1);
        let alias = ((1u64 << 24) + 5) * 1000; // f's expiry second (10) modulo 2^24, minus 5
        let w = ReplayWindow::new(100);
        assert!(fresh(&w, &f, Duration::from_secs(10), 0));
        let mut t = 5000;
        while t < 1 << 24 {
            let other = fp(9 << 58, t);
            assert!(fresh(&w, &other, Duration::from_secs(1), t * 1000));
            t += 5000;
        }
        assert!(fresh(&w, &f, Duration::from_secs(1), alias));
        // With no call at all in between: the shard is cleared whole.
        let w = ReplayWindow::new(100);
        assert!(fresh(&w, &f, Duration::from_secs(10), 0));
        assert!(fresh(&w, &f, Duration::from_secs(1), alias));
    }

    #[test]
    fn a_clock_read_late_counts_as_the_latest() {
        let w = ReplayWindow::new(100);
        let f = fp(1, 1);
        assert!(fresh(&w, &fp(1, 2), TTL, 5000));
        // Recorded "at 4 s" after the shard saw 5 s: kept for its ttl from 5 s.
        assert!(fresh(&w, &f, Duration::from_secs(2), 4000));
        assert!(!fresh(&w, &f, TTL, 6999));
        assert!(fresh(&w, &f, TTL, 7000));
    }

    #[test]
    fn lookups_read_fewer_than_12_slots_on_average_at_the_sized_fill() {
        // Filled to capacity (3/4 of the slots): the buckets a lookup of a new request
        // reads, on average over the homes. 7 slots each: the factor of the false-refusal
        // bound in the module documentation.
        let capacity = 100_000;
        let w = ReplayWindow::new(capacity);
        for i in 0..capacity as u64 {
            assert!(fresh(&w, &random_fp(i), TTL, 0));
        }
        let shard = w.lock(0);
        let read: usize = (0..shard.buckets)
            .map(|home| {
                let mut b = home;
                let mut n = 1;
                while left(shard.bucket(b)[0], 0) > 0 {
                    b = shard.next(b);
                    n += 1;
                }
                n
            })
            .sum();
        let slots = (read * SLOTS) as f64 / shard.buckets as f64;
        assert!(slots < 12.0, "{slots} slots read on average");
    }

    #[test]
    fn memory_is_about_12_bytes_a_request() {
        assert_eq!(ReplayWindow::memory_for(100), 20 * 64);
        let default = ReplayWindow::memory_for(DEFAULT_REPLAY_CAPACITY);
        assert_eq!(default, 256 * 12_484 * 64);
        assert!(default < 196 << 20);
        assert_eq!(shape(DEFAULT_REPLAY_CAPACITY).0, 8);
        assert_eq!(shape(1).0, 0);
        assert_eq!(shape(2 * MIN_SHARD_CAPACITY - 1).0, 0);
        assert_eq!(shape(2 * MIN_SHARD_CAPACITY).0, 1);
    }

    /// One step of the property test.
    #[derive(Debug, Clone)]
    enum Step {
        /// A call: pid, fingerprint (a few homes, so that overflows are common), ttl (ms).
        Call(i32, u8, u16, u32),
        /// The clock moves on (ms).
        Wait(u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (1..3i32, 0..6u8, 0..400u16, prop_oneof![0..3000u32, 0..40_000u32])
                .prop_map(|(pid, home, n, ttl)| Step::Call(pid, home, n, ttl)),
            1 => prop_oneof![0..1500u32, 0..60_000u32, Just(7_300_000)].prop_map(Step::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The window against a map of expiries: the same answers, the same count, with
        /// crowded homes (overflows, wrap-around) and a full window.
        #[test]
        fn the_window_behaves_as_a_map_of_expiries(
            capacity in 1..60usize,
            steps in proptest::collection::vec(step(), 1..400),
        ) {
            let w = ReplayWindow::new(capacity);
            let mut model: HashMap<(i32, u8, u16), u64> = HashMap::new();
            let mut now = 0u64;
            for s in steps {
                match s {
                    Step::Wait(ms) => now += u64::from(ms),
                    Step::Call(pid, home, n, ttl_ms) => {
                        let f = fp(u64::from(home) << 61, (u64::from(n) + 1) << 8);
                        let ttl = Duration::from_millis(u64::from(ttl_ms));
                        model.retain(|_, expiry| *expiry > now);
                        let known = model.contains_key(&(pid, home, n));
                        let got = w.check_and_record_at(pid, &f, ttl, now);
                        if known {
                            prop_assert!(matches!(got, Ok(false)), "replay let through: {got:?}");
                        } else if ttl_ms == 0 {
                            prop_assert!(matches!(got, Ok(true)), "{got:?}");
                        } else if model.len() == capacity {
                            let full = matches!(got, Err(StoreError::ReplayWindowFull { .. }));
                            prop_assert!(full, "{got:?}");
                        } else {
                            prop_assert!(matches!(got, Ok(true)), "refused: {got:?}");
                            let expiry = (now + u64::from(ttl_ms)).div_ceil(1000) * 1000;
                            model.insert((pid, home, n), expiry);
                        }
                        prop_assert_eq!(w.stats_at(now).entries, model.len());
                    }
                }
            }
        }
    }
}
