//! `rtm login`: log in to the gate as an end user, and wait.

use crate::Global;
use clap::Args;
use fpnn::client::{Client, ConnectionEvent};
use fpnn::Value;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

/// `rtm login …`
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The user id.
    #[arg(long)]
    uid: i64,
    /// The login token (from `rtm token get`).
    #[arg(long)]
    token: String,
    /// Leave after this many seconds instead of waiting for a kickout.
    #[arg(long)]
    for_secs: Option<u64>,
}

enum Event {
    Kickout,
    Closed(String),
}

/// Logs in and waits: prints when the server pushes `kickout` or closes the connection.
pub async fn run(global: &Global, args: LoginArgs) -> Result<ExitCode, String> {
    let pid = global
        .pid
        .ok_or("no project id: pass --pid or set RTM_PID")?;
    let (tx, mut events) = mpsc::unbounded_channel();
    let kick_tx = tx.clone();
    let client = Client::builder(global.gate.clone())
        .quest_timeout(global.timeout())
        .connect_timeout(global.timeout())
        // The gate pushes `kickout` (one-way) and then closes the connection.
        .on_push("kickout", move |_client, _params| {
            let _ = kick_tx.send(Event::Kickout);
            async { Ok(Value::map()) }
        })
        // The gate checks that logged-in clients are there.
        .on_push("ping", |_client, _params| async { Ok(Value::map()) })
        .on_event(move |event| {
            if let ConnectionEvent::Closed { reason, .. } = event {
                let _ = tx.send(Event::Closed(reason.to_string()));
            }
        })
        .build();
    let auth = Value::map()
        .with("pid", pid)
        .with("uid", args.uid)
        .with("token", args.token.as_str())
        .with("version", concat!("rtm-cli-", env!("CARGO_PKG_VERSION")));
    let answer = client
        .quest("auth", &auth)
        .await
        .map_err(|e| format!("auth at {} failed: {e}", global.gate))?;
    if answer.get("ok").and_then(Value::as_bool) != Some(true) {
        eprintln!(
            "login refused: the token is invalid, expired or revoked for user {} (code 200027)",
            args.uid
        );
        return Ok(ExitCode::from(3));
    }
    println!(
        "logged in as user {} of project {pid} at {}; waiting for a kickout (Ctrl-C to leave)",
        args.uid, global.gate
    );
    let deadline = async {
        match args.for_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut kicked = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Kickout) => {
                    kicked = true;
                    println!("kicked out: the server pushed kickout");
                }
                Some(Event::Closed(reason)) => {
                    if kicked {
                        println!("connection closed by the server after the kickout");
                        return Ok(ExitCode::SUCCESS);
                    }
                    println!("connection closed: {reason}");
                    return Ok(ExitCode::from(4));
                }
                None => return Ok(ExitCode::from(4)),
            },
            _ = tokio::signal::ctrl_c() => {
                let _ = client.oneway("bye", &Value::map()).await;
                client.close().await;
                println!("logged out");
                return Ok(ExitCode::SUCCESS);
            }
            _ = &mut deadline => {
                let _ = client.quest("bye", &Value::map()).await;
                println!("logged out after {} s", args.for_secs.unwrap_or(0));
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}
