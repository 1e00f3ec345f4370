//! `rtm-bench`: the load generator of `rtmd`.
//!
//! It measures what users choose a server by: server API calls a second (and their latency),
//! logins a second, memory per logged-in connection, kickout latency; and it runs the same
//! load against a minimal FPNN responder that does no work (`limit`), in the same run, as
//! the ceiling of the machine. Loopback only; every run is bounded in time and count.
//!
//! ```text
//! cargo build --release -p rtmd -p rtm-bench
//! target/release/rtm-bench all                       # every scenario and target; table, JSON, SVG
//! target/release/rtm-bench server-api -c 16 -d 32    # gettoken, closed loop, against rtmd
//! target/release/rtm-bench limit -c 16 -d 32         # the same against rtmd and the responder
//! target/release/rtm-bench server-api --rate 20000   # open loop at a fixed rate
//! target/release/rtm-bench auth -w 32                # logins a second
//! target/release/rtm-bench idle -k 15000             # RSS per logged-in connection
//! target/release/rtm-bench kickout -u 2000 --rate 500
//! target/release/rtm-bench sustained                 # 50,000 gettoken/s for 10 min, default rtmd
//! target/release/rtm-bench flood --kind server-api -c 1 --seconds 15   # a peer that never reads
//! ```

mod chart;
mod gate_client;
mod hist;
mod report;
mod responder;
mod scenario;
mod schedule;
mod target;
mod wire;

use clap::{Args, Parser, Subcommand};
use report::{Report, Run, Verdict};
use scenario::{auth, flood, idle, kickout, server_api, sustained};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use target::Target;
use wire::Mix;

/// Load generator for rtmd: throughput, latency, logins, memory per connection, kickout
/// latency, and the same load against a no-work FPNN responder as the machine's ceiling.
#[derive(Parser, Debug)]
#[command(name = "rtm-bench", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// The rtmd binary to start (default: `rtmd` next to this binary, i.e. the release build).
    #[arg(long, global = true)]
    rtmd: Option<PathBuf>,
    /// Load an rtmd that is already running at this server API address instead of
    /// starting one (with --gate, --pid, --secret).
    #[arg(long, global = true)]
    server_api: Option<SocketAddr>,
    /// The gate of the running rtmd.
    #[arg(long, global = true)]
    gate: Option<SocketAddr>,
    /// The project of the running rtmd.
    #[arg(long, global = true, default_value_t = target::DEV_PID)]
    pid: i32,
    /// The project's secret, for the running rtmd.
    #[arg(long, global = true, env = "RTM_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The OS process id of the running rtmd (for its RSS and CPU).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Where to write results.json and latency.svg.
    #[arg(long, global = true, default_value = "bench-results")]
    out: PathBuf,
    /// Measured seconds of each load run.
    #[arg(long, global = true, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each load run.
    #[arg(long, global = true, default_value_t = 2.0)]
    warmup: f64,
    /// `limits.replay_capacity` of the rtmd the bench starts (requests remembered against
    /// replays): rtmd's default, 16 Mi. 0 writes no setting (for builds without it).
    #[arg(long, global = true, default_value_t = 16 << 20)]
    replay_capacity: usize,
    /// Encrypt (FPNN `*key` exchange, secp256r1, AES-128) in `package` or `stream` mode: the
    /// rtmd started gets a key on both ports (plain still allowed), and the raw closed-loop
    /// server API client and the `auth` logins run `*key` first on every connection.
    #[arg(long, global = true, value_parser = parse_encrypt)]
    encrypt: Option<fpnn::encryption::Mode>,
}

fn parse_encrypt(text: &str) -> Result<fpnn::encryption::Mode, String> {
    match text {
        "package" => Ok(fpnn::encryption::Mode::Package),
        "stream" => Ok(fpnn::encryption::Mode::Stream),
        other => Err(format!("'{other}': package or stream")),
    }
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 16)]
    connections: usize,
    /// Quests in flight per connection.
    #[arg(short = 'd', long, default_value_t = 32)]
    depth: usize,
    /// Method mix, e.g. `gettoken=80,adddevice=10,kickout=10`.
    #[arg(short = 'm', long, default_value = "gettoken")]
    mix: String,
    /// Open loop at this many quests a second (default: closed loop, as fast as answered).
    #[arg(long)]
    rate: Option<f64>,
    /// After the closed-loop run, an open-loop run at this fraction of the rate it reached
    /// (the issue's "p99 at half of the maximum": 0.5).
    #[arg(long)]
    then_open_at: Option<f64>,
    /// `raw` (the bench's pipelining client) or `sdk` (RtmServerClient).
    #[arg(long, default_value = "raw")]
    client: String,
    /// Users drawn at random from 1..=users.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Open loop: microseconds at least between two sends of one connection (quests due
    /// meanwhile go out together, charged from their due times).
    #[arg(long, default_value_t = 100)]
    pace_us: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Server API load: N connections × D quests in flight of a method mix.
    ServerApi(LoadArgs),
    /// The same server API load against rtmd and the no-work responder; their ratio.
    Limit(LoadArgs),
    /// Logins a second: connect + auth + bye, W workers.
    Auth {
        /// Concurrent workers.
        #[arg(short = 'w', long, default_value_t = 32)]
        workers: usize,
        /// Also against the no-work responder.
        #[arg(long)]
        limit: bool,
    },
    /// K logged-in connections held open: server RSS per connection, responsiveness.
    Idle {
        /// Connections.
        #[arg(short = 'k', long, default_value_t = 15_000)]
        connections: usize,
        /// Logins in progress at once while opening.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 25.0)]
        hold: f64,
        /// Also against the no-work responder.
        #[arg(long)]
        limit: bool,
    },
    /// Kickout latency: from the server API call to the client receiving the `kickout` push.
    Kickout {
        /// Users logged in, then kicked one by one.
        #[arg(short = 'u', long, default_value_t = 2000)]
        users: usize,
        /// Kickouts a second.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
    },
    /// A sustained open-loop gettoken load against an rtmd with its default configuration
    /// (replay window included): its RSS and replay window sampled over the run. The
    /// global --duration, --replay-capacity do not apply (--warmup does).
    Sustained {
        /// Quests a second.
        #[arg(long, default_value_t = 50_000.0)]
        rate: f64,
        /// Measured seconds (bounded: at most an hour).
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        /// Connections the load is spread over.
        #[arg(short = 'c', long, default_value_t = 4)]
        connections: usize,
        /// Seconds between two samples of rtmd's RSS and metrics.
        #[arg(long, default_value_t = 5.0)]
        sample_every: f64,
    },
    /// Hostile peers: connections that pipeline quests for a while and never read; a second
    /// client's gettoken latency and the server's RSS during and after.
    Flood {
        /// `server-api` (signed getdevices), `gate-ping` (unauthenticated *ping) or
        /// `gate-silent` (a logged-in client that never answers the gate's pings).
        #[arg(long, default_value = "server-api")]
        kind: String,
        /// Flooding connections.
        #[arg(short = 'c', long, default_value_t = 1)]
        connections: usize,
        /// Seconds of flooding.
        #[arg(long, default_value_t = 15.0)]
        seconds: f64,
        /// Seconds RSS is watched after the flood's connections closed.
        #[arg(long, default_value_t = 10.0)]
        after: f64,
    },
    /// Every scenario and the targets of the issue, with verdicts.
    All {
        /// Connections of the throughput runs.
        #[arg(short = 'c', long, default_value_t = 16)]
        connections: usize,
        /// Quests in flight per connection.
        #[arg(short = 'd', long, default_value_t = 32)]
        depth: usize,
        /// Connections of the idle run.
        #[arg(short = 'k', long, default_value_t = 15_000)]
        idle: usize,
        /// Skip the idle run (the slowest).
        #[arg(long)]
        no_idle: bool,
        /// Connections of the open-loop run at half the maximum.
        #[arg(long, default_value_t = 4)]
        open_connections: usize,
    },
    /// Redraws the table and the chart of a results.json (into --out).
    Chart {
        /// The results file.
        from: PathBuf,
    },
    /// (internal) The no-work FPNN responder, run in a child process.
    #[command(hide = true)]
    Responder {
        /// Where to listen (loopback only).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// How the bench gets an rtmd: starts a fresh one per scenario, or uses the running one.
struct Rtmds<'a> {
    global: &'a Global,
    dirs: Vec<PathBuf>,
    /// Lines added to the `[limits]` of the rtmd started.
    extra_limits: String,
}

impl Rtmds<'_> {
    fn bin(&self) -> PathBuf {
        self.global.rtmd.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("rtmd")))
                .unwrap_or_else(|| PathBuf::from("rtmd"))
        })
    }

    /// A fresh rtmd (so that each scenario starts from an empty replay window and heap), or
    /// the running one.
    fn get(&mut self) -> Result<Target, String> {
        self.get_with(self.global.replay_capacity)
    }

    /// [`get`](Self::get), a fresh rtmd with a replay window of `replay_capacity` requests
    /// (0: rtmd's default).
    fn get_with(&mut self, replay_capacity: usize) -> Result<Target, String> {
        if let Some(server_api) = self.global.server_api {
            let gate = self
                .global
                .gate
                .ok_or("--server-api needs --gate (and --secret) too")?;
            let secret = self
                .global
                .secret
                .clone()
                .ok_or("--server-api needs --secret (or RTM_SECRET)")?;
            return Target::running(
                server_api,
                gate,
                self.global.pid,
                secret,
                self.global.server_pid,
            );
        }
        let dir = target::temp_data_dir();
        self.dirs.push(dir.clone());
        let t = Target::start_rtmd(
            &self.bin(),
            &dir,
            replay_capacity,
            &self.extra_limits,
            self.global.encrypt,
        )?;
        eprintln!(
            "started rtmd (pid {}) server_api={} gate={} data={}",
            t.os_pid.unwrap_or(0),
            t.server_api,
            t.gate,
            dir.display()
        );
        Ok(t)
    }
}

impl Drop for Rtmds<'_> {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn load_options(global: &Global, args: &LoadArgs) -> Result<server_api::Options, String> {
    Ok(server_api::Options {
        connections: args.connections.max(1),
        depth: args.depth.max(1),
        mix: Mix::parse(&args.mix)?,
        users: args.users.max(1),
        warmup: secs(global.warmup),
        duration: secs(global.duration),
        rate: args.rate,
        sdk: match args.client.as_str() {
            "raw" => false,
            "sdk" => true,
            other => return Err(format!("--client {other}: use raw or sdk")),
        },
        pace: Duration::from_micros(args.pace_us),
    })
}

fn label(target: &Target, opts: &server_api::Options) -> String {
    let mix = match opts.mix.methods()[..] {
        [only] => only.name().to_owned(),
        _ => opts.mix.describe(),
    };
    match opts.rate {
        Some(rate) => format!(
            "{mix} {} {} conns {} open {rate:.0}/s",
            target.name,
            opts.connections,
            opts.client_name(),
        ),
        None => format!(
            "{mix} {} {}x{} {} closed",
            target.name,
            opts.connections,
            opts.depth,
            opts.client_name(),
        ),
    }
}

impl server_api::Options {
    fn client_name(&self) -> &'static str {
        if self.sdk {
            "sdk"
        } else {
            "raw"
        }
    }
}

fn push(report: &mut Report, run: Run) {
    eprintln!("= {}", run.summary());
    report.runs.push(run);
}

fn ratio_note(report: &mut Report, rtmd: f64, limit: f64) {
    if let Some(last) = report.runs.last_mut() {
        last.extra
            .insert("ratio_rtmd_to_limit".into(), rtmd / limit.max(1.0));
    }
}

/// A sequential write + fsync benchmark of the data directory's disk: the baseline of
/// durable writes.
fn fsyncs_per_second(dir: &Path) -> Option<f64> {
    use std::io::Write;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).ok()?;
    let block = vec![7u8; 4096];
    let n = 200;
    let start = std::time::Instant::now();
    for _ in 0..n {
        f.write_all(&block).ok()?;
        f.sync_data().ok()?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Some(rate)
}

fn run_command(cli: &Cli, report: &mut Report) -> Result<(), String> {
    let global = &cli.global;
    let mut rtmds = Rtmds {
        global,
        dirs: Vec::new(),
        extra_limits: String::new(),
    };
    match &cli.command {
        Command::Responder { .. } | Command::Chart { .. } => unreachable!("handled in main"),
        Command::ServerApi(args) | Command::Limit(args) => {
            let with_limit = matches!(cli.command, Command::Limit(_));
            let opts = load_options(global, args)?;
            let rtmd = rtmds.get()?;
            let run = server_api::run(&rtmd, &opts, &label(&rtmd, &opts))?;
            let max = run.rate;
            push(report, run);
            if let Some(fraction) = args.then_open_at {
                let open = server_api::Options {
                    rate: Some(max * fraction),
                    ..opts.clone()
                };
                let run = server_api::run(&rtmd, &open, &label(&rtmd, &open))?;
                push(report, run);
            }
            drop(rtmd);
            if with_limit {
                let limit = Target::start_responder()?;
                let run = server_api::run(&limit, &opts, &label(&limit, &opts))?;
                let limit_rate = run.rate;
                push(report, run);
                ratio_note(report, max, limit_rate);
                eprintln!(
                    "rtmd / limit at {}x{}: {:.1} %",
                    opts.connections,
                    opts.depth,
                    max / limit_rate.max(1.0) * 100.0
                );
            }
        }
        Command::Auth { workers, limit } => {
            let opts = auth::Options {
                workers: (*workers).max(1),
                warmup: secs(global.warmup),
                duration: secs(global.duration),
            };
            let rtmd = rtmds.get()?;
            let tokens = auth::mint_tokens(&rtmd, 1000)?;
            let label = format!("auth rtmd x{}", opts.workers);
            push(report, auth::run(&rtmd, &tokens, &opts, &label)?);
            drop(rtmd);
            if *limit {
                let limit = Target::start_responder()?;
                let label = format!("auth limit x{}", opts.workers);
                push(report, auth::run(&limit, &tokens, &opts, &label)?);
            }
        }
        Command::Idle {
            connections,
            concurrency,
            hold,
            limit,
        } => {
            let opts = idle::Options {
                connections: *connections,
                concurrency: *concurrency,
                hold: secs(*hold),
            };
            let rtmd = rtmds.get()?;
            let tokens = auth::mint_tokens(&rtmd, 1000)?;
            push(report, idle::run(&rtmd, &tokens, &opts)?);
            drop(rtmd);
            if *limit {
                let limit = Target::start_responder()?;
                let mut run = idle::run(&limit, &tokens, &opts)?;
                run.label = format!("idle {} connections (limit)", run.connections);
                push(report, run);
            }
        }
        Command::Kickout { users, rate } => {
            let rtmd = rtmds.get()?;
            let tokens = auth::mint_tokens(&rtmd, *users as u64)?;
            let opts = kickout::Options {
                users: *users,
                rate: *rate,
            };
            push(report, kickout::run(&rtmd, &tokens, &opts)?);
        }
        Command::Sustained {
            rate,
            seconds,
            connections,
            sample_every,
        } => {
            if !(*rate > 0.0 && *rate <= 2_000_000.0) {
                return Err(format!("--rate {rate}: between 0 and 2,000,000 a second"));
            }
            let opts = sustained::Options {
                rate: *rate,
                duration: secs(seconds.clamp(1.0, 3600.0)),
                warmup: secs(global.warmup),
                connections: (*connections).max(1),
                sample_every: secs(sample_every.max(0.5)),
            };
            // rtmd's own default replay window: what the scenario is about.
            let rtmd = rtmds.get_with(0)?;
            push(report, sustained::run(&rtmd, &opts)?);
        }
        Command::Flood {
            kind,
            connections,
            seconds,
            after,
        } => {
            let opts = flood::Options {
                kind: flood::Kind::parse(kind)?,
                connections: (*connections).clamp(1, 5000),
                seconds: secs(seconds.min(120.0)),
                after: secs(after.min(120.0)),
            };
            if opts.kind == flood::Kind::GateSilent {
                // The gate pings logged-in clients every 2 s instead of 20, so that a
                // 15-second flood sees its pings go unanswered (and the client closed).
                rtmds.extra_limits = "client_ping_interval = \"2s\"\n".into();
            }
            let rtmd = rtmds.get()?;
            push(report, flood::run(&rtmd, &opts)?);
        }
        Command::All {
            connections,
            depth,
            idle: idle_k,
            no_idle,
            open_connections,
        } => run_all(
            global,
            &mut rtmds,
            report,
            (*connections, *depth),
            *open_connections,
            *idle_k,
            *no_idle,
        )?,
    }
    Ok(())
}

/// Runs `shape` against a fresh rtmd and then the `limit` responder, records both runs,
/// their ratio and the ">= 60 % of limit" verdict, and returns rtmd's rate.
fn throughput_verdict(
    rtmds: &mut Rtmds<'_>,
    limit: &Target,
    report: &mut Report,
    shape: &server_api::Options,
) -> Result<f64, String> {
    let rtmd = rtmds.get()?;
    let run = server_api::run(&rtmd, shape, &label(&rtmd, shape))?;
    let rate = run.rate;
    push(report, run);
    drop(rtmd);
    let run = server_api::run(limit, shape, &label(limit, shape))?;
    let limit_rate = run.rate;
    push(report, run);
    ratio_note(report, rate, limit_rate);
    report.verdicts.push(Verdict {
        target: format!("gettoken throughput, {}x{}", shape.connections, shape.depth),
        measured: format!("{rate:.0}/s ({:.0} %)", rate / limit_rate * 100.0),
        baseline: format!("limit {limit_rate:.0}/s"),
        goal: ">= 60 % of limit".into(),
        pass: rate >= 0.6 * limit_rate,
    });
    Ok(rate)
}

#[allow(clippy::too_many_arguments)]
fn run_all(
    global: &Global,
    rtmds: &mut Rtmds<'_>,
    report: &mut Report,
    (connections, depth): (usize, usize),
    open_connections: usize,
    idle_k: usize,
    no_idle: bool,
) -> Result<(), String> {
    let warmup = secs(global.warmup);
    let duration = secs(global.duration);
    let gettoken = server_api::Options {
        connections,
        depth,
        mix: Mix::parse("gettoken")?,
        users: 100_000,
        warmup,
        duration,
        rate: None,
        sdk: false,
        pace: Duration::from_micros(100),
    };

    // 1. gettoken, closed loop: rtmd, then the limit responder at the same N×D; then the
    //    same at shallower shapes: one caller, and 16 callers without pipelining.
    let limit = Target::start_responder()?;
    let max_rate = throughput_verdict(rtmds, &limit, report, &gettoken)?;
    for (n, d) in [(1, 1), (16, 1)] {
        let shape = server_api::Options {
            connections: n,
            depth: d,
            ..gettoken.clone()
        };
        throughput_verdict(rtmds, &limit, report, &shape)?;
    }

    // 2. p99 at half of the maximum: open loop, from the due times. Fewer connections
    //    than the closed loop, so that each sender writes several quests at a time (see
    //    BENCHMARKS.md: with 16 senders at this rate the load generator costs more CPU
    //    than the server).
    let rtmd = rtmds.get()?;
    let half = server_api::Options {
        rate: Some(max_rate * 0.5),
        connections: open_connections.max(1),
        ..gettoken.clone()
    };
    let open = server_api::run(&rtmd, &half, &label(&rtmd, &half))?;
    let p99 = open.latency.p99_ms;
    push(report, open);
    drop(rtmd);
    let lim_half = half.clone();
    let lim_open = server_api::run(&limit, &lim_half, &label(&limit, &lim_half))?;
    let lim_p99 = lim_open.latency.p99_ms;
    push(report, lim_open);
    report.verdicts.push(Verdict {
        target: format!(
            "gettoken p99 at 50 % of max ({:.0}/s, {} conns)",
            max_rate * 0.5,
            half.connections
        ),
        measured: format!("{p99:.3} ms"),
        baseline: format!("limit at same rate {lim_p99:.3} ms"),
        goal: "< 2 ms".into(),
        pass: p99 < 2.0,
    });

    // 3. The SDK as the client, for what a realistic client costs.
    let rtmd = rtmds.get()?;
    let sdk = server_api::Options {
        sdk: true,
        ..gettoken.clone()
    };
    push(report, server_api::run(&rtmd, &sdk, &label(&rtmd, &sdk))?);
    drop(rtmd);
    push(report, server_api::run(&limit, &sdk, &label(&limit, &sdk))?);

    // 4. A mix, for the record.
    let rtmd = rtmds.get()?;
    let mix = server_api::Options {
        mix: Mix::parse("gettoken=80,adddevice=10,kickout=10")?,
        ..gettoken.clone()
    };
    push(report, server_api::run(&rtmd, &mix, &label(&rtmd, &mix))?);
    drop(rtmd);

    // 5. Durable writes: adddevice with 64 callers (8 connections × 8 in flight).
    let rtmd = rtmds.get()?;
    let fsyncs = rtmds.dirs.last().and_then(|d| fsyncs_per_second(d));
    let writes = server_api::Options {
        connections: 8,
        depth: 8,
        mix: Mix::parse("adddevice")?,
        ..gettoken.clone()
    };
    let mut run = server_api::run(&rtmd, &writes, &label(&rtmd, &writes))?;
    if let Some(f) = fsyncs {
        run.extra.insert("disk_fsyncs_per_second".into(), f);
    }
    let write_rate = run.rate;
    let write_errors: u64 = run.errors.values().sum();
    push(report, run);
    drop(rtmd);
    report.verdicts.push(Verdict {
        target: "adddevice durable writes, 64 callers".into(),
        measured: format!("{write_rate:.0}/s"),
        baseline: fsyncs
            .map(|f| format!("disk {f:.0} fsyncs/s"))
            .unwrap_or_else(|| "-".into()),
        goal: ">= 20000/s".into(),
        pass: write_rate >= 20_000.0 && write_errors == 0,
    });

    // 6. Logins.
    let rtmd = rtmds.get()?;
    let tokens = auth::mint_tokens(&rtmd, 1000)?;
    let auth_opts = auth::Options {
        workers: 32,
        warmup,
        duration,
    };
    let run = auth::run(&rtmd, &tokens, &auth_opts, "auth rtmd x32")?;
    let logins = run.rate;
    let login_errors: u64 = run.errors.values().sum();
    push(report, run);
    drop(rtmd);
    let run = auth::run(&limit, &tokens, &auth_opts, "auth limit x32")?;
    let limit_logins = run.rate;
    push(report, run);
    report.verdicts.push(Verdict {
        target: "auth: connect + auth + bye".into(),
        measured: format!("{logins:.0}/s"),
        baseline: format!("limit {limit_logins:.0}/s"),
        goal: ">= 15000/s".into(),
        pass: logins >= 15_000.0 && login_errors == 0,
    });

    // 7. Kickout latency.
    let rtmd = rtmds.get()?;
    let tokens = auth::mint_tokens(&rtmd, 2000)?;
    let run = kickout::run(
        &rtmd,
        &tokens,
        &kickout::Options {
            users: 2000,
            rate: 500.0,
        },
    )?;
    let kick_p99 = run.latency.p99_ms;
    let call_p99 = run
        .by_method
        .get("kickout call answered")
        .map(|l| l.p99_ms)
        .unwrap_or(0.0);
    let kick_errors: u64 = run.errors.values().sum();
    push(report, run);
    drop(rtmd);
    report.verdicts.push(Verdict {
        target: "kickout call -> client receives the push".into(),
        measured: format!("p99 {kick_p99:.3} ms"),
        baseline: format!("call answered p99 {call_p99:.3} ms"),
        goal: "p99 < 5 ms".into(),
        pass: kick_p99 < 5.0 && kick_errors == 0,
    });

    // 8. Idle connections, last: the heaviest.
    if !no_idle {
        let rtmd = rtmds.get()?;
        let tokens = auth::mint_tokens(&rtmd, 1000)?;
        let opts = idle::Options {
            connections: idle_k,
            concurrency: 256,
            hold: Duration::from_secs(25),
        };
        let run = idle::run(&rtmd, &tokens, &opts)?;
        let per = run.extra.get("rss_per_connection_kib").copied();
        let held = run.connections;
        let probe = run.extra.get("probe_gettoken_p99_ms").copied();
        push(report, run);
        drop(rtmd);
        let mut lim = idle::run(&limit, &tokens, &opts)?;
        lim.label = format!("idle {} connections (limit)", lim.connections);
        let lim_per = lim.extra.get("rss_per_connection_kib").copied();
        push(report, lim);
        report.verdicts.push(Verdict {
            target: format!("idle: {idle_k} logged-in connections"),
            measured: format!(
                "{held} held, {:.2} KiB/conn, probe p99 {:.2} ms",
                per.unwrap_or(f64::NAN),
                probe.unwrap_or(f64::NAN)
            ),
            baseline: format!("limit {:.2} KiB/conn", lim_per.unwrap_or(f64::NAN)),
            goal: "<= 8 KiB/conn".into(),
            pass: held >= idle_k && per.is_some_and(|p| p <= 8.0),
        });
    }
    drop(limit);
    Ok(())
}

fn write_outputs(out: &Path, report: &Report) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let json_path = out.join("results.json");
    std::fs::write(&json_path, json)
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    // The chart of a full run keeps to the runs behind the targets (not the SDK client's
    // nor the shallow shapes', which are in the JSON and the table).
    let full = report.runs.len() > 10;
    let charted: Vec<&Run> = report
        .runs
        .iter()
        .filter(|r| r.scenario != "idle" && r.latency.count > 0)
        .filter(|r| {
            !full
                || (r.client != "sdk"
                    && !(r.schedule == "closed" && r.scenario == "server-api" && r.depth == 1))
        })
        .collect();
    if !charted.is_empty() {
        let svg = chart::svg("rtm-bench: latency by percentile", &charted);
        let svg_path = out.join("latency.svg");
        std::fs::write(&svg_path, svg)
            .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    }
    eprintln!(
        "wrote {} and {}",
        json_path.display(),
        out.join("latency.svg").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Responder { listen } = &cli.command {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("rtm-bench responder: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(responder::run(listen)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rtm-bench responder: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Chart { from } = &cli.command {
        let report: Result<Report, String> = std::fs::read_to_string(from)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
        return match report {
            Ok(report) => {
                print!("{}", report.table());
                match write_outputs(&cli.global.out, &report) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("rtm-bench: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("rtm-bench: cannot read {}: {e}", from.display());
                ExitCode::FAILURE
            }
        };
    }
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: report::machine(),
        ..Report::default()
    };
    report.load_average.extend(target::load_average());
    eprintln!(
        "rtm-bench: load average {:.2} before the run{}",
        report.load_average.first().copied().unwrap_or(0.0),
        if report.load_average.first().is_some_and(|l| *l > 1.0) {
            " (other work on this machine makes the figures noisy)"
        } else {
            ""
        }
    );
    let result = run_command(&cli, &mut report);
    report.load_average.extend(target::load_average());
    if !report.runs.is_empty() {
        print!("{}", report.table());
        if let Err(e) = write_outputs(&cli.global.out, &report) {
            eprintln!("rtm-bench: {e}");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
