//! Encryption end to end over real loopback sockets: our client against our server for every
//! curve × mode × key size, a client that pipelines encrypted quests right behind `*key`
//! (written by hand, as the Go and Node.js SDKs do), a wrong server key, `*key` that is not
//! the first frame, `bits` 192, a server without a key, the require and allow policies, and a
//! reconnect that runs the exchange again.
#![cfg(feature = "encryption")]

mod common;

use bytes::BytesMut;
use common::*;
use fpnn::client::Client;
use fpnn::encryption::{
    Bits, ClientEncryption, ClientHandshake, Curve, FrameReceiver, KeyRequest, Mode, PrivateKey,
};
use fpnn::server::{EncryptionPolicy, Server, ServerEncryption};
use fpnn::{code, ConnectError, Error, Frame, Quest, Value, DEFAULT_MAX_FRAME};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MODES: [Mode; 2] = [Mode::Package, Mode::Stream];
const BITS: [Bits; 2] = [Bits::Aes128, Bits::Aes256];

async fn encrypted_server(key: &PrivateKey, policy: EncryptionPolicy) -> Server {
    Server::builder()
        .encryption(ServerEncryption::new(key.clone()).policy(policy))
        .route("echo", |conn, params: Value| async move {
            Ok(params.with("encrypted", conn.is_encrypted()))
        })
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

fn client(server: &Server, encryption: Option<ClientEncryption>) -> Client {
    let mut builder = Client::builder(server.local_addr().to_string());
    if let Some(encryption) = encryption {
        builder = builder.encryption(encryption);
    }
    builder.build()
}

/// A payload of `n` bytes that does not repeat in short cycles.
fn blob(n: usize) -> Value {
    Value::Bin(Lcg::new(n as u64).bytes(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_curve_mode_and_key_size_round_trips() {
    for curve in Curve::ALL {
        let key = PrivateKey::generate(curve).unwrap();
        let server = encrypted_server(&key, EncryptionPolicy::Require).await;
        for mode in MODES {
            for bits in BITS {
                let what = format!("{curve} {mode:?} {}", bits.bits());
                let encryption = ClientEncryption::new(key.public_key().clone())
                    .mode(mode)
                    .bits(bits);
                let client = client(&server, Some(encryption));
                // Small frames, then one larger than the read buffer (16 KiB), then small
                // again: the stream cipher must stay in step across all of them.
                for (i, size) in [10, 3, 70_000, 1, 500].into_iter().enumerate() {
                    let params = Value::map().with("i", i as i64).with("data", blob(size));
                    let answer = within(&what, client.quest("echo", &params))
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(answer, params.with("encrypted", true), "{what}");
                }
                // Many at once, answered in any order.
                let quests = (0..50).map(|i| {
                    let client = client.clone();
                    async move { client.quest("echo", &numbered(i)).await }
                });
                for (i, answer) in futures_join_all(quests).await.into_iter().enumerate() {
                    assert_eq!(
                        answer.unwrap(),
                        numbered(i as i64).with("encrypted", true),
                        "{what}"
                    );
                }
                client.close().await;
            }
        }
        server.shutdown().await;
    }
}

/// Awaits every future, in order (no extra crate for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await);
    }
    out
}

/// Reads from `stream` until `receiver` gives `n` frames (or the stream ends).
async fn read_encrypted(
    stream: &mut TcpStream,
    receiver: &mut FrameReceiver,
    n: usize,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    within("encrypted frames", async {
        while frames.len() < n {
            while let Some(frame) = receiver.decode(&mut buf).expect("decrypts") {
                frames.push(frame);
            }
            if frames.len() >= n {
                break;
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.expect("read");
            if read == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_encrypted_quests_after_key_is_served() {
    for curve in [Curve::Secp256k1, Curve::Secp224r1] {
        let key = PrivateKey::generate(curve).unwrap();
        let server = encrypted_server(&key, EncryptionPolicy::Require).await;
        for mode in MODES {
            let handshake = ClientEncryption::new(key.public_key().clone())
                .mode(mode)
                .bits(Bits::Aes256)
                .start()
                .unwrap();
            // `*key` in plaintext and three encrypted quests, in one write.
            let mut wire = BytesMut::new();
            Frame::from(handshake.quest(1).unwrap())
                .encode_into(&mut wire)
                .unwrap();
            let (mut encryptor, mut receiver) = handshake.session().split(DEFAULT_MAX_FRAME);
            for seq in 2..5 {
                let quest = Quest::twoway("echo", seq, &numbered(seq as i64)).unwrap();
                encryptor
                    .encrypt_frame(&Frame::from(quest).encode().unwrap(), &mut wire)
                    .unwrap();
            }
            let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
            stream.write_all(&wire).await.unwrap();

            let frames = read_encrypted(&mut stream, &mut receiver, 4).await;
            assert_eq!(frames.len(), 4, "{curve} {mode:?}: {frames:?}");
            let Frame::Answer(key_answer) = &frames[0] else {
                panic!("the *key answer first: {frames:?}")
            };
            assert_eq!(key_answer.seq, 1);
            ClientHandshake::check_answer(key_answer).unwrap();
            for (frame, seq) in frames[1..].iter().zip(2..) {
                let Frame::Answer(answer) = frame else {
                    panic!("{frame:?}")
                };
                assert_eq!(answer.seq, seq);
                assert_eq!(
                    answer.body().unwrap(),
                    numbered(seq as i64).with("encrypted", true)
                );
            }
        }
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_server_key_fails_the_connect_with_a_clear_error() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = encrypted_server(&key, EncryptionPolicy::Require).await;
    let wrong_same_curve = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let wrong_curve = PrivateKey::generate(Curve::Secp256k1).unwrap();
    let other_size = PrivateKey::generate(Curve::Secp192r1).unwrap();
    for (what, wrong) in [
        ("same curve", &wrong_same_curve),
        ("other 256-bit curve", &wrong_curve),
        ("192-bit curve", &other_size),
    ] {
        for mode in MODES {
            let encryption = ClientEncryption::new(wrong.public_key().clone()).mode(mode);
            let client = Client::builder(server.local_addr().to_string())
                .encryption(encryption)
                .quest_timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(60))
                .build();
            // Well within the timeouts: the server closes, or its answer does not decrypt.
            let err = within(what, client.quest("echo", &Value::map()))
                .await
                .unwrap_err();
            let Error::Connect {
                reason: ConnectError::KeyExchange(message),
                ..
            } = &err
            else {
                panic!("{what} {mode:?}: {err:?}")
            };
            assert!(!message.is_empty());
            assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
            assert!(!client.is_connected());
        }
    }
    server.shutdown().await;
}

/// Connects and writes `bytes` in one go.
async fn send_raw(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads everything until the server closes: what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    within("the server to close", async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await
}

fn key_quest(key: &PrivateKey, seq: u32, bits: i64) -> Vec<u8> {
    let ephemeral = PrivateKey::generate(key.curve()).unwrap();
    let request = KeyRequest::new(ephemeral.public_key(), Mode::Package, Bits::Aes128);
    // The official payload with `bits` as given.
    let params = Value::map()
        .with("publicKey", Value::Bin(request.public_key.clone()))
        .with("streamMode", false)
        .with("bits", bits);
    Frame::from(Quest::twoway("*key", seq, &params).unwrap())
        .encode()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_that_is_not_the_first_frame_closes_without_an_answer() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = encrypted_server(&key, EncryptionPolicy::Allow).await;
    let mut wire = Frame::from(Quest::twoway("echo", 1, &numbered(1)).unwrap())
        .encode()
        .unwrap()
        .to_vec();
    wire.extend(key_quest(&key, 2, 128));
    let mut stream = send_raw(&server, &wire).await;
    let (_, frame) = expect_frame(&mut stream).await;
    let Frame::Answer(answer) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(answer.seq, 1, "the echo is answered");
    assert_eq!(read_to_close(&mut stream).await, b"", "no answer to *key");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bits_other_than_128_and_256_close_without_an_answer() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = encrypted_server(&key, EncryptionPolicy::Allow).await;
    for bits in [192, 0, 512] {
        let mut stream = send_raw(&server, &key_quest(&key, 1, bits)).await;
        assert_eq!(read_to_close(&mut stream).await, b"", "bits {bits}");
    }
    // The same quest with 128 is answered (encrypted: 4-byte length + 17 bytes).
    let mut stream = send_raw(&server, &key_quest(&key, 1, 128)).await;
    let mut answer = [0u8; 21];
    within("the *key answer", stream.read_exact(&mut answer))
        .await
        .unwrap();
    assert_eq!(&answer[..4], &17u32.to_le_bytes());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_on_a_server_without_a_key_closes_without_an_answer() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = Server::builder()
        .route("echo", |_conn, params: Value| async move { Ok(params) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut stream = send_raw(&server, &key_quest(&key, 1, 128)).await;
    assert_eq!(read_to_close(&mut stream).await, b"");
    // And our client says so.
    let client = client(
        &server,
        Some(ClientEncryption::new(key.public_key().clone())),
    );
    let err = within("connect", client.connect()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connect {
                reason: ConnectError::KeyExchange(_),
                ..
            }
        ),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_closes_plain_user_calls_and_allow_serves_them() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let required = encrypted_server(&key, EncryptionPolicy::Require).await;
    let plain = client(&required, None);
    // Built-ins stay open to plain connections.
    let pong = within("*ping", plain.quest("*ping", &Value::map()))
        .await
        .unwrap();
    assert!(pong.get("ts").is_some());
    let err = within("plain echo", plain.quest("echo", &numbered(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Closed(_)),
        "closed, no answer: {err:?}"
    );
    // Encrypted connections are served.
    let encrypted = client(
        &required,
        Some(ClientEncryption::new(key.public_key().clone())),
    );
    let answer = within("echo", encrypted.quest("echo", &numbered(2)))
        .await
        .unwrap();
    assert_eq!(answer, numbered(2).with("encrypted", true));
    required.shutdown().await;

    let allowed = encrypted_server(&key, EncryptionPolicy::Allow).await;
    let plain = client(&allowed, None);
    let answer = within("echo", plain.quest("echo", &numbered(3)))
        .await
        .unwrap();
    assert_eq!(answer, numbered(3).with("encrypted", false));
    let encrypted = client(
        &allowed,
        Some(ClientEncryption::new(key.public_key().clone())),
    );
    let answer = within("echo", encrypted.quest("echo", &numbered(4)))
        .await
        .unwrap();
    assert_eq!(answer, numbered(4).with("encrypted", true));
    allowed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_runs_the_key_exchange_again() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = encrypted_server(&key, EncryptionPolicy::Require).await;
    let (hook, mut events) = events();
    let client = Client::builder(server.local_addr().to_string())
        .encryption(ClientEncryption::new(key.public_key().clone()).mode(Mode::Stream))
        .auto_reconnect(true)
        .on_event(hook)
        .build();
    let mut ids = Vec::new();
    for round in 0..3 {
        let answer = within("echo", client.quest("echo", &numbered(round)))
            .await
            .unwrap();
        assert_eq!(answer, numbered(round).with("encrypted", true));
        // By the quest or by the background reconnect, whichever came first.
        events.connected().await;
        for conn in server.connections() {
            assert!(conn.is_encrypted());
            ids.push(conn.id());
            conn.close();
        }
        assert!(events.closed().await.will_reconnect);
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "a new encrypted connection each round: {ids:?}"
    );
    server.shutdown().await;
}
