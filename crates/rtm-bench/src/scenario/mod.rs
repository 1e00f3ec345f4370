//! The scenarios: server API load, logins, idle connections, kickout latency, floods, a
//! sustained load.

pub mod auth;
pub mod flood;
pub mod idle;
pub mod kickout;
pub mod server_api;
pub mod sustained;

use crate::target::Target;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prints a progress line to stderr every second while `f` runs: operations done so far
/// (read from `counter`) and the rate over the last second.
pub fn with_progress<T>(
    label: &str,
    total: Duration,
    counter: Arc<AtomicU64>,
    f: impl FnOnce() -> T,
) -> T {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let done = done.clone();
        let label = label.to_owned();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = 0;
            let mut last_at = start;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last_at.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let now = counter.load(Ordering::Relaxed);
                let rate = (now - last) as f64 / last_at.elapsed().as_secs_f64();
                eprintln!(
                    "  [{label}] {:>4.1}/{:.0} s  {now} done  {rate:.0}/s",
                    start.elapsed().as_secs_f64(),
                    total.as_secs_f64()
                );
                last = now;
                last_at = Instant::now();
            }
        })
    };
    let out = f();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    out
}

/// CPU time of the target and of this process, to take differences of.
pub struct CpuMark {
    server: Option<Duration>,
    load: Option<Duration>,
    at: Instant,
}

impl CpuMark {
    /// Now.
    pub fn now(target: &Target) -> CpuMark {
        CpuMark {
            server: target.cpu(),
            load: crate::target::own_cpu(),
            at: Instant::now(),
        }
    }

    /// CPU used since `self`: (server, load, wall seconds).
    pub fn since(&self, target: &Target) -> (Option<Duration>, Option<Duration>, f64) {
        let later = CpuMark::now(target);
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        (
            diff(self.server, later.server),
            diff(self.load, later.load),
            later.at.duration_since(self.at).as_secs_f64(),
        )
    }
}
