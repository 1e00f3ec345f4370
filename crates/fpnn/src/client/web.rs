//! The client's WebSocket and TLS transports: wrappers around a connector that run the TLS
//! handshake and the WebSocket upgrade before the FPNN connection starts.

use super::{Connected, Connector, Stream};
use crate::web::ws::ClientHandshake;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// How the client reaches the server below FPNN.
#[derive(Clone, Default)]
pub(crate) struct Transport {
    /// The WebSocket path (`/service/websocket`), when FPNN goes over WebSocket.
    pub websocket: Option<String>,
    /// The TLS configuration, when the connection is encrypted.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<crate::web::tls::rustls::ClientConfig>>,
}

impl Transport {
    fn is_plain(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return false;
        }
        self.websocket.is_none()
    }
}

/// The host part of `host:port` (brackets of an IPv6 address removed).
fn host_of(endpoint: &str) -> &str {
    let host = endpoint
        .rsplit_once(':')
        .map_or(endpoint, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `base` with TLS and/or the WebSocket upgrade on top, as `transport` says.
pub(crate) fn wrap(base: Connector, transport: Transport) -> Connector {
    if transport.is_plain() {
        return base;
    }
    Arc::new(move |endpoint: String| {
        let base = base.clone();
        let transport = transport.clone();
        Box::pin(async move {
            let (stream, peer) = base(endpoint.clone()).await?;
            let host = host_of(&endpoint).to_owned();
            #[cfg(feature = "tls")]
            let stream: Box<dyn Stream> = match &transport.tls {
                Some(config) => {
                    use crate::web::tls::{rustls::pki_types::ServerName, tokio_rustls};
                    let name = ServerName::try_from(host.clone()).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))
                    })?;
                    let connector = tokio_rustls::TlsConnector::from(config.clone());
                    Box::new(connector.connect(name, stream).await?)
                }
                None => stream,
            };
            let stream = match &transport.websocket {
                Some(path) => upgrade(stream, &endpoint, path).await?,
                None => stream,
            };
            Ok((stream, peer)) as Connected
        })
    })
}

/// The WebSocket handshake: the request, the `101` checked; bytes the server sent after it
/// are read again by the connection.
async fn upgrade(
    mut stream: Box<dyn Stream>,
    host: &str,
    path: &str,
) -> io::Result<Box<dyn Stream>> {
    let handshake = ClientHandshake::new();
    let mut request = BytesMut::new();
    handshake.write_request(host, path, &mut request);
    stream.write_all(&request).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match handshake.read_response(&mut buf) {
            Ok(Some(())) => break,
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the WebSocket handshake",
            ));
        }
    }
    if buf.is_empty() {
        return Ok(stream);
    }
    Ok(Box::new(Prefixed {
        prefix: buf.freeze(),
        inner: stream,
    }))
}

/// A stream whose first bytes, already read, are read again.
struct Prefixed {
    prefix: Bytes,
    inner: Box<dyn Stream>,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
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

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:13325"), "127.0.0.1");
        assert_eq!(host_of("localhost:1"), "localhost");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
