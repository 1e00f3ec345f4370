//! `rtm login` against a scripted gate on loopback: what it answers to the gate's pushes, and
//! how it reads a gate that closes right after a push or sends what it should not.

mod common;

use bytes::BytesMut;
use common::*;
use fpnn::{Answer, Format, Frame, FrameDecoder, Quest, Value};
use std::process::Output;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The gate's side of one connection: reads frames, writes bytes.
struct Peer {
    socket: TcpStream,
    input: BytesMut,
    decoder: FrameDecoder,
}

impl Peer {
    async fn next_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.input).unwrap() {
                return frame;
            }
            let n = self.socket.read_buf(&mut self.input).await.unwrap();
            assert!(n > 0, "rtm closed the connection");
        }
    }

    /// Reads the `auth` quest and answers `{ok}` as told, with `more` bytes in the same write.
    async fn auth(&mut self, ok: bool, more: &[u8]) -> Value {
        let Frame::Quest(quest) = self.next_frame().await else {
            panic!("a quest first")
        };
        assert_eq!(quest.method, "auth");
        let answer = Answer::ok(
            quest.seq.unwrap(),
            Format::MsgPack,
            &Value::map().with("ok", ok),
        );
        let mut bytes = Frame::Answer(answer.unwrap()).encode().unwrap().to_vec();
        bytes.extend_from_slice(more);
        self.socket.write_all(&bytes).await.unwrap();
        quest.params().unwrap()
    }
}

/// A gate that runs `script` on the first connection, and `rtm login` against it.
async fn login_against<F, Fut>(script: F) -> Output
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gate = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        script(Peer {
            socket,
            input: BytesMut::new(),
            decoder: FrameDecoder::default(),
        })
        .await;
    });
    let mut cmd = rtm_at("127.0.0.1:1", &gate, SECRET);
    cmd.args(["--timeout", "5"]);
    let out = run(cmd, &["login", "--uid", "5", "--token", "tok"]).await;
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the scripted gate finishes")
        .expect("the scripted gate's checks pass");
    out
}

fn kickout_frame() -> Vec<u8> {
    let kickout = Quest::oneway("kickout", &Value::map()).unwrap();
    Frame::Quest(kickout).encode().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_the_gates_pings_and_reads_a_kickout_sent_with_the_close() {
    let out = login_against(|mut peer| async move {
        let auth = peer.auth(true, &[]).await;
        assert_eq!(
            auth.get("pid").and_then(Value::as_i64),
            Some(i64::from(PID))
        );
        assert_eq!(auth.get("uid").and_then(Value::as_i64), Some(5));
        assert_eq!(auth.get("token").and_then(Value::as_str), Some("tok"));

        // Two pings; each is answered `{}` under its own seq.
        for seq in [7, 8] {
            let ping = Quest::twoway("ping", seq, &Value::map()).unwrap();
            let bytes = Frame::Quest(ping).encode().unwrap();
            peer.socket.write_all(&bytes).await.unwrap();
            let Frame::Answer(answer) = peer.next_frame().await else {
                panic!("an answer to the ping")
            };
            assert_eq!((answer.seq, answer.status), (seq, 0));
            assert_eq!(answer.body().unwrap(), Value::map());
        }
        // An unknown two-way quest is answered 20004, as a framework would.
        let odd = Quest::twoway("getattrs", 9, &Value::map()).unwrap();
        peer.socket
            .write_all(&Frame::Quest(odd).encode().unwrap())
            .await
            .unwrap();
        let Frame::Answer(answer) = peer.next_frame().await else {
            panic!("an answer")
        };
        assert_eq!(answer.seq, 9);
        let error = answer.into_result().unwrap().unwrap_err();
        assert_eq!(error.code, 20004);

        // The kickout and the FIN in one go: the push must not be lost.
        peer.socket.write_all(&kickout_frame()).await.unwrap();
        peer.socket.shutdown().await.unwrap();
    })
    .await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("logged in as user 5"), "{lines:?}");
    assert_eq!(lines[1], "kicked out: the server pushed kickout");
    assert_eq!(lines[2], "connection closed after the kickout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_closes_the_connection_itself_on_a_kickout_as_official_clients_do() {
    let out = login_against(|mut peer| async move {
        peer.auth(true, &[]).await;
        // The gate pushes the kickout and leaves the connection open (its grace period):
        // the client must close it, without waiting for the gate.
        peer.socket.write_all(&kickout_frame()).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, peer.socket.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "rtm did not close the connection after the kickout"
        );
    })
    .await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(
        lines[1..],
        [
            "kicked out: the server pushed kickout",
            "connection closed after the kickout"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kickout_pushed_in_the_same_write_as_the_auth_answer_is_reported() {
    let out = login_against(|mut peer| async move {
        peer.auth(true, &kickout_frame()).await;
        peer.socket.shutdown().await.unwrap();
    })
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("kicked out: the server pushed kickout"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_sends_garbage_or_a_huge_frame_ends_the_login_with_exit_4() {
    // A header announcing a 100 MiB answer: refused from the header, before it is buffered.
    let mut huge = b"FPNN\x01\x80\x02\x00".to_vec();
    huge.extend_from_slice(&(100u32 << 20).to_le_bytes());
    for (bytes, says) in [
        (huge, "exceeds the limit"),
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            "not an FPNN frame",
        ),
    ] {
        let out = login_against(move |mut peer| async move {
            peer.auth(true, &bytes).await;
            // Keeps the connection open: rtm must end it by itself.
            let mut rest = Vec::new();
            let _ = peer.socket.read_to_end(&mut rest).await;
        })
        .await;
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let last = stdout(&out).lines().last().unwrap_or_default().to_owned();
        assert!(
            last.starts_with("connection closed without a kickout: ") && last.contains(says),
            "{last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_closes_before_answering_reads_like_any_closed_connection() {
    let out = login_against(|mut peer| async move {
        let _ = peer.next_frame().await;
        peer.socket.shutdown().await.unwrap();
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("connection error 20002 (FPNN_EC_CORE_CONNECTION_CLOSED)"),
        "{err}"
    );
    assert!(
        err.contains("\nhint: the service closed the connection"),
        "{err}"
    );
}
