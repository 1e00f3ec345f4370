//! Prometheus metrics, rendered in the text exposition format at `/metrics`.

use crate::sessions::KickClose;
use crate::store::ReplayWindowStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The server API methods, in the order of their counters.
pub const METHODS: [&str; 6] = [
    "gettoken",
    "removetoken",
    "adddevice",
    "removedevice",
    "kickout",
    "getdevices",
];

/// Results of `auth`, in the order of their counters.
pub const AUTH_RESULTS: [&str; 10] = [
    "ok",
    "malformed",
    "unknown_key",
    "bad_mac",
    "wrong_project",
    "wrong_user",
    "expired",
    "revoked",
    "unknown_project",
    "store_error",
];

/// Upper bounds (seconds) of the store latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Every counter and gauge of the service.
#[derive(Default)]
pub struct Metrics {
    /// Open connections on the server API port.
    pub server_api_connections: AtomicI64,
    /// Open connections on the gate port.
    pub gate_connections: AtomicI64,
    calls_ok: [AtomicU64; METHODS.len()],
    /// Error answers by (method, code).
    calls_failed: Mutex<BTreeMap<(&'static str, i32), u64>>,
    auth: [AtomicU64; AUTH_RESULTS.len()],
    /// Sessions ended by a kickout (server API, multi-login off, `removetoken_kicks`).
    pub kicked_sessions: AtomicU64,
    /// Kicked connections closed by the client within the grace.
    kicked_closed_by_client: AtomicU64,
    /// Kicked connections closed by the server (the grace ran out, or the push could not be
    /// queued).
    kicked_closed_by_server: AtomicU64,
    store_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    store_count: AtomicU64,
    store_sum_micros: AtomicU64,
    store_errors: AtomicU64,
    store_up: AtomicBool,
}

impl Metrics {
    /// A fresh set, with the store assumed up.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        m.store_up.store(true, Ordering::Relaxed);
        m
    }

    /// Counts a server API call that answered normally.
    pub fn call_ok(&self, method: &str) {
        if let Some(i) = METHODS.iter().position(|m| *m == method) {
            self.calls_ok[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a server API call answered with error `code`.
    pub fn call_failed(&self, method: &str, code: i32) {
        let method = METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        let mut failed = self.calls_failed.lock().unwrap_or_else(|p| p.into_inner());
        *failed.entry((method, code)).or_default() += 1;
    }

    /// Counts an `auth` by its result (one of [`AUTH_RESULTS`]).
    pub fn auth(&self, result: &str) {
        if let Some(i) = AUTH_RESULTS.iter().position(|r| *r == result) {
            self.auth[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a kicked connection's close, by who closed it.
    pub fn kicked_connection_closed(&self, by: KickClose) {
        let counter = match by {
            KickClose::Client => &self.kicked_closed_by_client,
            KickClose::Server => &self.kicked_closed_by_server,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one store operation.
    pub fn store_op(&self, took: Duration, ok: bool) {
        // One counter per operation (the smallest bucket that holds it); `render` adds them
        // up into Prometheus' cumulative buckets. Fewer shared counters touched per call.
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&bound| secs <= bound) {
            self.store_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.store_count.fetch_add(1, Ordering::Relaxed);
        let micros = took.as_micros() as u64;
        // Most operations take under a microsecond: nothing to add, no shared line to touch.
        if micros > 0 {
            self.store_sum_micros.fetch_add(micros, Ordering::Relaxed);
        }
        if !ok {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the outcome of a store health check.
    pub fn set_store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text format; `sessions` is the number of logged-in
    /// sessions on this node.
    pub fn render(&self, sessions: usize) -> String {
        let mut out = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP rtmd_connections Open connections by port.");
        let _ = writeln!(out, "# TYPE rtmd_connections gauge");
        let _ = writeln!(
            out,
            "rtmd_connections{{port=\"server_api\"}} {}",
            self.server_api_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "rtmd_connections{{port=\"gate\"}} {}",
            self.gate_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP rtmd_sessions Logged-in client sessions on this node."
        );
        let _ = writeln!(out, "# TYPE rtmd_sessions gauge");
        let _ = writeln!(out, "rtmd_sessions {sessions}");

        let _ = writeln!(out, "# HELP rtmd_server_calls_total Server API calls by method and result (ok or the error code).");
        let _ = writeln!(out, "# TYPE rtmd_server_calls_total counter");
        for (method, counter) in METHODS.iter().zip(&self.calls_ok) {
            let _ = writeln!(
                out,
                "rtmd_server_calls_total{{method=\"{method}\",result=\"ok\"}} {}",
                get(counter)
            );
        }
        let failed = self.calls_failed.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, code), n) in failed.iter() {
            let _ = writeln!(
                out,
                "rtmd_server_calls_total{{method=\"{method}\",result=\"{code}\"}} {n}"
            );
        }
        drop(failed);

        let _ = writeln!(
            out,
            "# HELP rtmd_auth_total Client logins by result (failure reason)."
        );
        let _ = writeln!(out, "# TYPE rtmd_auth_total counter");
        for (result, counter) in AUTH_RESULTS.iter().zip(&self.auth) {
            let _ = writeln!(
                out,
                "rtmd_auth_total{{result=\"{result}\"}} {}",
                get(counter)
            );
        }

        let _ = writeln!(
            out,
            "# HELP rtmd_kicked_sessions_total Sessions ended by a kickout."
        );
        let _ = writeln!(out, "# TYPE rtmd_kicked_sessions_total counter");
        let _ = writeln!(
            out,
            "rtmd_kicked_sessions_total {}",
            get(&self.kicked_sessions)
        );
        let _ = writeln!(
            out,
            "# HELP rtmd_kicked_connections_closed_total Kicked connections closed, by who closed them: the client within limits.kickout_grace (or the connection failed), or the server when the grace ran out."
        );
        let _ = writeln!(out, "# TYPE rtmd_kicked_connections_closed_total counter");
        for (by, counter) in [
            ("client", &self.kicked_closed_by_client),
            ("server", &self.kicked_closed_by_server),
        ] {
            let _ = writeln!(
                out,
                "rtmd_kicked_connections_closed_total{{by=\"{by}\"}} {}",
                get(counter)
            );
        }

        let _ = writeln!(
            out,
            "# HELP rtmd_store_latency_seconds Latency of store operations."
        );
        let _ = writeln!(out, "# TYPE rtmd_store_latency_seconds histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.store_buckets) {
            cumulative += get(bucket);
            let _ = writeln!(
                out,
                "rtmd_store_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = get(&self.store_count);
        let _ = writeln!(
            out,
            "rtmd_store_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "rtmd_store_latency_seconds_sum {}",
            get(&self.store_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "rtmd_store_latency_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP rtmd_store_errors_total Store operations that failed."
        );
        let _ = writeln!(out, "# TYPE rtmd_store_errors_total counter");
        let _ = writeln!(out, "rtmd_store_errors_total {}", get(&self.store_errors));
        let _ = writeln!(
            out,
            "# HELP rtmd_store_up 1 when the last store health check passed."
        );
        let _ = writeln!(out, "# TYPE rtmd_store_up gauge");
        let _ = writeln!(
            out,
            "rtmd_store_up {}",
            u8::from(self.store_up.load(Ordering::Relaxed))
        );
        out
    }
}

/// Appends the gauges of the in-process replay window to `out`.
pub fn render_replay_window(out: &mut String, window: &ReplayWindowStats) {
    let gauges = [
        (
            "rtmd_replay_window_entries",
            "gauge",
            "Server API requests the replay window remembers now.",
            window.entries as u64,
        ),
        (
            "rtmd_replay_window_capacity",
            "gauge",
            "Requests the replay window remembers at most (limits.replay_capacity); when full, signed calls fail with 200999.",
            window.capacity as u64,
        ),
        (
            "rtmd_replay_window_bytes",
            "gauge",
            "The replay window's table, in bytes (resident once written to).",
            window.memory_bytes as u64,
        ),
        (
            "rtmd_replay_window_refused_total",
            "counter",
            "Signed calls refused because the replay window was full.",
            window.refused,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_replay_window() {
        let mut text = String::new();
        render_replay_window(
            &mut text,
            &ReplayWindowStats {
                entries: 3,
                capacity: 100,
                memory_bytes: 1280,
                refused: 2,
            },
        );
        assert!(text
            .contains("# TYPE rtmd_replay_window_entries gauge\nrtmd_replay_window_entries 3\n"));
        assert!(text.contains("rtmd_replay_window_capacity 100\n"));
        assert!(text.contains("rtmd_replay_window_bytes 1280\n"));
        assert!(text.contains(
            "# TYPE rtmd_replay_window_refused_total counter\nrtmd_replay_window_refused_total 2\n"
        ));
    }

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.call_ok("gettoken");
        m.call_failed("adddevice", 200034);
        m.auth("revoked");
        m.store_op(Duration::from_micros(300), true);
        m.kicked_connection_closed(KickClose::Server);
        let text = m.render(0);
        assert!(text.contains("rtmd_kicked_connections_closed_total{by=\"client\"} 0"));
        assert!(text.contains("rtmd_kicked_connections_closed_total{by=\"server\"} 1"));
        assert!(text.contains("rtmd_server_calls_total{method=\"gettoken\",result=\"ok\"} 1"));
        assert!(text.contains("rtmd_server_calls_total{method=\"adddevice\",result=\"200034\"} 1"));
        assert!(text.contains("rtmd_auth_total{result=\"revoked\"} 1"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"2.5\"} 1"));
        assert!(text.contains("rtmd_store_up 1"));
    }
}
