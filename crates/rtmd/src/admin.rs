//! The admin HTTP port: `GET /metrics` (Prometheus) and `GET /healthz`; `HEAD` on either
//! answers as `GET` would, without the body.
//!
//! A deliberately small HTTP/1.1 responder (one request per connection, bounded request
//! size and time) rather than a web framework: two read-only pages do not need one.

use crate::state::State;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The running admin server.
pub struct Admin {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Admin {
    /// Starts serving on `listener`.
    pub fn start(listener: TcpListener, state: Arc<State>) -> std::io::Result<Admin> {
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let state = state.clone();
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(REQUEST_TIMEOUT, serve(stream, &state)).await;
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        });
        Ok(Admin { addr, stop, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > MAX_REQUEST {
            return respond(
                &mut Responder {
                    stream: &mut stream,
                    head: false,
                },
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
    }
    let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    // HEAD: the same status and headers as GET (Content-Length included), no body.
    let head = method == "HEAD";
    let method = if head { "GET" } else { method };
    let stream = &mut Responder {
        stream: &mut stream,
        head,
    };
    match (method, path) {
        ("GET", "/metrics") => {
            let body = state.render_metrics();
            respond(stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/healthz") => match state.check_store().await {
            Ok(()) => respond(stream, "200 OK", "text/plain", "ok\n").await,
            Err(e) => {
                let body = format!("store unavailable: {e}\n");
                respond(stream, "503 Service Unavailable", "text/plain", &body).await
            }
        },
        ("GET", _) => {
            respond(
                stream,
                "404 Not Found",
                "text/plain",
                "try /metrics or /healthz\n",
            )
            .await
        }
        _ => {
            respond(
                stream,
                "405 Method Not Allowed",
                "text/plain",
                "only GET and HEAD\n",
            )
            .await
        }
    }
}

/// Where an answer goes, and whether its body is left out (a `HEAD` request).
struct Responder<'a> {
    stream: &'a mut TcpStream,
    head: bool,
}

async fn respond(
    to: &mut Responder<'_>,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    to.stream.write_all(head.as_bytes()).await?;
    if !to.head {
        to.stream.write_all(body.as_bytes()).await?;
    }
    to.stream.shutdown().await
}
