//! `fpnn::server` serving HTTP/JSON, WebSocket and TLS on the FPNN port, over real loopback
//! sockets: the protocol cases of the framework's web side (spec §6) against the real server
//! and its handlers, with raw requests and frames, and with `fpnn::client` over `ws://`,
//! `wss://` and FPNN over TLS.
#![cfg(feature = "tls")]

mod http_util;
mod web_echo;

use bytes::BytesMut;
use fpnn::client::Client;
use fpnn::server::{Connection, Server};
use fpnn::web::tls::{self, rustls, tokio_rustls};
use fpnn::web::ws::{ClientHandshake, Incoming, WebSocket};
use fpnn::{ErrorAnswer, Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};
use http_util::{read_responses, read_to_close};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use web_echo::TestPki;

const LIMIT: Duration = Duration::from_secs(10);

/// What the `kick` handler's pushes saw: the client's answer to `ping`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server with `echo`, `fail` (error 123456) and `kick` (answers `{}`, pushes a two-way
/// `ping {n}`, and once it is answered pushes a one-way `kickout` and closes), as rtmd's
/// gate does with a kicked session.
async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> (Server, Seen) {
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let mut builder = Server::builder()
        .route("echo", |_c, params: Value| async move { Ok(params) })
        .route("fail", |_c, _p| async move {
            Err(ErrorAnswer::new(123456, "failed on purpose"))
        })
        .route("kick", move |conn: Connection, params: Value| {
            let seen = seen2.clone();
            async move {
                let n = params.get("n").cloned().unwrap_or(Value::from(0));
                tokio::spawn(async move {
                    let ping = Value::map().with("n", n);
                    let answer = conn.push_quest("ping", &ping, None).await;
                    seen.lock().unwrap().push(format!(
                        "{} {:?}",
                        conn.wire(),
                        answer.map_err(|e| e.to_string())
                    ));
                    let _ = conn.push_oneway("kickout", &Value::map());
                    conn.close();
                });
                Ok(Value::map())
            }
        });
    if let Some(config) = tls {
        builder = builder.tls(config);
    }
    (builder.bind("127.0.0.1:0").await.unwrap(), seen)
}

/// Reads `n` HTTP responses: status and body.
async fn read_bodies<S: AsyncRead + Unpin>(stream: &mut S, n: usize) -> Vec<(u16, String)> {
    read_responses(stream, n)
        .await
        .into_iter()
        .map(|(code, all)| {
            let body = all.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            (code, body.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn http_calls_run_the_handlers_with_keep_alive() {
    let (server, _) = start(None).await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    // POST, then on the same connection a GET with `fpnn=`, an error, an unknown method.
    s.write_all(b"POST /service/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"uid\":1}")
        .await
        .unwrap();
    assert_eq!(
        read_bodies(&mut s, 1).await,
        [(200, "{\"uid\":1}".to_owned())]
    );
    s.write_all(b"GET /service/echo?fpnn=%7B%22t%22%3A%22a%3D%3D%22%7D HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_bodies(&mut s, 1).await,
        [(200, "{\"t\":\"a==\"}".to_owned())]
    );
    // Pipelined: answers in request order.
    s.write_all(
        b"POST /service/fail HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\
          GET /service/nope HTTP/1.1\r\n\r\n\
          GET /service/echo HTTP/1.1\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_bodies(&mut s, 3).await;
    assert_eq!(
        r[0],
        (
            500,
            "{\"code\":123456,\"ex\":\"failed on purpose\"}".to_owned()
        )
    );
    assert_eq!(r[1].0, 500);
    assert!(r[1].1.starts_with("{\"code\":20004,"), "{}", r[1].1);
    assert_eq!(r[2], (200, "{}".to_owned()));
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.connections()[0].wire(), "http");
    // `Connection: close`: answered, then closed.
    s.write_all(b"GET /service/echo HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.contains("Connection: close\r\n"),
        "{rest}"
    );
}

#[tokio::test]
async fn an_http_body_longer_than_the_read_buffer() {
    let (server, _) = start(None).await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let text = "y".repeat(200_000);
    let body = format!("{{\"s\":\"{text}\"}}");
    let head = format!(
        "POST /service/echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let r = read_bodies(&mut s, 1).await;
    assert_eq!(r, [(200, body)]);
}

#[tokio::test]
async fn bad_requests_and_pushes_over_http_close_without_an_answer() {
    let (server, _) = start(None).await;
    for request in [
        &b"POST /service/echo HTTP/1.1\r\nContent-Length: 8388609\r\n\r\n"[..],
        b"GET /other/echo HTTP/1.1\r\n\r\n",
        b"GET /service/echo?fpnn=%5B%5D HTTP/1.1\r\n\r\n",
        b"OPTIONS /service/echo HTTP/1.1\r\n\r\n",
        b"HELLO",
        b"\x16\x03\x01\x00\x05hello", // TLS on a listener without it
                                      // `kick` pushes a quest, which HTTP cannot carry: answered, then closed.
    ] {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        s.write_all(request).await.unwrap();
        assert_eq!(
            read_to_close(&mut s).await,
            b"",
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET /service/kick HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let all = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
}

#[tokio::test]
async fn a_server_without_web_closes_http() {
    let server = Server::builder()
        .web(false)
        .route("echo", |_c, p: Value| async move { Ok(p) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET /service/echo HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut s).await, b"");
    let client = Client::new(server.local_addr().to_string());
    assert_eq!(
        client
            .quest("echo", &Value::map().with("a", 1))
            .await
            .unwrap(),
        Value::map().with("a", 1)
    );
}

/// A raw WebSocket end over any stream, to send what a client library would not.
struct RawWs<S> {
    stream: S,
    ws: WebSocket,
    buf: BytesMut,
}

/// Masks `payload` into a client frame with `first` (FIN + opcode).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawWs<S> {
    /// Upgrades with exactly this request head (`{key}` is replaced by a key).
    async fn upgrade(mut stream: S, head: &str) -> RawWs<S> {
        let handshake = ClientHandshake::new();
        let head = head.replace("{key}", handshake.key());
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        while handshake.read_response(&mut buf).unwrap().is_none() {
            assert!(
                stream.read_buf(&mut buf).await.unwrap() > 0,
                "closed during the handshake"
            );
        }
        RawWs {
            stream,
            ws: WebSocket::client(DEFAULT_MAX_FRAME),
            buf,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next thing from the server: a frame, or its close code (then EOF).
    async fn next(&mut self) -> Result<Frame, Option<u16>> {
        loop {
            match self.ws.read(&mut self.buf).unwrap() {
                Some(Incoming::Frame(bytes)) => {
                    let mut b = BytesMut::from(&bytes[..]);
                    return Ok(FrameDecoder::default().decode(&mut b).unwrap().unwrap());
                }
                Some(Incoming::Closed(code)) => {
                    read_to_close(&mut self.stream).await;
                    return Err(code);
                }
                Some(_) => panic!("unexpected"),
                None => {
                    let n = tokio::time::timeout(LIMIT, self.stream.read_buf(&mut self.buf))
                        .await
                        .expect("the server answers")
                        .unwrap();
                    assert!(n > 0, "EOF without a close frame");
                }
            }
        }
    }
}

fn echo_quest(seq: u32, s: &str) -> Vec<u8> {
    Frame::from(Quest::twoway("echo", seq, &Value::map().with("s", s)).unwrap())
        .encode()
        .unwrap()
        .to_vec()
}

fn echoed(frame: Result<Frame, Option<u16>>, seq: u32) -> String {
    match frame {
        Ok(Frame::Answer(a)) if a.seq == seq => {
            let body = a.body().unwrap();
            body.get("s")
                .and_then(|s| s.as_str().map(str::to_owned))
                .unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn websocket_protocol_cases() {
    let (server, _) = start(None).await;
    let addr = server.local_addr();
    // Header names and values in any case, a token list in Connection, any /service/ path.
    for head in [
        "GET /service/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET /service/ws HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n",
    ] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut ws = RawWs::upgrade(tcp, head).await;
        ws.send_raw(&client_frame(0x82, &echo_quest(1, "hi"))).await;
        assert_eq!(echoed(ws.next().await, 1), "hi");

        // A message in three fragments (binary, continuation, final continuation), with a
        // ping in the middle: the pong carries the ping's payload.
        let quest = echo_quest(2, &"f".repeat(300));
        let (a, rest) = quest.split_at(10);
        let (b, c) = rest.split_at(100);
        ws.send_raw(&client_frame(0x02, a)).await;
        ws.send_raw(&client_frame(0x89, b"are you there")).await;
        ws.send_raw(&client_frame(0x00, b)).await;
        ws.send_raw(&client_frame(0x80, c)).await;
        assert_eq!(echoed(ws.next().await, 2), "f".repeat(300));

        // A message longer than the read buffer (16 KiB), in one frame.
        ws.send_raw(&client_frame(0x82, &echo_quest(3, &"L".repeat(100_000))))
            .await;
        assert_eq!(echoed(ws.next().await, 3).len(), 100_000);

        // A close: answered with a close, then the TCP close.
        ws.send_raw(&client_frame(0x88, &1000u16.to_be_bytes())).await;
        assert_eq!(ws.next().await.map(|_| ()), Err(Some(1000)));
    }

    // The pong, seen raw: `8a` + the ping's payload.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ws = RawWs::upgrade(tcp, "GET /service/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    ws.send_raw(&client_frame(0x89, b"p1")).await;
    let mut got = ws.buf.to_vec();
    while got.len() < 4 {
        let mut more = [0u8; 16];
        let n = tokio::time::timeout(LIMIT, ws.stream.read(&mut more))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&more[..n]);
    }
    assert_eq!(got, b"\x8a\x02p1");

    // An unmasked client frame: closed without an answer.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ws = RawWs::upgrade(tcp, "GET /service/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    let quest = echo_quest(1, "x");
    let mut unmasked = vec![0x82, quest.len() as u8];
    unmasked.extend_from_slice(&quest);
    ws.send_raw(&unmasked).await;
    let rest = read_to_close(&mut ws.stream).await;
    assert!(
        rest.is_empty() || rest.starts_with(&[0x88]),
        "no answer, at most a close frame: {rest:?}"
    );

    // A message that is not one FPNN frame: closed.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ws = RawWs::upgrade(tcp, "GET /service/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    ws.send_raw(&client_frame(0x82, b"not fpnn")).await;
    let rest = read_to_close(&mut ws.stream).await;
    assert!(rest.is_empty() || rest.starts_with(&[0x88]), "{rest:?}");
}

/// Our client over WebSocket: quests, a server push answered, the kickout push and the
/// server's close.
async fn client_session(client: Client, seen: &Seen, kickouts: &Arc<Mutex<u32>>) {
    let big = "z".repeat(70_000);
    for s in ["a", &"b".repeat(105), &big] {
        let params = Value::map().with("s", s);
        assert_eq!(client.quest("echo", &params).await.unwrap(), params);
    }
    let err = client.quest("fail", &Value::map()).await.unwrap_err();
    assert_eq!(err.code(), 123456, "{err}");
    client
        .quest("kick", &Value::map().with("n", 7))
        .await
        .unwrap();
    // The push was answered, then the kickout arrived and the server closed.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while (seen.lock().unwrap().is_empty() || client.is_connected())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!client.is_connected(), "closed by the server");
    assert_eq!(*kickouts.lock().unwrap(), 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].starts_with("websocket Ok("), "{seen:?}");
    assert!(seen[0].contains("\"got\""), "{seen:?}");
}

fn ws_client(builder: fpnn::client::ClientBuilder, kickouts: &Arc<Mutex<u32>>) -> Client {
    let k = kickouts.clone();
    builder
        .websocket("/service/websocket")
        .on_push("ping", |_c, p: Value| async move {
            Ok(Value::map().with("got", p.get("n").cloned().unwrap_or(Value::Nil)))
        })
        .on_push("kickout", move |_c, _p| {
            let k = k.clone();
            async move {
                *k.lock().unwrap() += 1;
                Ok(Value::map())
            }
        })
        .build()
}

#[tokio::test]
async fn the_client_over_websocket() {
    let (server, seen) = start(None).await;
    let kickouts = Arc::default();
    let client = ws_client(Client::builder(server.local_addr().to_string()), &kickouts);
    client_session(client, &seen, &kickouts).await;
}

#[tokio::test]
async fn wss_https_fpnn_over_tls_and_plain_on_one_tls_listener() {
    let pki = TestPki::new("server_web");
    let (server, seen) = start(Some(tls::server_config(&pki.cert, &pki.key).unwrap())).await;
    let endpoint = format!("localhost:{}", server.local_addr().port());
    let ca = tls::client_config(&pki.ca).unwrap();

    // wss:// with our client.
    let kickouts = Arc::default();
    let client = ws_client(Client::builder(&endpoint).tls(ca.clone()), &kickouts);
    client_session(client, &seen, &kickouts).await;

    // FPNN over TLS.
    let client = Client::builder(&endpoint).tls(ca.clone()).build();
    let params = Value::map().with("s", "tls");
    assert_eq!(client.quest("echo", &params).await.unwrap(), params);
    let conns = server.connections();
    assert!(conns.iter().any(|c| c.is_tls() && c.wire() == "plain"));
    client.close().await;

    // https:// with a raw request.
    let connector = tokio_rustls::TlsConnector::from(ca.clone());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    s.write_all(b"POST /service/echo HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        .await
        .unwrap();
    assert_eq!(
        read_bodies(&mut s, 1).await,
        [(200, "{\"a\":1}".to_owned())]
    );

    // Plain FPNN and plain HTTP on the same port.
    let client = Client::new(server.local_addr().to_string());
    assert_eq!(client.quest("echo", &params).await.unwrap(), params);
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET /service/echo HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_bodies(&mut s, 1).await, [(200, "{}".to_owned())]);

    // A client that does not trust the certificate is refused.
    let other = TestPki::new("server_web_other");
    let untrusted = Client::builder(&endpoint)
        .tls(tls::client_config(&other.ca).unwrap())
        .build();
    assert!(untrusted.quest("echo", &params).await.is_err());
}

#[tokio::test]
async fn json_quests_over_websocket_get_json_answers() {
    let (server, _) = start(None).await;
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut ws = RawWs::upgrade(tcp, "GET /service/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    let quest = Quest::new("echo", Some(9), Format::Json, &Value::map().with("j", 1)).unwrap();
    ws.send_raw(&client_frame(0x82, &Frame::from(quest).encode().unwrap()))
        .await;
    match ws.next().await {
        Ok(Frame::Answer(a)) => {
            assert_eq!((a.seq, a.format), (9, Format::Json));
            assert_eq!(a.body().unwrap(), Value::map().with("j", 1));
        }
        other => panic!("{other:?}"),
    }
}

/// FPNN encryption over TLS is refused (the connection closes without an answer to `*key`),
/// and TLS counts as encryption where a server requires it.
#[tokio::test]
async fn key_exchange_over_tls_is_refused_and_tls_passes_require() {
    use fpnn::encryption::{ClientEncryption, Curve, PrivateKey};
    use fpnn::server::{EncryptionPolicy, ServerEncryption};
    let pki = TestPki::new("server_web_key");
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = Server::builder()
        .route("echo", |_c, params: Value| async move { Ok(params) })
        .tls(tls::server_config(&pki.cert, &pki.key).unwrap())
        .encryption(ServerEncryption::new(key.clone()).policy(EncryptionPolicy::Require))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let endpoint = format!("localhost:{}", server.local_addr().port());
    let ca = tls::client_config(&pki.ca).unwrap();
    let params = Value::map().with("s", "tls");

    let both = Client::builder(&endpoint)
        .tls(ca.clone())
        .encryption(ClientEncryption::new(key.public_key().clone()))
        .build();
    let refused = tokio::time::timeout(LIMIT, both.quest("echo", &params)).await;
    assert!(matches!(refused, Ok(Err(_))), "{refused:?}");

    let over_tls = Client::builder(&endpoint).tls(ca).build();
    let answer = tokio::time::timeout(LIMIT, over_tls.quest("echo", &params)).await;
    assert_eq!(answer.unwrap().unwrap(), params);

    let plain = Client::new(server.local_addr().to_string());
    let closed = tokio::time::timeout(LIMIT, plain.quest("echo", &params)).await;
    assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    server.shutdown().await;
}
