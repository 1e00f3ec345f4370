//! Server push: the server sends one-way and two-way quests to a connected client, and the
//! client's push handlers answer them, while the client keeps sending its own quests.

mod common;

use common::*;
use fpnn::client::{Client, ClientBuilder};
use fpnn::server::{Connection, Server};
use fpnn::{code, Error, ErrorAnswer, Frame, Quest, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// A server that hands every new connection to the test, with routes for the "both ways"
/// case, and a short default push timeout.
async fn push_server() -> (Server, mpsc::UnboundedReceiver<Connection>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::builder()
        .route("echo", |_conn, params: Value| async move { Ok(params) })
        // Pushes `relay` back to the calling client and answers with what it said.
        .route("trigger", |conn: Connection, params: Value| async move {
            conn.push_quest("relay", &params, None)
                .await
                .map(|answer| Value::map().with("relayed", answer))
                .map_err(|e| ErrorAnswer::new(e.code(), e.message()))
        })
        .push_timeout(Duration::from_millis(300))
        .on_connect(move |conn| {
            let _ = tx.send(conn.clone());
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (server, rx)
}

fn client_of(server: &Server) -> ClientBuilder {
    Client::builder(server.local_addr().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_and_two_way_pushes_reach_the_client_handlers() {
    let (server, mut conns) = push_server().await;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let client = client_of(&server)
        .on_push("note", move |_client, params: Value| {
            let _ = notes_tx.send(params);
            async move { Ok(Value::map()) }
        })
        .on_push("double", |_client, params: Value| async move {
            let x = params.get("x").and_then(Value::as_i64).unwrap_or(0);
            Ok(Value::map().with("y", x * 2))
        })
        .build();
    within("connect", client.connect()).await.unwrap();
    let conn = within("the connection", conns.recv()).await.unwrap();

    for i in 0..3 {
        conn.push_oneway("note", &numbered(i)).unwrap();
    }
    for i in 0..3 {
        assert_eq!(within("a note", notes.recv()).await.unwrap(), numbered(i));
    }
    let answer = within(
        "double",
        conn.push_quest("double", &Value::map().with("x", 21), None),
    )
    .await;
    assert_eq!(answer.unwrap(), Value::map().with("y", 42));

    // Many pushes in flight at once, while the client sends its own quests.
    let pushes: Vec<_> = (0..200)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let params = Value::map().with("x", i);
                conn.push_quest("double", &params, Some(Duration::from_secs(30)))
                    .await
            })
        })
        .collect();
    for i in 0..50 {
        let answer = within("echo", client.quest("echo", &numbered(i))).await;
        assert_eq!(answer.unwrap(), numbered(i));
    }
    for (i, push) in pushes.into_iter().enumerate() {
        let answer = within("a push", push).await.unwrap();
        assert_eq!(answer.unwrap(), Value::map().with("y", 2 * i as i64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_two_way_push_is_answered_20004_and_one_way_is_ignored() {
    let (server, mut conns) = push_server().await;
    let client = client_of(&server).build();
    within("connect", client.connect()).await.unwrap();
    let conn = within("the connection", conns.recv()).await.unwrap();

    conn.push_oneway("nobody", &Value::map()).unwrap();
    let err = within("push", conn.push_quest("nobody", &Value::map(), None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Answer(_)), "{err:?}");
    assert_eq!(err.code(), code::CORE_UNKNOWN_METHOD);
    assert!(err.message().contains("nobody"), "{err}");
    // The client is still connected and working.
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_handler_errors_and_panics_are_answered_with_their_codes() {
    let (server, mut conns) = push_server().await;
    let client = client_of(&server)
        .on_push("fail", |_client, _params| async move {
            Err(ErrorAnswer::new(300_100, "refused"))
        })
        .on_push("panic", |_client, _params| async move {
            if true {
                panic!("push handler panicked");
            }
            Ok(Value::map())
        })
        .build();
    within("connect", client.connect()).await.unwrap();
    let conn = within("the connection", conns.recv()).await.unwrap();

    let err = within("fail", conn.push_quest("fail", &Value::map(), None))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Answer(ErrorAnswer::new(300_100, "refused")));
    // A generous timeout: with RUST_BACKTRACE set, the panic hook's backtrace alone can take
    // longer than the server's short push timeout on a loaded machine.
    let err = within(
        "panic",
        conn.push_quest("panic", &Value::map(), Some(Duration::from_secs(8))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), code::CORE_UNKNOWN_ERROR);
    let answer = within("echo", client.quest("echo", &numbered(1))).await;
    assert_eq!(answer.unwrap(), numbered(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_times_out_with_20003_and_fails_with_20002_when_the_client_leaves() {
    let (server, mut conns) = push_server().await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let client = client_of(&server)
        .on_push("hang", move |_client, _params| {
            let _ = started_tx.send(());
            async move { std::future::pending().await }
        })
        .build();
    within("connect", client.connect()).await.unwrap();
    let conn = within("the connection", conns.recv()).await.unwrap();

    let short = Duration::from_millis(50);
    let err = within("push", conn.push_quest("hang", &Value::map(), Some(short)))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Timeout(short));
    // None means the server's push timeout (300 ms here).
    let err = within("push", conn.push_quest("hang", &Value::map(), None))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Timeout(Duration::from_millis(300)));

    // A push waiting when the client closes fails with 20002.
    let waiting = conn.clone();
    let push = tokio::spawn(async move {
        let long = Some(Duration::from_secs(60));
        waiting.push_quest("hang", &Value::map(), long).await
    });
    for _ in 0..3 {
        within("the push handler to start", started.recv())
            .await
            .unwrap();
    }
    client.close().await;
    let err = within("the push", push).await.unwrap().unwrap_err();
    assert_eq!(err, Error::Closed(fpnn::CloseReason::ClosedByPeer));
    assert_eq!(err.code(), code::CORE_CONNECTION_CLOSED);

    // Pushing to a closed connection fails at once.
    within("the close", async {
        while !conn.is_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let err = conn.push_oneway("x", &Value::map()).unwrap_err();
    assert_eq!(err.code(), code::CORE_CONNECTION_CLOSED);
    let err = within("push", conn.push_quest("x", &Value::map(), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), code::CORE_CONNECTION_CLOSED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_and_pushes_nest_both_ways_on_one_connection() {
    let (server, _conns) = push_server().await;
    // The server answers `trigger` by pushing `relay`; the client answers `relay` by
    // sending `echo` to the server first.
    let client = client_of(&server)
        .on_push("relay", |client: Client, params: Value| async move {
            client
                .quest("echo", &params)
                .await
                .map(|echoed| Value::map().with("echoed", echoed))
                .map_err(|e| ErrorAnswer::new(e.code(), e.message()))
        })
        .build();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.quest("trigger", &numbered(i)).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = within("trigger", task).await.unwrap().unwrap();
        let expected =
            Value::map().with("relayed", Value::map().with("echoed", numbered(i as i64)));
        assert_eq!(answer, expected);
    }
    assert_eq!(server.connection_count(), 1);
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_answers_a_raw_pushed_quest_with_its_seq_and_format() {
    // A fake server pushes to our client and checks the answer's bytes.
    let (listener, addr) = fake_listener().await;
    let client = Client::builder(addr)
        .on_push("double", |_client, params: Value| async move {
            let x = params.get("x").and_then(Value::as_i64).unwrap_or(0);
            Ok(Value::map().with("y", x * 2))
        })
        .build();
    let connecting = client.clone();
    let connect = tokio::spawn(async move { connecting.connect().await });
    let (mut stream, _) = within("accept", listener.accept()).await.unwrap();
    within("connect", connect).await.unwrap().unwrap();

    let quest = Quest::new(
        "double",
        Some(4_000_000_000),
        fpnn::Format::Json,
        &Value::map().with("x", 5),
    )
    .unwrap();
    write_frame(&mut stream, quest).await;
    let (bytes, frame) = expect_frame(&mut stream).await;
    assert_eq!(&bytes[..4], b"FPNN");
    assert_eq!(bytes[5], 0x40, "answered in the quest's format (JSON)");
    assert_eq!(bytes[6], 2, "an answer");
    assert_eq!(bytes[7], 0, "status ok");
    assert_eq!(&bytes[12..16], &4_000_000_000u32.to_le_bytes());
    assert_eq!(&bytes[16..], br#"{"y":10}"#);
    let Frame::Answer(answer) = frame else {
        panic!("expected an answer")
    };
    assert_eq!(answer.body().unwrap(), Value::map().with("y", 10));

    // An unknown two-way push: status 1, {code: 20004, ex}.
    write_frame(
        &mut stream,
        Quest::twoway("nobody", 9, &Value::map()).unwrap(),
    )
    .await;
    let (bytes, frame) = expect_frame(&mut stream).await;
    assert_eq!(bytes[7], 1, "status error");
    let Frame::Answer(answer) = frame else {
        panic!("expected an answer")
    };
    assert_eq!(answer.seq, 9);
    let err = answer.into_result().unwrap().unwrap_err();
    assert_eq!(err.code, code::CORE_UNKNOWN_METHOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_fails_with_20012_when_the_client_resets_and_20002_when_it_closes() {
    let (server, mut conns) = push_server().await;
    for (reset_it, expected) in [
        (true, code::CORE_INVALID_CONNECTION),
        (false, code::CORE_CONNECTION_CLOSED),
    ] {
        // A raw client that reads the pushed quest and then goes away.
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let conn = within("the connection", conns.recv()).await.unwrap();
        let pusher = conn.clone();
        let push = tokio::spawn(async move {
            let long = Some(Duration::from_secs(60));
            pusher.push_quest("work", &Value::map(), long).await
        });
        let (_, frame) = expect_frame(&mut stream).await;
        assert!(matches!(frame, Frame::Quest(q) if q.method == "work" && q.is_twoway()));
        if reset_it {
            reset(stream);
        } else {
            drop(stream);
        }
        let err = within("the push", push).await.unwrap().unwrap_err();
        assert_eq!(err.code(), expected, "reset: {reset_it}: {err:?}");
    }
}
