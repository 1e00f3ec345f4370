//! The `rtmd` binary: the RTM-compatible token service.
//!
//! ```text
//! rtmd                         # development project, embedded store in ./rtmd-data
//! rtmd --config rtmd.toml      # production configuration
//! ```

use clap::Parser;

/// jemalloc instead of the system allocator, with its background purging thread on (see
/// `main`): after a flood of connections ends, glibc's malloc kept the memory they had freed
/// (1,000 flooding gate connections: 72 MiB of RSS still held 10 s after they closed, where
/// 7 MiB was used before), and so did jemalloc without the purging thread (69 MiB); with it,
/// 13 MiB. mimalloc kept 90 MiB. Measured with `rtm-bench flood --kind gate-ping -c 1000`;
/// BENCHMARKS.md has the figures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use rtmd::config::{Config, LogFormat, DEV_PID};
use rtmd::Rtmd;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A self-hosted token service compatible with LiveData RTM.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file (TOML). Without it, rtmd runs a development project.
    #[arg(long, short, env = "RTMD_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory of the development configuration [default: rtmd-data]. With
    /// --config, the file's `data_dir` is used and this is ignored (with a warning).
    #[arg(long, env = "RTMD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Override the server API address (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    server_api: Option<String>,
    /// Override the gate address.
    #[arg(long)]
    gate: Option<String>,
    /// Override the admin address ("" turns the admin port off).
    #[arg(long)]
    admin: Option<String>,
    /// Override the store ("embedded" or a redis:// URL).
    #[arg(long)]
    store: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Freed memory goes back to the system within seconds, not at the next allocation
    // burst; an allocator that cannot do this leaves the default in place.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("rtmd: cannot start jemalloc's purging thread ({e}); freed memory is returned more slowly");
    }
    let config = match load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rtmd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(config.log_format);
    let mut warnings = config.warnings();
    if args.config.is_some() && args.data_dir.is_some() {
        warnings.push(format!(
            "--data-dir (or RTMD_DATA_DIR) is ignored with --config: the data is in {} (the file's data_dir)",
            config.data_dir.display()
        ));
    }
    for warning in warnings {
        tracing::warn!("configuration: {warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtmd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, args.config.is_none()))
}

/// Logs to stderr, at the level of `RUST_LOG` (default `info`): JSON lines, or text with
/// colours only when stderr is a terminal and `NO_COLOR` is unset or empty.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().with_ansi(false).init(),
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init()
        }
    }
}

fn load(args: &Args) -> Result<Config, rtmd::config::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::development(args.data_dir.as_deref().unwrap_or(Path::new("rtmd-data")))?,
    };
    if let Some(addr) = &args.server_api {
        config.listen.server_api = addr.clone();
    }
    if let Some(addr) = &args.gate {
        config.listen.gate = addr.clone();
    }
    if let Some(addr) = &args.admin {
        config.listen.admin = addr.clone();
    }
    if let Some(store) = &args.store {
        config.store = store.clone();
    }
    config.validate()?;
    Ok(config)
}

async fn run(config: Config, development: bool) -> ExitCode {
    let dev_secret = development.then(|| config.projects[0].secrets[0].clone());
    let store = config.store_kind();
    let data_dir = config.data_dir.clone();
    let service = match Rtmd::start(config).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("rtmd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = StopSignals::listen();
    let admin = service
        .admin_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    tracing::info!(
        server_api = %service.server_api_addr(),
        gate = %service.gate_addr(),
        %admin,
        %store,
        "rtmd is ready"
    );
    if let Some(secret) = dev_secret {
        eprintln!(
            "\nWARNING: no --config given: running a DEVELOPMENT project (data in {}).\n\
             Do not use it in production. Its credentials, for the SDK, the examples and `rtm`:\n\n\
             \x20   export RTM_PID={DEV_PID} RTM_SECRET={secret} RTM_ENDPOINT={} RTM_GATE={}\n",
            data_dir.display(),
            service.server_api_addr(),
            service.gate_addr(),
        );
    }
    // A machine-readable line on stdout for scripts and tests; a person at a terminal has
    // the log's ready line already, so it is not repeated there.
    if !std::io::stdout().is_terminal() {
        println!(
            "rtmd ready server_api={} gate={} admin={admin}",
            service.server_api_addr(),
            service.gate_addr(),
        );
    }
    stop.wait().await;
    tracing::info!(
        "shutting down: answering calls in flight, closing connections, flushing the store"
    );
    service.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, listened for from its creation: made before the ready line, so that a
/// signal sent as soon as the line is read is not taken by the default action (exit 143).
struct StopSignals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                handlers: signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.handlers {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
