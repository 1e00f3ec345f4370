//! One connection's HTTP side: requests in, quests out; answers in, responses out, in order.

use super::request::{Request, RequestDecoder};
use super::response::{write_response, Render};
use super::{HttpError, Limits};
use crate::frame::{Answer, Frame};
use crate::web::ws::Upgrade;
use crate::Quest;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::SystemTime;

/// What [`HttpSession::read`] took off the input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// A call, as a two-way JSON quest to run; give its answer to [`HttpSession::answer`].
    Quest(Quest),
    /// A checked WebSocket upgrade. Write its `101` ([`Upgrade::write_response`]) after what
    /// [`HttpSession::poll_transmit`] still holds (nothing: an upgrade is only read when no
    /// call is waiting), then switch the connection to WebSocket.
    Upgrade(Upgrade),
}

#[derive(Debug)]
struct Slot {
    seq: u32,
    render: Render,
    response: Option<Bytes>,
}

/// The HTTP layer of one connection, with no I/O.
///
/// The framework sends answers in the order they complete. HTTP/1.1 has no request ids: a
/// client pipelining two requests takes the first response for the first request, so an
/// out-of-order answer would be given to the wrong call. We send responses in request
/// order: an answer that completes early waits in its slot until those before it are out.
/// A client that never pipelines (browsers, curl) sees no difference.
///
/// At most `max_pipelined` calls wait at once; past that [`HttpSession::read`] reads no
/// more until responses go out, so a pipelining client is slowed down, not buffered.
#[derive(Debug)]
pub struct HttpSession {
    decoder: RequestDecoder,
    slots: VecDeque<Slot>,
    next_seq: u32,
    max_pipelined: usize,
    /// A request asked for the connection to close after its answer: nothing more is read.
    last_read: bool,
    /// The last response has been transmitted: close the connection.
    done: bool,
}

/// How many calls of one connection may wait for their answers, by default.
pub const DEFAULT_MAX_PIPELINED: usize = 16;

impl HttpSession {
    /// A session with these limits and at most [`DEFAULT_MAX_PIPELINED`] calls waiting.
    pub fn new(limits: Limits) -> HttpSession {
        HttpSession::with_max_pipelined(limits, DEFAULT_MAX_PIPELINED)
    }

    /// A session with at most `max_pipelined` calls (at least 1) waiting for their answers.
    pub fn with_max_pipelined(limits: Limits, max_pipelined: usize) -> HttpSession {
        HttpSession {
            decoder: RequestDecoder::new(limits),
            slots: VecDeque::new(),
            next_seq: 1,
            max_pipelined: max_pipelined.max(1),
            last_read: false,
            done: false,
        }
    }

    /// Takes the next request off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed, or no more are read for now (too many calls
    /// waiting, or the last request asked for the connection to close). An error closes the
    /// connection, without a response, as the framework does.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, HttpError> {
        if self.last_read || self.slots.len() >= self.max_pipelined {
            return Ok(None);
        }
        match self.decoder.decode(buf)? {
            None => Ok(None),
            Some(Request::Upgrade(upgrade)) => {
                if !self.slots.is_empty() {
                    return Err(HttpError::UpgradeBehindCalls);
                }
                self.last_read = true;
                Ok(Some(Incoming::Upgrade(upgrade)))
            }
            Some(Request::Call(call)) => {
                let seq = self.next_seq;
                self.next_seq = self.next_seq.wrapping_add(1).max(1);
                self.last_read = !call.keep_alive;
                self.slots.push_back(Slot {
                    seq,
                    render: Render {
                        cors: call.cors,
                        keep_alive: call.keep_alive,
                    },
                    response: None,
                });
                Ok(Some(Incoming::Quest(call.quest(seq))))
            }
        }
    }

    /// Renders the answer to a quest from [`HttpSession::read`] (`now` for its `Date`).
    ///
    /// An answer to no waiting quest is an error (a second answer, a stray seq).
    pub fn answer(&mut self, answer: &Answer, now: SystemTime) -> Result<(), HttpError> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.seq == answer.seq && s.response.is_none())
            .ok_or(HttpError::UnknownAnswer(answer.seq))?;
        let mut out = BytesMut::new();
        write_response(answer, slot.render, now, &mut out);
        slot.response = Some(out.freeze());
        Ok(())
    }

    /// Takes an outgoing FPNN frame (the connection's output, one frame at a time): an
    /// answer is rendered; a quest (a server push) cannot travel over HTTP and is refused.
    pub fn send_frame(&mut self, frame: &Frame, now: SystemTime) -> Result<(), HttpError> {
        match frame {
            Frame::Answer(answer) => self.answer(answer, now),
            Frame::Quest(quest) => Err(HttpError::PushOverHttp(quest.method.clone())),
        }
    }

    /// Appends the responses that are ready, in request order; `true` if any was written.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        let mut wrote = false;
        while let Some(response) = self.slots.front_mut().and_then(|s| s.response.take()) {
            let slot = self.slots.pop_front();
            out.extend_from_slice(&response);
            wrote = true;
            if slot.is_some_and(|s| !s.render.keep_alive) {
                self.done = true;
            }
        }
        wrote
    }

    /// How many bytes the input must hold in all for the request being read to complete,
    /// when that is known (a body of announced length): lets a driver read a body longer
    /// than its read buffer.
    pub fn needed(&self, buf: &[u8]) -> Option<usize> {
        if self.last_read || self.slots.len() >= self.max_pipelined {
            return None;
        }
        self.decoder.needed(buf)
    }

    /// `true` once the response after which the connection closes has been transmitted.
    pub fn should_close(&self) -> bool {
        self.done
    }

    /// The calls waiting for their answer or their turn.
    pub fn waiting(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Format;
    use crate::{ErrorAnswer, Value};

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn quest(incoming: Option<Incoming>) -> Quest {
        match incoming {
            Some(Incoming::Quest(q)) => q,
            other => panic!("{other:?}"),
        }
    }

    fn answer(q: &Quest, body: Value) -> Answer {
        Answer::ok(q.seq.unwrap_or(0), Format::Json, &body).unwrap()
    }

    #[test]
    fn keep_alive_then_close() {
        let mut s = HttpSession::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET /service/a HTTP/1.1\r\n\r\nGET /service/b HTTP/1.1\r\nConnection: close\r\n\r\nGET /service/c HTTP/1.1\r\n\r\n"[..]);
        let a = quest(s.read(&mut buf).unwrap());
        let b = quest(s.read(&mut buf).unwrap());
        assert_eq!((a.method.as_str(), b.method.as_str()), ("a", "b"));
        assert_eq!(
            s.read(&mut buf),
            Ok(None),
            "nothing is read after Connection: close"
        );

        // b completes first; a's response still goes out first.
        s.answer(&answer(&b, Value::map().with("n", 2)), now())
            .unwrap();
        let mut out = BytesMut::new();
        assert!(!s.poll_transmit(&mut out));
        s.send_frame(&Frame::Answer(answer(&a, Value::map().with("n", 1))), now())
            .unwrap();
        assert!(s.poll_transmit(&mut out));
        let text = String::from_utf8(out.to_vec()).unwrap();
        let first = text.find("{\"n\":1}").unwrap();
        let second = text.find("{\"n\":2}").unwrap();
        assert!(first < second);
        assert!(
            text.contains("Connection: Keep-Alive")
                && text.ends_with("Connection: close\r\n\r\n{\"n\":2}"),
            "{text}"
        );
        assert!(s.should_close());
    }

    #[test]
    fn pipelining_is_bounded() {
        let mut s = HttpSession::with_max_pipelined(Limits::default(), 2);
        let mut buf = BytesMut::from(&b"GET /service/a HTTP/1.1\r\n\r\n".repeat(3)[..]);
        let a = quest(s.read(&mut buf).unwrap());
        quest(s.read(&mut buf).unwrap());
        assert_eq!(s.read(&mut buf), Ok(None));
        assert_eq!(s.waiting(), 2);
        s.answer(&answer(&a, Value::map()), now()).unwrap();
        assert_eq!(
            s.answer(&answer(&a, Value::map()), now()),
            Err(HttpError::UnknownAnswer(a.seq.unwrap())),
            "a second answer"
        );
        s.poll_transmit(&mut BytesMut::new());
        quest(s.read(&mut buf).unwrap());
        assert!(buf.is_empty());
    }

    #[test]
    fn errors_answer_500_and_pushes_are_refused() {
        let mut s = HttpSession::new(Limits::default());
        let mut buf =
            BytesMut::from(&b"POST /service/nope HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"[..]);
        let q = quest(s.read(&mut buf).unwrap());
        let err = Answer::error(
            q.seq.unwrap(),
            Format::Json,
            &ErrorAnswer::new(20004, "unknown method"),
        );
        s.answer(&err, now()).unwrap();
        let mut out = BytesMut::new();
        s.poll_transmit(&mut out);
        assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(out.ends_with(b"{\"code\":20004,\"ex\":\"unknown method\"}"));
        let push = Quest::oneway("kickout", &Value::map()).unwrap();
        assert_eq!(
            s.send_frame(&Frame::Quest(push), now()),
            Err(HttpError::PushOverHttp("kickout".into()))
        );
    }

    #[test]
    fn an_upgrade_behind_a_waiting_call_closes() {
        let mut s = HttpSession::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET /service/a HTTP/1.1\r\n\r\nGET /service/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"[..]);
        quest(s.read(&mut buf).unwrap());
        assert_eq!(s.read(&mut buf), Err(HttpError::UpgradeBehindCalls));
    }
}
