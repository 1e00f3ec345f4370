//! `server-api`: N connections × D quests in flight of a method mix, closed loop (the most
//! the server answers) or open loop at a fixed rate (latency at a given load, measured from
//! each quest's due time).
//!
//! Two clients: `raw`, the bench's own (one thread per connection that keeps D quests in
//! flight, signs every quest as the SDK does, and reads answers in batches: no task, timer
//! or channel per quest), and `sdk`, `RtmServerClient` with D tasks per client (what a
//! business server would run).

use crate::hist::Histogram;
use crate::report::{Latency, Run};
use crate::scenario::{with_progress, CpuMark};
use crate::schedule::Schedule;
use crate::target::Target;
use crate::wire::{self, Incoming, Method, Mix, Rng, Signer};
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to load the server API.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections.
    pub connections: usize,
    /// Quests in flight per connection (closed loop).
    pub depth: usize,
    /// The methods.
    pub mix: Mix,
    /// Users drawn from `1..=users`.
    pub users: u64,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// `Some(rate)`: open loop at this many quests a second.
    pub rate: Option<f64>,
    /// `raw` or `sdk`.
    pub sdk: bool,
    /// Open loop: the shortest time between two sends of one connection. Quests that fall
    /// due meanwhile go out together at the next send, and are charged from their due
    /// times; without it the sender would wake (and write) once per quest, and cost the
    /// shared cores more than the server does.
    pub pace: Duration,
}

/// What one connection measured.
#[derive(Default)]
struct ConnOut {
    all: Histogram,
    by_method: BTreeMap<&'static str, Histogram>,
    lag: Histogram,
    ops: u64,
    errors: BTreeMap<String, u64>,
    failure: Option<String>,
}

impl ConnOut {
    fn record(&mut self, method: Method, latency_ns: u64) {
        self.all.record_ns(latency_ns);
        self.by_method
            .entry(method.name())
            .or_default()
            .record_ns(latency_ns);
        self.ops += 1;
    }

    fn merge(&mut self, other: ConnOut) {
        self.all.merge(&other.all);
        for (m, h) in other.by_method {
            self.by_method.entry(m).or_default().merge(&h);
        }
        self.lag.merge(&other.lag);
        self.ops += other.ops;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.failure.is_none() {
            self.failure = other.failure;
        }
    }
}

/// The method of quest `seq` on connection `c`: drawn the same way by the sender and by
/// whoever reads the answer.
fn method_of(mix: &Mix, c: usize, seq: u32) -> Method {
    let mut rng = Rng::new(((c as u64) << 32) | u64::from(seq));
    mix.pick(rng.next_u64())
}

struct Ctx {
    addr: SocketAddr,
    signer: Signer,
    opts: Options,
    stop: AtomicBool,
    measure_from: Instant,
    measure_to: Instant,
    progress: Arc<AtomicU64>,
    /// `--encrypt`: the raw client's connections run `*key` first.
    encryption: Option<fpnn::encryption::ClientEncryption>,
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn error_key(answer: &fpnn::Answer) -> String {
    wire::error_code(answer).to_string()
}

/// One connection of the closed loop: keeps `depth` quests in flight until told to stop.
fn closed_conn(ctx: &Ctx, c: usize) -> ConnOut {
    let mut out = ConnOut::default();
    if let Err(e) = closed_conn_inner(ctx, c, &mut out) {
        out.failure = Some(format!("connection {c}: {e}"));
    }
    out
}

fn closed_conn_inner(ctx: &Ctx, c: usize, out: &mut ConnOut) -> std::io::Result<()> {
    let mut stream = connect(ctx.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = wire::Reader::default();
    let mut sealer = wire::key_exchange(&mut stream, &mut reader, ctx.encryption.as_ref())?;
    let mut rng = Rng::new(0xB0B0 + c as u64);
    let mut sent = vec![ctx.measure_from; 1 << 16];
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut seq: u32 = 1;
    let mut in_flight = 0usize;
    let mut n = 0u64;
    let mut send = |buf: &mut BytesMut, sent: &mut Vec<Instant>, now: Instant| {
        let method = method_of(&ctx.opts.mix, c, seq);
        let uid = (rng.next_u64() % ctx.opts.users) as i64 + 1;
        ctx.signer.append(buf, method, seq, uid, n);
        sent[(seq & 0xffff) as usize] = now;
        seq = seq.wrapping_add(1).max(1);
        n += 1;
    };
    let now = Instant::now();
    for _ in 0..ctx.opts.depth {
        send(&mut buf, &mut sent, now);
        in_flight += 1;
    }
    if let Some(sealer) = &mut sealer {
        sealer.seal(&mut buf)?;
    }
    stream.write_all(&buf)?;
    buf.clear();
    loop {
        let stopping = ctx.stop.load(Ordering::Relaxed);
        let mut answers = Vec::new();
        if !reader.read(&mut stream, |frame| {
            if let Incoming::Answer(a) = frame {
                answers.push(a);
            }
        })? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let now = Instant::now();
        let counted = now >= ctx.measure_from && now <= ctx.measure_to;
        for a in &answers {
            in_flight -= 1;
            if counted {
                let started = sent[(a.seq & 0xffff) as usize];
                let method = method_of(&ctx.opts.mix, c, a.seq);
                if a.is_error() {
                    *out.errors.entry(error_key(a)).or_default() += 1;
                } else {
                    out.record(method, now.duration_since(started).as_nanos() as u64);
                }
            }
            if !stopping {
                send(&mut buf, &mut sent, now);
                in_flight += 1;
            }
        }
        ctx.progress
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        if !buf.is_empty() {
            if let Some(sealer) = &mut sealer {
                sealer.seal(&mut buf)?;
            }
            stream.write_all(&buf)?;
            buf.clear();
        }
        if stopping && in_flight == 0 {
            return Ok(());
        }
    }
}

/// One connection of the open loop: a sender thread paced by the schedule, and this thread
/// reading the answers and charging each from its due time.
fn open_conn(ctx: &Ctx, c: usize, schedule: Schedule) -> ConnOut {
    let mut out = ConnOut::default();
    if let Err(e) = open_conn_inner(ctx, c, schedule, &mut out) {
        out.failure = Some(format!("connection {c}: {e}"));
    }
    out
}

fn open_conn_inner(
    ctx: &Ctx,
    c: usize,
    schedule: Schedule,
    out: &mut ConnOut,
) -> std::io::Result<()> {
    let n = ctx.opts.connections as u64;
    let share = schedule.share(c as u64, n);
    let total = share.total();
    let mut stream = connect(ctx.addr)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let sent_all = AtomicU64::new(0);
    let writer_failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sent_all = &sent_all;
        let writer_failed = &writer_failed;
        let lag = scope.spawn(move || {
            let mut lag = Histogram::new();
            let mut rng = Rng::new(0xCAFE + c as u64);
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut j = 0u64;
            let mut last_send: Option<Instant> = None;
            while j < total {
                let due = share.due(j);
                let wake = match last_send {
                    Some(at) => due.max(at + ctx.opts.pace),
                    None => due,
                };
                let now = Instant::now();
                if wake > now {
                    std::thread::sleep(wake - now);
                    continue;
                }
                last_send = Some(now);
                let upto = share.due_by(now).max(j + 1);
                for k in j..upto {
                    let seq = (k + 1) as u32;
                    let method = method_of(&ctx.opts.mix, c, seq);
                    let uid = (rng.next_u64() % ctx.opts.users) as i64 + 1;
                    ctx.signer.append(&mut buf, method, seq, uid, k);
                    if share.due(k) >= ctx.measure_from {
                        lag.record(now.duration_since(share.due(k)));
                    }
                }
                if writer.write_all(&buf).is_err() {
                    writer_failed.store(true, Ordering::Relaxed);
                    break;
                }
                buf.clear();
                j = upto;
                sent_all.store(j, Ordering::Release);
            }
            lag
        });
        let mut reader = wire::Reader::default();
        let mut received = 0u64;
        let deadline = ctx.measure_to + Duration::from_secs(10);
        while received < total && Instant::now() < deadline {
            if writer_failed.load(Ordering::Relaxed) {
                break;
            }
            let mut answers = Vec::new();
            match reader.read(&mut stream, |frame| {
                if let Incoming::Answer(a) = frame {
                    answers.push(a);
                }
            }) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => {
                    out.failure = Some(format!("connection {c}: {e}"));
                    break;
                }
            }
            let now = Instant::now();
            for a in &answers {
                received += 1;
                let k = u64::from(a.seq) - 1;
                let due = share.due(k);
                if due < ctx.measure_from {
                    continue;
                }
                if a.is_error() {
                    *out.errors.entry(error_key(a)).or_default() += 1;
                } else {
                    let method = method_of(&ctx.opts.mix, c, a.seq);
                    out.record(method, now.duration_since(due).as_nanos() as u64);
                }
            }
            ctx.progress
                .fetch_add(answers.len() as u64, Ordering::Relaxed);
        }
        let unanswered = sent_all.load(Ordering::Acquire).saturating_sub(received);
        if unanswered > 0 {
            *out.errors.entry("unanswered".into()).or_default() += unanswered;
        }
        if let Ok(lag) = lag.join() {
            out.lag = lag;
        }
    });
    Ok(())
}

/// The SDK client: `connections` clients, `depth` tasks each calling in a loop.
fn sdk_load(ctx: Arc<Ctx>) -> ConnOut {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return ConnOut {
                failure: Some(format!("cannot start a runtime: {e}")),
                ..ConnOut::default()
            }
        }
    };
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for c in 0..ctx.opts.connections {
            let client = rtm_server_sdk::RtmServerClient::builder(
                ctx.signer.pid(),
                ctx.signer.secret(),
                ctx.addr.to_string(),
            )
            .quest_timeout(Duration::from_secs(10))
            .build();
            if let Err(e) = client.connect().await {
                return ConnOut {
                    failure: Some(format!("connect: {e}")),
                    ..ConnOut::default()
                };
            }
            for d in 0..ctx.opts.depth {
                let client = client.clone();
                let ctx = ctx.clone();
                tasks.push(tokio::spawn(async move {
                    let mut out = ConnOut::default();
                    let mut rng = Rng::new(((c as u64) << 20) + d as u64);
                    let mut n = 0u64;
                    while !ctx.stop.load(Ordering::Relaxed) {
                        let method = ctx.opts.mix.pick(rng.next_u64());
                        let uid = (rng.next_u64() % ctx.opts.users) as i64 + 1;
                        n += 1;
                        let started = Instant::now();
                        let result = match method {
                            Method::GetToken => client.get_token(uid).await.map(drop),
                            Method::AddDevice => {
                                let token = format!("bench-device-{uid}-{c}-{d}-{n}");
                                client.add_device(uid, "fcm", &token).await
                            }
                            Method::Kickout => client.kickout(uid).await.map(drop),
                        };
                        let now = Instant::now();
                        ctx.progress.fetch_add(1, Ordering::Relaxed);
                        if now < ctx.measure_from || now > ctx.measure_to {
                            continue;
                        }
                        match result {
                            Ok(()) => {
                                out.record(method, now.duration_since(started).as_nanos() as u64)
                            }
                            Err(e) => *out.errors.entry(e.code().to_string()).or_default() += 1,
                        }
                    }
                    out
                }));
            }
        }
        let mut all = ConnOut::default();
        for t in tasks {
            if let Ok(out) = t.await {
                all.merge(out);
            }
        }
        all
    })
}

/// Runs the scenario against `target`.
pub fn run(target: &Target, opts: &Options, label: &str) -> Result<Run, String> {
    if target.encryption.is_some() && (opts.sdk || opts.rate.is_some()) {
        return Err("--encrypt is for the raw closed-loop client only".into());
    }
    let start = Instant::now() + Duration::from_millis(50);
    let ctx = Arc::new(Ctx {
        addr: target.server_api,
        signer: Signer::new(target.pid, &target.secret),
        opts: opts.clone(),
        stop: AtomicBool::new(false),
        measure_from: start + opts.warmup,
        measure_to: start + opts.warmup + opts.duration,
        progress: Arc::new(AtomicU64::new(0)),
        encryption: target.encryption.clone(),
    });
    let total = opts.warmup + opts.duration;
    let mut cpu = None;
    let merged = with_progress(label, total, ctx.progress.clone(), || {
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            if opts.sdk {
                let ctx = ctx.clone();
                handles.push(scope.spawn(move || sdk_load(ctx)));
            } else {
                for c in 0..opts.connections {
                    let ctx = &ctx;
                    match opts.rate {
                        None => handles.push(scope.spawn(move || closed_conn(ctx, c))),
                        Some(rate) => {
                            let schedule = Schedule::new(start, rate, total);
                            handles.push(scope.spawn(move || open_conn(ctx, c, schedule)))
                        }
                    }
                }
            }
            // Sample CPU over the measured window only.
            let sleep_until = |t: Instant| {
                let now = Instant::now();
                if t > now {
                    std::thread::sleep(t - now);
                }
            };
            sleep_until(ctx.measure_from);
            let mark = CpuMark::now(target);
            sleep_until(ctx.measure_to);
            cpu = Some(mark.since(target));
            ctx.stop.store(true, Ordering::Relaxed);
            let mut all = ConnOut::default();
            for h in handles {
                match h.join() {
                    Ok(out) => all.merge(out),
                    Err(_) => all.failure = Some("a load thread panicked".into()),
                }
            }
            all
        })
    });
    if let Some(failure) = &merged.failure {
        if merged.ops == 0 {
            return Err(failure.clone());
        }
    }
    let seconds = opts.duration.as_secs_f64();
    let mut run = Run {
        scenario: "server-api".into(),
        label: label.to_owned(),
        target: target.name.clone(),
        client: if opts.sdk { "sdk" } else { "raw" }.into(),
        mix: Some(opts.mix.describe()),
        schedule: if opts.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .into(),
        connections: opts.connections,
        depth: opts.depth,
        target_rate: opts.rate,
        seconds,
        ops: merged.ops,
        rate: merged.ops as f64 / seconds,
        errors: merged.errors,
        latency: Latency::of(&merged.all),
        by_method: merged
            .by_method
            .iter()
            .map(|(m, h)| (m.to_string(), Latency::of(h)))
            .collect(),
        send_lag: opts.rate.map(|_| Latency::of(&merged.lag)),
        ..Run::default()
    };
    if let Some(failure) = merged.failure {
        run.notes.push(failure);
    }
    if let Some((server, load, wall)) = cpu {
        run.set_cpu(server, load, wall);
    }
    Ok(run)
}
