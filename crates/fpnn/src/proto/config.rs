//! The limits and timers of a connection, and the memory shared by a server's large frames.

use crate::frame::DEFAULT_MAX_FRAME;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keep-alive: ping a quiet peer and declare it lost when it stays silent.
///
/// When nothing has been received for `interval`, the connection sends `*ping` (at most once
/// per `ping_timeout`). When nothing has been received for `interval + ping_timeout *
/// max_retries`, the connection is closed ([`super::CloseReason::KeepAliveLost`], 20012).
/// The defaults are the C++ framework's: 20 s, 3 retries, ping timeout = the quest timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence before the first ping.
    pub interval: Duration,
    /// Pings without an answer before the connection is declared lost.
    pub max_retries: u32,
    /// Timeout of each ping; `None` for the quest timeout (5 s in a bare [`super::Config`]).
    pub ping_timeout: Option<Duration>,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            interval: Duration::from_secs(20),
            max_retries: 3,
            ping_timeout: None,
        }
    }
}

/// The ping timeout of a bare [`super::Config`] whose keep-alive names none.
pub(crate) const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits and timers of one connection.
///
/// The memory a connection can hold is bounded by these numbers: about `read_buffer` of
/// input (a frame longer than that is read into memory reserved from the [`FrameMemory`]
/// shared by the server's connections); output up to the larger of `outbound_budget` and
/// `outbound_high_water`, plus one frame, plus the answers of at most `max_in_flight` quests
/// being handled when the peer stopped reading; and what those quests' handlers hold.
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest frame accepted, header included. Default 8 MiB (the C++ framework's).
    pub max_frame: usize,
    /// Input bytes a connection holds for frames up to this size. Default 16 KiB.
    pub read_buffer: usize,
    /// Where frames longer than `read_buffer` reserve their memory. Default: unlimited (a
    /// client); a server shares one among its connections.
    pub frame_memory: FrameMemory,
    /// Close after this long with no byte received or sent. Default none (a server: 60 s).
    pub idle_timeout: Option<Duration>,
    /// Close when bytes wait to be sent and the peer takes none for this long. Default 30 s.
    pub write_stall_timeout: Option<Duration>,
    /// Output bytes queued (not yet taken by the transport) past which quests and pushes
    /// of this side are refused ([`super::SendError::Full`]). The frame that crosses it is
    /// still queued, so a single frame larger than the budget goes out. Answers are not held
    /// to it: `outbound_high_water` and `max_in_flight` bound them. Default 64 KiB.
    pub outbound_budget: usize,
    /// Output bytes queued past which the connection stops reading and decoding until the
    /// peer takes them (a server's backpressure on a peer that does not read its answers).
    /// `None`: never stop reading (a client, which must always read answers). Default none
    /// (a server: 32 KiB).
    pub outbound_high_water: Option<usize>,
    /// Quests from the peer being handled at once; a two-way quest beyond it is answered
    /// 20011 (`FPNN_EC_CORE_WORK_QUEUE_FULL`) and a one-way one dropped. Default 1024.
    pub max_in_flight: usize,
    /// Keep-alive pings (a client's); off by default.
    pub keep_alive: Option<KeepAlive>,
    /// After a close, how long queued bytes may take to go out before the connection is cut.
    /// Default 5 s.
    pub close_flush: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: DEFAULT_MAX_FRAME,
            read_buffer: DEFAULT_READ_BUFFER,
            frame_memory: FrameMemory::unlimited(),
            idle_timeout: None,
            write_stall_timeout: Some(DEFAULT_WRITE_STALL_TIMEOUT),
            outbound_budget: DEFAULT_OUTBOUND_BUDGET,
            outbound_high_water: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            keep_alive: None,
            close_flush: Duration::from_secs(5),
        }
    }
}

/// Default [`Config::write_stall_timeout`]: 30 s.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::read_buffer`]: 16 KiB.
pub const DEFAULT_READ_BUFFER: usize = 16 * 1024;
/// Default [`Config::outbound_budget`]: 64 KiB.
pub const DEFAULT_OUTBOUND_BUDGET: usize = 64 * 1024;
/// A server's default [`Config::outbound_high_water`]: 32 KiB.
pub const DEFAULT_OUTBOUND_HIGH_WATER: usize = 32 * 1024;
/// Default [`Config::max_in_flight`]: 1024.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// A server's default memory for frames larger than the read buffer: 64 MiB.
pub const DEFAULT_FRAME_MEMORY: usize = 64 * 1024 * 1024;

/// Memory shared by several connections for frames longer than their read buffer.
///
/// A connection whose next frame is longer than [`Config::read_buffer`] reserves the frame's
/// length here before reading it; while the reservation cannot be made, the connection
/// stops reading and tries again shortly. So a server's input memory is at most
/// `connections × read_buffer + limit`, however many peers announce 8 MiB frames. Cheap to
/// clone; clones share the limit.
#[derive(Debug, Clone)]
pub struct FrameMemory {
    inner: Arc<FrameMemoryInner>,
}

#[derive(Debug)]
struct FrameMemoryInner {
    limit: usize,
    used: AtomicUsize,
}

impl FrameMemory {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> FrameMemory {
        FrameMemory {
            inner: Arc::new(FrameMemoryInner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// No limit.
    pub fn unlimited() -> FrameMemory {
        FrameMemory::new(usize::MAX)
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Reserves `n` bytes, if they fit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.inner.limit)
            })
            .is_ok()
    }

    /// Gives back `n` bytes reserved earlier.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.inner.used.fetch_sub(n, Ordering::AcqRel);
        }
    }
}
