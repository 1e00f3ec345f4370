//! An end user's connection to the client gate, on a socket of our own.
//!
//! `rtm login` must print its own endpoint (`ip:port`, the `ce` that `kickout --ce` names),
//! which `fpnn::client::Client` does not expose; and the conversation with the gate is small:
//! `auth` and `bye` from us; the two-way `ping` and the one-way `kickout` from the gate. So
//! this drives `fpnn`'s codec (frames in, frames out) over a `TcpStream` it owns.
//!
//! Reading ([`GateConn::fill`]) is cancel-safe and is the only step raced against Ctrl-C and
//! deadlines; the frames read are then handled ([`GateConn::next_push`]), answers included,
//! outside any race, so that a write is never cut in the middle of a frame. Frames that came
//! in with the gate's FIN are handled before the close is reported (a `kickout` followed at
//! once by the close is not lost).
//!
//! With a gate key, the connection is encrypted: `*key` goes first in plaintext, its answer
//! is the gate's first encrypted frame, and every frame after it goes through the session's
//! encryptor and receiver.

use crate::failure::{seconds, Cause, Kind};
use bytes::BytesMut;
use fpnn::encryption::{ClientEncryption, ClientHandshake, FrameEncryptor, FrameReceiver};
use fpnn::{Answer, CodecError, ErrorAnswer, Frame, FrameDecoder, Quest, Value};
use rtm_protocol::code;
use rtm_protocol::gate::{self, Method};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame taken from the gate. Its frames are answers and pushes of a few bytes;
/// a stream announcing more is refused before it is buffered.
const MAX_FRAME: usize = 1 << 20;

/// How many bytes a read asks for at most.
const READ_CHUNK: usize = 16 * 1024;

/// What the gate pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The one-way `kickout`: the session is over, the gate closes the connection next.
    Kickout,
}

/// A connection to the gate.
pub struct GateConn {
    stream: TcpStream,
    endpoint: String,
    local: SocketAddr,
    input: BytesMut,
    decoder: FrameDecoder,
    next_seq: u32,
    /// `kickout` pushes met while waiting for an answer, reported by the next `next_push`.
    kickouts_seen: u32,
    /// Set once the connection is encrypted (after `*key` was sent).
    encrypted: Option<(FrameEncryptor, FrameReceiver)>,
}

impl GateConn {
    /// Connects to `endpoint` (`host:port`) within `timeout`, and runs the key exchange
    /// when `encryption` is given (within another `timeout`).
    pub async fn connect(
        endpoint: &str,
        timeout: Duration,
        encryption: Option<&ClientEncryption>,
    ) -> Result<GateConn, Cause> {
        let mut conn = GateConn::connect_plain(endpoint, timeout).await?;
        if let Some(encryption) = encryption {
            conn.exchange_keys(encryption, timeout).await?;
        }
        Ok(conn)
    }

    /// Sends `*key` (in plaintext, the first frame), switches to encryption and waits for
    /// the answer, which is the gate's first encrypted frame.
    async fn exchange_keys(
        &mut self,
        encryption: &ClientEncryption,
        timeout: Duration,
    ) -> Result<(), Cause> {
        let endpoint = self.endpoint.clone();
        let failed = |why: String| {
            Cause::new(
                Kind::Connection,
                code::CORE_INVALID_CONNECTION,
                format!("key exchange with {endpoint} failed: {why}"),
            )
        };
        let handshake = encryption.start().map_err(|e| failed(e.to_string()))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let quest = handshake.quest(seq).map_err(codec_error)?;
        self.send(Frame::Quest(quest)).await?;
        self.encrypted = Some(handshake.session().split(MAX_FRAME));
        let answer = match self.wait_answer(seq, timeout).await {
            Ok(answer) => answer,
            Err(cause) if cause.kind == Kind::Protocol => {
                return Err(failed(format!(
                    "the answer does not decrypt ({}): wrong --gate-key?",
                    cause.detail
                )))
            }
            Err(cause) if cause.code == code::CORE_CONNECTION_CLOSED => {
                return Err(failed(
                    "the gate closed the connection: a key on another curve, or a gate without encryption?"
                        .into(),
                ))
            }
            Err(cause) => return Err(cause),
        };
        ClientHandshake::check_answer(&answer).map_err(|e| failed(e.to_string()))
    }

    /// Connects to `endpoint` (`host:port`) within `timeout`.
    async fn connect_plain(endpoint: &str, timeout: Duration) -> Result<GateConn, Cause> {
        let refused = |why: String| {
            Cause::new(
                Kind::Connection,
                code::CORE_INVALID_CONNECTION,
                format!("cannot connect to {endpoint}: {why}"),
            )
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => return Err(refused(format!("timed out after {}", seconds(timeout)))),
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().map_err(|e| refused(e.to_string()))?;
        Ok(GateConn {
            stream,
            endpoint: endpoint.to_owned(),
            // As the gate writes a `ce`: an IPv4 address as plain IPv4, not `::ffff:a.b.c.d`.
            local: SocketAddr::new(local.ip().to_canonical(), local.port()),
            input: BytesMut::new(),
            decoder: FrameDecoder::new(MAX_FRAME),
            next_seq: 1,
            kickouts_seen: 0,
            encrypted: None,
        })
    }

    /// This end's address, `ip:port`. The gate sees the same unless a NAT is in between.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends a two-way quest and waits for its answer within `timeout`, answering the gate's
    /// pushes meanwhile.
    pub async fn quest(
        &mut self,
        method: Method,
        params: &impl Serialize,
        timeout: Duration,
    ) -> Result<Value, Cause> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let params = fpnn::to_value(params)
            .map_err(|e| Cause::new(Kind::Protocol, code::CORE_ENCODING, e.to_string()))?;
        let quest = Quest::twoway(method.name(), seq, &params).map_err(codec_error)?;
        self.send(Frame::Quest(quest)).await?;
        answer_result(self.wait_answer(seq, timeout).await?)
    }

    /// Waits for the answer to quest `seq` within `timeout`, answering the gate's pushes
    /// meanwhile.
    async fn wait_answer(&mut self, seq: u32, timeout: Duration) -> Result<Answer, Cause> {
        let exchange = async {
            loop {
                while let Some(frame) = self.decode()? {
                    match frame {
                        Frame::Answer(answer) if answer.seq == seq => return Ok(answer),
                        // An answer to nothing we are waiting for: a late one, dropped.
                        Frame::Answer(_) => {}
                        Frame::Quest(pushed) => {
                            if self.on_push(pushed).await? == Some(Push::Kickout) {
                                self.kickouts_seen += 1;
                            }
                        }
                    }
                }
                if !self.fill().await? {
                    return Err(Cause::new(
                        Kind::Connection,
                        code::CORE_CONNECTION_CLOSED,
                        format!(
                            "{} closed the connection before the answer came",
                            self.endpoint
                        ),
                    ));
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Cause::new(
                Kind::Timeout,
                code::CORE_TIMEOUT,
                format!("no answer within {}", seconds(timeout)),
            )),
        }
    }

    /// Handles the frames read so far (answering the gate's `ping`) until one is a push to
    /// report. `Ok(None)`: more bytes are needed ([`fill`](Self::fill)).
    pub async fn next_push(&mut self) -> Result<Option<Push>, Cause> {
        if self.kickouts_seen > 0 {
            self.kickouts_seen -= 1;
            return Ok(Some(Push::Kickout));
        }
        while let Some(frame) = self.decode()? {
            if let Frame::Quest(pushed) = frame {
                if let Some(push) = self.on_push(pushed).await? {
                    return Ok(Some(push));
                }
            }
        }
        Ok(None)
    }

    /// Reads more bytes from the gate; `Ok(false)` at the end of the stream. Cancel-safe: when
    /// cancelled, nothing was read.
    pub async fn fill(&mut self) -> Result<bool, Cause> {
        self.input.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.input).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(Cause::new(
                Kind::Connection,
                code::CORE_INVALID_CONNECTION,
                format!("the connection to {} broke: {e}", self.endpoint),
            )),
        }
    }

    /// Says `bye` (waiting at most `timeout` for its answer) and closes the connection.
    pub async fn bye(mut self, timeout: Duration) {
        let _ = self.quest(Method::Bye, &Value::map(), timeout).await;
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
    }

    /// Answers a quest the gate sent: `ping` with `{}`, other two-way quests with 20004 (as
    /// the FPNN frameworks do). Returns the push to report, if it is one.
    async fn on_push(&mut self, quest: Quest) -> Result<Option<Push>, Cause> {
        let push = gate::Push::from_name(&quest.method);
        let Some(seq) = quest.seq else {
            return Ok((push == Some(gate::Push::Kickout)).then_some(Push::Kickout));
        };
        let answer = match push {
            Some(gate::Push::Ping) => {
                Answer::ok(seq, quest.format, &Value::map()).map_err(codec_error)?
            }
            Some(gate::Push::Kickout) => {
                // The gate pushes it one-way; answer a two-way one all the same.
                let answer = Answer::ok(seq, quest.format, &Value::map()).map_err(codec_error)?;
                self.send(Frame::Answer(answer)).await?;
                return Ok(Some(Push::Kickout));
            }
            None => Answer::error(
                seq,
                quest.format,
                &ErrorAnswer::new(
                    code::CORE_UNKNOWN_METHOD,
                    format!("unknown method: {}", quest.method.escape_default()),
                ),
            ),
        };
        self.send(Frame::Answer(answer)).await?;
        Ok(None)
    }

    fn decode(&mut self) -> Result<Option<Frame>, Cause> {
        let decoded = match &mut self.encrypted {
            Some((_, receiver)) => receiver.decode(&mut self.input),
            None => self.decoder.decode(&mut self.input),
        };
        decoded.map_err(|e| {
            Cause::new(
                Kind::Protocol,
                e.code(),
                format!("{} sent bytes that are not FPNN: {e}", self.endpoint),
            )
        })
    }

    async fn send(&mut self, frame: Frame) -> Result<(), Cause> {
        let mut bytes = frame.encode().map_err(codec_error)?;
        if let Some((encryptor, _)) = &mut self.encrypted {
            let mut wire = BytesMut::with_capacity(bytes.len() + 4);
            encryptor
                .encrypt_frame(&bytes, &mut wire)
                .map_err(codec_error)?;
            bytes = wire.freeze();
        }
        self.stream.write_all(&bytes).await.map_err(|e| {
            Cause::new(
                Kind::Connection,
                code::CORE_INVALID_CONNECTION,
                format!("cannot send to {}: {e}", self.endpoint),
            )
        })
    }
}

/// The body of an answer, or its error as a cause.
fn answer_result(answer: Answer) -> Result<Value, Cause> {
    match answer.into_result() {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => Err(Cause::new(Kind::Server, error.code, error.ex)),
        Err(e) => Err(Cause::new(
            Kind::Protocol,
            code::CORE_DECODING,
            format!("cannot read the answer: {e}"),
        )),
    }
}

fn codec_error(e: CodecError) -> Cause {
    Cause::new(Kind::Protocol, e.code(), e.to_string())
}
