//! `idle`: K logged-in connections held open; the server's RSS per connection, from
//! `/proc/<pid>/status` before and after, and whether it still answers promptly.

use crate::gate_client;
use crate::report::Run;
use crate::scenario::{auth, server_api};
use crate::target::Target;
use crate::wire::Mix;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many connections, for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections to open and log in.
    pub connections: usize,
    /// Logins in progress at once while opening them.
    pub concurrency: usize,
    /// How long to hold them before the probes; the gate pings every 20 s by default, so a
    /// hold of 25 s includes one round of pings.
    pub hold: Duration,
}

/// Runs the scenario.
pub fn run(target: &Target, tokens: &[(i64, String)], opts: &Options) -> Result<Run, String> {
    let rss = || target.rss_kib();
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    if let Some((soft, hard)) = crate::target::nofile_limits() {
        let needed = opts.connections as u64 + 256;
        if soft < needed {
            let what_to_do = if needed <= hard {
                format!("run `ulimit -n {needed}` first")
            } else {
                format!("the hard limit is {hard}: raise it, or open fewer (-k)")
            };
            return Err(format!(
                "{} connections need about {needed} open files in rtm-bench, but its limit is \
                 {soft}: {what_to_do}",
                opts.connections
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss();
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    eprintln!(
        "  [idle] opening {} logged-in connections to {} (server RSS before: {} KiB)",
        opts.connections,
        target.gate,
        rss_before.unwrap_or(0)
    );
    let (gate, pid) = (target.gate, target.pid);
    let tokens: Arc<Vec<(i64, String)>> = Arc::new(tokens.to_vec());
    let holders = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
        let mut logins = Vec::with_capacity(opts.connections);
        for i in 0..opts.connections {
            let permit = limit.clone().acquire_owned().await;
            let (tokens, opened, failed) = (tokens.clone(), opened.clone(), failed.clone());
            logins.push(tokio::spawn(async move {
                let _permit = permit;
                let (uid, token) = &tokens[i % tokens.len()];
                let attempt = tokio::time::timeout(
                    Duration::from_secs(20),
                    gate_client::login(gate, pid, *uid, token),
                )
                .await;
                match attempt {
                    Ok(Ok(session)) => {
                        let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                        if n % 5000 == 0 {
                            eprintln!("  [idle] {n} logged in");
                        }
                        Some(session)
                    }
                    Ok(Err(e)) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  [idle] login failed: {e}");
                        }
                        None
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }));
        }
        let mut holders = Vec::new();
        for login in logins {
            if let Ok(Some(session)) = login.await {
                holders.push(tokio::spawn(session.hold()));
            }
        }
        holders
    });
    let open_secs = started.elapsed().as_secs_f64();
    let opened = opened.load(Ordering::Relaxed);
    eprintln!(
        "  [idle] {opened} logged in ({} failed) in {open_secs:.1} s; holding",
        failed.load(Ordering::Relaxed)
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss_held = rss();
    // Through one round of the gate's pings (every 20 s by default) before the probes,
    // whose own allocations (signs in the replay window, a few sessions) are not the held
    // connections'.
    let remaining = opts.hold.saturating_sub(started.elapsed());
    if !remaining.is_zero() {
        eprintln!(
            "  [idle] holding {:.0} s more (the gate pings logged-in clients every 20 s)",
            remaining.as_secs_f64()
        );
        std::thread::sleep(remaining);
    }
    let rss_end = rss();
    // Responsiveness while they are held: sequential gettoken calls and logins.
    let probe = server_api::Options {
        connections: 1,
        depth: 1,
        mix: Mix::parse("gettoken").map_err(|e| e.to_string())?,
        users: 1000,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(3),
        rate: None,
        sdk: false,
        pace: Duration::ZERO,
    };
    let gettoken = server_api::run(target, &probe, "idle: gettoken probe 1x1")?;
    let logins = auth::run(
        target,
        &tokens,
        &auth::Options {
            workers: 1,
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(2),
        },
        "idle: login probe x1",
    )?;
    let still_open = holders.iter().filter(|h| !h.is_finished()).count();
    for h in &holders {
        h.abort();
    }
    drop(runtime);
    std::thread::sleep(Duration::from_secs(2));
    let rss_after_close = rss();

    let mut run = Run {
        scenario: "idle".into(),
        label: format!("idle {opened} logged-in connections"),
        target: target.name.clone(),
        client: "raw".into(),
        schedule: "-".into(),
        connections: opened as usize,
        depth: 0,
        seconds: open_secs,
        ops: opened,
        rate: opened as f64 / open_secs,
        latency: gettoken.latency.clone(),
        ..Run::default()
    };
    if failed.load(Ordering::Relaxed) > 0 {
        run.errors
            .insert("login failed".into(), failed.load(Ordering::Relaxed));
    }
    let kib = |v: Option<u64>| v.map(|v| v as f64);
    if let Some(before) = kib(rss_before) {
        run.extra.insert("rss_before_kib".into(), before);
        let peak = rss_held.max(rss_end);
        if let (Some(held), true) = (kib(peak), opened > 0) {
            run.extra.insert("rss_held_kib".into(), held);
            run.extra.insert(
                "rss_per_connection_kib".into(),
                (held - before) / opened as f64,
            );
        }
        if let Some(after) = kib(rss_after_close) {
            run.extra.insert("rss_after_close_kib".into(), after);
        }
    }
    run.extra
        .insert("connections_open_at_end".into(), still_open as f64);
    run.extra
        .insert("probe_gettoken_p99_ms".into(), gettoken.latency.p99_ms);
    run.extra
        .insert("probe_login_p99_ms".into(), logins.latency.p99_ms);
    run.notes.push(format!(
        "latency: sequential gettoken calls while the connections are held ({:.0}/s); logins one at a time while held: {:.0}/s, p99 {:.3} ms",
        gettoken.rate, logins.rate, logins.latency.p99_ms
    ));
    run.notes.push(
        "rss per connection = (peak VmRSS while held, through a round of pings and before the probes − VmRSS before) / connections"
            .into(),
    );
    Ok(run)
}
