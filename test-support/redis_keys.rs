//! Cleaning up after tests that use the shared Redis, each under a key prefix of its own
//! (shared by the rtmd and rtm tests).

use std::time::Duration;

/// Deletes every key under `prefix`, plain or as a hash tag (`P:…` and `{P:…`); best
/// effort, bounded to a few seconds.
pub async fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let connect = client.get_multiplexed_async_connection();
    let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return;
    };
    for pattern in [format!("{prefix}:*"), format!("{{{prefix}:*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
    }
}
