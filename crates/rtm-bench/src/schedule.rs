//! The open-loop schedule: quest `i` is due at `start + i / rate`, whatever happened to the
//! quests before it. Latency is measured from that due time, not from when the quest was
//! actually sent, so a server that stalls is charged for every quest that should have gone
//! out meanwhile (no coordinated omission).

use std::time::{Duration, Instant};

/// A fixed-rate schedule of `total` quests starting at `start`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Nanoseconds between two quests.
    interval_ns: f64,
    total: u64,
}

impl Schedule {
    /// `rate` quests a second for `duration`, from `start`.
    pub fn new(start: Instant, rate: f64, duration: Duration) -> Schedule {
        let rate = rate.max(1e-3);
        let total = (rate * duration.as_secs_f64()).floor() as u64;
        Schedule {
            start,
            interval_ns: 1e9 / rate,
            total,
        }
    }

    /// How many quests the schedule holds.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When quest `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    /// How many quests are due at `now` (quests `0..n`), at most [`Schedule::total`].
    pub fn due_by(&self, now: Instant) -> u64 {
        let Some(elapsed) = now.checked_duration_since(self.start) else {
            return 0;
        };
        let n = (elapsed.as_nanos() as f64 / self.interval_ns).floor() as u64 + 1;
        n.min(self.total)
    }

    /// The schedule of connection `c` of `n`, which sends quests `c, c + n, c + 2n, …` of
    /// this one: its quest `j` is this schedule's quest `j * n + c`.
    pub fn share(&self, c: u64, n: u64) -> Share {
        Share {
            schedule: *self,
            c,
            n: n.max(1),
        }
    }
}

/// One connection's share of a [`Schedule`].
#[derive(Debug, Clone, Copy)]
pub struct Share {
    schedule: Schedule,
    c: u64,
    n: u64,
}

impl Share {
    /// When this share's quest `j` is due.
    pub fn due(&self, j: u64) -> Instant {
        self.schedule.due(j * self.n + self.c)
    }

    /// How many of this share's quests the schedule holds.
    pub fn total(&self) -> u64 {
        let total = self.schedule.total();
        if self.c >= total {
            0
        } else {
            (total - self.c).div_ceil(self.n)
        }
    }

    /// How many of this share's quests are due at `now`.
    pub fn due_by(&self, now: Instant) -> u64 {
        let all = self.schedule.due_by(now);
        if all <= self.c {
            0
        } else {
            (all - self.c).div_ceil(self.n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_evenly_spaced() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_secs(2));
        assert_eq!(s.total(), 2000);
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(1), start + Duration::from_millis(1));
        assert_eq!(s.due(1500), start + Duration::from_millis(1500));
    }

    #[test]
    fn due_by_counts_quests_whose_time_has_come() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_secs(1));
        assert_eq!(s.due_by(start - Duration::from_millis(1)), 0);
        assert_eq!(s.due_by(start), 1);
        assert_eq!(s.due_by(start + Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(start + Duration::from_millis(1)), 2);
        assert_eq!(s.due_by(start + Duration::from_secs(60)), 1000);
    }

    #[test]
    fn shares_partition_the_schedule() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_millis(10));
        let shares: Vec<Share> = (0..3).map(|c| s.share(c, 3)).collect();
        assert_eq!(shares.iter().map(Share::total).sum::<u64>(), 10);
        assert_eq!(shares[0].total(), 4);
        assert_eq!(shares[2].total(), 3);
        assert_eq!(shares[1].due(0), s.due(1));
        assert_eq!(shares[1].due(2), s.due(7));
        let now = start + Duration::from_micros(4500); // quests 0..=4 due
        let due: Vec<u64> = shares.iter().map(|sh| sh.due_by(now)).collect();
        assert_eq!(due, vec![2, 2, 1]);
    }
}
