//! A minimal async gate client for the scenarios that hold many logins: connect, `auth`,
//! then read until the gate pushes `kickout` or closes the connection, answering the gate's
//! `ping` pushes.

use crate::wire;
use bytes::BytesMut;
use fpnn::{Answer, Format, Frame, FrameDecoder, Value};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A logged-in connection.
pub struct Session {
    stream: TcpStream,
    buf: BytesMut,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Connects to the gate and logs in; fails unless the answer is `{ok: true}`.
pub async fn login(gate: SocketAddr, pid: i32, uid: i64, token: &str) -> std::io::Result<Session> {
    let mut stream = TcpStream::connect(gate).await?;
    stream.set_nodelay(true)?;
    let mut out = BytesMut::new();
    wire::auth(&mut out, 1, pid, uid, token);
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(256);
    let mut decoder = FrameDecoder::default();
    loop {
        match decoder
            .decode(&mut buf)
            .map_err(|e| invalid(e.to_string()))?
        {
            Some(Frame::Answer(a)) => {
                let ok = a
                    .body()
                    .ok()
                    .and_then(|b| b.get("ok").and_then(Value::as_bool));
                if a.is_error() || ok != Some(true) {
                    return Err(invalid(format!(
                        "auth of user {uid} refused (code {})",
                        wire::error_code(&a)
                    )));
                }
                buf = BytesMut::from(&buf[..]);
                return Ok(Session { stream, buf });
            }
            Some(Frame::Quest(_)) => {}
            None => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
}

/// What a held session saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// When the gate's `kickout` push arrived (the client then closed the connection).
    pub kickout: Option<Instant>,
    /// When the connection was seen closed by the server (or failed) without a `kickout`.
    pub closed: Option<Instant>,
}

impl Session {
    /// Reads until the gate pushes `kickout`, then closes the connection as the official
    /// clients do; or until the server closes it (or it fails). Answers pushed two-way
    /// quests with `{}`.
    pub async fn hold(mut self) -> Ending {
        let mut ending = Ending::default();
        let mut decoder = FrameDecoder::default();
        let mut out = BytesMut::new();
        loop {
            loop {
                match decoder.decode(&mut self.buf) {
                    Ok(Some(Frame::Quest(q))) => {
                        if q.method == rtm_protocol::gate::Push::Kickout.name() {
                            // Dropping the stream closes the connection.
                            ending.kickout = Some(Instant::now());
                            return ending;
                        }
                        if let Some(seq) = q.seq {
                            if let Ok(answer) = Answer::ok(seq, Format::MsgPack, &Value::map()) {
                                let _ = Frame::Answer(answer).encode_into(&mut out);
                            }
                        }
                    }
                    Ok(Some(Frame::Answer(_))) => {}
                    Ok(None) => break,
                    Err(_) => {
                        ending.closed = Some(Instant::now());
                        return ending;
                    }
                }
            }
            if !out.is_empty() {
                let _ = self.stream.write_all(&out).await;
                out.clear();
            }
            if self.buf.is_empty() {
                // Hold no buffer memory while idle.
                self.buf = BytesMut::new();
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    ending.closed = Some(Instant::now());
                    return ending;
                }
                Ok(_) => {}
            }
        }
    }
}
