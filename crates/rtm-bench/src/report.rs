//! Results: what each scenario measured, as JSON, and the summary table.

use crate::hist::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The largest.
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
    /// `[percentile, ms]` points from p0 to p100 on a log scale of 1/(1-p), for charts.
    pub curve: Vec<[f64; 2]>,
}

impl Latency {
    /// The summary of a histogram.
    pub fn of(h: &Histogram) -> Latency {
        let mut curve = Vec::new();
        // 0, 50, 75, 87.5, … up to 99.99, then the max.
        let mut p = 0.0f64;
        while p < 99.995 {
            curve.push([p, h.percentile_ms(p)]);
            p = if p == 0.0 {
                50.0
            } else {
                100.0 - (100.0 - p) / 10f64.powf(0.125)
            };
        }
        curve.push([100.0, h.percentile_ms(100.0)]);
        Latency {
            count: h.count(),
            p50_ms: h.percentile_ms(50.0),
            p90_ms: h.percentile_ms(90.0),
            p99_ms: h.percentile_ms(99.0),
            p999_ms: h.percentile_ms(99.9),
            max_ms: h.max_ns() as f64 / 1e6,
            mean_ms: h.mean_ns() / 1e6,
            curve,
        }
    }
}

/// One measured run of one scenario against one target.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Run {
    /// Scenario name, e.g. `server-api`.
    pub scenario: String,
    /// A short label for tables and charts, e.g. `gettoken rtmd 16x32 closed`.
    pub label: String,
    /// `rtmd` or `limit`.
    pub target: String,
    /// `raw` (the bench's pipelining client) or `sdk` (`RtmServerClient`).
    pub client: String,
    /// The method mix, when there is one.
    pub mix: Option<String>,
    /// `closed` (each caller sends when its last answer came) or `open` (fixed rate).
    pub schedule: String,
    /// Connections.
    pub connections: usize,
    /// Quests in flight per connection (closed loop) or workers (logins).
    pub depth: usize,
    /// The fixed rate asked for (open loop), per second.
    pub target_rate: Option<f64>,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Operations completed in the window.
    pub ops: u64,
    /// Operations per second.
    pub rate: f64,
    /// Error answers (and failed operations), by code.
    pub errors: BTreeMap<String, u64>,
    /// Latency of every operation in the window.
    pub latency: Latency,
    /// Latency by method, for a mix.
    pub by_method: BTreeMap<String, Latency>,
    /// How late the load generator sent quests after their due time (open loop only): the
    /// part of the latency that is the generator's, not the server's.
    pub send_lag: Option<Latency>,
    /// CPU used by the server process in the window, in cores (of 2).
    pub server_cpu: Option<f64>,
    /// CPU used by the load generator in the window, in cores.
    pub load_cpu: Option<f64>,
    /// Server CPU time per operation, microseconds.
    pub server_us_per_op: Option<f64>,
    /// Load generator CPU time per operation, microseconds.
    pub load_us_per_op: Option<f64>,
    /// Scenario-specific figures (RSS per connection, …).
    pub extra: BTreeMap<String, f64>,
    /// Notes (what was measured, anything odd).
    pub notes: Vec<String>,
    /// The server sampled during the run (the sustained scenario), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

/// The server at one moment of a long run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Sample {
    /// Seconds since the run started (its warm-up included).
    pub t_s: f64,
    /// Its resident memory, MiB.
    pub rss_mib: Option<f64>,
    /// Requests its replay window remembers (`rtmd_replay_window_entries`).
    pub window_entries: Option<f64>,
    /// Its replay window's capacity.
    pub window_capacity: Option<f64>,
    /// `gettoken` calls answered so far, by the server's count.
    pub answered: Option<f64>,
    /// `gettoken` calls refused so far, by code, by the server's count.
    pub errors: BTreeMap<String, f64>,
}

impl Sample {
    /// One line for progress output.
    pub fn describe(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| {
            v.map(|v| format!("{v:.digits$}"))
                .unwrap_or_else(|| "-".into())
        };
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(code, n)| format!("{code}: {n:.0}"))
            .collect();
        format!(
            "t {:>6.1} s  rss {} MiB  window {} / {}  answered {}  errors [{}]",
            self.t_s,
            opt(self.rss_mib, 1),
            opt(self.window_entries, 0),
            opt(self.window_capacity, 0),
            opt(self.answered, 0),
            errors.join(", ")
        )
    }
}

impl Run {
    /// Fills the CPU figures from the CPU time used by server and load over the window.
    pub fn set_cpu(
        &mut self,
        server: Option<std::time::Duration>,
        load: Option<std::time::Duration>,
        wall: f64,
    ) {
        let per_op = |d: std::time::Duration| {
            (self.ops > 0).then(|| d.as_secs_f64() * 1e6 / self.ops as f64)
        };
        self.server_cpu = server.map(|d| d.as_secs_f64() / wall);
        self.load_cpu = load.map(|d| d.as_secs_f64() / wall);
        self.server_us_per_op = server.and_then(per_op);
        self.load_us_per_op = load.and_then(per_op);
    }

    /// One line of progress or summary.
    pub fn summary(&self) -> String {
        let errors: u64 = self.errors.values().sum();
        format!(
            "{:<44} {:>10.0}/s  p50 {:>7.3}  p90 {:>7.3}  p99 {:>7.3}  max {:>8.3} ms  errors {}  cpu server {} load {}  µs/op server {} load {}",
            self.label,
            self.rate,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            errors,
            fmt_cores(self.server_cpu),
            fmt_cores(self.load_cpu),
            fmt_cores(self.server_us_per_op),
            fmt_cores(self.load_us_per_op),
        )
    }
}

fn fmt_cores(c: Option<f64>) -> String {
    c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into())
}

/// One target of the issue, judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// What is measured.
    pub target: String,
    /// The figure measured.
    pub measured: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// The goal.
    pub goal: String,
    /// Met?
    pub pass: bool,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// When (Unix seconds).
    pub started_unix: u64,
    /// The machine: CPU model, cores, kernel.
    pub machine: BTreeMap<String, String>,
    /// 1-minute load average before and after.
    pub load_average: Vec<f64>,
    /// The runs.
    pub runs: Vec<Run>,
    /// The targets, judged.
    pub verdicts: Vec<Verdict>,
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<44} {:>12} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7} {:>7}\n",
            "run", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "srv cpu", "load cpu"
        ));
        for r in &self.runs {
            let errors: u64 = r.errors.values().sum();
            out.push_str(&format!(
                "{:<44} {:>12.0} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>7} {:>7} {:>7}\n",
                r.label,
                r.rate,
                r.latency.p50_ms,
                r.latency.p90_ms,
                r.latency.p99_ms,
                r.latency.max_ms,
                errors,
                fmt_cores(r.server_cpu),
                fmt_cores(r.load_cpu),
            ));
            for (k, v) in &r.extra {
                out.push_str(&format!("    {k}: {v:.2}\n"));
            }
        }
        if !self.verdicts.is_empty() {
            out.push('\n');
            out.push_str(&format!(
                "{:<40} {:>22} {:>30} {:>18}  {}\n",
                "target", "measured", "baseline (same run)", "goal", "result"
            ));
            for v in &self.verdicts {
                out.push_str(&format!(
                    "{:<40} {:>22} {:>30} {:>18}  {}\n",
                    v.target,
                    v.measured,
                    v.baseline,
                    v.goal,
                    if v.pass { "PASS" } else { "MISS" }
                ));
            }
        }
        out
    }
}

/// The machine, for the report.
pub fn machine() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(cpu) = std::fs::read_to_string("/proc/cpuinfo") {
        if let Some(model) = cpu.lines().find(|l| l.starts_with("model name")) {
            if let Some((_, v)) = model.split_once(':') {
                m.insert("cpu".into(), v.trim().to_owned());
            }
        }
    }
    m.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_default(),
    );
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), v.trim().to_owned());
    }
    if let Ok(mem) = std::fs::read_to_string("/proc/meminfo") {
        if let Some(line) = mem.lines().next() {
            m.insert(
                "memory".into(),
                line.trim_start_matches("MemTotal:").trim().to_owned(),
            );
        }
    }
    m
}
