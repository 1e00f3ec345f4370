//! `auth`: logins as fast as they go. Each worker, in a loop: connect to the gate, `auth`
//! with a token minted beforehand, `bye`, close. A login counts once `bye` is answered; its
//! latency runs from the connect to that answer.

use crate::hist::Histogram;
use crate::report::{Latency, Run};
use crate::scenario::{with_progress, CpuMark};
use crate::target::Target;
use crate::wire::{self, Method, Signer};
use bytes::BytesMut;
use fpnn::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Login tokens for users `1..=n`, minted with `gettoken` (pipelined on one connection).
/// The responder's answers are not real tokens, which it does not check either.
pub fn mint_tokens(target: &Target, users: u64) -> Result<Vec<(i64, String)>, String> {
    let fail = |e: std::io::Error| format!("minting {users} tokens at {}: {e}", target.server_api);
    let signer = Signer::new(target.pid, &target.secret);
    let mut stream = TcpStream::connect(target.server_api).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    let mut reader = wire::Reader::default();
    let mut tokens = vec![(0i64, String::new()); users as usize];
    let mut buf = BytesMut::new();
    const BATCH: u64 = 256;
    let mut first = 0u64;
    while first < users {
        let last = (first + BATCH).min(users);
        for i in first..last {
            signer.append(
                &mut buf,
                Method::GetToken,
                (i + 1) as u32,
                (i + 1) as i64,
                0,
            );
        }
        stream.write_all(&buf).map_err(fail)?;
        buf.clear();
        let mut got = first;
        let mut failure = None;
        while got < last {
            let more = reader
                .read(&mut stream, |frame| {
                    if let wire::Incoming::Answer(a) = frame {
                        got += 1;
                        let i = (a.seq - 1) as usize;
                        let token = a
                            .body()
                            .ok()
                            .and_then(|b| b.get("token").and_then(Value::as_text));
                        match (a.is_error(), token) {
                            (false, Some(t)) if i < tokens.len() => tokens[i] = ((i + 1) as i64, t),
                            _ => {
                                failure = Some(format!(
                                    "gettoken failed with code {}",
                                    wire::error_code(&a)
                                ))
                            }
                        }
                    }
                })
                .map_err(fail)?;
            if !more {
                return Err(format!("{} closed the connection", target.server_api));
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }
        first = last;
    }
    Ok(tokens)
}

/// How to log in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent workers (each one login at a time).
    pub workers: usize,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

#[derive(Default)]
struct Out {
    hist: Histogram,
    ops: u64,
    errors: BTreeMap<String, u64>,
}

fn login(
    gate: SocketAddr,
    pid: i32,
    (uid, token): &(i64, String),
    check_ok: bool,
    buf: &mut BytesMut,
    encryption: Option<&fpnn::encryption::ClientEncryption>,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(gate).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = wire::Reader::default();
    let mut sealer = wire::key_exchange(&mut stream, &mut reader, encryption)
        .map_err(|e| format!("*key: {e}"))?;
    wire::auth(buf, 1, pid, *uid, token);
    let answer = wire::call(&mut stream, &mut reader, buf, sealer.as_mut())
        .map_err(|e| format!("auth: {e}"))?;
    if answer.is_error() {
        return Err(wire::error_code(&answer).to_string());
    }
    if check_ok {
        let ok = answer
            .body()
            .ok()
            .and_then(|b| b.get("ok").and_then(Value::as_bool));
        if ok != Some(true) {
            return Err("auth refused".into());
        }
    }
    wire::encode(
        buf,
        rtm_protocol::gate::Method::Bye.name(),
        2,
        &Value::map(),
    );
    let answer = wire::call(&mut stream, &mut reader, buf, sealer.as_mut())
        .map_err(|e| format!("bye: {e}"))?;
    if answer.is_error() {
        return Err(wire::error_code(&answer).to_string());
    }
    Ok(())
}

/// Runs the scenario.
pub fn run(
    target: &Target,
    tokens: &[(i64, String)],
    opts: &Options,
    label: &str,
) -> Result<Run, String> {
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let measure_to = measure_from + opts.duration;
    let stop = AtomicBool::new(false);
    let progress = Arc::new(AtomicU64::new(0));
    let check_ok = target.name == "rtmd";
    let mut cpu = None;
    let total = opts.warmup + opts.duration;
    let merged = with_progress(label, total, progress.clone(), || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..opts.workers)
                .map(|w| {
                    let (stop, progress) = (&stop, &progress);
                    scope.spawn(move || {
                        let mut out = Out::default();
                        let mut buf = BytesMut::with_capacity(512);
                        let mut i = w;
                        while !stop.load(Ordering::Relaxed) {
                            let user = &tokens[i % tokens.len()];
                            i += opts.workers;
                            let began = Instant::now();
                            let result = login(
                                target.gate,
                                target.pid,
                                user,
                                check_ok,
                                &mut buf,
                                target.encryption.as_ref(),
                            );
                            buf.clear();
                            let now = Instant::now();
                            progress.fetch_add(1, Ordering::Relaxed);
                            if now < measure_from || now > measure_to {
                                continue;
                            }
                            match result {
                                Ok(()) => {
                                    out.ops += 1;
                                    out.hist.record(now - began);
                                }
                                Err(e) => *out.errors.entry(e).or_default() += 1,
                            }
                        }
                        out
                    })
                })
                .collect();
            std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
            let mark = CpuMark::now(target);
            std::thread::sleep(measure_to.saturating_duration_since(Instant::now()));
            cpu = Some(mark.since(target));
            stop.store(true, Ordering::Relaxed);
            let mut all = Out::default();
            for h in handles {
                if let Ok(out) = h.join() {
                    all.hist.merge(&out.hist);
                    all.ops += out.ops;
                    for (k, v) in out.errors {
                        *all.errors.entry(k).or_default() += v;
                    }
                }
            }
            all
        })
    });
    let seconds = opts.duration.as_secs_f64();
    let mut run = Run {
        scenario: "auth".into(),
        label: label.to_owned(),
        target: target.name.clone(),
        client: "raw".into(),
        schedule: "closed".into(),
        connections: opts.workers,
        depth: 1,
        seconds,
        ops: merged.ops,
        rate: merged.ops as f64 / seconds,
        errors: merged.errors,
        latency: Latency::of(&merged.hist),
        ..Run::default()
    };
    run.notes.push(
        "one login = TCP connect + auth (token checked, session registered) + bye answered".into(),
    );
    if let Some((server, load, wall)) = cpu {
        run.set_cpu(server, load, wall);
    }
    if let Some(rss) = target.rss_kib() {
        // What a burst of short sessions leaves behind in the server.
        run.extra.insert("server_rss_after_kib".into(), rss as f64);
    }
    Ok(run)
}
