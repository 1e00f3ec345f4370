//! The wall clock as RTM counts it: Unix seconds (`ts`, token times), milliseconds (device
//! times), microseconds (salts).
//!
//! A clock set before 1970 reads as the epoch rather than failing: the callers compare times,
//! and the signature check refuses a `ts` that far off anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix time in seconds.
pub fn unix_secs() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// Unix time in milliseconds.
pub fn unix_ms() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(i64::MAX)
}

/// Unix time in microseconds.
pub fn unix_micros() -> u64 {
    u64::try_from(since_epoch().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_agree() {
        let (s, ms, us) = (unix_secs(), unix_ms(), unix_micros());
        // After 2020, and read within a second of each other.
        assert!(s > 1_577_836_800, "{s}");
        assert!((ms / 1000 - s).abs() <= 1);
        assert!((us / 1_000_000) as i64 - s <= 1);
    }
}
