//! Salts: the `salt` of a server quest, unique within the process.
//!
//! The official generators repeat themselves: the C++ one above 64 calls per second, the
//! Python one within a millisecond. A repeated salt with the same method and `ts` gives the
//! same signature, which a replay-checking server may refuse (200006). Ours cannot repeat
//! within a process: a single atomic counter, never below the current time in microseconds,
//! shifted left by 8 bits with a per-process random byte in the low bits (so two processes
//! started in the same microsecond are unlikely to collide either). Salts are positive
//! `i64`s until the year 20 000 or so.

use crate::clock::unix_micros;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static LAST: AtomicU64 = AtomicU64::new(0);

/// The next salt: unique within the process, from any thread, at any rate.
pub fn next_salt() -> i64 {
    let now = unix_micros();
    let mut counter = 0;
    // `fetch_update` retries until our value is the one stored, so no two callers, on any
    // thread, ever take the same counter.
    let _ = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
        counter = last.saturating_add(1).max(now);
        Some(counter)
    });
    ((counter << 8) | u64::from(process_byte())) as i64 & i64::MAX
}

/// A byte chosen once per process, from the clock and the process id.
fn process_byte() -> u8 {
    static BYTE: OnceLock<u8> = OnceLock::new();
    *BYTE.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mixed = nanos ^ std::process::id().rotate_left(13) ^ (nanos >> 11);
        (mixed ^ (mixed >> 8) ^ (mixed >> 16) ^ (mixed >> 24)) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn salts_are_positive_and_increasing_on_one_thread() {
        let mut last = 0;
        for _ in 0..100_000 {
            let salt = next_salt();
            assert!(salt > last, "{salt} after {last}");
            last = salt;
        }
    }

    #[test]
    fn millions_of_salts_from_many_threads_never_repeat() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 250_000;
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                std::thread::spawn(|| (0..PER_THREAD).map(|_| next_salt()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::with_capacity(THREADS * PER_THREAD);
        for handle in handles {
            for salt in handle.join().expect("salt thread") {
                assert!(salt > 0);
                assert!(seen.insert(salt), "salt {salt} repeated");
            }
        }
        assert_eq!(seen.len(), THREADS * PER_THREAD);
    }
}
