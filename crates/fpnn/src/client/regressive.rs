//! The regressive reconnect strategy of the official RTM server SDKs.

use std::time::Duration;

/// When to reconnect after a connection is lost, as the official RTM server SDKs do it.
///
/// A connection that closes (or fails to open) within `connect_failed_max_interval` of its
/// start counts as a failure; one that lived longer resets the count and reconnects at once.
/// The first `start_connect_failed_count` consecutive failures reconnect at once too. After
/// that, the delay grows linearly from `first_interval` by
/// `(max_interval - first_interval) / linear_regressive_count` per further failure, up to
/// `max_interval`.
///
/// The defaults are the SDKs': 1500 ms, 5 failures, 2 s, 120 s, 5 steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressiveStrategy {
    /// A connection that lives less than this counts as a failed connect.
    pub connect_failed_max_interval: Duration,
    /// Failures that reconnect at once before delays start.
    pub start_connect_failed_count: u32,
    /// The first delay.
    pub first_interval: Duration,
    /// The largest delay.
    pub max_interval: Duration,
    /// Steps from the first delay to the largest.
    pub linear_regressive_count: u32,
}

impl Default for RegressiveStrategy {
    fn default() -> Self {
        RegressiveStrategy {
            connect_failed_max_interval: Duration::from_millis(1500),
            start_connect_failed_count: 5,
            first_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(120),
            linear_regressive_count: 5,
        }
    }
}

impl RegressiveStrategy {
    /// The delay before the next attempt after `failures` consecutive failed connections
    /// (zero means reconnect at once).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= self.start_connect_failed_count {
            return Duration::ZERO;
        }
        let steps = self.linear_regressive_count.max(1);
        let span = self.max_interval.saturating_sub(self.first_interval);
        let per_step = span / steps;
        let extra = failures - self.start_connect_failed_count;
        let delay = self
            .first_interval
            .saturating_add(per_step.saturating_mul(extra));
        delay.min(self.max_interval)
    }
}

/// The failure count kept between attempts.
#[derive(Debug, Default, Clone)]
pub(crate) struct RegressiveState {
    pub failures: u32,
}

impl RegressiveState {
    /// Records the end of a connection (or a failed attempt) that lived `lived`, and returns
    /// the delay before the next attempt.
    pub fn on_closed(&mut self, strategy: &RegressiveStrategy, lived: Duration) -> Duration {
        if lived > strategy.connect_failed_max_interval {
            self.failures = 0;
            return Duration::ZERO;
        }
        self.failures = self.failures.saturating_add(1);
        strategy.delay(self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_delays() {
        let s = RegressiveStrategy::default();
        let secs: Vec<f64> = (1..=12).map(|n| s.delay(n).as_secs_f64()).collect();
        // 5 quick retries, then 2 s + 23.6 s per step, capped at 120 s.
        assert_eq!(secs[..5], [0.0; 5]);
        assert!((secs[5] - 25.6).abs() < 1e-9, "{secs:?}");
        assert!((secs[6] - 49.2).abs() < 1e-9, "{secs:?}");
        assert_eq!(secs[9], 120.0);
        assert_eq!(secs[11], 120.0);
    }

    #[test]
    fn a_long_lived_connection_resets_the_count() {
        let s = RegressiveStrategy::default();
        let mut state = RegressiveState::default();
        for _ in 0..7 {
            state.on_closed(&s, Duration::from_millis(10));
        }
        assert_eq!(state.failures, 7);
        assert_eq!(state.on_closed(&s, Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(state.failures, 0);
    }
}
