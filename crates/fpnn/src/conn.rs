//! The connection engine shared by the client and the server.
//!
//! A connection is two tasks around one TCP stream: a reader that decodes frames and hands
//! them on, and a writer that batches queued frames into as few writes as it can. Both sides of
//! FPNN can send quests, so both need the same bookkeeping: a sequence counter and a table of
//! the two-way quests waiting for an answer. [`Link`] is that shared state.

use crate::error::{code, Error, ErrorAnswer};
use crate::frame::{Answer, Frame, FrameDecoder, Quest};
use crate::msgpack;
use crate::payload::Format;
use crate::router::HandlerResult;
use crate::value::Value;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// The largest answer-encoding buffer [`Link::encode_result`] lets its caller keep.
const MAX_KEPT_SCRATCH: usize = 4096;

/// What the writer task is asked to do.
pub(crate) enum Outgoing {
    /// Send these bytes (one encoded frame).
    Frame(Bytes),
    /// Flush what is queued before this, then close the connection.
    Close,
}

/// The state shared by a connection's reader, writer and users.
pub(crate) struct Link {
    out: mpsc::UnboundedSender<Outgoing>,
    state: Mutex<LinkState>,
    next_seq: AtomicU32,
    /// Set once the connection is closing; read without the lock on hot paths.
    closing: Latch,
    /// Set to drop the connection without flushing what is queued (see [`Link::abort`]).
    aborted: Latch,
    /// Tells the reader to stop (after the writer has flushed and closed).
    stop_reader: Notify,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte received.
    last_read: AtomicU64,
    /// Milliseconds since `epoch` of the last byte sent.
    last_write: AtomicU64,
    peer: SocketAddr,
    /// Set when the task that owns the connection has finished with it (see
    /// [`Link::mark_finished`]).
    finished: Latch,
}

/// A flag that is set once and can be awaited.
#[derive(Default)]
struct Latch {
    set: AtomicBool,
    notify: Notify,
}

impl Latch {
    fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        loop {
            // Created before the check, so a `set` in between is not missed.
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// How long the writer may go on sending what was queued before a close: a peer that does
/// not take those bytes in this time is cut off, so that a connection whose peer stopped
/// reading still closes.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

#[derive(Default)]
struct LinkState {
    pending: HashMap<u32, oneshot::Sender<Answer>>,
    /// Why the connection closed, once it has.
    closed: Option<Error>,
}

impl Link {
    /// A link for a connection to `peer`, and the receiving end of its writer queue.
    pub(crate) fn new(peer: SocketAddr) -> (Arc<Link>, mpsc::UnboundedReceiver<Outgoing>) {
        let (out, rx) = mpsc::unbounded_channel();
        let link = Link {
            out,
            state: Mutex::new(LinkState::default()),
            next_seq: AtomicU32::new(1),
            closing: Latch::default(),
            aborted: Latch::default(),
            stop_reader: Notify::new(),
            epoch: Instant::now(),
            last_read: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            peer,
            finished: Latch::default(),
        };
        (Arc::new(link), rx)
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closing.is_set()
    }

    /// Completes once the connection is closing or closed.
    pub(crate) async fn closing(&self) {
        self.closing.wait().await
    }

    /// Why the connection closed, if it has.
    pub(crate) fn close_reason(&self) -> Option<Error> {
        self.lock().closed.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // A panic while holding this lock cannot leave the map inconsistent; carry on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn touch_read(&self) {
        self.last_read.store(self.now_ms(), Ordering::Relaxed);
    }

    fn touch_write(&self) {
        self.last_write.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since the last byte was received.
    pub(crate) fn since_read(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_read.load(Ordering::Relaxed)),
        )
    }

    /// Time since the last byte was sent or received.
    pub(crate) fn since_active(&self) -> Duration {
        let last = self
            .last_read
            .load(Ordering::Relaxed)
            .max(self.last_write.load(Ordering::Relaxed));
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Queues an encoded frame for the writer.
    pub(crate) fn send_bytes(&self, bytes: Bytes) -> Result<(), Error> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.out
            .send(Outgoing::Frame(bytes))
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> Error {
        self.close_reason()
            .unwrap_or_else(|| Error::InvalidConnection("connection is closed".into()))
    }

    /// Encodes and queues a frame.
    pub(crate) fn send_frame(&self, frame: &Frame) -> Result<(), Error> {
        let bytes = frame.encode().map_err(Error::encode)?;
        self.send_bytes(bytes)
    }

    /// Sends an answer.
    pub(crate) fn answer(&self, answer: Answer) -> Result<(), Error> {
        self.send_frame(&Frame::Answer(answer))
    }

    /// Sends a handler's result as the answer to quest `seq` (nothing for a one-way quest).
    pub(crate) fn answer_result(&self, seq: Option<u32>, format: Format, result: HandlerResult) {
        let Some(seq) = seq else { return };
        // A connection that closed meanwhile cannot take the answer; nothing else to do.
        let _ = self.answer(answer_of(seq, format, result));
    }

    /// Encodes a handler's result as the answer to quest `seq` at the end of `out`, for a
    /// batch sent later with [`Link::send_bytes`].
    ///
    /// A msgpack body is encoded into `scratch` first, a buffer the caller keeps from one
    /// answer to the next, so that answering allocates nothing of its own.
    pub(crate) fn encode_result(
        out: &mut BytesMut,
        scratch: &mut Vec<u8>,
        seq: u32,
        format: Format,
        result: HandlerResult,
    ) {
        if let (Format::MsgPack, Ok(body)) = (format, &result) {
            scratch.clear();
            let encoded = msgpack::encode_into(body, scratch).is_ok()
                && Frame::encode_answer_into(out, seq, 0, format, scratch).is_ok();
            if scratch.capacity() > MAX_KEPT_SCRATCH {
                // A large answer's buffer is not kept for the small ones.
                *scratch = Vec::new();
            }
            if encoded {
                return;
            }
            // A body that cannot be encoded: answered below as `answer_of` does (20005).
        }
        // An answer frame always encodes: its payload is never empty.
        let _ = Frame::Answer(answer_of(seq, format, result)).encode_into(out);
    }

    /// Answers a quest with an error (nothing for a one-way quest).
    pub(crate) fn answer_error(&self, quest: &Quest, code: i32, ex: impl Into<String>) {
        self.answer_result(quest.seq, quest.format, Err(ErrorAnswer::new(code, ex)));
    }

    /// Sends a one-way quest.
    pub(crate) fn oneway(&self, method: &str, format: Format, params: &Value) -> Result<(), Error> {
        let quest = Quest::new(method, None, format, params).map_err(Error::encode)?;
        self.send_frame(&Frame::Quest(quest))
    }

    /// Sends a two-way quest and waits for its answer, at most `timeout`.
    pub(crate) async fn quest(
        &self,
        method: &str,
        format: Format,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let quest = Quest::new(method, Some(seq), format, params).map_err(Error::encode)?;
        let bytes = Frame::Quest(quest).encode().map_err(Error::encode)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            state.pending.insert(seq, tx);
        }
        // However this function ends (answer, timeout, error, or the caller dropping the
        // future), the seq leaves the table.
        let _pending = PendingGuard { link: self, seq };
        self.send_bytes(bytes)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => match answer.into_result().map_err(Error::decode)? {
                Ok(body) => Ok(body),
                Err(error_answer) => Err(Error::Answer(error_answer)),
            },
            // The sender was dropped: the connection closed while we waited.
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Hands an answer to the quest waiting for it; answers nobody waits for are dropped, as
    /// the official framework does (a late answer after a timeout, for instance).
    pub(crate) fn deliver(&self, answer: Answer) {
        let waiter = self.lock().pending.remove(&answer.seq);
        match waiter {
            Some(tx) => {
                let _ = tx.send(answer);
            }
            None => {
                tracing::debug!(peer = %self.peer, seq = answer.seq, "answer for an unknown seq dropped")
            }
        }
    }

    /// Closes the connection: frames already queued are still sent, then the socket is closed.
    /// Quests waiting for an answer fail with `reason`. Only the first reason counts.
    pub(crate) fn close(&self, reason: Error) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(reason);
            self.closing.set();
            std::mem::take(&mut state.pending)
        };
        // Dropping the senders wakes the waiters, which then read `closed`.
        drop(pending);
        let _ = self.out.send(Outgoing::Close);
    }

    /// Marks the connection as finished with: closed, and its closing fully handled by the
    /// task that ran it (for the client: the `Closed` event reported).
    pub(crate) fn mark_finished(&self) {
        self.finished.set();
    }

    /// Waits until [`Link::mark_finished`] has been called.
    pub(crate) async fn finished(&self) {
        self.finished.wait().await
    }

    /// Closes the connection at once: like [`Link::close`], but frames still queued or being
    /// written are dropped.
    pub(crate) fn abort(&self, reason: Error) {
        self.close(reason);
        self.aborted.set();
    }

    /// Completes when the writer must give up: on [`Link::abort`], or [`CLOSE_FLUSH`] after
    /// the close.
    async fn cut_off(&self) {
        let flush_time = async {
            self.closing.wait().await;
            tokio::time::sleep(CLOSE_FLUSH).await;
        };
        tokio::select! {
            _ = self.aborted.wait() => {}
            _ = flush_time => {}
        }
    }

    /// The number of quests waiting for an answer.
    pub(crate) fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }
}

/// The answer to quest `seq` that a handler's result makes.
fn answer_of(seq: u32, format: Format, result: HandlerResult) -> Answer {
    match result {
        Ok(body) => Answer::ok(seq, format, &body).unwrap_or_else(|e| {
            let error = ErrorAnswer::new(code::CORE_ENCODING, format!("cannot encode answer: {e}"));
            Answer::error(seq, format, &error)
        }),
        Err(error) => Answer::error(seq, format, &error),
    }
}

/// Removes a two-way quest from the pending table when its waiter goes away, including when
/// the waiting future is dropped before the answer or the timeout.
struct PendingGuard<'a> {
    link: &'a Link,
    seq: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.link.lock().pending.remove(&self.seq);
    }
}

/// What to do with a quest the peer sent.
pub(crate) trait QuestSink: Send + 'static {
    /// Handles one quest. An error closes the connection with that reason.
    fn quest(&mut self, quest: Quest) -> Result<(), Error>;

    /// Called once the frames of one read have been handed to [`QuestSink::quest`], before
    /// the reader waits for more bytes: a sink that holds answers back to send them in one
    /// batch sends them now.
    fn flush(&mut self) {}
}

/// Options of the read loop.
pub(crate) struct ReadOptions {
    pub max_frame: usize,
    /// Close after this long without bytes in either direction.
    pub idle_timeout: Option<Duration>,
}

/// Runs a connection until it closes: spawns the writer, runs the reader here. Returns why it
/// closed (the reason given to [`Link::close`]).
pub(crate) async fn run(
    stream: TcpStream,
    link: Arc<Link>,
    out: mpsc::UnboundedReceiver<Outgoing>,
    sink: impl QuestSink,
    options: ReadOptions,
) -> Error {
    let (reader, writer) = stream.into_split();
    let writer_link = link.clone();
    tokio::spawn(async move { write_loop(writer, out, &writer_link).await });
    let reason = read_loop(reader, &link, sink, options).await;
    link.close(reason);
    // The writer flushes and closes; the reason recorded first is the one that counts.
    link.close_reason()
        .unwrap_or_else(|| Error::ConnectionClosed("closed".into()))
}

async fn read_loop(
    reader: OwnedReadHalf,
    link: &Link,
    mut sink: impl QuestSink,
    options: ReadOptions,
) -> Error {
    let mut decoder = FrameDecoder::new(options.max_frame);
    let mut buf = BytesMut::new();
    link.touch_read();
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Answer(answer))) => link.deliver(answer),
                Ok(Some(Frame::Quest(quest))) => {
                    if let Err(reason) = sink.quest(quest) {
                        sink.flush();
                        return reason;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    sink.flush();
                    tracing::debug!(peer = %link.peer(), error = %e, "bad frame, closing");
                    return Error::InvalidConnection(format!("bad frame from peer: {e}"));
                }
            }
        }
        sink.flush();
        if buf.is_empty() && buf.capacity() > 0 {
            // Give the memory back while the connection is quiet.
            buf = BytesMut::new();
        }
        let idle = async {
            match options.idle_timeout {
                Some(limit) => loop {
                    let quiet = link.since_active();
                    if quiet >= limit {
                        break;
                    }
                    tokio::time::sleep(limit - quiet).await;
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = link.stop_reader.notified() => {
                return link.close_reason().unwrap_or_else(|| Error::ConnectionClosed("closed locally".into()));
            }
            ready = reader.readable() => {
                if let Err(e) = ready {
                    return Error::InvalidConnection(format!("read failed: {e}"));
                }
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(4096);
                }
                match reader.try_read_buf(&mut buf) {
                    Ok(0) => return Error::ConnectionClosed("closed by peer".into()),
                    Ok(_) => link.touch_read(),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Error::InvalidConnection(format!("read failed: {e}")),
                }
            }
            _ = idle => {
                return Error::ConnectionClosed("idle timeout".into());
            }
        }
    }
}

/// Largest batch of queued frames written with one call.
const WRITE_BATCH: usize = 64 * 1024;

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    link: &Link,
) {
    let cut_off = link.cut_off();
    tokio::pin!(cut_off);
    let mut buf = BytesMut::new();
    let mut closing = false;
    let mut cut = false;
    while !closing {
        let Some(first) = out.recv().await else { break };
        // A lone frame (often a whole batch of answers already) is written as it is; several
        // are gathered into `buf` first, so that one write carries them all.
        let mut lone: Option<Bytes> = None;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(bytes) => {
                    if buf.is_empty() && lone.is_none() {
                        lone = Some(bytes);
                    } else {
                        if let Some(earlier) = lone.take() {
                            buf.extend_from_slice(&earlier);
                        }
                        buf.extend_from_slice(&bytes);
                    }
                }
                Outgoing::Close => {
                    closing = true;
                    break;
                }
            }
            let queued = buf.len() + lone.as_ref().map_or(0, Bytes::len);
            if queued < WRITE_BATCH {
                next = out.try_recv().ok();
            }
        }
        let pending: &[u8] = match &lone {
            Some(bytes) => bytes,
            None => &buf,
        };
        if !pending.is_empty() {
            tokio::select! {
                biased;
                _ = &mut cut_off => {
                    // Aborted, or closed and the peer does not take the last bytes.
                    cut = true;
                    break;
                }
                written = writer.write_all(pending) => {
                    if let Err(e) = written {
                        link.close(Error::InvalidConnection(format!("write failed: {e}")));
                        break;
                    }
                }
            }
            link.touch_write();
            if buf.capacity() > WRITE_BATCH {
                buf = BytesMut::new();
            } else {
                buf.clear();
            }
        }
    }
    if !cut {
        let _ = writer.shutdown().await;
    }
    // Dropping the write half (and the reader, once it stops) closes the socket.
    link.stop_reader.notify_one();
}

/// Milliseconds since the Unix epoch (for `*ping` answers).
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
