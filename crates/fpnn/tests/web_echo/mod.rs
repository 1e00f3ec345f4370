//! A small server built only on `fpnn::web`'s sans-IO pieces (no `fpnn::server`): on one
//! port it detects TLS, binary FPNN, HTTP and WebSocket, the way the connection layer will.
//!
//! Methods:
//! * `echo`: answers its params;
//! * `fail`: answers the error `{code: 123456, ex: "failed on purpose"}`;
//! * `gate` (WebSocket and FPNN only): answers `{}`, then pushes a two-way `ping {n}`; once
//!   the client answers it, pushes a one-way `kickout {}` and closes the connection (with a
//!   close frame over WebSocket), as rtmd's gate does.
//!
//! What happens is reported on a channel ([`Event`]) for the test to check.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use fpnn::web::detect::{detect, Accept, Detected};
use fpnn::web::http::{HttpSession, Incoming as HttpIncoming, Limits};
use fpnn::web::tls::{rustls, tokio_rustls};
use fpnn::web::ws::{Incoming as WsIncoming, WebSocket};
use fpnn::{Answer, ErrorAnswer, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the server saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A connection was detected as this (`"fpnn"`, `"http"`, `"ws"`), under TLS or not.
    Layer { layer: &'static str, tls: bool },
    /// The client answered the `ping` push with this body.
    PingAnswered(Value),
    /// The connection ended, with the reason (`"kickout"`, `"eof"`, `"peer close"`, or an
    /// error's text).
    Closed(String),
}

/// The seq of the `ping` push.
pub const PING_SEQ: u32 = 1000;

/// A running echo server.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    /// Starts the server on a loopback port; with `tls`, a ClientHello is also accepted.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, tls) = (tx.clone(), tls.clone());
                tokio::spawn(async move {
                    let reason = match serve(stream, tls, &tx).await {
                        Ok(reason) => reason.to_owned(),
                        Err(e) => e.to_string(),
                    };
                    let _ = tx.send(Event::Closed(reason));
                });
            }
        });
        EchoServer { addr, events, task }
    }

    /// The next event, failing the test after 10 s.
    pub async fn next_event(&mut self) -> Event {
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.events.recv()).await {
            Ok(Some(event)) => event,
            other => panic!("no event from the echo server: {other:?}"),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads until the detector decides.
async fn detect_layer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    accept: Accept,
) -> io::Result<Detected> {
    loop {
        if let Some(found) = detect(buf, accept).map_err(invalid)? {
            return Ok(found);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    tx: &mpsc::UnboundedSender<Event>,
) -> io::Result<&'static str> {
    let mut buf = BytesMut::new();
    let accept = if tls.is_some() {
        Accept::ANY
    } else {
        Accept::PLAIN
    };
    let found = detect_layer(&mut stream, &mut buf, accept).await?;
    match (found, tls) {
        (Detected::Tls, Some(config)) => {
            let replay = Prefixed {
                prefix: buf.freeze(),
                inner: stream,
            };
            let tls_stream = tokio_rustls::TlsAcceptor::from(config)
                .accept(replay)
                .await?;
            let mut inner = BytesMut::new();
            let mut tls_stream = tls_stream;
            let found = detect_layer(&mut tls_stream, &mut inner, Accept::PLAIN).await?;
            serve_layer(tls_stream, inner, found, true, tx).await
        }
        (found, _) => serve_layer(stream, buf, found, false, tx).await,
    }
}

async fn serve_layer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    buf: BytesMut,
    found: Detected,
    tls: bool,
    tx: &mpsc::UnboundedSender<Event>,
) -> io::Result<&'static str> {
    match found {
        Detected::Fpnn => {
            let _ = tx.send(Event::Layer { layer: "fpnn", tls });
            serve_fpnn(stream, buf, tx).await
        }
        Detected::Http => serve_http(stream, buf, tls, tx).await,
        _ => Err(invalid("unexpected layer")),
    }
}

/// What the server does with a frame from the client: the frames to send back, and whether
/// to close after them.
fn handle(frame: Frame, tx: &mpsc::UnboundedSender<Event>) -> io::Result<(Vec<Frame>, bool)> {
    match frame {
        Frame::Quest(q) => {
            let Some(seq) = q.seq else {
                return Ok((vec![], false));
            };
            let params = q.params().map_err(invalid)?;
            let answer = match q.method.as_str() {
                "echo" => Answer::ok(seq, q.format, &params).map_err(invalid)?,
                "gate" => {
                    let n = params.get("n").cloned().unwrap_or(Value::from(0));
                    let ping =
                        Quest::new("ping", Some(PING_SEQ), q.format, &Value::map().with("n", n))
                            .map_err(invalid)?;
                    let ok = Answer::ok(seq, q.format, &Value::map()).map_err(invalid)?;
                    return Ok((vec![ok.into(), ping.into()], false));
                }
                "fail" => Answer::error(
                    seq,
                    q.format,
                    &ErrorAnswer::new(123456, "failed on purpose"),
                ),
                other => Answer::error(
                    seq,
                    q.format,
                    &ErrorAnswer::new(20004, format!("unknown method {other}")),
                ),
            };
            Ok((vec![answer.into()], false))
        }
        Frame::Answer(a) if a.seq == PING_SEQ => {
            let _ = tx.send(Event::PingAnswered(a.body().map_err(invalid)?));
            let kickout = Quest::new("kickout", None, a.format, &Value::map()).map_err(invalid)?;
            Ok((vec![kickout.into()], true))
        }
        Frame::Answer(_) => Ok((vec![], false)),
    }
}

async fn serve_fpnn<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut buf: BytesMut,
    tx: &mpsc::UnboundedSender<Event>,
) -> io::Result<&'static str> {
    let mut decoder = FrameDecoder::default();
    loop {
        while let Some(frame) = decoder.decode(&mut buf).map_err(invalid)? {
            let (out, close) = handle(frame, tx)?;
            for frame in out {
                stream.write_all(&frame.encode().map_err(invalid)?).await?;
            }
            if close {
                stream.shutdown().await?;
                return Ok("kickout");
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok("eof");
        }
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut buf: BytesMut,
    tls: bool,
    tx: &mpsc::UnboundedSender<Event>,
) -> io::Result<&'static str> {
    let mut session = HttpSession::new(Limits::default());
    let mut announced = false;
    loop {
        while let Some(incoming) = session.read(&mut buf).map_err(invalid)? {
            match incoming {
                HttpIncoming::Quest(quest) => {
                    if !announced {
                        let _ = tx.send(Event::Layer { layer: "http", tls });
                        announced = true;
                    }
                    // Answer in reverse order of arrival when several are pipelined, to
                    // show the session puts the responses back in request order.
                    let (frames, _) = handle(Frame::Quest(quest), tx)?;
                    for frame in frames {
                        session
                            .send_frame(&frame, SystemTime::now())
                            .map_err(invalid)?;
                    }
                }
                HttpIncoming::Upgrade(upgrade) => {
                    let mut out = BytesMut::new();
                    upgrade.write_response(&mut out);
                    stream.write_all(&out).await?;
                    let _ = tx.send(Event::Layer { layer: "ws", tls });
                    return serve_ws(stream, buf, tx).await;
                }
                _ => return Err(invalid("unknown HTTP event")),
            }
        }
        let mut out = BytesMut::new();
        if session.poll_transmit(&mut out) {
            stream.write_all(&out).await?;
        }
        if session.should_close() {
            stream.shutdown().await?;
            return Ok("http close");
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok("eof");
        }
    }
}

async fn serve_ws<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut buf: BytesMut,
    tx: &mpsc::UnboundedSender<Event>,
) -> io::Result<&'static str> {
    let mut ws = WebSocket::server(DEFAULT_MAX_FRAME);
    loop {
        let mut out = BytesMut::new();
        let mut result = None;
        while let Some(incoming) = ws.read(&mut buf).map_err(invalid)? {
            match incoming {
                WsIncoming::Frame(bytes) => {
                    let frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME).map_err(invalid)?;
                    let (frames, close) = handle(frame, tx)?;
                    for frame in frames {
                        ws.write_frame(&frame.encode().map_err(invalid)?, &mut out);
                    }
                    if close {
                        ws.write_close(1000, &mut out);
                        result = Some("kickout");
                        break;
                    }
                }
                WsIncoming::Closed(_) => {
                    result = Some("peer close");
                    break;
                }
                _ => return Err(invalid("unknown WebSocket event")),
            }
        }
        ws.take_control(&mut out);
        stream.write_all(&out).await?;
        if let Some(reason) = result {
            stream.shutdown().await?;
            return Ok(reason);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok("eof");
        }
    }
}

/// A stream whose first bytes, already read for the detection, are read again.
struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            let head = self.prefix.split_to(n);
            out.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[path = "../../../../test-support/pki.rs"]
mod pki;
pub use pki::TestPki;
