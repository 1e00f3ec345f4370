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
//! rtm keygen --curve secp256r1 keys/server # writes an encryption key pair (eccKeyMaker files)
//! ```
//!
//! `--server-key FILE` encrypts the server API connection, `--gate-key FILE` the gate's
//! (FPNN encryption: ECDH with the server's public key, then AES-CFB; see [`crypto`]).
//!
//! The project comes from `--pid`/`--secret` or `RTM_PID`/`RTM_SECRET`; the server API from
//! `--endpoint` or `RTM_ENDPOINT`, the gate from `--gate` or `RTM_GATE`. `--json` prints one
//! JSON object a line on stdout for scripts. Failures are reported in one style
//! ([`failure`]); the exit codes are in [`failure::exit`] and [`EXIT_CODES`].

mod crypto;
mod defaults;
mod failure;
mod gate;
mod login;
mod output;
mod server;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use defaults::{DEFAULT_ENDPOINT, DEFAULT_GATE};
use failure::{exit, Failure};
use std::process::ExitCode;
use std::time::Duration;

/// The longest `--timeout`, in seconds (a day).
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// The exit codes, as `--help` shows them (their numbers live in [`failure::exit`]).
const EXIT_CODES: &str = "\
Exit codes:
  0  success (login: logged out, or kicked out and closed)
  1  the call failed: refused by the server, no answer in time, no connection
     (the message names the code, its official name, and a hint)
  2  the command line is wrong (the message says what)
  3  login refused: the token is invalid, expired or revoked (200027)
  4  login: the connection closed without a kickout";

/// Talk to an RTM service (rtmd or the hosted one): tokens, devices, kickouts, logins.
#[derive(Parser, Debug)]
#[command(name = "rtm", version, about, after_help = EXIT_CODES)]
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
    #[arg(long, global = true, env = "RTM_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The client gate endpoint (host:port), for `login`.
    #[arg(long, global = true, env = "RTM_GATE", default_value = DEFAULT_GATE)]
    pub gate: String,
    /// The project id.
    #[arg(long, global = true, env = "RTM_PID", allow_negative_numbers = true)]
    pub pid: Option<i32>,
    /// The project's server secret.
    #[arg(long, global = true, env = "RTM_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Timeout of each call (and of connecting), in seconds: 10, 0.5, at most 86400.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value = "10",
        value_parser = parse_timeout,
        allow_negative_numbers = true
    )]
    pub timeout: Duration,
    /// Print JSON on stdout, one object a line, for scripts (errors stay text on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub crypto: crypto::CryptoArgs,
}

impl Global {
    /// The project id, or the usage error that says where to find it.
    pub fn pid(&self) -> Result<i32, Problem> {
        self.pid.ok_or_else(|| {
            Problem::Usage(
                "no project id: pass --pid or set RTM_PID (rtmd prints it when it starts)".into(),
            )
        })
    }

    /// The project's secret, or the usage error that says where to find it.
    pub fn secret(&self) -> Result<String, Problem> {
        self.secret.clone().ok_or_else(|| {
            Problem::Usage(
                "no project secret: pass --secret or set RTM_SECRET (rtmd prints it when it starts)"
                    .into(),
            )
        })
    }
}

/// `--timeout`: seconds, more than 0 (a zero timeout would fail every call at once).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds (e.g. 10 or 0.5)"))?;
    // NaN fails this test too.
    if secs.is_nan() || secs < 0.001 {
        return Err(format!(
            "a timeout must be at least 0.001 seconds; {text} would fail every call at once \
             (e.g. --timeout 10)"
        ));
    }
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "a timeout of {text} seconds is longer than a day ({MAX_TIMEOUT_SECS} s)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The user a command acts on.
#[derive(Args, Debug, Clone, Copy)]
pub struct User {
    /// The user id (any 64-bit integer is sent; the server judges it, rtmd takes 1 and up).
    #[arg(long, allow_negative_numbers = true)]
    pub uid: i64,
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
    /// Write a new encryption key pair, the files the official eccKeyMaker writes: NAME-private.key
    /// (for rtmd's encryption.*.private_key), NAME-public.pem / .der / .key (for clients).
    Keygen(crypto::KeygenArgs),
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Problem {
    /// The command line is wrong: reported as clap reports its own errors (exit code 2).
    Usage(String),
    /// A call failed.
    Failed(Failure),
}

impl From<Failure> for Problem {
    fn from(f: Failure) -> Problem {
        Problem::Failed(f)
    }
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
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Token { action } => server::token(&cli.global, action).await,
            Command::Device { action } => server::device(&cli.global, action).await,
            Command::Kickout(args) => server::kickout(&cli.global, args).await,
            Command::Login(args) => login::run(&cli.global, args).await,
            Command::Keygen(args) => crypto::keygen(&cli.global, args),
        }
    });
    match result {
        Ok(code) => code,
        Err(Problem::Usage(message)) => {
            let error = Cli::command().error(ErrorKind::MissingRequiredArgument, message);
            // Prints as clap's own usage errors do.
            let _ = error.print();
            ExitCode::from(exit::USAGE)
        }
        Err(Problem::Failed(failure)) => {
            eprintln!("rtm: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_accepted_timeout_is_between_a_millisecond_and_a_day(text in "\\PC{0,12}|[-+]?[0-9.e]{1,12}") {
            if let Ok(timeout) = parse_timeout(&text) {
                prop_assert!(timeout >= Duration::from_micros(999));
                prop_assert!(timeout <= Duration::from_secs(86_400));
            }
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_are_positive_seconds_up_to_a_day() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("86400"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "0", "0.0", "-1", "0.0001", "NaN", "inf", "86401", "1e30", "ten", "",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad} is refused");
        }
    }
}
