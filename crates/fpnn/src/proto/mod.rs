//! One FPNN connection as a state machine with no I/O and no clock: bytes in, bytes out,
//! events and timers, the way `quinn-proto` does it.
//!
//! A [`Connection`] owns everything one connection decides: the frames read off the input
//! buffer (one at a time, through a [`Wire`] layer), the sequence numbers and the table of
//! two-way quests waiting for answers with their deadlines, the quests from the peer being
//! handled (capped: beyond [`Config::max_in_flight`] a quest is answered 20011), the output
//! with its byte budget and high-water mark, the idle, write-stall and keep-alive timers,
//! and the typed reason it closed for ([`CloseReason`]). It never reads a clock: every call
//! that depends on time takes `now`.
//!
//! A driver (the tokio client and server of this crate, or a test) moves bytes and time:
//!
//! ```text
//! loop {
//!     if let Some(buf) = conn.recv_buffer() { read from the socket into buf; conn.handle_input(n, now) }
//!     while let Some(event) = conn.poll_event() { handle quests, answers and failures }
//!     while let Some(bytes) = conn.poll_transmit() { write them; conn.on_transmitted(written, now) }
//!     at conn.poll_timeout(): conn.handle_timeout(now)
//!     when conn.is_closed(): close the socket
//! }
//! ```
//!
//! ```
//! use fpnn::proto::{Config, Connection, Event};
//! use fpnn::{Format, Value};
//! use std::time::{Duration, Instant};
//!
//! let now = Instant::now();
//! let mut client: Connection<&str> = Connection::new(Config::default(), now);
//! let mut server: Connection<()> = Connection::new(Config::default(), now);
//! let timeout = Duration::from_secs(5);
//! client.send_quest("echo", Format::MsgPack, &Value::map().with("x", 1), timeout, "mine", now).unwrap();
//!
//! // Client → server.
//! let bytes = client.poll_transmit().unwrap();
//! client.on_transmitted(bytes.len(), now);
//! server.recv_buffer().unwrap().get_mut().extend_from_slice(&bytes);
//! server.handle_input(bytes.len(), now);
//! let Some(Event::Quest(quest)) = server.poll_event() else { panic!() };
//! server.answer(quest.seq.unwrap(), quest.format, Ok(quest.params().unwrap()));
//!
//! // Server → client.
//! let bytes = server.poll_transmit().unwrap();
//! client.recv_buffer().unwrap().get_mut().extend_from_slice(&bytes);
//! client.handle_input(bytes.len(), now);
//! let Some(Event::Answer { waiter, answer }) = client.poll_event() else { panic!() };
//! assert_eq!(waiter, "mine");
//! assert_eq!(answer.body().unwrap(), Value::map().with("x", 1));
//! ```
//!
//! The byte-stream boundary, for layers such as encryption and WebSocket, is described in
//! [`wire`].

pub(crate) mod close;
mod config;
#[cfg(feature = "encryption")]
mod encrypt;
mod pending;
pub mod wire;

#[cfg(test)]
mod tests;

pub use close::{CloseReason, ProtocolError};
pub use config::{
    Config, FrameMemory, KeepAlive, DEFAULT_FRAME_MEMORY, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_OUTBOUND_BUDGET, DEFAULT_OUTBOUND_HIGH_WATER, DEFAULT_READ_BUFFER,
    DEFAULT_WRITE_STALL_TIMEOUT,
};
pub use wire::{ReadFrame, Wire, WireError, WireLayer};

use crate::error::{code, Error, ErrorAnswer};
use crate::frame::{Answer, CodecError, Frame, FrameDecoder, Quest};
use crate::msgpack;
use crate::payload::Format;
use crate::router::HandlerResult;
use crate::value::Value;
use bytes::buf::Limit;
use bytes::{BufMut, Bytes, BytesMut};
use pending::{Pending, Waiter};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a connection that waits for [`FrameMemory`] waits before trying again.
const FRAME_MEMORY_RETRY: Duration = Duration::from_millis(50);

/// The largest answer-encoding buffer a connection keeps between answers.
const MAX_KEPT_SCRATCH: usize = 4096;

/// Input a closing connection reads and throws away, at most.
const CLOSING_DISCARD: usize = 64 * 1024;

/// Output capacity kept after everything queued was sent; beyond it the buffer is given back,
/// so that a connection that is quiet after a burst holds no large buffer.
const MAX_KEPT_OUTPUT: usize = 16 * 1024;

/// Something that happened on a connection, for its driver to act on.
#[derive(Debug)]
pub enum Event<W> {
    /// The peer sent a quest. The driver must finish it with [`Connection::answer`] (two-way)
    /// or [`Connection::oneway_done`] (one-way): it counts as in flight until then.
    Quest(Quest),
    /// The answer to a quest this side sent.
    Answer {
        /// The waiter given to [`Connection::send_quest`].
        waiter: W,
        /// The answer (normal or error).
        answer: Answer,
    },
    /// A quest this side sent failed without an answer: it timed out (20003) or the
    /// connection closed (the close reason's code).
    Failed {
        /// The waiter given to [`Connection::send_quest`].
        waiter: W,
        /// Why.
        error: Error,
    },
}

/// Why a quest or a push could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed.
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// The outbound budget is used up: the peer does not take the bytes already queued.
    #[error("outbound queue full: {queued} bytes waiting, budget {budget}")]
    Full {
        /// Bytes waiting.
        queued: usize,
        /// The budget.
        budget: usize,
    },
    /// The quest could not be encoded.
    #[error("cannot encode quest: {0}")]
    Encode(CodecError),
    /// A key exchange that cannot start: `*key` must be the connection's first frame, on a
    /// plain wire.
    #[error("*key must be the first frame of a plain connection")]
    NotFirst,
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Error {
        match e {
            SendError::Closed(reason) => Error::Closed(reason),
            SendError::Full { queued, budget } => Error::SendQueueFull { queued, budget },
            SendError::Encode(e) => Error::encode(e),
            SendError::NotFirst => Error::Codec(
                "*key must be the first frame of a plain connection".into(),
                code::CORE_ENCODING,
            ),
        }
    }
}

enum State {
    Open,
    /// Closed: no more input, queued output still goes out until `flush_deadline`.
    Closing {
        reason: CloseReason,
        flush_deadline: Instant,
    },
    /// Finished with: the driver closes the transport.
    Closed {
        reason: CloseReason,
    },
}

/// One FPNN connection, either side, with no I/O. `W` is what a driver keeps with each quest
/// it sends, given back with the answer or the failure (a channel to the caller, an id).
pub struct Connection<W = ()> {
    config: Config,
    wire: Wire,
    decoder: FrameDecoder,
    /// Bytes read and not yet taken as frames.
    input: BytesMut,
    /// Input bytes the frame at the front needs in all, when the last read attempt knew.
    need: Option<usize>,
    /// Bytes reserved in `config.frame_memory` for a frame longer than the read buffer.
    reserved: usize,
    /// Set while reading waits for frame memory: when to try again.
    memory_retry: Option<Instant>,
    /// The peer ended its side of the stream; frames already buffered are still read.
    eof: bool,
    /// Input bytes read and thrown away while closing.
    discarded: usize,
    /// Wire bytes queued and not yet handed to the transport.
    output: BytesMut,
    /// Bytes handed out by [`Connection::poll_transmit`] and not yet reported written.
    in_transmit: usize,
    /// Where a frame is encoded before a [`WireLayer`] writes it.
    layer_scratch: BytesMut,
    /// Where an answer's msgpack body is encoded before it is framed.
    scratch: Vec<u8>,
    next_seq: u32,
    pending: Pending<W>,
    /// Quests from the peer handed out as events and not yet finished.
    in_flight: usize,
    close_after_answers: bool,
    events: VecDeque<Event<W>>,
    state: State,
    /// The latest `now` this connection was given.
    clock: Instant,
    last_received: Instant,
    last_sent: Instant,
    /// Since when bytes have been waiting with none taken by the transport.
    stall_since: Option<Instant>,
    last_ping: Option<Instant>,
    /// Frames taken off the input so far.
    frames_read: u64,
    /// Whether any frame was ever queued for the peer.
    sent_any: bool,
    /// Switched to encryption by a `*key` exchange.
    #[cfg(feature = "encryption")]
    encrypted: bool,
}

impl<W> Drop for Connection<W> {
    fn drop(&mut self) {
        self.release_reservation();
    }
}

impl<W> std::fmt::Debug for Connection<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("wire", &self.wire)
            .field("buffered_input", &self.input.len())
            .field("queued_output", &self.queued())
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight)
            .field("close_reason", &self.close_reason())
            .finish_non_exhaustive()
    }
}

impl<W> Connection<W> {
    /// A new connection, open at `now`, with plain FPNN framing.
    pub fn new(config: Config, now: Instant) -> Connection<W> {
        Connection {
            decoder: FrameDecoder::new(config.max_frame),
            config,
            wire: Wire::Plain,
            input: BytesMut::new(),
            need: None,
            reserved: 0,
            memory_retry: None,
            eof: false,
            discarded: 0,
            output: BytesMut::new(),
            in_transmit: 0,
            layer_scratch: BytesMut::new(),
            scratch: Vec::new(),
            next_seq: 1,
            pending: Pending::default(),
            in_flight: 0,
            close_after_answers: false,
            events: VecDeque::new(),
            state: State::Open,
            clock: now,
            last_received: now,
            last_sent: now,
            stall_since: None,
            last_ping: None,
            frames_read: 0,
            sent_any: false,
            #[cfg(feature = "encryption")]
            encrypted: false,
        }
    }

    /// Frames read off the input so far (the one just handed out as an event included).
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// Whether any frame was ever queued for the peer (sent or not).
    pub fn has_sent(&self) -> bool {
        self.sent_any
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the wire layer. Frames already queued stay as the old layer wrote them; the
    /// next frame read and every frame queued from now on go through `wire`, including the
    /// input bytes already buffered after the last frame read.
    pub fn set_wire(&mut self, wire: Wire) {
        self.wire = wire;
        self.need = None;
    }

    /// The wire layer in force.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    // ---------------------------------------------------------------------------- input

    /// How many bytes the driver may read now (0: do not read).
    ///
    /// Nothing while the connection is closed, while the output is past the high-water mark,
    /// or while a frame longer than the read buffer waits for [`FrameMemory`]. While closing,
    /// up to 64 KiB of input is read and thrown away, so that a peer's last few quests do not
    /// turn the close into a reset (which can make it lose what was sent before the close,
    /// a `kickout` for instance); a peer that goes on sending more is not read any further.
    pub fn read_limit(&mut self) -> usize {
        match self.state {
            State::Closed { .. } => return 0,
            State::Closing { .. } if self.eof => return 0,
            State::Closing { .. } => return CLOSING_DISCARD.saturating_sub(self.discarded),
            State::Open => {}
        }
        if self.eof || self.over_high_water() {
            return 0;
        }
        let base = self.config.read_buffer.max(1);
        let target = match self.need {
            Some(len) if len > base => {
                if self.reserved < len && !self.reserve(len) {
                    return 0;
                }
                len
            }
            _ => base,
        };
        target.saturating_sub(self.input.len())
    }

    /// Reserves frame memory for a frame of `len` bytes; false (and a retry timer) when it
    /// does not fit now.
    fn reserve(&mut self, len: usize) -> bool {
        if let Some(at) = self.memory_retry {
            if self.clock < at {
                return false;
            }
        }
        let more = len - self.reserved;
        if self.config.frame_memory.try_reserve(more) {
            self.reserved = len;
            self.memory_retry = None;
            true
        } else {
            self.memory_retry = Some(self.clock + FRAME_MEMORY_RETRY);
            false
        }
    }

    fn release_reservation(&mut self) {
        self.config.frame_memory.release(self.reserved);
        self.reserved = 0;
    }

    /// The input buffer to read into, limited to [`Connection::read_limit`]; `None` when the
    /// driver must not read now. After reading, call [`Connection::handle_input`].
    pub fn recv_buffer(&mut self) -> Option<Limit<&mut BytesMut>> {
        let limit = self.read_limit();
        if limit == 0 {
            return None;
        }
        // Reserve in steps, so that a frame announced large is buffered as it arrives.
        let step = limit.min(self.config.read_buffer.max(1));
        if self.input.capacity() - self.input.len() < step {
            self.input.reserve(step);
        }
        Some((&mut self.input).limit(limit))
    }

    /// `n` bytes were appended to the input buffer at `now`; `0` means the peer ended the
    /// stream (end of file).
    pub fn handle_input(&mut self, n: usize, now: Instant) {
        self.clock = now;
        if n == 0 {
            self.eof = true;
            if !matches!(self.state, State::Open) {
                self.input = BytesMut::new();
            }
            return;
        }
        self.last_received = now;
        if !matches!(self.state, State::Open) {
            // Closing: read and thrown away.
            self.discarded = self.discarded.saturating_add(n);
            self.input.clear();
        }
    }

    /// The next event: a failure or answer already known, else the next frame of the input,
    /// decoded now (one frame at a time, so that the wire layer can change between two).
    ///
    /// While the output is past the high-water mark, no more frames are decoded.
    pub fn poll_event(&mut self) -> Option<Event<W>> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        loop {
            if !matches!(self.state, State::Open) || self.over_high_water() {
                return None;
            }
            match self.next_frame() {
                Ok(Some(Frame::Answer(answer))) => match self.pending.remove(answer.seq) {
                    Some(entry) => match entry.waiter {
                        Waiter::User(waiter) => return Some(Event::Answer { waiter, answer }),
                        Waiter::Ping => continue,
                    },
                    None => {
                        tracing::debug!(seq = answer.seq, "answer for an unknown seq dropped");
                        continue;
                    }
                },
                Ok(Some(Frame::Quest(quest))) => {
                    if self.in_flight >= self.config.max_in_flight {
                        if let Some(seq) = quest.seq {
                            let error = ErrorAnswer::new(
                                code::CORE_WORK_QUEUE_FULL,
                                "too many quests in flight on this connection",
                            );
                            self.queue_answer(seq, quest.format, Err(error));
                        }
                        continue;
                    }
                    self.in_flight += 1;
                    return Some(Event::Quest(quest));
                }
                Ok(None) => {
                    if self.eof {
                        self.close(CloseReason::ClosedByPeer, self.clock);
                        return self.events.pop_front();
                    }
                    if self.input.is_empty() && self.input.capacity() > 0 {
                        // Hold no input buffer while the peer is quiet.
                        self.input = BytesMut::new();
                    }
                    return None;
                }
                Err(reason) => {
                    tracing::debug!(reason = %reason, "closing on bad input");
                    self.close(reason, self.clock);
                    return self.events.pop_front();
                }
            }
        }
    }

    /// Takes the next frame off the input through the wire layer.
    fn next_frame(&mut self) -> Result<Option<Frame>, CloseReason> {
        let max_frame = self.config.max_frame;
        loop {
            let read = match &mut self.wire {
                Wire::Plain => match self.decoder.decode(&mut self.input) {
                    Ok(Some(frame)) => {
                        self.frame_taken();
                        return Ok(Some(frame));
                    }
                    Ok(None) => {
                        self.need = self.decoder.needed(&self.input).ok().flatten();
                        return Ok(None);
                    }
                    Err(e) => return Err(CloseReason::Protocol(ProtocolError::BadFrame(e))),
                },
                Wire::Layer(layer) => {
                    let before = self.output.len();
                    let read = layer.read_frame(&mut self.input, max_frame, &mut self.output);
                    let name = layer.name();
                    if self.output.len() > before && self.stall_since.is_none() {
                        self.stall_since = Some(self.clock);
                    }
                    read.map_err(|e| {
                        CloseReason::Protocol(ProtocolError::Layer {
                            layer: name,
                            message: e.message,
                        })
                    })?
                }
            };
            match read {
                ReadFrame::Frame(bytes) => {
                    self.frame_taken();
                    return Frame::from_bytes(bytes, max_frame)
                        .map(Some)
                        .map_err(|e| CloseReason::Protocol(ProtocolError::BadFrame(e)));
                }
                ReadFrame::NeedMore { frame_len } => {
                    self.need = frame_len;
                    return Ok(None);
                }
                ReadFrame::Replace(wire) => self.wire = wire,
                ReadFrame::Close => return Err(CloseReason::ClosedByPeer),
            }
        }
    }

    fn frame_taken(&mut self) {
        self.frames_read += 1;
        self.need = None;
        self.release_reservation();
    }

    // --------------------------------------------------------------------------- output

    /// Bytes queued for the peer and not yet taken by the transport.
    pub fn queued(&self) -> usize {
        self.output.len() + self.in_transmit
    }

    fn over_high_water(&self) -> bool {
        self.config
            .outbound_high_water
            .is_some_and(|mark| self.queued() >= mark)
    }

    fn note_output(&mut self) {
        if self.stall_since.is_none() && self.queued() > 0 {
            self.stall_since = Some(self.clock);
        }
    }

    /// Queues one frame: encoded by `encode` straight into the output (plain), or into a
    /// scratch buffer the layer then writes from.
    fn queue_frame(
        &mut self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        match &mut self.wire {
            Wire::Plain => encode(&mut self.output)?,
            Wire::Layer(layer) => {
                self.layer_scratch.clear();
                encode(&mut self.layer_scratch)?;
                if let Err(e) = layer.write_frame(&self.layer_scratch, &mut self.output) {
                    let reason = CloseReason::Protocol(ProtocolError::Layer {
                        layer: layer.name(),
                        message: e.message,
                    });
                    self.abort(reason);
                    return Ok(());
                }
                if self.layer_scratch.capacity() > MAX_KEPT_SCRATCH {
                    self.layer_scratch = BytesMut::new();
                }
            }
        }
        self.sent_any = true;
        self.note_output();
        Ok(())
    }

    fn check_send(&self) -> Result<(), SendError> {
        match &self.state {
            State::Open => {}
            State::Closing { reason, .. } | State::Closed { reason } => {
                return Err(SendError::Closed(reason.clone()))
            }
        }
        let queued = self.queued();
        if queued >= self.config.outbound_budget {
            return Err(SendError::Full {
                queued,
                budget: self.config.outbound_budget,
            });
        }
        Ok(())
    }

    /// A sequence number for a new two-way quest: per connection from 1, skipping 0 and any
    /// still waiting after a wrap.
    fn take_seq(&mut self) -> u32 {
        loop {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            if seq != 0 && !self.pending.contains(seq) {
                return seq;
            }
        }
    }

    /// Queues a two-way quest and remembers `waiter` until its answer, its timeout or the
    /// close. Returns its seq. Fails, queuing nothing, when the connection is closed, the
    /// outbound budget is used up or the quest cannot be encoded.
    pub fn send_quest(
        &mut self,
        method: &str,
        format: Format,
        params: &Value,
        timeout: Duration,
        waiter: W,
        now: Instant,
    ) -> Result<u32, SendError> {
        self.clock = now;
        self.send_twoway(method, format, params, timeout, Waiter::User(waiter))
    }

    fn send_twoway(
        &mut self,
        method: &str,
        format: Format,
        params: &Value,
        timeout: Duration,
        waiter: Waiter<W>,
    ) -> Result<u32, SendError> {
        self.check_send()?;
        let payload = format.encode(params).map_err(SendError::Encode)?;
        let seq = self.take_seq();
        self.queue_frame(|out| Frame::encode_quest_into(out, method, Some(seq), format, &payload))
            .map_err(SendError::Encode)?;
        if let Some(reason) = self.close_reason() {
            // The wire layer refused the frame and the connection closed.
            return Err(SendError::Closed(reason.clone()));
        }
        self.pending.insert(seq, waiter, self.clock, timeout);
        Ok(seq)
    }

    /// Queues a one-way quest. Fails like [`Connection::send_quest`].
    pub fn send_oneway(
        &mut self,
        method: &str,
        format: Format,
        params: &Value,
        now: Instant,
    ) -> Result<(), SendError> {
        self.clock = now;
        self.check_send()?;
        let payload = format.encode(params).map_err(SendError::Encode)?;
        self.queue_frame(|out| Frame::encode_quest_into(out, method, None, format, &payload))
            .map_err(SendError::Encode)
    }

    /// Forgets quest `seq` (its caller gave up): a later answer is dropped. Returns its
    /// waiter if it was still waiting.
    pub fn forget_quest(&mut self, seq: u32) -> Option<W> {
        let entry = self.pending.remove(seq)?;
        self.pending.shrink_if_empty();
        match entry.waiter {
            Waiter::User(w) => Some(w),
            Waiter::Ping => None,
        }
    }

    /// Finishes the peer's two-way quest `seq` with a handler's result: its answer is queued.
    ///
    /// Answers are not held to the outbound budget: they are bounded by the high-water mark
    /// (no quest is read past it) and by [`Config::max_in_flight`] (no more quests are
    /// handled at once), and a peer that does not read them is closed by the write-stall
    /// timeout.
    pub fn answer(&mut self, seq: u32, format: Format, result: HandlerResult) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.queue_answer(seq, format, result);
        self.check_answered();
    }

    /// Finishes one of the peer's one-way quests (there is nothing to send).
    pub fn oneway_done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.check_answered();
    }

    /// Encodes and queues an answer (while open or still flushing).
    fn queue_answer(&mut self, seq: u32, format: Format, result: HandlerResult) {
        if matches!(self.state, State::Closed { .. }) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        if let (Format::MsgPack, Ok(body)) = (format, &result) {
            scratch.clear();
            if msgpack::encode_into(body, &mut scratch).is_ok() {
                let framed = self
                    .queue_frame(|out| Frame::encode_answer_into(out, seq, 0, format, &scratch));
                self.keep_scratch(scratch);
                if framed.is_ok() {
                    return;
                }
            } else {
                self.keep_scratch(scratch);
            }
            // A body that cannot be encoded: answered 20005 below, as `answer_frame` does.
        } else {
            self.keep_scratch(scratch);
        }
        let answer = answer_frame(seq, format, result);
        // An answer frame always encodes: its payload is never empty.
        let _ = self.queue_frame(|out| Frame::Answer(answer).encode_into(out));
    }

    fn keep_scratch(&mut self, scratch: Vec<u8>) {
        // A large answer's buffer is not kept for the small ones.
        if scratch.capacity() <= MAX_KEPT_SCRATCH {
            self.scratch = scratch;
        }
    }

    /// Closes the connection once every quest of the peer being handled has been answered:
    /// the way to end a session from inside a handler, after its own answer.
    pub fn close_after_answers(&mut self, now: Instant) {
        self.clock = now;
        self.close_after_answers = true;
        self.check_answered();
    }

    fn check_answered(&mut self) {
        if self.close_after_answers && self.in_flight == 0 {
            self.close(CloseReason::ClosedLocally, self.clock);
        }
    }

    /// The next bytes to send, if any (all that is queued, as one buffer). They stay counted
    /// against the outbound budget until [`Connection::on_transmitted`] reports them written;
    /// a driver writes one transmit completely before asking for the next.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.output.is_empty() || matches!(self.state, State::Closed { .. }) {
            return None;
        }
        let bytes = self.output.split().freeze();
        self.in_transmit += bytes.len();
        Some(bytes)
    }

    /// The transport took `n` bytes of what [`Connection::poll_transmit`] handed out.
    pub fn on_transmitted(&mut self, n: usize, now: Instant) {
        self.clock = now;
        if n == 0 {
            return;
        }
        self.in_transmit = self.in_transmit.saturating_sub(n);
        self.last_sent = now;
        self.stall_since = (self.queued() > 0).then_some(now);
        if self.queued() == 0 {
            if self.output.capacity() > MAX_KEPT_OUTPUT {
                self.output = BytesMut::new();
            }
            if let State::Closing { reason, .. } = &self.state {
                self.state = State::Closed {
                    reason: reason.clone(),
                };
            }
        }
    }

    // --------------------------------------------------------------------------- timers

    /// When [`Connection::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.pending.next_deadline();
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match &self.state {
            State::Closed { .. } => return None,
            State::Closing { flush_deadline, .. } => {
                at(*flush_deadline);
                return next;
            }
            State::Open => {}
        }
        if let Some(idle) = self.config.idle_timeout {
            at(self.last_received.max(self.last_sent) + idle);
        }
        if let (Some(stall), Some(since)) = (self.config.write_stall_timeout, self.stall_since) {
            at(since + stall);
        }
        if let Some(retry) = self.memory_retry {
            at(retry);
        }
        if let Some(keep_alive) = &self.config.keep_alive {
            let ping_timeout = ping_timeout(keep_alive);
            at(self.last_received + lost_after(keep_alive));
            let first = self.last_received + keep_alive.interval;
            at(match self.last_ping {
                Some(last) => first.max(last + ping_timeout),
                None => first,
            });
        }
        next
    }

    /// Handles every timer due at `now`: quest timeouts, the close flush, the write stall,
    /// the idle timeout, keep-alive pings and loss.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = now;
        while let Some(entry) = self.pending.pop_expired(now) {
            if let Waiter::User(waiter) = entry.waiter {
                self.events.push_back(Event::Failed {
                    waiter,
                    error: Error::Timeout(entry.timeout),
                });
            }
        }
        self.pending.shrink_if_empty();
        if let State::Closing {
            reason,
            flush_deadline,
        } = &self.state
        {
            if now >= *flush_deadline {
                // The peer does not take the last bytes: cut off.
                let reason = reason.clone();
                self.output = BytesMut::new();
                self.in_transmit = 0;
                self.state = State::Closed { reason };
            }
            return;
        }
        if !matches!(self.state, State::Open) {
            return;
        }
        if self.memory_retry.is_some_and(|at| now >= at) {
            self.memory_retry = None;
        }
        if let (Some(stall), Some(since)) = (self.config.write_stall_timeout, self.stall_since) {
            if now >= since + stall {
                self.abort(CloseReason::WriteStalled(stall));
                return;
            }
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_received.max(self.last_sent) + idle {
                self.close(CloseReason::IdleTimeout(idle), now);
                return;
            }
        }
        if let Some(keep_alive) = self.config.keep_alive.clone() {
            let quiet = now.saturating_duration_since(self.last_received);
            if quiet >= lost_after(&keep_alive) {
                self.close(CloseReason::KeepAliveLost(quiet), now);
                return;
            }
            let ping_timeout = ping_timeout(&keep_alive);
            let ping_due = self.last_ping.is_none_or(|last| now >= last + ping_timeout);
            if quiet >= keep_alive.interval && ping_due {
                self.last_ping = Some(now);
                // Any answer counts as traffic; the ping's own result does not matter. A
                // full queue skips this ping: the peer is not reading, and the loss timer
                // decides.
                let _ = self.send_twoway(
                    "*ping",
                    Format::MsgPack,
                    &Value::map(),
                    ping_timeout,
                    Waiter::Ping,
                );
            }
        }
    }

    // ---------------------------------------------------------------------------- close

    /// Closes the connection: no more input is handled; output already queued still goes
    /// out (for at most [`Config::close_flush`]); quests waiting for answers fail with
    /// `reason`. Only the first reason counts.
    pub fn close(&mut self, reason: CloseReason, now: Instant) {
        self.clock = now;
        if !matches!(self.state, State::Open) {
            return;
        }
        self.fail_pending(&reason);
        self.release_reservation();
        self.input = BytesMut::new();
        self.state = if self.queued() == 0 {
            State::Closed { reason }
        } else {
            State::Closing {
                reason,
                flush_deadline: now + self.config.close_flush,
            }
        };
    }

    /// Closes the connection at once, dropping what is queued.
    pub fn abort(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Open) {
            self.fail_pending(&reason);
            self.release_reservation();
            self.input = BytesMut::new();
        }
        let reason = match std::mem::replace(&mut self.state, State::Open) {
            State::Open => reason,
            State::Closing { reason, .. } | State::Closed { reason } => reason,
        };
        self.output = BytesMut::new();
        // What the driver holds of a transmit is dropped too.
        self.in_transmit = 0;
        self.state = State::Closed { reason };
    }

    fn fail_pending(&mut self, reason: &CloseReason) {
        let failed: Vec<W> = self
            .pending
            .drain()
            .filter_map(|entry| match entry.waiter {
                Waiter::User(w) => Some(w),
                Waiter::Ping => None,
            })
            .collect();
        self.pending.shrink_if_empty();
        self.events
            .extend(failed.into_iter().map(|waiter| Event::Failed {
                waiter,
                error: Error::Closed(reason.clone()),
            }));
    }

    /// `true` once the connection is closing or closed: it accepts nothing new.
    pub fn is_closing(&self) -> bool {
        !matches!(self.state, State::Open)
    }

    /// `true` once the connection is finished with: the driver closes the transport (events
    /// may still be waiting in [`Connection::poll_event`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// Why the connection closed, once it is closing.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Open => None,
            State::Closing { reason, .. } | State::Closed { reason } => Some(reason),
        }
    }

    // ---------------------------------------------------------------------------- state

    /// Quests this side sent that wait for an answer (keep-alive pings included).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Quests of the peer being handled.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Input bytes buffered and not yet taken as frames.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Memory the connection's buffers hold now (capacities), for accounting and tests.
    pub fn buffer_memory(&self) -> usize {
        self.input.capacity() + self.output.capacity() + self.in_transmit
    }
}

fn ping_timeout(keep_alive: &KeepAlive) -> Duration {
    keep_alive
        .ping_timeout
        .unwrap_or(config::DEFAULT_PING_TIMEOUT)
        .max(Duration::from_millis(1))
}

/// Silence after which keep-alive declares the peer lost.
fn lost_after(keep_alive: &KeepAlive) -> Duration {
    keep_alive
        .interval
        .saturating_add(ping_timeout(keep_alive).saturating_mul(keep_alive.max_retries))
}

/// The answer to quest `seq` that a handler's result makes.
fn answer_frame(seq: u32, format: Format, result: HandlerResult) -> Answer {
    match result {
        Ok(body) => Answer::ok(seq, format, &body).unwrap_or_else(|e| {
            let error = ErrorAnswer::new(code::CORE_ENCODING, format!("cannot encode answer: {e}"));
            Answer::error(seq, format, &error)
        }),
        Err(error) => Answer::error(seq, format, &error),
    }
}
