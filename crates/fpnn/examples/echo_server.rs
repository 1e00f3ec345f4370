//! A small FPNN server: `echo`, a typed `add`, and `notify_me`, which pushes a quest back to
//! the calling client before it answers.
//!
//! ```text
//! cargo run -p fpnn --example echo_server -- 127.0.0.1:13315
//! ```
//!
//! Then run the `echo_client` example against it. Ctrl-C shuts the server down gracefully:
//! quests being handled still get their answers.

use fpnn::server::{Connection, Server};
use fpnn::{ErrorAnswer, Value};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct AddParams {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct AddAnswer {
    sum: i64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:13315".into());
    let server = Server::builder()
        // Answers with the quest's own payload.
        .route("echo", |_conn, params: Value| async move { Ok(params) })
        // Typed params: a missing `a` or `b` is answered 10009, a non-integer 10010.
        .route_typed("add", |_conn, p: AddParams| async move {
            match p.a.checked_add(p.b) {
                Some(sum) => Ok(AddAnswer { sum }),
                None => Err(ErrorAnswer::new(100_001, "overflow")),
            }
        })
        // Pushes `notice` to the caller and answers with what the client said to it.
        .route("notify_me", |conn: Connection, params: Value| async move {
            let text = params.get("text").cloned().unwrap_or(Value::Nil);
            let reply = conn
                .push_quest("notice", &Value::map().with("text", text), None)
                .await
                .map_err(|e| ErrorAnswer::new(e.code(), e.message()))?;
            Ok(Value::map().with("client_said", reply))
        })
        .on_connect(|conn| println!("connection {} from {}", conn.id(), conn.peer_addr()))
        .on_close(|conn, reason| println!("connection {} closed: {reason}", conn.id()))
        .bind(&addr)
        .await?;
    println!("listening on {}; Ctrl-C to stop", server.local_addr());
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown().await;
    Ok(())
}
