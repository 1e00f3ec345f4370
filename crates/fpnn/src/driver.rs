//! The tokio driver of a [`proto::Connection`]: one task per connection moves bytes between
//! the socket and the state machine and fires its timers; handles in other tasks queue
//! quests, answers and closes through the [`Link`] they share with it.
//!
//! The task reads, hands each quest to a [`QuestHandler`] (the server polls a handler's
//! future right there and answers inline when it is ready), and writes what was queued
//! itself, so that a read of 30 pipelined quests costs one read and one write, with no
//! hand-over to another task. The driver works on any `AsyncRead + AsyncWrite` stream (TCP,
//! TLS later, an in-memory pipe in tests).

use crate::error::Error;
use crate::frame::{Answer, Quest};
use crate::payload::Format;
use crate::proto::{CloseReason, Connection, Event, ProtocolError, SendError};
use crate::router::HandlerResult;
use crate::value::Value;
use bytes::{Buf, Bytes};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};

/// Where the answer to a quest this side sent goes.
pub(crate) type Reply = oneshot::Sender<Result<Answer, Error>>;

/// Rounds of reading and writing one poll of the driver may do before it lets other tasks
/// run.
const ROUNDS_PER_POLL: usize = 16;

/// Now, on tokio's clock (which tests can pause and advance).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A flag that is set once and can be awaited.
#[derive(Default)]
pub(crate) struct Latch {
    set: AtomicBool,
    notify: Notify,
}

impl Latch {
    pub fn set(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    pub async fn wait(&self) {
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

/// The state a connection's driver shares with its handles.
pub(crate) struct Link {
    inner: Mutex<LinkInner>,
    /// Set once the connection is closing: handles stop using it.
    closing: Latch,
    /// Set once the driver has finished with the connection (and, for the client, reported
    /// its close).
    finished: Latch,
    /// Notified when queued output was written: quests waiting for room try again.
    room: Notify,
    peer: SocketAddr,
}

struct LinkInner {
    conn: Connection<Reply>,
    /// The driver's task, woken when a handle queued something.
    waker: Option<Waker>,
}

impl Link {
    pub fn new(conn: Connection<Reply>, peer: SocketAddr) -> Arc<Link> {
        Arc::new(Link {
            inner: Mutex::new(LinkInner { conn, waker: None }),
            closing: Latch::default(),
            finished: Latch::default(),
            room: Notify::new(),
            peer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinkInner> {
        // A panic while holding this lock cannot leave the state machine half-updated in a
        // way that matters more than the panic itself; carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state machine, then wakes the driver to act on what changed.
    pub fn update<R>(&self, f: impl FnOnce(&mut Connection<Reply>, Instant) -> R) -> R {
        let (out, waker, closing) = {
            let mut inner = self.lock();
            let out = f(&mut inner.conn, now());
            let closing = inner.conn.is_closing();
            (out, inner.waker.take(), closing)
        };
        if closing {
            self.closing.set();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        out
    }

    /// Reads the state machine.
    pub fn read<R>(&self, f: impl FnOnce(&Connection<Reply>) -> R) -> R {
        f(&self.lock().conn)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_set()
    }

    /// Completes once the connection is closing or closed.
    pub async fn closing(&self) {
        self.closing.wait().await
    }

    /// Completes once the driver has finished with the connection.
    pub async fn finished(&self) {
        self.finished.wait().await
    }

    pub fn mark_finished(&self) {
        self.finished.set();
    }

    /// Why the connection closed, once it is closing.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.read(|conn| conn.close_reason().cloned())
    }

    fn closed_error(&self) -> Error {
        Error::Closed(self.close_reason().unwrap_or(CloseReason::ClosedLocally))
    }

    /// Closes gracefully (queued output still goes out).
    pub fn close(&self, reason: CloseReason) {
        self.update(|conn, now| conn.close(reason, now));
    }

    /// Closes at once, dropping queued output.
    pub fn abort(&self, reason: CloseReason) {
        self.update(|conn, _| conn.abort(reason));
    }

    pub fn close_after_answers(&self) {
        self.update(|conn, now| conn.close_after_answers(now));
    }

    /// Sends a one-way quest.
    pub fn oneway(&self, method: &str, format: Format, params: &Value) -> Result<(), Error> {
        self.update(|conn, now| conn.send_oneway(method, format, params, now))
            .map_err(Error::from)
    }

    /// Finishes one of the peer's quests, handled by a task of its own.
    pub fn finish(&self, seq: Option<u32>, format: Format, result: HandlerResult) {
        self.update(|conn, _| match seq {
            Some(seq) => conn.answer(seq, format, result),
            None => conn.oneway_done(),
        });
    }

    /// Sends a two-way quest and waits for its answer, at most `timeout` (the connection's
    /// own timer fails it with 20003). With `wait_for_room`, a full outbound queue makes the
    /// quest wait for room within its timeout instead of failing at once.
    pub async fn quest(
        &self,
        method: &str,
        format: Format,
        params: &Value,
        timeout: Duration,
        wait_for_room: bool,
    ) -> Result<Value, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (seq, rx) = loop {
            let room = self.room.notified();
            let (tx, rx) = oneshot::channel();
            let sent = self.update(|conn, now| {
                let left = deadline.into_std().saturating_duration_since(now);
                conn.send_quest(method, format, params, left, tx, now)
            });
            match sent {
                Ok(seq) => break (seq, rx),
                Err(SendError::Full { .. }) if wait_for_room => {
                    if tokio::time::timeout_at(deadline, room).await.is_err() {
                        return Err(Error::Timeout(timeout));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        // However this function ends (answer, timeout, error, or the caller dropping the
        // future), the seq leaves the table.
        let mut guard = Forget {
            link: self,
            seq: Some(seq),
        };
        let reply = rx.await;
        guard.seq = None;
        match reply {
            Ok(Ok(answer)) => match answer.into_result().map_err(Error::decode)? {
                Ok(body) => Ok(body),
                Err(error_answer) => Err(Error::Answer(error_answer)),
            },
            Ok(Err(Error::Timeout(_))) => Err(Error::Timeout(timeout)),
            Ok(Err(e)) => Err(e),
            // The driver went away without a word: the connection is gone.
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Quests this side sent that wait for an answer.
    pub fn pending_len(&self) -> usize {
        self.read(|conn| conn.pending())
    }
}

/// Forgets a quest whose caller stopped waiting.
struct Forget<'a> {
    link: &'a Link,
    seq: Option<u32>,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            self.link.update(|conn, _| conn.forget_quest(seq));
        }
    }
}

/// What became of a quest handed to a [`QuestHandler`].
pub(crate) enum Handled {
    /// Finished at once with this result (nothing is sent for a one-way quest).
    Inline(HandlerResult),
    /// A task of its own finishes it later ([`Link::finish`]).
    Later,
    /// The handler already finished it on the connection itself (the `*key` exchange).
    #[cfg_attr(not(feature = "encryption"), allow(dead_code))]
    Finished,
    /// The quest cannot be handled (an undecodable payload): close the connection.
    Close(CloseReason),
}

/// The params of a quest, or the close of the connection when its payload cannot be decoded
/// (the official framework closes such a connection without an answer).
pub(crate) fn params_or_close(quest: &Quest) -> Result<Value, Handled> {
    quest.params().map_err(|error| {
        Handled::Close(CloseReason::Protocol(ProtocolError::BadPayload {
            method: quest.method.clone(),
            error,
        }))
    })
}

/// What to do with the quests the peer sends.
pub(crate) trait QuestHandler: Send + 'static {
    /// Handles one quest.
    fn quest(&mut self, link: &Arc<Link>, quest: Quest) -> Handled;

    /// Called after the quests of one batch were finished inline and their answers queued.
    fn batch_done(&mut self) {}
}

/// A byte stream a connection runs on.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Ready when a read would find bytes (or an error). A stream that cannot tell is
    /// always ready. The driver asks before it gives the connection's input buffer memory,
    /// so that an idle connection holds none.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Transport for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + ?Sized> Transport for Box<T> {}

#[cfg(test)]
impl Transport for tokio::io::DuplexStream {}

/// Runs a connection until it is finished with; returns why it closed.
pub(crate) async fn drive<S, H>(stream: S, link: Arc<Link>, handler: H) -> CloseReason
where
    S: Transport,
    H: QuestHandler,
{
    let mut driver = Driver {
        stream,
        link,
        handler,
        transmit: None,
        timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        timer_at: None,
        shut_down: false,
    };
    std::future::poll_fn(|cx| driver.poll(cx)).await
}

struct Driver<S, H> {
    stream: S,
    link: Arc<Link>,
    handler: H,
    /// Bytes handed out by the state machine and not yet all written.
    transmit: Option<Bytes>,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<Instant>,
    shut_down: bool,
}

impl<S, H> Driver<S, H>
where
    S: Transport,
    H: QuestHandler,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = self.handle_events();
            let mut inner = self.link.lock();
            if !inner
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.waker = Some(cx.waker().clone());
            }
            let now = now();

            // Timers.
            if let Some(at) = inner.conn.poll_timeout() {
                if at <= now {
                    inner.conn.handle_timeout(now);
                    drop(inner);
                    self.sync_closing();
                    continue;
                }
            }

            // Input: buffer memory only once there is something to read.
            let idle = inner.conn.buffered_input() == 0
                && inner.conn.read_limit() > 0
                && self.stream.poll_read_ready(cx).is_pending();
            let buf = if idle { None } else { inner.conn.recv_buffer() };
            if let Some(mut buf) = buf {
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut buf) {
                    Poll::Ready(Ok(n)) => {
                        inner.conn.handle_input(n, now);
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        inner.conn.abort(CloseReason::io(e));
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }

            // Output.
            if self.transmit.is_none() {
                self.transmit = inner.conn.poll_transmit();
            }
            let closed = inner.conn.is_closed();
            if closed {
                // Aborted (or cut off after the close flush): what is left is dropped.
                self.transmit = None;
            }
            let next_timer = inner.conn.poll_timeout();
            drop(inner);
            if let Some(bytes) = &mut self.transmit {
                match Pin::new(&mut self.stream).poll_write(cx, bytes) {
                    Poll::Ready(Ok(0)) => {
                        let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                        self.link.lock().conn.abort(CloseReason::io(e));
                        self.transmit = None;
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        bytes.advance(n);
                        if bytes.is_empty() {
                            self.transmit = None;
                        }
                        self.link.lock().conn.on_transmitted(n, now);
                        self.link.room.notify_waiters();
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        self.link.lock().conn.abort(CloseReason::io(e));
                        self.transmit = None;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            self.sync_closing();

            if closed && self.transmit.is_none() && !progress {
                return self.finish(cx);
            }
            if !progress {
                self.arm_timer(next_timer, cx);
                return Poll::Pending;
            }
        }
        // Busy: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Delivers answers and failures, and hands the peer's quests to the handler. Returns
    /// whether there was anything.
    fn handle_events(&mut self) -> bool {
        let mut any = false;
        let mut inline = false;
        let mut inner = self.link.lock();
        loop {
            match inner.conn.poll_event() {
                Some(Event::Answer { waiter, answer }) => {
                    let _ = waiter.send(Ok(answer));
                }
                Some(Event::Failed { waiter, error }) => {
                    let _ = waiter.send(Err(error));
                }
                Some(Event::Quest(quest)) => {
                    drop(inner);
                    let (seq, format) = (quest.seq, quest.format);
                    let handled = self.handler.quest(&self.link, quest);
                    inner = self.link.lock();
                    match handled {
                        Handled::Inline(result) => {
                            match seq {
                                Some(seq) => inner.conn.answer(seq, format, result),
                                None => inner.conn.oneway_done(),
                            }
                            inline = true;
                        }
                        Handled::Later | Handled::Finished => {}
                        Handled::Close(reason) => {
                            inner.conn.oneway_done();
                            inner.conn.close(reason, now());
                        }
                    }
                }
                None => break,
            }
            any = true;
        }
        drop(inner);
        if inline {
            self.handler.batch_done();
        }
        any
    }

    fn sync_closing(&self) {
        if self.link.read(|conn| conn.is_closing()) {
            self.link.closing.set();
        }
    }

    fn arm_timer(&mut self, at: Option<Instant>, cx: &mut Context<'_>) {
        if let Some(at) = at {
            if self.timer_at != Some(at) {
                self.timer.as_mut().reset(at.into());
                self.timer_at = Some(at);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                // Already due: poll again at once.
                self.timer_at = None;
                cx.waker().wake_by_ref();
            }
        } else {
            self.timer_at = None;
        }
    }

    /// The state machine is done: shut the stream's write side down and report why.
    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        if !self.shut_down {
            match Pin::new(&mut self.stream).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => self.shut_down = true,
            }
        }
        // Failures of quests still waiting were queued at the close; deliver them.
        self.handle_events();
        self.link.closing.set();
        let reason = self
            .link
            .close_reason()
            .unwrap_or(CloseReason::ClosedLocally);
        Poll::Ready(reason)
    }
}

/// Milliseconds since the Unix epoch (for `*ping` answers).
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
