//! The service's clock. Every call reads it once ([`Clock::now`]) and hands the [`Now`] to
//! what it checks and records: the signature's `ts` window, a token's issue time, a device's
//! time, a token's expiry at login.
//!
//! In production it is the wall clock. Tests can run the service on a clock that follows
//! tokio's ([`Clock::tokio`], with the `testing` feature), so that on a paused runtime
//! `tokio::time::advance` moves the service's notion of the date along with its timers: a
//! token expires, a `ts` leaves the window, without the test waiting for real.

use rtm_protocol::clock::unix_ms;

/// A reading of the clock: Unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now {
    unix_ms: i64,
}

impl Now {
    /// The time `unix_ms` milliseconds after the epoch.
    pub fn from_unix_ms(unix_ms: i64) -> Now {
        Now { unix_ms }
    }

    /// Unix seconds.
    pub fn secs(self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }

    /// Unix milliseconds.
    pub fn ms(self) -> i64 {
        self.unix_ms
    }
}

/// Where the service reads the time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    source: Source,
}

#[derive(Debug, Clone, Copy, Default)]
enum Source {
    /// The wall clock.
    #[default]
    System,
    /// The wall clock at `start`, advanced by tokio's time since then.
    #[cfg(any(test, feature = "testing"))]
    Tokio {
        unix_ms_at_start: i64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads the wall clock once, now, and then moves with tokio's time (which
    /// a test can pause and advance). Call it inside the runtime the service runs on.
    #[cfg(any(test, feature = "testing"))]
    pub fn tokio() -> Clock {
        Clock {
            source: Source::Tokio {
                unix_ms_at_start: unix_ms(),
                start: tokio::time::Instant::now(),
            },
        }
    }

    /// The time now.
    pub fn now(&self) -> Now {
        match self.source {
            Source::System => Now::from_unix_ms(unix_ms()),
            #[cfg(any(test, feature = "testing"))]
            Source::Tokio {
                unix_ms_at_start,
                start,
            } => {
                let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
                Now::from_unix_ms(unix_ms_at_start.saturating_add(elapsed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_round_down() {
        assert_eq!(Now::from_unix_ms(1_999).secs(), 1);
        assert_eq!(Now::from_unix_ms(-1).secs(), -1);
        assert_eq!(Now::from_unix_ms(2_000).ms(), 2_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time() {
        let clock = Clock::tokio();
        let before = clock.now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now().ms() - before.ms(), 3_600_000);
        // The system clock did not move an hour.
        assert!(Clock::system().now().ms() - before.ms() < 3_600_000);
    }
}
