//! Helpers shared by the end-to-end tests: bounded waits, a channel of client events, raw
//! frame I/O on plain sockets, fake servers and the official test vectors.
//!
//! Every test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use bytes::Bytes;
use fpnn::client::ConnectionEvent;
use fpnn::{Frame, FrameDecoder, Value, DEFAULT_MAX_FRAME};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The longest any single wait in a test may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {LIMIT:?} waiting for: {what}"),
    }
}

/// A small deterministic pseudo-random generator (an LCG), so runs are reproducible.
pub struct Lcg(u64);

impl Lcg {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed.wrapping_mul(6364136223846793005).wrapping_add(1))
    }

    /// The next 32 pseudo-random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u32() as u8).collect()
    }
}

/// Client connection events, collected through a channel.
pub struct Events {
    rx: mpsc::UnboundedReceiver<ConnectionEvent>,
}

/// A hook for [`fpnn::client::ClientBuilder::on_event`] and the receiving end.
pub fn events() -> (impl Fn(&ConnectionEvent) + Send + Sync + 'static, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let hook = move |event: &ConnectionEvent| {
        let _ = tx.send(event.clone());
    };
    (hook, Events { rx })
}

/// What a `Closed` event said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub by_error: bool,
    pub code: i32,
    pub will_reconnect: bool,
}

impl Events {
    /// The next event.
    pub async fn next(&mut self) -> ConnectionEvent {
        within("a connection event", self.rx.recv())
            .await
            .expect("the client is alive")
    }

    /// The next event, which must be `Connected`; returns its `is_reconnect`.
    /// `ConnectFailed` events before it are skipped.
    pub async fn connected(&mut self) -> bool {
        loop {
            match self.next().await {
                ConnectionEvent::Connected { is_reconnect, .. } => return is_reconnect,
                ConnectionEvent::ConnectFailed { .. } => continue,
                other => panic!("expected Connected, got {other:?}"),
            }
        }
    }

    /// The next event, which must be `Closed`.
    pub async fn closed(&mut self) -> Closed {
        match self.next().await {
            ConnectionEvent::Closed {
                by_error,
                reason,
                will_reconnect,
            } => Closed {
                by_error,
                code: reason.code(),
                will_reconnect,
            },
            other => panic!("expected Closed, got {other:?}"),
        }
    }

    /// An event already reported, if any.
    pub fn try_next(&mut self) -> Option<ConnectionEvent> {
        self.rx.try_recv().ok()
    }
}

/// Reads one whole frame from a raw socket: `None` at a clean end of stream before a frame.
/// Returns the frame's exact bytes and the decoded frame.
pub async fn read_frame(stream: &mut TcpStream) -> Option<(Vec<u8>, Frame)> {
    let mut bytes = vec![0u8; 12];
    match stream.read_exact(&mut bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("read failed: {e}"),
    }
    let len = FrameDecoder::default()
        .needed(&bytes)
        .expect("a valid header")
        .expect("a whole header");
    bytes.resize(len, 0);
    stream
        .read_exact(&mut bytes[12..])
        .await
        .expect("the frame's body");
    let frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME).expect("a valid frame");
    Some((bytes, frame))
}

/// Reads one frame, failing the test if the stream ends first or it takes too long.
pub async fn expect_frame(stream: &mut TcpStream) -> (Vec<u8>, Frame) {
    within("a frame", read_frame(stream))
        .await
        .expect("a frame, not the end of the stream")
}

/// Writes a frame to a raw socket.
pub async fn write_frame(stream: &mut TcpStream, frame: impl Into<Frame>) {
    let bytes: Bytes = frame.into().encode().expect("encodable");
    stream.write_all(&bytes).await.expect("write");
}

/// Waits until the peer has closed `stream` (end of stream or a reset), discarding any bytes.
pub async fn assert_closed(stream: &mut TcpStream) {
    within("the peer to close the socket", async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
    })
    .await
}

/// Closes a socket with a reset (RST) instead of an orderly FIN: SO_LINGER 0, then close.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(stream);
}

/// A loopback address where nothing listens (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A raw loopback listener for a fake server, and its address as a client endpoint.
pub async fn fake_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

/// The bytes of the official vector whose `###` heading starts with `title`.
pub fn vector(title: &str) -> Vec<u8> {
    let text = include_str!("../data/fpnn-vectors.txt");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("### ") {
            if heading.starts_with(title) {
                return hex(lines.next().expect("a hex line under the heading"));
            }
        }
    }
    panic!("no vector titled {title:?}");
}

/// Bytes from hex digits (spaces ignored).
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(s, 16).expect("hex")
        })
        .collect()
}

/// `{i: n}`, the payload most tests echo.
pub fn numbered(n: i64) -> Value {
    Value::map().with("i", n)
}

/// A proptest configuration of `cases` cases from the fixed `seed`, unless the environment
/// names a seed (`PROPTEST_RNG_SEED`) or a number of cases (`PROPTEST_CASES`). A failure
/// prints its minimal input and the seed reproduces it: no regression files to keep.
pub fn proptest_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(seed);
    }
    config.failure_persistence = None;
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        config.cases = cases;
    }
    config
}
