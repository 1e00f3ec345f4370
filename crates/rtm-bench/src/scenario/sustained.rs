//! `sustained`: the rate a node keeps up, not the one it peaks at. An open-loop signed
//! `gettoken` load at a fixed rate (50,000 a second) for a long time (10 minutes) against an
//! rtmd started with its **default** configuration, so that its replay window (every signed
//! call is remembered while its `ts` is in the window, about 300 s) fills up to its steady
//! state and stays there. Every few seconds it samples rtmd's resident memory and, from its
//! `/metrics`, the replay window's fill and the calls answered and refused by code; at the
//! end, the usual latency percentiles and errors by code of the whole run.

use crate::report::{Run, Sample};
use crate::scenario::server_api;
use crate::target::Target;
use crate::wire::Mix;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Quests a second.
    pub rate: f64,
    /// The measured window (after `warmup`).
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Connections the load is spread over.
    pub connections: usize,
    /// Time between two samples of rtmd's memory and metrics.
    pub sample_every: Duration,
}

/// Runs it against `target` (an rtmd: its RSS needs its process id, its window figures
/// its admin port).
pub fn run(target: &Target, opts: &Options) -> Result<Run, String> {
    let load = server_api::Options {
        connections: opts.connections.max(1),
        depth: 1,
        mix: Mix::parse("gettoken")?,
        users: 1_000_000,
        warmup: opts.warmup,
        duration: opts.duration,
        rate: Some(opts.rate),
        sdk: false,
        pace: Duration::from_micros(100),
    };
    let label = format!(
        "sustained gettoken {} {:.0}/s {:.0} s",
        target.name,
        opts.rate,
        opts.duration.as_secs_f64()
    );
    let done = AtomicBool::new(false);
    let (result, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_until(target, opts.sample_every, &done));
        let result = server_api::run(target, &load, &label);
        done.store(true, Ordering::Relaxed);
        (result, sampler.join().unwrap_or_default())
    });
    let mut run = result?;
    run.scenario = "sustained".into();
    let max = |f: fn(&Sample) -> Option<f64>| samples.iter().filter_map(f).reduce(f64::max);
    if let Some(rss) = max(|s| s.rss_mib) {
        run.extra.insert("rss_max_mib".into(), rss);
    }
    if let Some(rss) = samples.last().and_then(|s| s.rss_mib) {
        run.extra.insert("rss_end_mib".into(), rss);
    }
    if let Some(entries) = max(|s| s.window_entries) {
        run.extra
            .insert("replay_window_entries_max".into(), entries);
    }
    if let Some(capacity) = samples.iter().find_map(|s| s.window_capacity) {
        run.extra.insert("replay_window_capacity".into(), capacity);
    }
    run.notes.push(format!(
        "rtmd started with its default configuration; {} samples every {:.0} s",
        samples.len(),
        opts.sample_every.as_secs_f64()
    ));
    run.samples = samples;
    Ok(run)
}

/// Samples until `done`, every `every` (and once more at the end).
fn sample_until(target: &Target, every: Duration, done: &AtomicBool) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next = start;
    loop {
        let finished = done.load(Ordering::Relaxed);
        if finished || Instant::now() >= next {
            let sample = take_sample(target, start);
            eprintln!("  [sample] {}", sample.describe());
            samples.push(sample);
            next += every;
        }
        if finished {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn take_sample(target: &Target, start: Instant) -> Sample {
    let mut sample = Sample {
        t_s: start.elapsed().as_secs_f64(),
        rss_mib: target.rss_kib().map(|kib| kib as f64 / 1024.0),
        ..Sample::default()
    };
    if let Some(page) = target.admin.and_then(scrape_metrics) {
        sample.window_entries = metric(&page, "rtmd_replay_window_entries");
        sample.window_capacity = metric(&page, "rtmd_replay_window_capacity");
        let prefix = "rtmd_server_calls_total{method=\"gettoken\",result=\"";
        for line in page.lines().filter(|l| l.starts_with(prefix)) {
            let rest = &line[prefix.len()..];
            let (result, value) = match rest.split_once("\"} ") {
                Some((result, value)) => (result, value.trim().parse::<f64>().unwrap_or(0.0)),
                None => continue,
            };
            if result == "ok" {
                sample.answered = Some(value);
            } else {
                sample.errors.insert(result.to_owned(), value);
            }
        }
    }
    sample
}

/// `GET /metrics` of the admin port, with a short time-out (loopback only).
fn scrape_metrics(admin: SocketAddr) -> Option<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&admin, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    // A page of metrics is a few KiB; bound it all the same.
    stream.take(1 << 20).read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The value of the unlabelled sample `name` in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_exact_name() {
        let page = "# HELP rtmd_replay_window_entries x\nrtmd_replay_window_entries 12\n\
                    rtmd_replay_window_entries_more 3\nrtmd_replay_window_capacity 16777216\n";
        assert_eq!(metric(page, "rtmd_replay_window_entries"), Some(12.0));
        assert_eq!(
            metric(page, "rtmd_replay_window_capacity"),
            Some(16_777_216.0)
        );
        assert_eq!(metric(page, "rtmd_replay_window"), None);
    }
}
