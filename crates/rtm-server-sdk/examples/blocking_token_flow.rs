//! The token flow against a running `rtmd`, with the blocking client (no async code).
//!
//! ```text
//! export RTM_PID=... RTM_SECRET=...      # as rtmd prints them
//! cargo run -p rtm-server-sdk --example blocking_token_flow
//! ```

use rtm_server_sdk::blocking::RtmServerClient;
use std::time::Duration;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (rtmd prints it when it starts)"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("RTM_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:13315".into());
    let pid: i32 = env("RTM_PID")?.parse()?;
    let client = RtmServerClient::new(pid, env("RTM_SECRET")?, endpoint)?;

    let token = client.get_token(7)?;
    println!("token for user 7: {token}");

    // A per-call timeout, and an error with its RTM code.
    match client
        .with_timeout(Duration::from_secs(2))
        .kickout_endpoint(7, "127.0.0.1:1")
    {
        Ok(Some(kicked)) => println!("kicked {kicked} login(s) at 127.0.0.1:1"),
        Ok(None) => println!("kicked the login at 127.0.0.1:1 (the server gives no count)"),
        Err(e) => println!("kickout failed with code {}: {}", e.code(), e.message()),
    }
    client.remove_token(7)?;
    Ok(())
}
