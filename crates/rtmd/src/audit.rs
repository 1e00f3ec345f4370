//! Audit events: what an operator reviews, logged at `info` under the target `rtmd::audit`
//! with structured fields (`event`, `pid`, `uid`, `ce`, `peer`, `result`, …).
//!
//! - `login`: a gate login accepted or refused, with the reason, the pid, uid and the
//!   client's endpoint;
//! - `kickout`: pid, uid, the endpoint asked for (`ce`, or every login) and the sessions
//!   closed;
//! - `removetoken`: pid and uid;
//! - `refused`: a server API call refused for its signature (200002), its `ts` (200008), or
//!   as a replay (200006), with the method, the caller's address and the reason.
//!
//! (The replay window filling up is a `warn` of the store, at most every 10 s.)
//!
//! Peers can cause these lines at any rate, so each kind is rate-limited: at most
//! [`LINES_PER_SECOND`] lines a second of accepted events (logins, kickouts, removetokens)
//! and as many of refusals; the lines left out are counted, and the count is logged (event
//! `left_out`) before the next line of that kind that is written.

use crate::clock::Now;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The most audit lines of one kind (events, refusals) written in one second.
pub const LINES_PER_SECOND: u32 = 100;

/// Admits at most `per_second` lines in each second of the clock it is given (sans-IO: the
/// caller passes the time), counting those it refuses.
#[derive(Debug)]
pub struct RateLimit {
    per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    second: i64,
    lines: u32,
    left_out: u64,
}

/// What [`RateLimit::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `left_out` lines were refused since the last one written (log that
    /// count first when it is not zero).
    Write {
        /// Lines refused since the last line written.
        left_out: u64,
    },
    /// Leave the line out (it is counted).
    LeaveOut,
}

impl RateLimit {
    /// A limit of `per_second` lines a second.
    pub const fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            window: Mutex::new(Window {
                second: i64::MIN,
                lines: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether a line may be written at `now_secs` (Unix seconds).
    pub fn admit(&self, now_secs: i64) -> Admit {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        // Any other second starts a new budget (a clock stepped back too).
        if w.second != now_secs {
            w.second = now_secs;
            w.lines = 0;
        }
        if w.lines < self.per_second {
            w.lines += 1;
            Admit::Write {
                left_out: std::mem::take(&mut w.left_out),
            }
        } else {
            w.left_out += 1;
            Admit::LeaveOut
        }
    }
}

static EVENTS: RateLimit = RateLimit::new(LINES_PER_SECOND);
static REFUSALS: RateLimit = RateLimit::new(LINES_PER_SECOND);

/// Whether a line of this kind may be written now; logs the count of those left out first.
fn admit(limit: &RateLimit, kind: &'static str, now: Now) -> bool {
    if !tracing::enabled!(target: "rtmd::audit", tracing::Level::INFO) {
        return false;
    }
    match limit.admit(now.secs()) {
        Admit::LeaveOut => false,
        Admit::Write { left_out } => {
            if left_out > 0 {
                tracing::info!(
                    target: "rtmd::audit",
                    event = "left_out",
                    kind,
                    count = left_out,
                    "{left_out} audit lines ({kind}) left out by the rate limit of {LINES_PER_SECOND} a second"
                );
            }
            true
        }
    }
}

/// A gate login: accepted when `reason` is `None`, else refused for `reason`.
pub fn login(
    now: Now,
    pid: &dyn std::fmt::Display,
    uid: &dyn std::fmt::Display,
    peer: SocketAddr,
    result: &'static str,
    reason: Option<&dyn std::fmt::Display>,
) {
    match reason {
        None => {
            if admit(&EVENTS, "events", now) {
                tracing::info!(target: "rtmd::audit", event = "login", result, %pid, %uid, ce = %peer, "login accepted");
            }
        }
        Some(reason) => {
            if admit(&REFUSALS, "refusals", now) {
                tracing::info!(target: "rtmd::audit", event = "login", result, %pid, %uid, ce = %peer, %reason, "login refused");
            }
        }
    }
}

/// A server API `kickout` that closed `kicked` sessions (on every node).
pub fn kickout(now: Now, pid: i32, uid: i64, ce: Option<&str>, kicked: usize) {
    if admit(&EVENTS, "events", now) {
        let ce = ce.unwrap_or("*");
        tracing::info!(target: "rtmd::audit", event = "kickout", pid, uid, ce, kicked, "kickout");
    }
}

/// A server API `removetoken`: the user's tokens are revoked.
pub fn remove_token(now: Now, pid: i32, uid: i64) {
    if admit(&EVENTS, "events", now) {
        tracing::info!(target: "rtmd::audit", event = "removetoken", pid, uid, "tokens revoked");
    }
}

/// A device change (`adddevice` / `removedevice`), at `debug`: frequent and routine, so off at
/// the default level and not counted against the rate limits.
pub fn device(pid: i32, uid: i64, change: &'static str, apptype: Option<&str>) {
    tracing::debug!(target: "rtmd::audit", event = "device", change, pid, uid, apptype, "device {change}");
}

/// A server API call refused before its handler ran (sign, ts, replay, project).
pub fn call_refused(
    now: Now,
    method: &str,
    peer: SocketAddr,
    code: i32,
    reason: &dyn std::fmt::Display,
) {
    if admit(&REFUSALS, "refusals", now) {
        tracing::info!(target: "rtmd::audit", event = "refused", method, %peer, code, %reason, "server API call refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_lines_a_second_then_the_count_left_out() {
        let limit = RateLimit::new(3);
        let writes = |at: i64, n: usize| (0..n).map(|_| limit.admit(at)).collect::<Vec<_>>();
        assert_eq!(writes(100, 3), vec![Admit::Write { left_out: 0 }; 3]);
        assert_eq!(writes(100, 1000), vec![Admit::LeaveOut; 1000]);
        // The next second: the first line carries the count, the budget is whole again.
        assert_eq!(limit.admit(101), Admit::Write { left_out: 1000 });
        assert_eq!(writes(101, 2), vec![Admit::Write { left_out: 0 }; 2]);
        assert_eq!(limit.admit(101), Admit::LeaveOut);
        // Seconds later, or a clock stepped back: a new budget.
        assert_eq!(limit.admit(90), Admit::Write { left_out: 1 });
        assert_eq!(limit.admit(90), Admit::Write { left_out: 0 });
    }

    #[test]
    fn a_flood_writes_a_bounded_number_of_lines() {
        // 10 s of 100,000 events a second: at most 3 lines a second, each count once.
        let limit = RateLimit::new(3);
        let (mut written, mut counted) = (0u64, 0u64);
        for second in 0..10 {
            for _ in 0..100_000 {
                if let Admit::Write { left_out } = limit.admit(second) {
                    written += 1;
                    counted += left_out;
                }
            }
        }
        assert_eq!(written, 30);
        // Every line left out but those of the last second has been reported.
        assert_eq!(counted, 9 * (100_000 - 3));
    }
}
