//! End-to-end tests of the client against a real server on loopback: connecting, many quests
//! in flight, timeouts, one-way quests, close, keep-alive and reconnect.

mod common;

use common::*;
use fpnn::client::{Client, KeepAlive, RegressiveStrategy};
use fpnn::server::{Server, ServerBuilder};
use fpnn::{code, CloseReason, ConnectError, Error, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

fn echo_server() -> ServerBuilder {
    Server::builder().route("echo", |_conn, params: Value| async move { Ok(params) })
}

/// A route that never answers; each call is reported on the channel when it starts.
fn hanging(builder: ServerBuilder, started: mpsc::UnboundedSender<Value>) -> ServerBuilder {
    builder.route("hang", move |_conn, params: Value| {
        let _ = started.send(params);
        async move { std::future::pending().await }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_explicitly_once() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .on_event(hook)
        .build();
    assert!(!client.is_connected());

    within("connect", client.connect()).await.unwrap();
    assert!(client.is_connected());
    assert!(!events.connected().await, "a first connect is no reconnect");

    // Connecting again while connected does nothing.
    within("connect again", client.connect()).await.unwrap();
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert!(events.try_next().is_none());
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_lazily_on_the_first_quest_and_concurrent_first_quests_share_it() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .on_event(hook)
        .build();

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.quest("echo", &numbered(i)).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = within("echo", task).await.unwrap();
        assert_eq!(answer.unwrap(), numbered(i as i64));
    }
    assert!(client.is_connected());
    assert!(!events.connected().await);
    assert!(events.try_next().is_none(), "one connection for all");
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_quests_in_flight_are_matched_by_seq_in_any_order() {
    const N: i64 = 10_000;
    let arrived = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let most_running = Arc::new(AtomicUsize::new(0));
    let (arrived2, running2, most2) = (arrived.clone(), running.clone(), most_running.clone());
    let server = Server::builder()
        .route("work", move |_conn, params: Value| {
            let order = arrived2.fetch_add(1, Ordering::SeqCst);
            let now = running2.fetch_add(1, Ordering::SeqCst) + 1;
            most2.fetch_max(now, Ordering::SeqCst);
            let running = running2.clone();
            async move {
                let i = params.get("i").and_then(Value::as_i64).unwrap_or(-1);
                // A pseudo-random 0-5 ms, so answers are sent in another order.
                let ms = (i as u64).wrapping_mul(2654435761) % 6;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(Value::map().with("i", i).with("arrived", order as i64))
            }
        })
        // Every quest waits a little: all 10,000 are in flight at once on the server too.
        .max_in_flight(N as usize)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder(server.local_addr().to_string())
        .quest_timeout(Duration::from_secs(60))
        .build();
    within("connect", client.connect()).await.unwrap();

    let completed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let client = client.clone();
            let completed = completed.clone();
            tokio::spawn(async move {
                let answer = client.quest("work", &numbered(i)).await;
                (answer, completed.fetch_add(1, Ordering::SeqCst))
            })
        })
        .collect();
    let mut out_of_order = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let (answer, done) = within("a quest of the batch", task).await.unwrap();
        let answer = answer.unwrap();
        assert_eq!(answer.get("i").and_then(Value::as_i64), Some(i as i64));
        let arrived = answer.get("arrived").and_then(Value::as_i64).unwrap();
        if arrived as usize != done {
            out_of_order += 1;
        }
    }
    assert_eq!(arrived.load(Ordering::SeqCst), N as usize);
    assert!(
        out_of_order > 0,
        "answers should have come back out of order"
    );
    assert!(
        most_running.load(Ordering::SeqCst) > 1,
        "quests ran concurrently"
    );
    assert_eq!(client.in_flight(), 0);
    assert_eq!(server.connection_count(), 1, "all on one connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quest_times_out_with_20003_and_zero_or_none_means_the_default() {
    let (started, _rx) = mpsc::unbounded_channel();
    let server = hanging(echo_server(), started)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let default = Duration::from_millis(300);
    let client = Client::builder(server.local_addr().to_string())
        .quest_timeout(default)
        .build();
    let short = Duration::from_millis(50);

    let err = within(
        "hang",
        client.quest_with_timeout("hang", &Value::map(), Some(short)),
    )
    .await
    .unwrap_err();
    assert_eq!(err, Error::Timeout(short));
    assert_eq!(err.code(), code::CORE_TIMEOUT);

    for timeout in [None, Some(Duration::ZERO)] {
        let err = within(
            "hang",
            client.quest_with_timeout("hang", &Value::map(), timeout),
        )
        .await
        .unwrap_err();
        assert_eq!(err, Error::Timeout(default), "timeout {timeout:?}");
    }
    let err = within("hang", client.quest("hang", &Value::map()))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Timeout(default));

    // The connection is still good, and nothing is left waiting.
    assert_eq!(client.in_flight(), 0);
    let answer = within("echo", client.quest("echo", &numbered(5))).await;
    assert_eq!(answer.unwrap(), numbered(5));
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_after_a_timeout_is_dropped_without_harm() {
    let gate = Arc::new(Notify::new());
    let gate2 = gate.clone();
    let server = echo_server()
        .route("late", move |_conn, _params| {
            let gate = gate2.clone();
            async move {
                gate.notified().await;
                Ok(Value::map().with("late", true))
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());

    let short = Duration::from_millis(50);
    let err = within(
        "late",
        client.quest_with_timeout("late", &Value::map(), Some(short)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), code::CORE_TIMEOUT);
    assert_eq!(client.in_flight(), 0, "the timed-out quest left the table");

    // Let the server answer now, and wait until that answer is queued, so it reaches the
    // client before the answers below.
    gate.notify_one();
    within("the late handler to finish", async {
        while server.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for i in 0..20 {
        let answer = within("echo", client.quest("echo", &numbered(i))).await;
        assert_eq!(answer.unwrap(), numbered(i));
    }
    assert_eq!(client.in_flight(), 0);
    assert!(client.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_quest_leaves_the_pending_table() {
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let server = hanging(echo_server(), started)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    within("connect", client.connect()).await.unwrap();

    // The caller gives up (drops the quest's future) long before the quest's own timeout.
    let quester = client.clone();
    let task = tokio::spawn(async move {
        let long = Some(Duration::from_secs(60));
        quester
            .quest_with_timeout("hang", &Value::map(), long)
            .await
    });
    within("the handler to start", started_rx.recv())
        .await
        .unwrap();
    assert_eq!(client.in_flight(), 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_quests_reach_the_server_without_an_answer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = echo_server()
        .route("note", move |_conn, params: Value| {
            let _ = tx.send(params);
            async move { Ok(Value::map().with("ignored", true)) }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());

    // A one-way quest connects lazily too.
    for i in 0..3 {
        within("oneway", client.oneway("note", &numbered(i)))
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert_eq!(within("a note", rx.recv()).await.unwrap(), numbered(i));
    }
    // One-way quests to unknown methods are dropped silently; the connection is fine.
    within("oneway", client.oneway("nobody", &Value::map()))
        .await
        .unwrap();
    let answer = within("echo", client.quest("echo", &numbered(9))).await;
    assert_eq!(answer.unwrap(), numbered(9));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_quests_in_flight_with_20002_and_does_not_reconnect() {
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let accepted2 = accepted.clone();
    let server = hanging(echo_server(), started)
        .on_connect(move |_conn| {
            accepted2.fetch_add(1, Ordering::SeqCst);
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .auto_reconnect(true)
        .regressive_strategy(fast_strategy())
        .on_event(hook)
        .build();
    within("connect", client.connect()).await.unwrap();
    assert!(!events.connected().await);

    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.quest("hang", &numbered(i)).await })
        })
        .collect();
    for _ in 0..3 {
        within("the handlers to start", started_rx.recv()).await;
    }
    within("close", client.close()).await;
    // close() returns once the Closed event is reported.
    match events.try_next() {
        Some(fpnn::client::ConnectionEvent::Closed {
            by_error,
            reason,
            will_reconnect,
        }) => {
            assert!(!by_error);
            assert_eq!(reason.code(), code::CORE_CONNECTION_CLOSED);
            assert!(!will_reconnect);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    for task in tasks {
        let err = within("the quest", task).await.unwrap().unwrap_err();
        assert_eq!(err, Error::Closed(CloseReason::ClosedLocally));
        assert_eq!(err.code(), code::CORE_CONNECTION_CLOSED);
    }
    assert!(!client.is_connected());
    assert_eq!(client.in_flight(), 0);

    // (That no background reconnect follows is tested on simulated time in the client's
    // unit tests.)
    assert!(events.try_next().is_none(), "no event after close");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A later quest connects again, as a fresh connection.
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert!(!events.connected().await);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quest_to_a_dead_server_fails_with_20012_at_once() {
    let addr = dead_addr();
    let (hook, mut events) = events();
    let client = Client::builder(addr.to_string())
        .quest_timeout(Duration::from_secs(60))
        .on_event(hook)
        .build();
    // `within` is far shorter than the quest timeout: the failure must be immediate.
    let err = within("quest", client.quest("echo", &Value::map()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connect { reason: ConnectError::Io(e), .. } if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
    match events.next().await {
        fpnn::client::ConnectionEvent::ConnectFailed {
            error,
            is_reconnect,
        } => {
            assert_eq!(error.code(), code::CORE_INVALID_CONNECTION);
            assert!(!is_reconnect);
        }
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    let err = within("connect", client.connect()).await.unwrap_err();
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
    let err = within("oneway", client.oneway("x", &Value::map()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quest_after_the_server_went_away_fails_with_20012_at_once() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .quest_timeout(Duration::from_secs(60))
        .on_event(hook)
        .build();
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert!(!events.connected().await);

    within("shutdown", server.shutdown()).await;
    let closed = events.closed().await;
    assert_eq!(
        closed,
        Closed {
            by_error: false,
            code: code::CORE_CONNECTION_CLOSED,
            will_reconnect: false
        }
    );
    let err = within("quest", client.quest("echo", &numbered(2)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION, "{err:?}");
}

/// Reconnect strategy for tests: no quick retries, short delays.
fn fast_strategy() -> RegressiveStrategy {
    RegressiveStrategy {
        connect_failed_max_interval: Duration::from_millis(1500),
        start_connect_failed_count: 0,
        first_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(100),
        linear_regressive_count: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_by_itself_after_the_server_restarts_on_the_same_port() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let (hook, mut events) = events();
    let client = Client::builder(addr.to_string())
        .auto_reconnect(true)
        .regressive_strategy(fast_strategy())
        .quest_timeout(Duration::from_secs(60))
        .on_event(hook)
        .build();
    within("connect", client.connect()).await.unwrap();
    assert!(!events.connected().await);
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));

    within("shutdown", server.shutdown()).await;
    let closed = events.closed().await;
    assert_eq!(
        closed,
        Closed {
            by_error: false,
            code: code::CORE_CONNECTION_CLOSED,
            will_reconnect: true
        }
    );
    // While the server is down, quests fail at once.
    let err = within("quest while down", client.quest("echo", &numbered(2)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION, "{err:?}");

    let server = echo_server().bind(addr).await.unwrap();
    assert!(events.connected().await, "the background reconnect made it");
    assert!(client.is_connected());
    let answer = within("echo", client.quest("echo", &numbered(3))).await;
    assert_eq!(answer.unwrap(), numbered(3));
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_declares_a_silent_server_lost_with_20012() {
    // A fake server that reads everything and never answers.
    let (listener, addr) = fake_listener().await;
    let (methods_tx, mut methods) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        while let Some((_, frame)) = read_frame(&mut stream).await {
            if let fpnn::Frame::Quest(q) = frame {
                let _ = methods_tx.send(q.method);
            }
        }
    });
    let (hook, mut events) = events();
    let client = Client::builder(addr)
        .keep_alive(Some(KeepAlive {
            interval: Duration::from_millis(100),
            max_retries: 2,
            ping_timeout: Some(Duration::from_millis(100)),
        }))
        .quest_timeout(Duration::from_secs(60))
        .on_event(hook)
        .build();
    let err = within("the quest to fail", client.quest("x", &Value::map()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Closed(CloseReason::KeepAliveLost(_))),
        "{err:?}"
    );
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
    assert!(!events.connected().await);
    let closed = events.closed().await;
    assert_eq!(
        closed,
        Closed {
            by_error: true,
            code: code::CORE_INVALID_CONNECTION,
            will_reconnect: false
        }
    );
    assert_eq!(within("a method", methods.recv()).await.unwrap(), "x");
    assert_eq!(within("a ping", methods.recv()).await.unwrap(), "*ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_is_reported_before_closed_even_when_the_server_drops_at_once() {
    // A server with no room: every connection is closed right after accept.
    let server = echo_server()
        .max_connections(0)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    for _ in 0..20 {
        let (hook, mut events) = events();
        let client = Client::builder(server.local_addr().to_string())
            .on_event(hook)
            .build();
        let _ = within("connect", client.connect()).await;
        assert!(!events.connected().await);
        let closed = events.closed().await;
        assert!(!closed.will_reconnect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quest_right_after_close_reports_closed_before_the_new_connected() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .auto_reconnect(true)
        .regressive_strategy(fast_strategy())
        .on_event(hook)
        .build();
    within("connect", client.connect()).await.unwrap();
    assert!(!events.connected().await);
    for i in 0..20 {
        client.close().await;
        let answer = within("echo", client.quest("echo", &numbered(i))).await;
        assert_eq!(answer.unwrap(), numbered(i));
        let closed = events.closed().await;
        assert!(!closed.will_reconnect, "closed by the user: no reconnect");
        assert!(
            !events.connected().await,
            "the quest connected, not a reconnect"
        );
    }
    assert!(events.try_next().is_none(), "no background reconnect");
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_client_handle_closes_the_connection() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let server = echo_server()
        .on_close(move |conn, reason| {
            let _ = closed_tx.send((conn.id(), reason.code()));
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let copy = client.clone();
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    drop(client);
    // A clone keeps it open.
    let answer = within("echo", copy.quest("echo", &numbered(2))).await;
    assert_eq!(answer.unwrap(), numbered(2));
    drop(copy);
    let (_, reason) = within("the server to see the close", closed.recv())
        .await
        .unwrap();
    assert_eq!(reason, code::CORE_CONNECTION_CLOSED);
}

/// The scenario with real sockets: a client that calls every 100 ms, with the
/// official reconnect schedule; the server is down for 2 s. The calls made while it is down
/// fail at once (20012); every call made after it is back succeeds, the first one included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_as_soon_as_a_restarted_server_is_back() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let client = Client::builder(addr.to_string())
        .auto_reconnect(true)
        .quest_timeout(Duration::from_secs(5))
        .build();
    within("echo", client.quest("echo", &numbered(0)))
        .await
        .unwrap();

    let caller = client.clone();
    let calls = tokio::spawn(async move {
        let mut results = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for i in 0..45 {
            tick.tick().await;
            let started = std::time::Instant::now();
            let result = caller.quest("echo", &numbered(i)).await;
            results.push((started, result.map_err(|e| e.code())));
        }
        results
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    within("shutdown", server.shutdown()).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let server = echo_server().bind(addr).await.unwrap();
    let back = std::time::Instant::now();
    let results = within("the calls", calls).await.unwrap();
    let failed_while_down = results.iter().filter(|(_, r)| r.is_err()).count();
    assert!(failed_while_down > 0, "the server was down");
    for (started, result) in &results {
        if *started >= back {
            assert!(
                result.is_ok(),
                "a call after the server was back: {result:?}"
            );
        } else if let Err(code) = result {
            // Answered while the server stopped (20014), closed under a call (20002), or
            // refused while down (20012).
            let expected = [
                code::CORE_SERVER_STOPPING,
                code::CORE_CONNECTION_CLOSED,
                code::CORE_INVALID_CONNECTION,
            ];
            assert!(expected.contains(code), "{code}");
        }
    }
    assert!(results.iter().filter(|(s, _)| *s >= back).count() >= 10);
    assert_eq!(server.connection_count(), 1);
}
