//! The regressive reconnect strategy of the official RTM server SDKs, and the schedule that
//! applies it (no clock inside: `now` is passed in).

use std::time::{Duration, Instant};

/// When to reconnect after a connection is lost, as the official RTM server SDKs do it.
///
/// A connection that lived longer than `connect_failed_max_interval` resets the count of
/// attempts. The first `start_connect_failed_count` attempts after that are made at once;
/// the next one waits `first_interval`, and each later one waits
/// `(max_interval - first_interval) / linear_regressive_count` longer than the one before,
/// up to `max_interval`. With the defaults (1500 ms, 5, 2 s, 120 s, 5): five immediate
/// attempts, then 2 s, 25.6 s, 49.2 s, 72.8 s, 96.4 s, then 120 s each.
///
/// Only automatic reconnects follow it: a quest made while disconnected connects at once,
/// within its own timeout.
///
/// (The C++ RTM server SDK computes the step in whole seconds, 118 / 5 = 23 s, and does not
/// cap the delay; the Go and Java SDKs compute it in milliseconds and cap it. This is the
/// Go/Java arithmetic.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressiveStrategy {
    /// A connection that lives less than this counts as a failed connect.
    pub connect_failed_max_interval: Duration,
    /// Attempts made at once before delays start.
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
    /// The delay before automatic attempt number `attempt` (counted from 1 since the last
    /// reset).
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt <= self.start_connect_failed_count {
            return Duration::ZERO;
        }
        let steps = self.linear_regressive_count.max(1);
        let per_step = self.max_interval.saturating_sub(self.first_interval) / steps;
        let extra = attempt - self.start_connect_failed_count - 1;
        self.first_interval
            .saturating_add(per_step.saturating_mul(extra))
            .min(self.max_interval.max(self.first_interval))
    }
}

/// The automatic reconnect schedule of one client: when the next attempt is due.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReconnectSchedule {
    /// Attempts made since the last reset.
    attempts: u32,
}

impl ReconnectSchedule {
    /// A connection that lived `lived` ended: a long-lived one resets the count.
    pub fn connection_closed(&mut self, strategy: &RegressiveStrategy, lived: Duration) {
        if lived > strategy.connect_failed_max_interval {
            self.attempts = 0;
        }
    }

    /// Counts the next attempt and returns when it is due, from `now` (the end of the
    /// previous attempt, or of the connection).
    pub fn next_attempt(&mut self, strategy: &RegressiveStrategy, now: Instant) -> Instant {
        self.attempts = self.attempts.saturating_add(1);
        now + strategy.delay(self.attempts)
    }

    #[cfg(test)]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_delays() {
        let s = RegressiveStrategy::default();
        let secs: Vec<f64> = (1..=12).map(|n| s.delay(n).as_secs_f64()).collect();
        // 5 quick retries, then 2 s, then + 23.6 s a step, capped at 120 s.
        assert_eq!(
            secs,
            [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 25.6, 49.2, 72.8, 96.4, 120.0, 120.0]
        );
    }

    /// The schedule on simulated time: the server stays down, every attempt fails at once.
    #[test]
    fn attempts_on_simulated_time_while_the_server_is_down() {
        let s = RegressiveStrategy::default();
        let mut schedule = ReconnectSchedule::default();
        let start = Instant::now();
        // The connection had been up for minutes.
        schedule.connection_closed(&s, Duration::from_secs(300));
        let mut now = start;
        let mut at = Vec::new();
        for _ in 0..12 {
            now = schedule.next_attempt(&s, now);
            at.push((now - start).as_secs_f64());
        }
        let expected = [
            0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 27.6, 76.8, 149.6, 246.0, 366.0, 486.0,
        ];
        for (got, want) in at.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{at:?}");
        }
    }

    #[test]
    fn a_long_lived_connection_resets_the_count_and_a_short_one_does_not() {
        let s = RegressiveStrategy::default();
        let mut schedule = ReconnectSchedule::default();
        let now = Instant::now();
        for _ in 0..7 {
            schedule.next_attempt(&s, now);
        }
        // A connection that closed after 1 s counts as a failure: the count goes on.
        schedule.connection_closed(&s, Duration::from_secs(1));
        assert_eq!(schedule.next_attempt(&s, now) - now, s.delay(8));
        // One that lived 10 s starts over: five immediate attempts again.
        schedule.connection_closed(&s, Duration::from_secs(10));
        for _ in 0..5 {
            assert_eq!(schedule.next_attempt(&s, now), now);
        }
        assert_eq!(schedule.attempts(), 5);
        assert_eq!(schedule.next_attempt(&s, now) - now, Duration::from_secs(2));
    }
}
