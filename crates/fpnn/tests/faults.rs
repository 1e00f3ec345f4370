//! Faults: peers that crash mid-quest (orderly close or reset), servers that send garbage, and
//! clients that send garbage to a server other clients are using.

mod common;

use common::*;
use fpnn::client::Client;
use fpnn::proto::ProtocolError;
use fpnn::server::Server;
use fpnn::{code, CloseReason, Error, Frame, Quest, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// How a fake server ends the connection after reading the quests.
#[derive(Clone, Copy)]
enum Ending {
    Close,
    Reset,
}

/// A fake server that reads `quests` quests and then ends the connection.
async fn crashing_server(quests: usize, ending: Ending) -> String {
    let (listener, addr) = fake_listener().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        for _ in 0..quests {
            let (_, frame) = read_frame(&mut stream).await.expect("a quest");
            assert!(matches!(frame, Frame::Quest(q) if q.is_twoway()));
        }
        match ending {
            Ending::Close => drop(stream),
            Ending::Reset => reset(stream),
        }
    });
    addr
}

async fn quests_in_flight_when_the_server_ends(ending: Ending) -> (Vec<Error>, Closed) {
    const N: usize = 3;
    let addr = crashing_server(N, ending).await;
    let (hook, mut events) = events();
    let client = Client::builder(addr)
        .quest_timeout(Duration::from_secs(60))
        .on_event(hook)
        .build();
    within("connect", client.connect()).await.unwrap();
    assert!(!events.connected().await);
    let tasks: Vec<_> = (0..N as i64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.quest("work", &numbered(i)).await })
        })
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        errors.push(within("the quest", task).await.unwrap().unwrap_err());
    }
    let closed = events.closed().await;
    assert_eq!(client.in_flight(), 0);
    assert!(!client.is_connected());
    (errors, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_fail_with_20002_when_the_server_closes_mid_quest() {
    let (errors, closed) = quests_in_flight_when_the_server_ends(Ending::Close).await;
    for err in errors {
        assert_eq!(err, Error::Closed(CloseReason::ClosedByPeer));
        assert_eq!(err.code(), code::CORE_CONNECTION_CLOSED);
    }
    assert_eq!(
        closed,
        Closed {
            by_error: false,
            code: code::CORE_CONNECTION_CLOSED,
            will_reconnect: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quests_fail_with_20012_when_the_server_resets_mid_quest() {
    let (errors, closed) = quests_in_flight_when_the_server_ends(Ending::Reset).await;
    for err in errors {
        assert!(
            matches!(&err, Error::Closed(CloseReason::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
    }
    assert_eq!(
        closed,
        Closed {
            by_error: true,
            code: code::CORE_INVALID_CONNECTION,
            will_reconnect: false
        }
    );
}

/// A fake server that answers the first quest with `reply` (given the quest's seq).
async fn replying_server(reply: impl FnOnce(u32) -> Vec<u8> + Send + 'static) -> String {
    let (listener, addr) = fake_listener().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (_, frame) = read_frame(&mut stream).await.expect("a quest");
        let Frame::Quest(quest) = frame else {
            panic!("expected a quest")
        };
        stream
            .write_all(&reply(quest.seq.expect("two-way")))
            .await
            .unwrap();
        // Keep the socket open until the client closes it.
        while read_frame(&mut stream).await.is_some() {}
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sending_garbage_fails_the_quests_with_20012() {
    let garbage: [fn(u32) -> Vec<u8>; 3] = [
        |_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        // A header with bad flag 0x00.
        |seq| {
            let mut bytes = hex("46504e4e01 00 02 00 01000000");
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.push(0x80);
            bytes
        },
        // An answer whose payload is not a map: the answer cannot be decoded.
        |seq| {
            let mut bytes = hex("46504e4e01 80 02 00 01000000");
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.push(0x91);
            bytes
        },
    ];
    for (i, reply) in garbage.into_iter().enumerate() {
        let addr = replying_server(reply).await;
        let (hook, mut events) = events();
        let client = Client::builder(addr)
            .quest_timeout(Duration::from_secs(60))
            .on_event(hook)
            .build();
        let result = within("the quest", client.quest("x", &Value::map())).await;
        let err = result.unwrap_err();
        if i < 2 {
            // A corrupt stream closes the connection.
            assert!(
                matches!(
                    err,
                    Error::Closed(CloseReason::Protocol(ProtocolError::BadFrame(_)))
                ),
                "{i}: {err:?}"
            );
            assert!(!events.connected().await);
            let closed = events.closed().await;
            assert!(closed.by_error);
            assert_eq!(closed.code, code::CORE_INVALID_CONNECTION);
        } else {
            // A well-framed answer with an undecodable payload fails that quest only.
            assert_eq!(err.code(), code::CORE_DECODING, "{i}: {err:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_an_answer_over_its_max_frame() {
    let addr = replying_server(|seq| {
        let big = Value::map().with("s", "x".repeat(4096));
        let answer = fpnn::Answer::ok(seq, fpnn::Format::MsgPack, &big).unwrap();
        Frame::from(answer).encode().unwrap().to_vec()
    })
    .await;
    let client = Client::builder(addr).max_frame(1024).build();
    let err = within("the quest", client.quest("x", &Value::map()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Closed(CloseReason::Protocol(ProtocolError::BadFrame(
                fpnn::CodecError::FrameTooLarge { .. }
            )))
        ),
        "{err:?}"
    );
}

/// What a misbehaving client sends.
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    let mut random = Lcg::new(7).bytes(300);
    random[0] = b'X'; // not "FPNN" by chance
    let ping = Frame::from(Quest::twoway("*ping", 1, &Value::map()).unwrap())
        .encode()
        .unwrap()
        .to_vec();
    let patched = |offset: usize, byte: u8| {
        let mut bytes = ping.clone();
        bytes[offset] = byte;
        bytes
    };
    vec![
        ("random bytes", random),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("bad magic", patched(0, b'X')),
        ("version 2", patched(4, 2)),
        ("no format flag", patched(5, 0x00)),
        ("both format flags", patched(5, 0xc0)),
        ("zip flag", patched(5, 0xa0)),
        ("message type 3", patched(6, 3)),
        (
            "empty method",
            hex("46504e4e01 80 01 00 01000000 01000000 80"),
        ),
        (
            "empty payload",
            hex("46504e4e01 80 01 01 00000000 01000000 78"),
        ),
        // A well-framed quest whose payload is not a map, or not msgpack at all.
        (
            "array payload",
            hex("46504e4e01 80 01 04 01000000 01000000 6563686f 90"),
        ),
        (
            "bad msgpack",
            hex("46504e4e01 80 01 04 01000000 01000000 6563686f c1"),
        ),
        (
            "bad JSON",
            hex("46504e4e01 40 01 04 01000000 01000000 6563686f 7b"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_garbage_are_disconnected_while_others_keep_working() {
    let server = Server::builder()
        .route("echo", |_conn, params: Value| async move { Ok(params) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .on_event(hook)
        .build();
    within("connect", client.connect()).await.unwrap();
    assert!(!events.connected().await);

    // A well-behaved client keeps sending quests while the others misbehave.
    let (stop_tx, mut stop) = oneshot::channel::<()>();
    let worker = client.clone();
    let busy = tokio::spawn(async move {
        let mut done = 0i64;
        loop {
            let answer = worker.quest("echo", &numbered(done)).await;
            assert_eq!(answer.unwrap(), numbered(done));
            done += 1;
            if stop.try_recv().is_ok() {
                return done;
            }
        }
    });

    for (what, bytes) in garbage() {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        within(what, assert_closed(&mut stream)).await;
    }
    // A client that behaves at first (a quest sent in pieces, an answer for a seq nobody
    // asked for, which is dropped) and then sends a bad header.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let stray = hex("46504e4e01 80 02 00 01000000 05000000 80");
    stream.write_all(&stray).await.unwrap();
    let echo = Frame::from(Quest::twoway("echo", 3, &numbered(3)).unwrap())
        .encode()
        .unwrap();
    stream.write_all(&echo[..5]).await.unwrap();
    stream.flush().await.unwrap();
    stream.write_all(&echo[5..]).await.unwrap();
    let (_, frame) = expect_frame(&mut stream).await;
    assert!(matches!(frame, Frame::Answer(a) if a.seq == 3));
    stream
        .write_all(b"FPNN\x01\x80\x07\x01\x01\x00\x00\x00")
        .await
        .unwrap();
    assert_closed(&mut stream).await;

    stop_tx.send(()).unwrap();
    let done = within("the busy client", busy).await.unwrap();
    assert!(done > 0);
    assert!(client.is_connected());
    assert!(events.try_next().is_none(), "the good client never dropped");
    within("the server to drop the bad connections", async {
        while server.connection_count() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
