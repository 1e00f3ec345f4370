//! The token flow against a running `rtmd` (or the hosted RTM service), async.
//!
//! ```text
//! cargo run -p rtmd                      # prints the export line for the dev project
//! export RTM_PID=... RTM_SECRET=...      # as printed
//! cargo run -p rtm-server-sdk --example token_flow
//! ```
//!
//! `RTM_ENDPOINT` defaults to `127.0.0.1:13315`.

use rtm_server_sdk::{app_type, RtmServerClient};
use std::time::Duration;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (rtmd prints it when it starts)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let pid: i32 = env("RTM_PID")?.parse()?;
    let secret = env("RTM_SECRET")?;
    let client = RtmServerClient::builder(pid, secret, endpoint)
        .quest_timeout(Duration::from_secs(5))
        .build();

    let uid = 42;
    let token = client.get_token(uid).await?;
    println!("token for user {uid}: {token}");
    println!("the app now logs in to the gate with auth {{pid: {pid}, uid: {uid}, token}}");

    client
        .add_device(uid, app_type::FCM, "example-fcm-token")
        .await?;
    let devices = client.get_devices(uid).await?;
    println!("devices of user {uid}: {devices:?}");
    client.remove_device(uid, "example-fcm-token").await?;

    // Revoke the tokens and force every login of the user offline.
    client.remove_token(uid).await?;
    match client.kickout(uid).await? {
        Some(kicked) => println!("user {uid} revoked; {kicked} session(s) kicked out"),
        // The hosted RTM service does not say how many sessions it closed.
        None => println!("user {uid} revoked and kicked out"),
    }
    Ok(())
}
