//! End-to-end tests of the server: routing, typed params, built-ins, errors and panics,
//! connection info, limits (idle, connections, frame size) and graceful shutdown.

mod common;

use common::*;
use fpnn::client::Client;
use fpnn::server::{Connection, Server, ServerBuilder};
use fpnn::{code, Error, ErrorAnswer, Frame, Quest, Value};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

fn echo_server() -> ServerBuilder {
    Server::builder().route("echo", |_conn, params: Value| async move { Ok(params) })
}

#[derive(Deserialize)]
struct AddParams {
    a: i64,
    b: i64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Serialize)]
struct AddAnswer {
    sum: i64,
    note: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_routes_decode_params_and_answer_10009_or_10010() {
    let server = Server::builder()
        .route_typed("add", |_conn, p: AddParams| async move {
            Ok::<_, ErrorAnswer>(AddAnswer {
                sum: p.a + p.b,
                note: p.note.unwrap_or_default(),
            })
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());

    let params = Value::map().with("a", 40).with("b", 2).with("note", "hi");
    let answer = within("add", client.quest("add", &params)).await.unwrap();
    assert_eq!(answer, Value::map().with("sum", 42).with("note", "hi"));

    let missing = Value::map().with("a", 1);
    let err = within("add", client.quest("add", &missing))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::PROTO_KEY_NOT_FOUND, "{err:?}");
    assert!(err.message().contains('b'), "names the key: {err}");

    let wrong = Value::map().with("a", 1).with("b", "two");
    let err = within("add", client.quest("add", &wrong))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::PROTO_TYPE_CONVERT, "{err:?}");

    // The typed call of the client goes through serde on both ends.
    #[derive(Serialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct Sum {
        sum: i64,
    }
    let sum: Sum = within("call", client.call("add", &Add { a: 2, b: 3 }, None))
        .await
        .unwrap();
    assert_eq!(sum, Sum { sum: 5 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_connection_id_and_peer_address() {
    let (connected_tx, mut connected) = mpsc::unbounded_channel();
    let server = Server::builder()
        .route("whoami", |conn: Connection, _params| async move {
            Ok(Value::map()
                .with("id", conn.id() as i64)
                .with("peer", conn.peer_addr().to_string())
                .with("local", conn.local_addr().to_string()))
        })
        .on_connect(move |conn| {
            let _ = connected_tx.send(conn.id());
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for seq in 1..=2u32 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let quest = Quest::twoway("whoami", seq, &Value::map()).unwrap();
        write_frame(&mut stream, quest).await;
        let (_, frame) = expect_frame(&mut stream).await;
        let Frame::Answer(answer) = frame else {
            panic!("expected an answer")
        };
        assert_eq!(answer.seq, seq);
        let body = answer.into_result().unwrap().unwrap();
        let id = body.get("id").and_then(Value::as_i64).unwrap() as u64;
        assert_eq!(within("on_connect", connected.recv()).await, Some(id));
        assert_eq!(
            body.get("peer").and_then(Value::as_text),
            Some(stream.local_addr().unwrap().to_string())
        );
        assert_eq!(
            body.get("local").and_then(Value::as_text),
            Some(server.local_addr().to_string())
        );
        assert!(server.connection(id).is_some());
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "ids are unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_may_answer_later_while_others_answer_first() {
    let gate = Arc::new(Notify::new());
    let (slow_gate, fast_gate) = (gate.clone(), gate.clone());
    let server = Server::builder()
        .route("slow", move |_conn, _params| {
            let gate = slow_gate.clone();
            async move {
                gate.notified().await;
                Ok(Value::map().with("who", "slow"))
            }
        })
        .route("fast", move |_conn, _params| {
            // Releases the slow handler, then answers at once.
            fast_gate.notify_one();
            async move { Ok(Value::map().with("who", "fast")) }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    within("connect", client.connect()).await.unwrap();

    let slow_client = client.clone();
    let mut slow = tokio::spawn(async move { slow_client.quest("slow", &Value::map()).await });
    // The slow quest cannot finish before the fast one has been handled.
    let fast = within("fast", client.quest("fast", &Value::map())).await;
    assert_eq!(fast.unwrap(), Value::map().with("who", "fast"));
    let slow = within("slow", &mut slow).await.unwrap();
    assert_eq!(slow.unwrap(), Value::map().with("who", "slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_ping_answers_the_server_time() {
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(server.local_addr().to_string());
    let answer = within("*ping", client.quest("*ping", &Value::map()))
        .await
        .unwrap();
    let ts = answer.get("ts").and_then(Value::as_i64).expect("ts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - ts).abs() < 60_000, "ts {ts} is the time in ms");
    assert_eq!(answer.as_map().map(<[_]>::len), Some(1), "only ts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_answered_20004_and_one_way_ones_are_dropped() {
    let server = echo_server().bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(server.local_addr().to_string());
    let err = within("nope", client.quest("nope", &Value::map()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Answer(_)), "{err:?}");
    assert_eq!(err.code(), code::CORE_UNKNOWN_METHOD);
    assert!(err.message().contains("nope"), "{err}");
    // Other `*` methods are not built in.
    let err = within("*status", client.quest("*other", &Value::map()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_UNKNOWN_METHOD);

    // A one-way quest to an unknown method gets no answer: the next frame the client
    // receives is the answer to the two-way quest sent after it.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    write_frame(&mut stream, Quest::oneway("nope", &Value::map()).unwrap()).await;
    write_frame(
        &mut stream,
        Quest::twoway("echo", 77, &numbered(7)).unwrap(),
    )
    .await;
    let (_, frame) = expect_frame(&mut stream).await;
    let Frame::Answer(answer) = frame else {
        panic!("expected an answer")
    };
    assert_eq!(answer.seq, 77);
    assert_eq!(answer.into_result().unwrap().unwrap(), numbered(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_answered_with_its_code_and_ex() {
    let server = Server::builder()
        .route("fail", |_conn, _params| async move {
            Err(ErrorAnswer::new(200_001, "no such user"))
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let err = within("fail", client.quest("fail", &Value::map()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Answer(ErrorAnswer::new(200_001, "no such user"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_answered_20001_and_the_server_keeps_running() {
    let server = echo_server()
        .route("panic_now", |_conn, _params| -> std::future::Ready<_> {
            panic!("boom before the future")
        })
        .route("panic_later", |_conn, _params| async move {
            tokio::task::yield_now().await;
            if true {
                panic!("boom inside the future");
            }
            Ok(Value::map())
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    for method in ["panic_now", "panic_later", "panic_now"] {
        let err = within(method, client.quest(method, &Value::map()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code::CORE_UNKNOWN_ERROR, "{method}: {err:?}");
        // The same connection still works.
        let answer = within("echo", client.quest("echo", &numbered(1))).await;
        assert_eq!(answer.unwrap(), numbered(1));
    }
    // And new connections are still served.
    let other = Client::new(server.local_addr().to_string());
    let answer = within("echo", other.quest("echo", &numbered(2))).await;
    assert_eq!(answer.unwrap(), numbered(2));
    assert_eq!(server.connection_count(), 2);
    assert_eq!(server.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_closes_a_silent_connection() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let server = echo_server()
        .idle_timeout(Some(Duration::from_millis(200)))
        .on_close(move |conn, reason| {
            let _ = closed_tx.send((conn.id(), reason.code()));
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_closed(&mut silent).await;
    let (_, reason) = within("on_close", closed.recv()).await.unwrap();
    assert_eq!(reason, code::CORE_CONNECTION_CLOSED);
    assert_eq!(server.connection_count(), 0);
}

/// Sends `*ping` on a raw socket: `true` if answered, `false` if the server closed it.
async fn answers_ping(stream: &mut TcpStream) -> bool {
    let ping = Quest::twoway("*ping", 1, &Value::map()).unwrap();
    let bytes = Frame::from(ping).encode().unwrap();
    use tokio::io::AsyncWriteExt;
    if stream.write_all(&bytes).await.is_err() {
        return false;
    }
    within("a ping answer or a close", async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        match stream.read(&mut buf).await {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("unexpected read error: {e}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_right_after_accept() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let server = echo_server()
        .max_connections(2)
        .on_close(move |conn, _reason| {
            let _ = closed_tx.send(conn.id());
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    // A burst of connections: the server accepts them back to back.
    let mut streams = Vec::new();
    for _ in 0..6 {
        streams.push(TcpStream::connect(server.local_addr()).await.unwrap());
    }
    let mut open = Vec::new();
    for (i, stream) in streams.iter_mut().enumerate() {
        if answers_ping(stream).await {
            open.push(i);
        }
    }
    assert_eq!(
        open,
        vec![0, 1],
        "the first two are served, the rest closed"
    );
    assert_eq!(server.connection_count(), 2);

    // A freed slot is given to the next connection.
    drop(streams.remove(0));
    within("the close to be seen", closed.recv()).await.unwrap();
    let mut late = TcpStream::connect(server.local_addr()).await.unwrap();
    assert!(answers_ping(&mut late).await);
    assert!(
        answers_ping(&mut streams[0]).await,
        "the second one is still served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_only_that_connection() {
    const MAX: usize = 1024;
    let server = echo_server()
        .max_frame(MAX)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));

    // A frame of exactly MAX bytes is served: 12 header + 4 seq + 4 "echo" + payload, where
    // the payload {s: <str16 of n>} is 1 + 2 + 3 + n bytes.
    let at_limit = Value::map().with("s", "x".repeat(MAX - 26));
    let quest = Quest::twoway("echo", 1, &at_limit).unwrap();
    assert_eq!(Frame::from(quest.clone()).encoded_len(), MAX);
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    write_frame(&mut stream, quest).await;
    let (_, frame) = expect_frame(&mut stream).await;
    assert!(matches!(frame, Frame::Answer(a) if a.seq == 1 && !a.is_error()));

    // One byte more closes the connection, without an answer.
    let over = Value::map().with("s", "x".repeat(MAX - 25));
    write_frame(&mut stream, Quest::twoway("echo", 2, &over).unwrap()).await;
    assert_closed(&mut stream).await;

    // The other client never noticed.
    for i in 0..10 {
        let answer = within("echo", client.quest("echo", &numbered(i))).await;
        assert_eq!(answer.unwrap(), numbered(i));
    }
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_the_answers_of_quests_in_flight() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let server = echo_server()
        .route("sleepy", move |_conn, _params| {
            let _ = started_tx.send(());
            let release = held.clone();
            async move {
                release.notified().await;
                Ok(Value::map().with("slept", true))
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .on_event(hook)
        .build();
    let quester = client.clone();
    let quest = tokio::spawn(async move { quester.quest("sleepy", &Value::map()).await });
    within("the handler to start", started.recv())
        .await
        .unwrap();

    // Shutdown waits for the quest in flight: it finishes only once the handler does.
    let shutdown = tokio::spawn(server.shutdown());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the quest in flight"
    );
    release.notify_one();
    within("shutdown", shutdown).await.unwrap();
    let answer = within("the answer", quest).await.unwrap();
    assert_eq!(answer.unwrap(), Value::map().with("slept", true));
    assert!(!events.connected().await);
    let closed = events.closed().await;
    assert_eq!(closed.code, code::CORE_CONNECTION_CLOSED);
    assert!(!closed.by_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_arriving_during_shutdown_are_answered_20014() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let server = echo_server()
        .route("hold", move |_conn, _params| {
            let _ = started_tx.send(());
            let release = release_rx.clone();
            async move {
                if let Some(rx) = release.lock().await.take() {
                    let _ = rx.await;
                }
                Ok(Value::map().with("held", true))
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let quester = client.clone();
    let held = tokio::spawn(async move { quester.quest("hold", &Value::map()).await });
    within("the handler to start", started.recv())
        .await
        .unwrap();

    // Start the shutdown: its first poll marks the server as stopping, then it waits for
    // the held quest.
    let mut shutdown = Box::pin(server.shutdown());
    tokio::select! {
        biased;
        _ = &mut shutdown => panic!("shutdown cannot finish while a quest is held"),
        _ = std::future::ready(()) => {}
    }
    let err = within("echo", client.quest("echo", &numbered(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_SERVER_STOPPING, "{err:?}");

    release_tx.send(()).unwrap();
    within("shutdown", &mut shutdown).await;
    let answer = within("the held quest", held).await.unwrap();
    assert_eq!(answer.unwrap(), Value::map().with("held", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_connect_and_on_close_hooks_see_every_connection() {
    let opened = Arc::new(AtomicUsize::new(0));
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let opened2 = opened.clone();
    let server = echo_server()
        .on_connect(move |_conn| {
            opened2.fetch_add(1, Ordering::SeqCst);
        })
        .on_close(move |conn, reason| {
            let _ = closed_tx.send((conn.id(), reason.code()));
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    client.close().await;
    let (_, reason) = within("on_close", closed.recv()).await.unwrap();
    assert_eq!(reason, code::CORE_CONNECTION_CLOSED);
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_off_a_client_that_does_not_read() {
    let (conn_tx, mut conns) = mpsc::unbounded_channel();
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let server = Server::builder()
        .config(fpnn::server::ServerConfig {
            shutdown_grace: Duration::from_millis(300),
            ..Default::default()
        })
        .on_connect(move |conn| {
            let _ = conn_tx.send(conn.clone());
        })
        .on_close(move |conn, _reason| {
            let _ = closed_tx.send(conn.id());
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    // A client that never reads: pushes pile up until the server's writes block.
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let conn: Connection = within("the connection", conns.recv()).await.unwrap();
    let chunk = Value::map().with("s", "x".repeat(1 << 20));
    // Past the outbound budget a push fails; the kernel's buffers fill meanwhile.
    let (mut pushed, mut refused) = (0, 0);
    while pushed < 64 && refused < 200 {
        match conn.push_oneway("flood", &chunk) {
            Ok(()) => pushed += 1,
            Err(fpnn::Error::SendQueueFull { .. }) => {
                refused += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 0, "the budget refused pushes");
    within("shutdown", server.shutdown()).await;
    assert_eq!(
        closed.try_recv().ok(),
        Some(conn.id()),
        "the connection was closed by the time shutdown returned"
    );
    drop(stream);
}

/// A peer that pipelines `*ping` and never reads: the server stops reading it once its
/// answers pass the high-water mark, so what it queues for it stays bounded, and other
/// clients are served meanwhile. Quests beyond the in-flight cap are answered 20011.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_gets_backpressure_not_memory() {
    use tokio::io::AsyncWriteExt;
    let (conn_tx, mut conns) = mpsc::unbounded_channel();
    let server = echo_server()
        .on_connect(move |conn| {
            let _ = conn_tx.send(conn.clone());
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut flood = TcpStream::connect(server.local_addr()).await.unwrap();
    let conn: Connection = within("the connection", conns.recv()).await.unwrap();
    let ping = Frame::from(Quest::twoway("*ping", 1, &Value::map()).unwrap())
        .encode()
        .unwrap();
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    // A writer that never stops on its own: it blocks once the server stops reading and the
    // kernel's buffers are full. (Not a timed write loop: how fast the server reads depends
    // on the machine's load, and a cancelled write would cut a frame.)
    let writer = tokio::spawn(async move {
        let mut written = 0usize;
        loop {
            if flood.write_all(&batch).await.is_err() {
                return written;
            }
            written += 1000;
            if written >= 10_000_000 {
                return written;
            }
        }
    });
    let high_water = fpnn::server::ServerConfig::default().outbound_high_water;
    within("the queue to reach the high-water mark", async {
        while conn.queued_bytes() < high_water {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Once there, the server reads no more: the queue stays put while the writer is blocked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the server never stopped reading");
    let queued = conn.queued_bytes();
    assert!(queued < high_water + 1024, "and not far past it: {queued}");
    // Another client is served meanwhile.
    let client = Client::new(server.local_addr().to_string());
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert!(!conn.is_closed());
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_beyond_the_in_flight_cap_are_answered_20011() {
    let release = Arc::new(Notify::new());
    let waiting = release.clone();
    let server = echo_server()
        .route("wait", move |_conn, _params| {
            let release = waiting.clone();
            async move {
                release.notified().await;
                Ok(Value::map())
            }
        })
        .max_in_flight(2)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.quest("wait", &Value::map()).await })
        })
        .collect();
    within("the two to start", async {
        while server.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let err = within("the third", client.quest("wait", &Value::map()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_WORK_QUEUE_FULL, "{err}");
    release.notify_waiters();
    for call in calls {
        within("a waiting call", call).await.unwrap().unwrap();
    }
    let answer = within("echo", client.quest("echo", &numbered(2))).await;
    assert_eq!(answer.unwrap(), numbered(2));
}
