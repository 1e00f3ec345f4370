//! Reading what a server sends back over a raw socket: everything until it closes, and HTTP
//! responses framed by their Content-Length. Shared by the web tests.
#![allow(dead_code)]

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

const LIMIT: Duration = Duration::from_secs(10);

/// Reads until the peer closes; everything it sent.
pub async fn read_to_close<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut all))
        .await
        .expect("the server closes")
        .ok();
    all
}

/// Reads `n` HTTP responses (Content-Length framed) off the stream.
pub async fn read_responses<S: AsyncRead + Unpin>(stream: &mut S, n: usize) -> Vec<(u16, String)> {
    let mut buf = BytesMut::new();
    let mut responses = Vec::new();
    while responses.len() < n {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buf) {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .expect("a Content-Length");
            if buf.len() >= head + length {
                let code = response.code.unwrap_or(0);
                let all = buf.split_to(head + length);
                responses.push((code, String::from_utf8_lossy(&all).into_owned()));
                continue;
            }
        }
        let read = tokio::time::timeout(LIMIT, stream.read_buf(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(n)) if n > 0),
            "connection ended after {responses:?}"
        );
    }
    responses
}
