//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! Every counter is private: the service records what happened through the methods here
//! (a call answered, a login's result, a kicked connection closed, a store operation), and
//! this module is the one place that knows the metric names.

use crate::sessions::KickClose;
use crate::store::ReplayWindowStats;
use crate::token::TokenError;
use rtm_protocol::api::Method;
use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The result of an `auth`: its label in `rtmd_auth_total` and its text in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Logged in.
    Ok,
    /// The token is not one of ours (bad base64, length or version).
    Malformed,
    /// The token was MAC'd with a key this service does not have.
    UnknownKey,
    /// The token's MAC does not match: forged or altered.
    BadMac,
    /// The token was minted for another project.
    WrongProject,
    /// The token was minted for another user (or the uid is out of range).
    WrongUser,
    /// The token expired.
    Expired,
    /// The user's tokens were revoked after this one was minted.
    Revoked,
    /// No project has this pid.
    UnknownProject,
    /// The store could not be read, so the login failed closed.
    StoreError,
}

impl AuthResult {
    /// Every result, in the order of their counters.
    pub const ALL: [AuthResult; 10] = [
        AuthResult::Ok,
        AuthResult::Malformed,
        AuthResult::UnknownKey,
        AuthResult::BadMac,
        AuthResult::WrongProject,
        AuthResult::WrongUser,
        AuthResult::Expired,
        AuthResult::Revoked,
        AuthResult::UnknownProject,
        AuthResult::StoreError,
    ];

    /// The label of `rtmd_auth_total{result}`.
    pub fn label(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::Malformed => "malformed",
            AuthResult::UnknownKey => "unknown_key",
            AuthResult::BadMac => "bad_mac",
            AuthResult::WrongProject => "wrong_project",
            AuthResult::WrongUser => "wrong_user",
            AuthResult::Expired => "expired",
            AuthResult::Revoked => "revoked",
            AuthResult::UnknownProject => "unknown_project",
            AuthResult::StoreError => "store_error",
        }
    }
}

impl fmt::Display for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthResult::Ok => "logged in",
            AuthResult::Malformed => "malformed token",
            AuthResult::UnknownKey => "token signed with an unknown key",
            AuthResult::BadMac => "token MAC does not match",
            AuthResult::WrongProject => "token belongs to another project",
            AuthResult::WrongUser => "token belongs to another user",
            AuthResult::Expired => "token expired",
            AuthResult::Revoked => "token revoked",
            AuthResult::UnknownProject => "unknown project",
            AuthResult::StoreError => "store unavailable",
        })
    }
}

impl From<TokenError> for AuthResult {
    fn from(e: TokenError) -> AuthResult {
        match e {
            TokenError::Malformed => AuthResult::Malformed,
            TokenError::UnknownKey => AuthResult::UnknownKey,
            TokenError::BadMac => AuthResult::BadMac,
            TokenError::WrongProject => AuthResult::WrongProject,
            TokenError::WrongUser => AuthResult::WrongUser,
            TokenError::Expired => AuthResult::Expired,
            TokenError::Revoked => AuthResult::Revoked,
        }
    }
}

/// Upper bounds (seconds) of the store latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Every counter and gauge of the service.
#[derive(Default)]
pub struct Metrics {
    server_api_connections: AtomicI64,
    gate_connections: AtomicI64,
    /// Open encrypted connections (after a `*key` exchange) on the server API port.
    server_api_encrypted: AtomicI64,
    /// Open encrypted connections on the gate port.
    gate_encrypted: AtomicI64,
    /// Successful `*key` exchanges: server API, gate.
    key_exchanges: [AtomicU64; 2],
    calls_ok: [AtomicU64; Method::ALL.len()],
    /// Error answers by (method, code); `other` for unknown methods.
    calls_failed: Mutex<BTreeMap<(&'static str, i32), u64>>,
    auth: [AtomicU64; AuthResult::ALL.len()],
    kicked_sessions: AtomicU64,
    kicked_closed_by_client: AtomicU64,
    kicked_closed_by_server: AtomicU64,
    store_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    store_count: AtomicU64,
    store_sum_micros: AtomicU64,
    store_errors: AtomicU64,
    store_up: AtomicBool,
    cluster: ClusterStats,
}

/// The session registry's counters (cluster mode): rendered once a registry is started.
#[derive(Default)]
struct ClusterStats {
    on: AtomicBool,
    registry_up: AtomicBool,
    subscribed: AtomicBool,
    registered: AtomicU64,
    refresh_errors: AtomicU64,
    sent: AtomicU64,
    undelivered: AtomicU64,
    by_message: AtomicU64,
    by_refresh: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Metrics {
    /// A fresh set, with the store assumed up.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        m.store_up.store(true, Ordering::Relaxed);
        m
    }

    /// Counts a connection of `port` (`"server_api"` or `"gate"`) that switched to
    /// encryption; [`Metrics::encrypted_closed`] when it closes.
    pub fn encrypted_opened(&self, port: &str) {
        let (gauge, i) = self.encrypted_gauge(port);
        gauge.fetch_add(1, Ordering::Relaxed);
        self.key_exchanges[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An encrypted connection of `port` closed.
    pub fn encrypted_closed(&self, port: &str) {
        self.encrypted_gauge(port).0.fetch_sub(1, Ordering::Relaxed);
    }

    fn encrypted_gauge(&self, port: &str) -> (&AtomicI64, usize) {
        if port == "gate" {
            (&self.gate_encrypted, 1)
        } else {
            (&self.server_api_encrypted, 0)
        }
    }

    /// A connection opened (`true`) or closed on the server API port.
    pub fn server_api_connection(&self, opened: bool) {
        let delta = if opened { 1 } else { -1 };
        self.server_api_connections
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// A connection opened (`true`) or closed on the gate port.
    pub fn gate_connection(&self, opened: bool) {
        let delta = if opened { 1 } else { -1 };
        self.gate_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a server API call: answered normally (`None`) or with error `code`.
    pub fn server_call(&self, method: Method, error: Option<i32>) {
        match error {
            None => {
                self.calls_ok[method.index()].fetch_add(1, Ordering::Relaxed);
            }
            Some(code) => self.call_failed(method.name(), code),
        }
    }

    /// Counts a quest for a method the server API does not have (answered `code`).
    pub fn unknown_method(&self, code: i32) {
        self.call_failed("other", code);
    }

    fn call_failed(&self, method: &'static str, code: i32) {
        let mut failed = self.calls_failed.lock().unwrap_or_else(|p| p.into_inner());
        *failed.entry((method, code)).or_default() += 1;
    }

    /// Counts an `auth` by its result.
    pub fn auth(&self, result: AuthResult) {
        if let Some(i) = AuthResult::ALL.iter().position(|r| *r == result) {
            self.auth[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts sessions ended by a kick (server API, multi-login off, `removetoken_kicks`,
    /// or a kick another node sent).
    pub fn sessions_kicked(&self, n: usize) {
        add(&self.kicked_sessions, n);
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

    /// A session registry shared with other nodes started: its metrics are rendered from
    /// now on, its registry and subscription counted as up.
    pub fn cluster_started(&self) {
        let c = &self.cluster;
        c.registry_up.store(true, Ordering::Relaxed);
        c.subscribed.store(true, Ordering::Relaxed);
        c.on.store(true, Ordering::Relaxed);
    }

    /// A refresh of this node's `sessions` in the registry ended, with `failures` users
    /// that could not be refreshed. Returns whether the registry was up before.
    pub fn registry_refreshed(&self, sessions: u64, failures: usize) -> bool {
        let c = &self.cluster;
        c.registered.store(sessions, Ordering::Relaxed);
        if failures > 0 {
            c.refresh_errors.fetch_add(1, Ordering::Relaxed);
        }
        c.registry_up.swap(failures == 0, Ordering::Relaxed)
    }

    /// Whether this node's kick channel was subscribed at the last check.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.cluster.subscribed.store(subscribed, Ordering::Relaxed);
    }

    /// Whether this node's kick channel was subscribed at the last check.
    pub fn subscribed(&self) -> bool {
        self.cluster.subscribed.load(Ordering::Relaxed)
    }

    /// Kicks sent to other nodes for `n` of their sessions; `undelivered` when the message
    /// reached no subscriber.
    pub fn kicks_sent(&self, n: usize, undelivered: bool) {
        add(&self.cluster.sent, n);
        if undelivered {
            add(&self.cluster.undelivered, n);
        }
    }

    /// Sessions of this node kicked on behalf of another node: by its message, or found
    /// kicked at a registry refresh (`by_refresh`).
    pub fn kicks_received(&self, n: usize, by_refresh: bool) {
        let c = &self.cluster;
        add(
            if by_refresh {
                &c.by_refresh
            } else {
                &c.by_message
            },
            n,
        );
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
            "# HELP rtmd_connections_by_encryption Open connections by port and encryption (encrypted: after a *key exchange)."
        );
        let _ = writeln!(out, "# TYPE rtmd_connections_by_encryption gauge");
        for (port, total, encrypted) in [
            (
                "server_api",
                &self.server_api_connections,
                &self.server_api_encrypted,
            ),
            ("gate", &self.gate_connections, &self.gate_encrypted),
        ] {
            let encrypted = encrypted.load(Ordering::Relaxed).max(0);
            let plain = (total.load(Ordering::Relaxed) - encrypted).max(0);
            let _ = writeln!(
                out,
                "rtmd_connections_by_encryption{{port=\"{port}\",encryption=\"encrypted\"}} {encrypted}"
            );
            let _ = writeln!(
                out,
                "rtmd_connections_by_encryption{{port=\"{port}\",encryption=\"plain\"}} {plain}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rtmd_key_exchanges_total Connections switched to encryption (*key exchanges accepted), by port."
        );
        let _ = writeln!(out, "# TYPE rtmd_key_exchanges_total counter");
        for (port, counter) in ["server_api", "gate"].iter().zip(&self.key_exchanges) {
            let _ = writeln!(
                out,
                "rtmd_key_exchanges_total{{port=\"{port}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP rtmd_sessions Logged-in client sessions on this node."
        );
        let _ = writeln!(out, "# TYPE rtmd_sessions gauge");
        let _ = writeln!(out, "rtmd_sessions {sessions}");

        let _ = writeln!(out, "# HELP rtmd_server_calls_total Server API calls by method and result (ok or the error code).");
        let _ = writeln!(out, "# TYPE rtmd_server_calls_total counter");
        for (method, counter) in Method::ALL.iter().zip(&self.calls_ok) {
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
        for (result, counter) in AuthResult::ALL.iter().zip(&self.auth) {
            let _ = writeln!(
                out,
                "rtmd_auth_total{{result=\"{}\"}} {}",
                result.label(),
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
        if self.cluster.on.load(Ordering::Relaxed) {
            self.render_cluster(&mut out);
        }
        out
    }

    fn render_cluster(&self, out: &mut String) {
        let s = &self.cluster;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |a: &AtomicBool| u64::from(a.load(Ordering::Relaxed));
        let mut line = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        line(
            "rtmd_cluster_registry_up",
            "gauge",
            "1 when the last refresh of this node's sessions in the Redis registry succeeded.",
            &[("", flag(&s.registry_up))],
        );
        line(
            "rtmd_cluster_subscribed",
            "gauge",
            "1 when this node's kick channel was subscribed at the last check.",
            &[("", flag(&s.subscribed))],
        );
        line(
            "rtmd_cluster_registered_sessions",
            "gauge",
            "Sessions of this node refreshed in the registry at the last refresh.",
            &[("", get(&s.registered))],
        );
        line(
            "rtmd_cluster_refresh_errors_total",
            "counter",
            "Registry refreshes that failed.",
            &[("", get(&s.refresh_errors))],
        );
        line(
            "rtmd_cluster_kicks_sent_total",
            "counter",
            "Sessions on other nodes this node sent a kick message for.",
            &[("", get(&s.sent))],
        );
        line(
            "rtmd_cluster_kicks_undelivered_total",
            "counter",
            "Kicks whose message reached no subscriber (applied at the owner's next refresh).",
            &[("", get(&s.undelivered))],
        );
        line(
            "rtmd_cluster_kicks_received_total",
            "counter",
            "Sessions of this node kicked on behalf of another node, by how the kick arrived.",
            &[
                ("{path=\"message\"}", get(&s.by_message)),
                ("{path=\"refresh\"}", get(&s.by_refresh)),
            ],
        );
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
        m.server_call(Method::GetToken, None);
        m.server_call(Method::AddDevice, Some(200034));
        m.unknown_method(20004);
        m.auth(AuthResult::Revoked);
        m.auth(AuthResult::from(TokenError::Expired));
        m.store_op(Duration::from_micros(300), true);
        m.kicked_connection_closed(KickClose::Server);
        let text = m.render(0);
        assert!(text.contains("rtmd_kicked_connections_closed_total{by=\"client\"} 0"));
        assert!(text.contains("rtmd_kicked_connections_closed_total{by=\"server\"} 1"));
        assert!(text.contains("rtmd_server_calls_total{method=\"gettoken\",result=\"ok\"} 1"));
        assert!(text.contains("rtmd_server_calls_total{method=\"adddevice\",result=\"200034\"} 1"));
        assert!(text.contains("rtmd_server_calls_total{method=\"other\",result=\"20004\"} 1"));
        assert!(text.contains("rtmd_auth_total{result=\"revoked\"} 1"));
        assert!(text.contains("rtmd_auth_total{result=\"expired\"} 1"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("rtmd_store_latency_seconds_bucket{le=\"2.5\"} 1"));
        assert!(text.contains("rtmd_store_up 1"));
        assert!(
            !text.contains("rtmd_cluster_"),
            "no registry, no cluster metrics"
        );
    }

    #[test]
    fn cluster_metrics_once_a_registry_runs() {
        let m = Metrics::new();
        m.cluster_started();
        m.kicks_sent(3, true);
        m.kicks_received(2, false);
        m.kicks_received(1, true);
        assert!(m.registry_refreshed(5, 1), "it was up");
        let text = m.render(0);
        for line in [
            "rtmd_cluster_registry_up 0",
            "rtmd_cluster_subscribed 1",
            "rtmd_cluster_registered_sessions 5",
            "rtmd_cluster_refresh_errors_total 1",
            "rtmd_cluster_kicks_sent_total 3",
            "rtmd_cluster_kicks_undelivered_total 3",
            "rtmd_cluster_kicks_received_total{path=\"message\"} 2",
            "rtmd_cluster_kicks_received_total{path=\"refresh\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn every_auth_result_has_its_own_label() {
        let labels: std::collections::HashSet<_> =
            AuthResult::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), AuthResult::ALL.len());
        assert_eq!(AuthResult::Revoked.to_string(), "token revoked");
    }
}
