//! How `rtm` reports a failed call, in one style for every subcommand:
//!
//! ```text
//! rtm: gettoken failed at 127.0.0.1:13315: server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): invalid sign for project 11000001
//! hint: check --pid and --secret (or RTM_PID and RTM_SECRET); rtmd prints them when it starts
//! ```
//!
//! What failed, at which endpoint, the kind of failure, the code and its official name, the
//! detail (the server's message, or what the transport saw), and a hint for the next step
//! when there is one. Mistakes on the command line are not reported here: clap reports them
//! (exit code 2).

use crate::defaults::{DEFAULT_ENDPOINT, DEFAULT_GATE};
use rtm_protocol::code;
use std::fmt;

/// The exit codes of `rtm`, one home for the numbers (the README and `--help` list them).
pub mod exit {
    /// The call failed: refused by the server, no answer in time, no connection.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap's usage errors, and the checks of our own parsers).
    pub const USAGE: u8 = 2;
    /// `rtm login` was refused (`auth` answered `{ok: false}`, what clients report as 200027).
    pub const LOGIN_REFUSED: u8 = 3;
    /// `rtm login`'s connection closed without a kickout.
    pub const LOGIN_CLOSED: u8 = 4;
}

/// The two ports `rtm` talks to; each has its own hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The server API (`--endpoint`): tokens, devices, kickout.
    ServerApi,
    /// The client gate (`--gate`): `login`.
    Gate,
}

/// The kind of a failure, as the first words of its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server answered with an error.
    Server,
    /// No answer in time.
    Timeout,
    /// No connection could be made, or it broke or closed.
    Connection,
    /// The peer's bytes or answer could not be understood.
    Protocol,
    /// The login was refused (`{ok: false}`).
    Refused,
    /// Anything else.
    Other,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Server => "server error",
            Kind::Timeout => "timeout",
            Kind::Connection => "connection error",
            Kind::Protocol => "protocol error",
            Kind::Refused | Kind::Other => "error",
        }
    }
}

/// What went wrong, before the command and the endpoint are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The kind.
    pub kind: Kind,
    /// The numeric code, as the official SDKs report it.
    pub code: i32,
    /// The server's message, or what the transport saw.
    pub detail: String,
}

impl Cause {
    /// A cause of `kind` with `code`.
    pub fn new(kind: Kind, code: i32, detail: impl Into<String>) -> Cause {
        Cause {
            kind,
            code,
            detail: detail.into(),
        }
    }
}

impl From<rtm_server_sdk::Error> for Cause {
    fn from(e: rtm_server_sdk::Error) -> Cause {
        use rtm_server_sdk::Error;
        let code = e.code();
        // The variants' own words, without the code the SDK's message repeats; any other
        // kind keeps the SDK's whole message.
        match e {
            Error::Server { message, .. } => Cause::new(Kind::Server, code, message),
            Error::Timeout(limit) => Cause::new(
                Kind::Timeout,
                code,
                format!("no answer within {}", seconds(limit)),
            ),
            Error::Connect { endpoint, reason } => Cause::new(
                Kind::Connection,
                code,
                format!("cannot connect to {endpoint}: {reason}"),
            ),
            Error::Closed(reason) => Cause::new(Kind::Connection, code, reason.to_string()),
            Error::Protocol { message, .. } => Cause::new(Kind::Protocol, code, message),
            other => Cause::new(Kind::Other, code, other.to_string()),
        }
    }
}

/// A duration as `--timeout` takes it: `5 s`, `0.5 s`.
pub fn seconds(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A failed command: what failed, where, why, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    what: String,
    endpoint: String,
    cause: Cause,
    hint: Option<String>,
}

impl Failure {
    /// `what` (a method, or `login`) failed at `endpoint` on `port`.
    pub fn new(what: &str, port: Port, endpoint: &str, cause: impl Into<Cause>) -> Failure {
        let cause = cause.into();
        let hint = hint(what, port, &cause);
        Failure {
            what: what.to_owned(),
            endpoint: endpoint.to_owned(),
            cause,
            hint,
        }
    }

    /// Replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// The exit code this failure ends `rtm` with.
    pub fn exit_code(&self) -> u8 {
        match self.cause.kind {
            Kind::Refused => exit::LOGIN_REFUSED,
            _ => exit::FAILED,
        }
    }

    /// The failure's code.
    pub fn code(&self) -> i32 {
        self.cause.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.cause.kind {
            Kind::Refused => "refused",
            _ => "failed",
        };
        write!(
            f,
            "{} {verb} at {}: {} {}",
            self.what,
            self.endpoint,
            self.cause.kind.words(),
            self.cause.code
        )?;
        if let Some(name) = code::name(self.cause.code) {
            write!(f, " ({name})")?;
        }
        write!(f, ": {}", self.cause.detail)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// The next step for the user, when the code (and the port) suggests one.
fn hint(what: &str, port: Port, cause: &Cause) -> Option<String> {
    let (flag, env, default) = match port {
        Port::ServerApi => ("--endpoint", "RTM_ENDPOINT", DEFAULT_ENDPOINT),
        Port::Gate => ("--gate", "RTM_GATE", DEFAULT_GATE),
    };
    let text = match (cause.code, port) {
        (code::INVALID_PID_OR_SIGN, _) => {
            "check --pid and --secret (or RTM_PID and RTM_SECRET); rtmd prints them when it starts"
                .to_owned()
        }
        (code::INVALID_PID_OR_UID, _) => {
            "check --uid and --pid: user ids are positive (rtmd takes 1 to 9223372036854775807)"
                .to_owned()
        }
        (code::INVALID_SERVER_TIME, _) => {
            "check this machine's clock: the server refuses calls stamped too far from its own time"
                .to_owned()
        }
        (code::SAME_SIGN, _) => {
            "the server saw this call's signature before; run the command again (each run signs anew)"
                .to_owned()
        }
        (code::UNKNOWN_ERROR, _) => {
            "the service failed inside (in rtmd, usually its store): see the service's log, then retry"
                .to_owned()
        }
        (code::UNAUTHORIZED, Port::ServerApi) => format!(
            "this looks like the client gate; the server API is {flag} / {env}, {} by default",
            port_of(default)
        ),
        (code::CORE_UNKNOWN_METHOD, Port::Gate) => format!(
            "this looks like the server API; the gate is {flag} / {env}, {} by default",
            port_of(default)
        ),
        (code::CORE_UNKNOWN_METHOD, Port::ServerApi) if what == "getdevices" => {
            "getdevices is an rtmd extension: the hosted RTM service does not have it".to_owned()
        }
        (code::CORE_UNKNOWN_METHOD, Port::ServerApi) => format!(
            "is {flag} an RTM server API? ({env}; {default} by default for rtmd)"
        ),
        (code::CORE_INVALID_CONNECTION, _) => {
            format!("is rtmd running? check {flag} / {env} ({default} by default)")
        }
        (code::CORE_TIMEOUT, _) => format!(
            "no answer in time: is {flag} ({env}) the right address? on a slow link raise --timeout"
        ),
        (code::CORE_CONNECTION_CLOSED, _) => format!(
            "the service closed the connection: is it shutting down, or is {flag} ({env}) another kind of port?"
        ),
        _ if cause.kind == Kind::Protocol => format!(
            "this does not answer like an RTM service: check {flag} / {env} ({default} by default)"
        ),
        _ => return None,
    };
    Some(text)
}

/// The port part of a `host:port` default, for the hints.
fn port_of(endpoint: &str) -> &str {
    endpoint.rsplit(':').next().unwrap_or(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_names_the_call_the_endpoint_the_code_and_its_name() {
        let f = Failure::new(
            "gettoken",
            Port::ServerApi,
            "127.0.0.1:13315",
            Cause::new(Kind::Server, 200002, "invalid sign for project 11000001"),
        );
        assert_eq!(
            f.to_string(),
            "gettoken failed at 127.0.0.1:13315: server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): \
             invalid sign for project 11000001\n\
             hint: check --pid and --secret (or RTM_PID and RTM_SECRET); rtmd prints them when it starts"
        );
        assert_eq!(f.exit_code(), exit::FAILED);
    }

    #[test]
    fn the_hints_name_the_port_the_command_talks_to() {
        let refused = Cause::new(Kind::Connection, 20012, "cannot connect");
        let api = Failure::new("kickout", Port::ServerApi, "x:1", refused.clone()).to_string();
        assert!(api.contains("check --endpoint / RTM_ENDPOINT (127.0.0.1:13315 by default)"));
        let gate = Failure::new("login", Port::Gate, "x:1", refused).to_string();
        assert!(gate.contains("check --gate / RTM_GATE (127.0.0.1:13321 by default)"));

        let unknown = Cause::new(Kind::Server, 20004, "unknown method: auth");
        let login = Failure::new("login", Port::Gate, "x:1", unknown).to_string();
        assert!(login.ends_with(
            "hint: this looks like the server API; the gate is --gate / RTM_GATE, 13321 by default"
        ));
    }

    #[test]
    fn a_refused_login_exits_3_and_an_unknown_code_has_no_hint() {
        let f = Failure::new(
            "login",
            Port::Gate,
            "x:1",
            Cause::new(Kind::Refused, 200027, "bad token"),
        );
        assert_eq!(f.exit_code(), exit::LOGIN_REFUSED);
        assert!(f
            .to_string()
            .starts_with("login refused at x:1: error 200027"));
        let f = Failure::new(
            "adddevice",
            Port::ServerApi,
            "x:1",
            Cause::new(Kind::Server, 200034, "apptype 'pager' is not supported"),
        );
        assert!(!f.to_string().contains("hint:"));
    }

    #[test]
    fn sdk_errors_keep_their_code_without_repeating_it() {
        let cause = Cause::from(rtm_server_sdk::Error::Connect {
            endpoint: "127.0.0.1:1".into(),
            reason: rtm_server_sdk::ConnectError::TimedOut(std::time::Duration::from_secs(2)),
        });
        assert_eq!(
            cause,
            Cause::new(
                Kind::Connection,
                20012,
                "cannot connect to 127.0.0.1:1: timed out after 2s"
            )
        );
        let cause = Cause::from(rtm_server_sdk::Error::Timeout(
            std::time::Duration::from_millis(1500),
        ));
        assert_eq!(cause.detail, "no answer within 1.5 s");
    }
}
