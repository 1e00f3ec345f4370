//! `rtm`: a command-line tool over the RTM server SDK.
//!
//! ```text
//! rtm token get --uid 42                 # prints a login token for user 42
//! rtm token remove --uid 42              # revokes the user's tokens
//! rtm device add --uid 42 --apptype fcm --token <device-token>
//! rtm device remove --uid 42 --token <device-token>
//! rtm device list --uid 42               # rtmd extension
//! rtm kickout --uid 42 [--ce ip:port]    # forces the user (or one login) offline
//! rtm login --uid 42 --token <token>     # logs in to the gate as the user and waits
//! ```
//!
//! The project comes from `--pid`/`--secret` or `RTM_PID`/`RTM_SECRET`; the server API from
//! `--endpoint` or `RTM_ENDPOINT`, the gate from `--gate` or `RTM_GATE`.

mod login;
mod server;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// Talk to an RTM service (rtmd or the hosted one): tokens, devices, kickouts, logins.
#[derive(Parser, Debug)]
#[command(name = "rtm", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where to connect and as which project.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The server API endpoint (host:port).
    #[arg(
        long,
        global = true,
        env = "RTM_ENDPOINT",
        default_value = "127.0.0.1:13315"
    )]
    pub endpoint: String,
    /// The client gate endpoint (host:port), for `login`.
    #[arg(
        long,
        global = true,
        env = "RTM_GATE",
        default_value = "127.0.0.1:13321"
    )]
    pub gate: String,
    /// The project id.
    #[arg(long, global = true, env = "RTM_PID")]
    pub pid: Option<i32>,
    /// The project's server secret.
    #[arg(long, global = true, env = "RTM_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Timeout of each call, in seconds.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

impl Global {
    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Login tokens: get one for a user, or revoke a user's tokens.
    Token {
        #[command(subcommand)]
        action: server::TokenAction,
    },
    /// Push device tokens: add, remove, list.
    Device {
        #[command(subcommand)]
        action: server::DeviceAction,
    },
    /// Force a user offline: every login, or only the one at endpoint --ce.
    Kickout(server::KickoutArgs),
    /// Log in to the gate as an end user and stay connected until kicked out (or Ctrl-C).
    Login(login::LoginArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rtm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Token { action } => server::token(&cli.global, action).await,
            Command::Device { action } => server::device(&cli.global, action).await,
            Command::Kickout(args) => server::kickout(&cli.global, args).await,
            Command::Login(args) => login::run(&cli.global, args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rtm: {message}");
            ExitCode::FAILURE
        }
    }
}
