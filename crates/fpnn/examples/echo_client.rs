//! A small FPNN client for the `echo_server` example: a quest, a typed call, a one-way
//! quest, an error answer, and a handler for the quest the server pushes.
//!
//! ```text
//! cargo run -p fpnn --example echo_server -- 127.0.0.1:13315 &
//! cargo run -p fpnn --example echo_client -- 127.0.0.1:13315
//! ```

use fpnn::client::{Client, ConnectionEvent};
use fpnn::{Error, Value};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
struct Sum {
    sum: i64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:13315".into());
    let client = Client::builder(endpoint)
        .quest_timeout(Duration::from_secs(5))
        .auto_reconnect(true)
        // The server pushes `notice` during `notify_me`; the answer goes back to it.
        .on_push("notice", |_client, params: Value| async move {
            println!("pushed notice: {params}");
            Ok(Value::map().with("ok", true))
        })
        .on_event(|event| match event {
            ConnectionEvent::Connected { peer, is_reconnect } => {
                println!("connected to {peer} (reconnect: {is_reconnect})")
            }
            ConnectionEvent::ConnectFailed { error, .. } => println!("connect failed: {error}"),
            ConnectionEvent::Closed {
                by_error, reason, ..
            } => println!("closed (by error: {by_error}): {reason}"),
        })
        .build();

    // The first quest connects.
    let answer = client
        .quest("echo", &Value::map().with("hello", "world"))
        .await?;
    println!("echo: {answer}");

    let sum: Sum = client.call("add", &Add { a: 40, b: 2 }, None).await?;
    println!("add: 40 + 2 = {}", sum.sum);

    let answer = client
        .quest("notify_me", &Value::map().with("text", "hi"))
        .await?;
    println!("notify_me: {answer}");

    client.oneway("echo", &Value::map()).await?;

    // Errors carry the FPNN codes: 20004 for a method the server does not have.
    match client.quest("missing", &Value::map()).await {
        Err(e) => println!("missing: error {} ({})", e.code(), e.message()),
        Ok(v) => println!("missing: unexpected answer {v}"),
    }

    client.close().await;
    Ok(())
}
