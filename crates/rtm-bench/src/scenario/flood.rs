//! `flood`: hostile peers that pipeline quests and never read an answer.
//!
//! `c` connections write quests as fast as the server takes them for `seconds` and never
//! read: signed `getdevices` on the server API (`server-api`), unauthenticated `*ping` on
//! the gate (`gate-ping`), or `ping` from a logged-in gate client that never answers the
//! gate's own pings either (`gate-silent`). Meanwhile a second client calls `gettoken` one
//! at a time (its latency is the run's latency), and the server's RSS is sampled every
//! 250 ms: before, during, and for `after` seconds after the flood's connections closed.
//! Bounded in time and count; loopback only.

use crate::hist::Histogram;
use crate::report::{Latency, Run};
use crate::target::Target;
use crate::wire::{self, Method, Reader, Signer};
use bytes::BytesMut;
use rtm_protocol::api::GetDevices;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the flooding connections send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Signed `getdevices` on the server API.
    ServerApi,
    /// Unauthenticated `*ping` on the gate.
    GatePing,
    /// `ping` from a logged-in gate client that answers nothing.
    GateSilent,
}

impl Kind {
    /// Parses `server-api`, `gate-ping` or `gate-silent`.
    pub fn parse(text: &str) -> Result<Kind, String> {
        match text {
            "server-api" => Ok(Kind::ServerApi),
            "gate-ping" => Ok(Kind::GatePing),
            "gate-silent" => Ok(Kind::GateSilent),
            other => Err(format!(
                "--kind {other}: use server-api, gate-ping or gate-silent"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::ServerApi => "server-api",
            Kind::GatePing => "gate-ping",
            Kind::GateSilent => "gate-silent",
        }
    }
}

/// The shape of a flood.
#[derive(Debug, Clone)]
pub struct Options {
    /// What is sent.
    pub kind: Kind,
    /// Flooding connections.
    pub connections: usize,
    /// How long they write.
    pub seconds: Duration,
    /// How long RSS is watched after they close.
    pub after: Duration,
}

/// Quests built once and written again and again by each flooding connection.
const POOL: usize = 4096;

/// Runs the scenario.
pub fn run(target: &Target, opts: &Options) -> Result<Run, String> {
    let tokens = match opts.kind {
        Kind::GateSilent => crate::scenario::auth::mint_tokens(target, opts.connections as u64)?,
        _ => Vec::new(),
    };
    let rss_samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = {
        let (samples, stop, pid) = (rss_samples.clone(), stop_sampling.clone(), target.os_pid);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = pid.and_then(crate::target::rss_kib) {
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((started.elapsed().as_secs_f64(), kib));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = target.rss_kib().unwrap_or(0);

    // The flood.
    let written = Arc::new(AtomicU64::new(0));
    let stop_flood = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for i in 0..opts.connections {
        let mut stream = connect(target, opts.kind)?;
        if let Some((uid, token)) = tokens.get(i) {
            login(&mut stream, target.pid, *uid, token)?;
        }
        let signer = Signer::new(target.pid, &target.secret);
        let (kind, written, stop) = (opts.kind, written.clone(), stop_flood.clone());
        flooders.push(std::thread::spawn(move || {
            flood(stream, kind, &signer, &written, &stop, i as u64)
        }));
    }

    // The probe: gettoken one at a time on a connection of its own.
    let probe = {
        let signer = Signer::new(target.pid, &target.secret);
        let addr = target.server_api;
        let stop = stop_flood.clone();
        std::thread::spawn(move || probe(addr, &signer, &stop))
    };
    std::thread::sleep(opts.seconds);
    stop_flood.store(true, Ordering::Relaxed);
    let mut refused = 0u64;
    for f in flooders {
        // Each flooder drops its socket when it stops: the connection closes.
        if let Ok(Err(_)) = f.join() {
            refused += 1;
        }
    }
    let closed_at = started.elapsed().as_secs_f64();
    let (hist, probe_errors) = probe.join().map_err(|_| "the probe panicked")?;
    std::thread::sleep(opts.after);
    stop_sampling.store(true, Ordering::Relaxed);
    let _ = sampler.join();

    let samples = rss_samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let during = samples
        .iter()
        .filter(|(t, _)| *t <= closed_at)
        .map(|(_, k)| *k)
        .max()
        .unwrap_or(0);
    let after = samples.last().map(|(_, k)| *k).unwrap_or(0);
    let quests = written.load(Ordering::Relaxed);
    let mut run = Run {
        scenario: "flood".into(),
        label: format!(
            "flood {} x{} {:.0} s",
            opts.kind.name(),
            opts.connections,
            opts.seconds.as_secs_f64()
        ),
        target: target.name.clone(),
        client: "raw".into(),
        schedule: "closed".into(),
        connections: opts.connections,
        depth: 1,
        seconds: opts.seconds.as_secs_f64(),
        ops: hist.count(),
        rate: hist.count() as f64 / opts.seconds.as_secs_f64().max(1e-9),
        latency: Latency::of(&hist),
        ..Run::default()
    };
    if probe_errors > 0 {
        run.errors.insert("probe".into(), probe_errors);
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    run.extra.insert("quests_written".into(), quests as f64);
    run.extra.insert("rss_before_mib".into(), mib(rss_before));
    run.extra.insert("rss_max_during_mib".into(), mib(during));
    run.extra.insert(
        format!("rss_{:.0}s_after_close_mib", opts.after.as_secs_f64()),
        mib(after),
    );
    run.extra.insert(
        "rss_growth_mib".into(),
        mib(during.saturating_sub(rss_before)),
    );
    run.extra.insert(
        "rss_after_minus_before_mib".into(),
        mib(after) - mib(rss_before),
    );
    run.notes.push(format!(
        "{quests} quests written by {} connections that never read ({refused} ended by the server); \
         latency = a second client's gettoken, one at a time, during the flood; RSS sampled every 250 ms",
        opts.connections
    ));
    eprintln!(
        "  [flood] {quests} quests written; server RSS {:.1} MiB before, {:.1} MiB max during, {:.1} MiB {:.0} s after the close",
        mib(rss_before),
        mib(during),
        mib(after),
        opts.after.as_secs_f64()
    );
    Ok(run)
}

fn connect(target: &Target, kind: Kind) -> Result<TcpStream, String> {
    let addr = match kind {
        Kind::ServerApi => target.server_api,
        Kind::GatePing | Kind::GateSilent => target.gate,
    };
    let stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn login(stream: &mut TcpStream, pid: i32, uid: i64, token: &str) -> Result<(), String> {
    let mut out = BytesMut::new();
    wire::auth(&mut out, 1, pid, uid, token);
    let answer = wire::call(stream, &mut Reader::default(), &mut out, None)
        .map_err(|e| format!("login of user {uid}: {e}"))?;
    if answer.is_error() {
        return Err(format!(
            "login of user {uid} refused ({})",
            wire::error_code(&answer)
        ));
    }
    Ok(())
}

/// Writes quests until `stop`, never reading. `Err` when the server ended the connection.
///
/// The quests are built once (`POOL` of them, signed with fresh salts) and written again
/// and again, so that the writer costs next to nothing and the server gets all it takes: on
/// the server API the repeats are replays, answered 200006, which is as much work and as
/// large an answer as a fresh call.
fn flood(
    mut stream: TcpStream,
    kind: Kind,
    signer: &Signer,
    written: &AtomicU64,
    stop: &AtomicBool,
    n: u64,
) -> Result<(), std::io::Error> {
    // A blocked write wakes up now and then to look at `stop`.
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    let mut pool = BytesMut::new();
    for seq in 1..=POOL as u32 {
        match kind {
            Kind::ServerApi => {
                let uid = ((n * 1_000_003 + u64::from(seq)) % 100_000 + 1) as i64;
                signer.append_request(&mut pool, seq, &GetDevices { uid });
            }
            Kind::GatePing => wire::encode(&mut pool, "*ping", seq, &fpnn::Value::map()),
            Kind::GateSilent => wire::encode(&mut pool, "ping", seq, &fpnn::Value::map()),
        }
    }
    let quest_len = pool.len() / POOL;
    let mut at = 0;
    let mut bytes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match stream.write(&pool[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(k) => {
                at = (at + k) % pool.len();
                let before = bytes / quest_len as u64;
                bytes += k as u64;
                written.fetch_add(bytes / quest_len as u64 - before, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `gettoken` one at a time until `stop`: its latency, and the failures.
fn probe(addr: SocketAddr, signer: &Signer, stop: &AtomicBool) -> (Histogram, u64) {
    let mut hist = Histogram::new();
    let mut errors = 0;
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (hist, 1);
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = Reader::default();
    let mut out = BytesMut::new();
    let mut seq = 1u32;
    while !stop.load(Ordering::Relaxed) {
        signer.append(
            &mut out,
            Method::GetToken,
            seq,
            i64::from(seq % 1000) + 1,
            0,
        );
        seq += 1;
        let start = Instant::now();
        match wire::call(&mut stream, &mut reader, &mut out, None) {
            Ok(answer) if !answer.is_error() => hist.record(start.elapsed()),
            Ok(_) => errors += 1,
            Err(_) => return (hist, errors + 1),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = stream.flush();
    (hist, errors)
}
