//! HTTP/JSON, WebSocket and TLS on one port, over real loopback sockets: a server made of
//! `fpnn::web`'s sans-IO pieces (`web_echo`) against raw HTTP requests and our WebSocket
//! client, plain and under TLS with a throwaway CA.
#![cfg(feature = "tls")]

mod http_util;
mod web_echo;

use bytes::BytesMut;
use fpnn::web::tls::{self, rustls, tokio_rustls, TlsError};
use fpnn::web::ws::{ClientHandshake, Incoming, WebSocket};
use fpnn::{Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};
use http_util::{read_responses, read_to_close};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use web_echo::{EchoServer, Event, TestPki, PING_SEQ};

const LIMIT: Duration = Duration::from_secs(10);

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn http_keep_alive_pipelining_get_chunked_and_errors() {
    let mut server = EchoServer::start(None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // Three requests in one write (pipelined), then more on the same connection.
    s.write_all(
        b"POST /service/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"uid\":1}\
          GET /service/echo?fpnn=%7B%22t%22%3A%22a%3D%3D%22%7D HTTP/1.1\r\nOrigin: http://page\r\n\r\n\
          POST /service/fail HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_responses(&mut s, 3).await;
    assert_eq!((r[0].0, body(&r[0].1)), (200, "{\"uid\":1}"));
    assert!(
        r[0].1.contains("\r\nServer: FPNN/1.0\r\n")
            && r[0].1.contains("\r\nConnection: Keep-Alive\r\n")
    );
    assert!(!r[0].1.contains("Access-Control"));
    assert_eq!((r[1].0, body(&r[1].1)), (200, "{\"t\":\"a==\"}"));
    assert!(r[1].1.contains("\r\nAccess-Control-Allow-Origin: *\r\n"));
    assert_eq!(
        (r[2].0, body(&r[2].1)),
        (500, "{\"code\":123456,\"ex\":\"failed on purpose\"}")
    );
    assert!(r[2].1.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));

    // Unknown method: the handler's 20004 comes back as a 500.
    s.write_all(b"GET /service/nope HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let r = read_responses(&mut s, 1).await;
    assert_eq!(
        (r[0].0, body(&r[0].1)),
        (500, "{\"code\":20004,\"ex\":\"unknown method nope\"}")
    );

    // Connection: close is answered, then the connection is closed.
    s.write_all(b"GET /service/echo HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.contains("Connection: close\r\n"),
        "{rest}"
    );
    assert!(rest.ends_with("\r\n\r\n{}"));
    assert_eq!(
        server.next_event().await,
        Event::Layer {
            layer: "http",
            tls: false
        }
    );
    assert_eq!(
        server.next_event().await,
        Event::Closed("http close".into())
    );
}

#[tokio::test]
async fn bad_requests_close_without_an_answer() {
    let server = EchoServer::start(None).await;
    for request in [
        &b"POST /service/echo HTTP/1.1\r\nContent-Length: 8388609\r\n\r\n"[..], // over the max frame
        b"GET /other/echo HTTP/1.1\r\n\r\n",
        b"GET /service/echo?fpnn=%5B%5D HTTP/1.1\r\n\r\n", // not an object
        b"OPTIONS /service/echo HTTP/1.1\r\n\r\n",
        b"HELLO",
        b"\x16\x03\x01\x00\x05hello", // TLS on a plain listener
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        assert_eq!(
            read_to_close(&mut s).await,
            b"",
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

/// Our WebSocket client over any stream: handshake, then FPNN frames.
struct WsClient<S> {
    stream: S,
    ws: WebSocket,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    async fn connect(mut stream: S, host: &str) -> WsClient<S> {
        let handshake = ClientHandshake::new();
        let mut out = BytesMut::new();
        handshake.write_request(host, "/service/websocket", &mut out);
        stream.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        while handshake.read_response(&mut buf).unwrap().is_none() {
            assert!(
                stream.read_buf(&mut buf).await.unwrap() > 0,
                "closed during the handshake"
            );
        }
        WsClient {
            stream,
            ws: WebSocket::client(DEFAULT_MAX_FRAME),
            buf,
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.ws.write_frame(&frame.encode().unwrap(), &mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame, or `None` when the server closed (with a close frame, then EOF).
    async fn next(&mut self) -> Option<Frame> {
        loop {
            match self.ws.read(&mut self.buf).unwrap() {
                Some(Incoming::Frame(bytes)) => {
                    let mut b = BytesMut::from(&bytes[..]);
                    return FrameDecoder::default().decode(&mut b).unwrap();
                }
                Some(Incoming::Closed(code)) => {
                    assert_eq!(code, Some(1000));
                    let mut rest = Vec::new();
                    tokio::time::timeout(LIMIT, self.stream.read_to_end(&mut rest))
                        .await
                        .unwrap()
                        .ok();
                    return None;
                }
                Some(_) => panic!("unexpected"),
                None => {
                    let n = tokio::time::timeout(LIMIT, self.stream.read_buf(&mut self.buf))
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(n > 0, "EOF without a close frame");
                }
            }
        }
    }
}

/// The gate rehearsal over any WebSocket: echo (small, a 126-byte answer, a 70 kB answer),
/// an error answer, then ping push → answer → kickout → close.
async fn websocket_session<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WsClient<S>,
    server: &mut EchoServer,
) {
    for (seq, text_len) in [(1u32, 3usize), (2, 105), (3, 70_000)] {
        let params = Value::map().with("s", "x".repeat(text_len).as_str());
        client
            .send(Quest::twoway("echo", seq, &params).unwrap().into())
            .await;
        let Some(Frame::Answer(a)) = client.next().await else {
            panic!()
        };
        assert_eq!((a.seq, a.body().unwrap()), (seq, params));
        if seq == 2 {
            assert_eq!(
                Frame::Answer(a).encoded_len(),
                126,
                "the framework's 126-byte case"
            );
        }
    }
    client
        .send(
            Quest::new("fail", Some(4), Format::Json, &Value::map())
                .unwrap()
                .into(),
        )
        .await;
    let Some(Frame::Answer(a)) = client.next().await else {
        panic!()
    };
    assert!(a.is_error() && a.format == Format::Json);

    client
        .send(
            Quest::twoway("gate", 5, &Value::map().with("n", 7))
                .unwrap()
                .into(),
        )
        .await;
    let Some(Frame::Answer(a)) = client.next().await else {
        panic!()
    };
    assert_eq!(a.seq, 5);
    let Some(Frame::Quest(ping)) = client.next().await else {
        panic!()
    };
    assert_eq!((ping.method.as_str(), ping.seq), ("ping", Some(PING_SEQ)));
    let pong = fpnn::Answer::ok(PING_SEQ, Format::MsgPack, &Value::map().with("got", 7)).unwrap();
    client.send(pong.into()).await;
    let Some(Frame::Quest(kickout)) = client.next().await else {
        panic!()
    };
    assert_eq!((kickout.method.as_str(), kickout.seq), ("kickout", None));
    assert_eq!(client.next().await, None, "closed after the kickout");
    let _layer = server.next_event().await;
    assert_eq!(
        server.next_event().await,
        Event::PingAnswered(Value::map().with("got", 7))
    );
    assert_eq!(server.next_event().await, Event::Closed("kickout".into()));
}

#[tokio::test]
async fn websocket_gate_rehearsal() {
    let mut server = EchoServer::start(None).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let mut client = WsClient::connect(stream, &server.addr.to_string()).await;
    websocket_session(&mut client, &mut server).await;
}

#[tokio::test]
async fn wss_and_fpnn_over_tls_on_the_same_port() {
    let pki = TestPki::new("wss");
    let mut server =
        EchoServer::start(Some(tls::server_config(&pki.cert, &pki.key).unwrap())).await;
    let connector = tokio_rustls::TlsConnector::from(tls::client_config(&pki.ca).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let stream = connector.connect(name.clone(), tcp).await.unwrap();
    let mut client = WsClient::connect(stream, "localhost").await;
    websocket_session(&mut client, &mut server).await;

    // Binary FPNN inside TLS, and plain FPNN beside it on the same port.
    for use_tls in [true, false] {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let quest = Frame::from(Quest::twoway("echo", 9, &Value::map().with("a", 1)).unwrap())
            .encode()
            .unwrap();
        let mut reply = Vec::new();
        if use_tls {
            let mut s = connector.connect(name.clone(), tcp).await.unwrap();
            s.write_all(&quest).await.unwrap();
            s.write_all(
                &Frame::from(Quest::oneway("bye", &Value::map()).unwrap())
                    .encode()
                    .unwrap(),
            )
            .await
            .unwrap();
            let mut buf = BytesMut::new();
            while FrameDecoder::default().needed(&buf).unwrap() != Some(buf.len()) {
                s.read_buf(&mut buf).await.unwrap();
            }
            reply.extend_from_slice(&buf);
        } else {
            let mut s = tcp;
            s.write_all(&quest).await.unwrap();
            let mut buf = BytesMut::new();
            while FrameDecoder::default().needed(&buf).unwrap() != Some(buf.len()) {
                s.read_buf(&mut buf).await.unwrap();
            }
            reply.extend_from_slice(&buf);
        }
        let Frame::Answer(a) = Frame::decode(&reply, DEFAULT_MAX_FRAME).unwrap() else {
            panic!()
        };
        assert_eq!(a.body().unwrap(), Value::map().with("a", 1));
        // The end of the previous connection may be reported in between.
        let layer = loop {
            match server.next_event().await {
                Event::Closed(_) => continue,
                other => break other,
            }
        };
        assert_eq!(
            layer,
            Event::Layer {
                layer: "fpnn",
                tls: use_tls
            }
        );
    }
}

#[test]
fn tls_errors_name_the_file() {
    let pki = TestPki::new("errors");
    let missing = pki.dir.join("missing.pem");
    let err = tls::server_config(&missing, &pki.key).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );

    // A key where the certificate should be, and the other way round.
    let err = tls::server_config(&pki.key, &pki.key).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            pki.key.display()
        )
    );
    let err = tls::server_config(&pki.cert, &pki.cert).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    assert!(err.to_string().starts_with(&pki.cert.display().to_string()));

    // A key that does not belong to the certificate.
    let other = TestPki::new("errors-other");
    let err = tls::server_config(&pki.cert, &other.key).unwrap_err();
    assert!(
        matches!(err, TlsError::Rejected { ref path, .. } if *path == other.key),
        "{err}"
    );

    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = tls::client_config(&garbage).unwrap_err();
    assert!(matches!(err, TlsError::BadPem { .. }), "{err}");
    assert!(tls::client_config(&pki.ca).is_ok());
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let pki = TestPki::new("untrusted");
    let other = TestPki::new("untrusted-other");
    let server = EchoServer::start(Some(tls::server_config(&pki.cert, &pki.key).unwrap())).await;
    let connector = tokio_rustls::TlsConnector::from(tls::client_config(&other.ca).unwrap());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let err = connector.connect(name, tcp).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}
