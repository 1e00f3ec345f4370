//! The gate's `ping` pushes to logged-in clients.

use super::access::logged_in;
use fpnn::server::Connection;
use fpnn::{Error, Value};
use rtm_protocol::gate::Push;
use std::time::Duration;

/// Pushes `ping` to a logged-in client every `interval`; two missed answers in a row close
/// the connection (a client that vanished without a FIN leaves no ghost session). Ends with
/// the session (a kickout) or the connection.
pub async fn ping_loop(conn: Connection, interval: Duration) {
    let mut missed = 0;
    loop {
        // Ends with the connection, not up to `interval` later.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = conn.closed() => return,
        }
        if logged_in(&conn).is_err() {
            return;
        }
        match conn
            .push_quest(Push::Ping.name(), &Value::map(), Some(interval))
            .await
        {
            // Any answer, even an error answer, shows the client is there.
            Ok(_) | Err(Error::Answer(_)) => missed = 0,
            Err(Error::Timeout(_)) => {
                missed += 1;
                if missed >= 2 {
                    tracing::debug!(peer = %conn.peer_addr(), "client missed two pings, closing");
                    conn.close();
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
