//! `rtm login`: log in to the gate as an end user, and wait.
//!
//! It narrates the session on stdout, one line an event (one JSON object a line with
//! `--json`): `logged_in` (with this client's endpoint, the `ce` of `kickout --ce`),
//! `kickout`, `closed`, `logged_out`; and `refused` when the token is refused.

use crate::failure::{exit, Cause, Failure, Kind, Port};
use crate::gate::{GateConn, Push};
use crate::output::json;
use crate::{Global, Problem, User};
use clap::Args;
use rtm_protocol::code;
use rtm_protocol::gate::{Auth, AuthAnswer, Method};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

/// `rtm login …`
#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    user: User,
    /// The login token (from `rtm token get`).
    #[arg(long)]
    token: String,
    /// Leave after this many seconds instead of waiting for a kickout.
    #[arg(long, value_name = "SECONDS")]
    for_secs: Option<u64>,
}

/// Logs in and waits: reports when the gate pushes `kickout` or closes the connection.
pub async fn run(global: &Global, args: LoginArgs) -> Result<ExitCode, Problem> {
    let pid = global.pid()?;
    let uid = args.user.uid;
    let gate = global.gate.as_str();
    let failed = |cause: Cause| Failure::new("login", Port::Gate, gate, cause);

    let encryption = global.crypto.gate()?;
    let mut conn = GateConn::connect(gate, global.timeout, encryption.as_ref())
        .await
        .map_err(failed)?;
    let auth = Auth {
        pid: pid.into(),
        uid: uid.into(),
        token: &args.token,
        version: Some(concat!("rtm-cli-", env!("CARGO_PKG_VERSION"))),
    };
    let answer = conn
        .quest(Method::Auth, &auth, global.timeout)
        .await
        .map_err(failed)?;
    // An answer without a boolean `ok` is no login either.
    let ok = fpnn::from_value::<AuthAnswer>(&answer).is_ok_and(|a| a.ok);
    if !ok {
        if global.json {
            json(
                json!({ "event": "refused", "pid": pid, "uid": uid, "code": code::INVALID_AUTH_TOKEN }),
            );
        }
        let refused = Cause::new(
            Kind::Refused,
            code::INVALID_AUTH_TOKEN,
            format!("the token is invalid, expired or revoked for user {uid} of project {pid}"),
        );
        return Err(failed(refused)
            .with_hint(format!(
                "get a new token with `rtm token get --uid {uid}`; check --pid"
            ))
            .into());
    }

    let me = conn.local_addr();
    if global.json {
        json(json!({
            "event": "logged_in", "pid": pid, "uid": uid, "gate": gate, "endpoint": me.to_string(),
        }));
    } else {
        println!(
            "logged in as user {uid} of project {pid} at {gate} from {me}; \
             waiting for a kickout (Ctrl-C to leave)"
        );
    }

    let deadline = async {
        match args.for_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: wait for the other ways out.
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(deadline, ctrl_c);
    loop {
        match conn.next_push().await {
            Ok(Some(Push::Kickout)) => {
                // The session is over. Official clients close the connection themselves on
                // `kickout` (the gate would close it after `limits.kickout_grace`); so do we.
                report(global, "kickout", "kicked out: the server pushed kickout");
                return Ok(closed(
                    global,
                    true,
                    "closed by the client after the kickout",
                ));
            }
            Ok(None) => {}
            Err(cause) => return Ok(closed(global, false, &cause.detail)),
        }
        let more = tokio::select! {
            more = conn.fill() => more,
            _ = &mut ctrl_c => {
                conn.bye(global.timeout).await;
                report(global, "logged_out", "logged out");
                return Ok(ExitCode::SUCCESS);
            }
            _ = &mut deadline => {
                conn.bye(global.timeout).await;
                let secs = args.for_secs.unwrap_or(0);
                report(global, "logged_out", &format!("logged out after {secs} s"));
                return Ok(ExitCode::SUCCESS);
            }
        };
        match more {
            Ok(true) => {}
            Ok(false) => return Ok(closed(global, false, "closed by the gate")),
            Err(cause) => return Ok(closed(global, false, &cause.detail)),
        }
    }
}

/// Reports the end of the connection: exit code 0 after a kickout, else 4.
fn closed(global: &Global, kicked: bool, reason: &str) -> ExitCode {
    if global.json {
        json(json!({ "event": "closed", "after_kickout": kicked, "reason": reason }));
    } else if kicked {
        println!("connection closed after the kickout");
    } else {
        println!("connection closed without a kickout: {reason}");
    }
    if kicked {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::LOGIN_CLOSED)
    }
}

/// One event line: `{"event": …}` with `--json`, else the text.
fn report(global: &Global, event: &str, text: &str) {
    if global.json {
        json(json!({ "event": event }));
    } else {
        println!("{text}");
    }
}
