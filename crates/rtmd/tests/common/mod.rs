//! Helpers of the end-to-end tests: a service on loopback, SDK and gate clients, raw
//! connections that write and read frames byte by byte, and the `rtmd` binary.
//!
//! Every wait is bounded by [`WAIT`]: a test that would hang fails instead.
#![allow(dead_code)] // each test binary uses a part of the helpers

pub mod official_sdk;
#[path = "../../../../test-support/redis_keys.rs"]
pub mod redis_keys;

use fpnn::client::{Client, ConnectionEvent};
use fpnn::{ErrorAnswer, Frame, FrameDecoder, Quest, Value};
use rtm_server_sdk::RtmServerClient;
use rtmd::config::{Config, Project};
use rtmd::store::{MemoryStore, Store};
use rtmd::testing::{Clock, MemoryCluster};
use rtmd::Rtmd;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The longest any single wait of a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test project.
pub const PID: i32 = 900_001;
/// Its secret.
pub const SECRET: &str = "e2e-secret-one";

/// Awaits `fut` for at most [`WAIT`], panicking with `what` when it takes longer.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A project with the default policies.
pub fn project(pid: i32, secret: &str) -> Project {
    Project::new(pid, secret)
}

/// A configuration listening on loopback ports chosen by the system.
pub fn loopback_config(dir: &Path, projects: Vec<Project>) -> Config {
    let mut config = Config::development(dir).expect("development configuration");
    config.listen.server_api = "127.0.0.1:0".into();
    config.listen.gate = "127.0.0.1:0".into();
    config.listen.admin = "127.0.0.1:0".into();
    config.projects = projects;
    config
}

/// The service, started in this process over a memory store.
pub struct TestServer {
    /// The service (taken by [`TestServer::shutdown`]).
    pub rtmd: Option<Rtmd>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// The service with the test project [`PID`] / [`SECRET`].
    pub async fn start() -> TestServer {
        TestServer::start_with(vec![project(PID, SECRET)], |_| {}).await
    }

    /// The service with these projects, the configuration adjusted by `adjust`.
    pub async fn start_with(projects: Vec<Project>, adjust: impl FnOnce(&mut Config)) -> Self {
        TestServer::start_over(projects, adjust, Arc::new(MemoryStore::new())).await
    }

    /// The service over a store given by the test.
    pub async fn start_over(
        projects: Vec<Project>,
        adjust: impl FnOnce(&mut Config),
        store: Arc<dyn Store>,
    ) -> TestServer {
        TestServer::start_node(projects, adjust, store, None).await
    }

    /// A node of an in-process cluster: the nodes share `store` and `cluster`.
    pub async fn start_in_cluster(
        cluster: &MemoryCluster,
        store: Arc<dyn Store>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        TestServer::start_node(vec![project(PID, SECRET)], adjust, store, Some(cluster)).await
    }

    async fn start_node(
        projects: Vec<Project>,
        adjust: impl FnOnce(&mut Config),
        store: Arc<dyn Store>,
        cluster: Option<&MemoryCluster>,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = loopback_config(dir.path(), projects);
        adjust(&mut config);
        config.validate().expect("valid test configuration");
        // The service's clock follows tokio's, so that a test on a paused runtime moves the
        // date (token expiry, the `ts` window) along with the timers.
        let mut builder = Rtmd::builder(config).store(store).clock(Clock::tokio());
        if let Some(cluster) = cluster {
            builder = builder.cluster(cluster);
        }
        let rtmd = within("start rtmd", builder.start())
            .await
            .expect("rtmd starts");
        TestServer {
            rtmd: Some(rtmd),
            dir,
        }
    }

    /// The running service.
    pub fn rtmd(&self) -> &Rtmd {
        self.rtmd.as_ref().expect("rtmd is running")
    }

    /// The server API endpoint.
    pub fn api(&self) -> String {
        self.rtmd().server_api_addr().to_string()
    }

    /// The gate endpoint.
    pub fn gate(&self) -> String {
        self.rtmd().gate_addr().to_string()
    }

    /// The admin endpoint.
    pub fn admin(&self) -> SocketAddr {
        self.rtmd().admin_addr().expect("admin port is on")
    }

    /// An SDK client of the test project.
    pub fn sdk(&self) -> RtmServerClient {
        sdk(&self.api(), PID, SECRET)
    }

    /// A token for `uid` of the test project.
    pub async fn token(&self, uid: i64) -> String {
        within("gettoken", self.sdk().get_token(uid))
            .await
            .expect("gettoken")
    }

    /// A plain FPNN client of the server API, for hand-built quests.
    pub fn raw_api(&self) -> Client {
        Client::builder(self.api()).quest_timeout(WAIT).build()
    }

    /// A gate client logged in as `uid` of the test project.
    pub async fn logged_in(&self, uid: i64) -> GateClient {
        let token = self.token(uid).await;
        let gate = GateClient::connect(&self.gate()).await;
        gate.login(PID, uid, &token).await;
        gate
    }

    /// A raw gate connection logged in as `uid` of [`PID`].
    pub async fn raw_logged_in(&self, uid: i64) -> RawConn {
        let token = self.token(uid).await;
        RawConn::logged_in(&self.gate(), uid, &token).await
    }

    /// The number of logged-in sessions.
    pub fn sessions(&self) -> usize {
        self.rtmd().sessions()
    }

    /// Waits (bounded) until the service has `n` logged-in sessions: a close the client saw
    /// reaches the service a moment later.
    pub async fn until_sessions(&self, n: usize) {
        within(&format!("{n} sessions"), async {
            while self.sessions() != n {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }

    /// Unix seconds on the service's clock (which a paused test moves).
    pub fn now(&self) -> i64 {
        self.rtmd().now().secs()
    }

    /// Graceful shutdown.
    pub async fn shutdown(&mut self) {
        if let Some(rtmd) = self.rtmd.take() {
            within("shutdown", rtmd.shutdown()).await;
        }
    }

    /// The temp directory of this service.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// An SDK client with short timeouts and no background reconnect.
pub fn sdk(endpoint: &str, pid: i32, secret: &str) -> RtmServerClient {
    RtmServerClient::builder(pid, secret, endpoint)
        .quest_timeout(WAIT)
        .connect_timeout(WAIT)
        .auto_reconnect(false)
        .build()
}

/// The code of a failed SDK call.
pub fn sdk_code<T: std::fmt::Debug>(result: rtm_server_sdk::Result<T>) -> i32 {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// A signed server API payload: `{pid, sign, salt, ts}` (then the caller adds the rest).
pub fn signed(pid: i32, secret: &str, method: &str, salt: i64, ts: i64) -> Value {
    Value::map()
        .with("pid", pid)
        .with(
            "sign",
            rtm_protocol::sign::sign(pid, secret, salt, method, ts),
        )
        .with("salt", salt)
        .with("ts", ts)
}

static SALT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// A salt not used before by this test binary.
pub fn fresh_salt() -> i64 {
    // Spread over time too, so that binaries running at once do not share salts.
    (now() << 20) + SALT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A signed payload of the test project for `method` and `uid`, signed now.
pub fn signed_now(method: &str, uid: i64) -> Value {
    signed(PID, SECRET, method, fresh_salt(), now()).with("uid", uid)
}

/// The error answer of a failed quest.
pub fn answer_error(result: Result<Value, fpnn::Error>) -> ErrorAnswer {
    match result {
        Err(fpnn::Error::Answer(e)) => e,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// A client of the gate that records the `kickout` pushes it receives and the closing of its
/// connection.
pub struct GateClient {
    /// The FPNN client.
    pub client: Client,
    kicks: mpsc::UnboundedReceiver<Value>,
    closes: mpsc::UnboundedReceiver<String>,
}

impl GateClient {
    /// Connects to the gate.
    pub async fn connect(gate: &str) -> GateClient {
        let (kick_tx, kicks) = mpsc::unbounded_channel();
        let (close_tx, closes) = mpsc::unbounded_channel();
        let client = Client::builder(gate)
            .quest_timeout(WAIT)
            .on_push("kickout", move |_client, params| {
                let kick_tx = kick_tx.clone();
                async move {
                    let _ = kick_tx.send(params);
                    Ok(Value::map())
                }
            })
            .on_event(move |event| {
                if let ConnectionEvent::Closed { reason, .. } = event {
                    let _ = close_tx.send(reason.to_string());
                }
            })
            .build();
        within("connect to the gate", client.connect())
            .await
            .expect("gate connect");
        GateClient {
            client,
            kicks,
            closes,
        }
    }

    /// Sends `auth`; `Ok(ok)` for a normal answer.
    pub async fn auth(&self, pid: i32, uid: i64, token: &str) -> Result<bool, fpnn::Error> {
        let params = Value::map()
            .with("pid", pid)
            .with("uid", uid)
            .with("token", token)
            .with("version", "rtmd-e2e")
            .with("lang", "en");
        let answer = within("auth", self.client.quest("auth", &params)).await?;
        Ok(answer
            .get("ok")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| panic!("auth answer without a bool ok: {answer}")))
    }

    /// Logs in, asserting success.
    pub async fn login(&self, pid: i32, uid: i64, token: &str) {
        let ok = self.auth(pid, uid, token).await.expect("auth answers");
        assert!(ok, "auth {pid}/{uid} answered ok: false");
    }

    /// Sends `auth`, asserting it answers `{ok: false}` (not an error answer).
    pub async fn refused(&self, pid: i32, uid: i64, token: &str) {
        let ok = self.auth(pid, uid, token).await.expect("auth answers");
        assert!(!ok, "auth {pid}/{uid} with {token:.80} answered ok: true");
    }

    /// Sends a gate `ping`: `Ok` while logged in on this same connection.
    pub async fn ping(&self) -> Result<Value, fpnn::Error> {
        within("gate ping", self.client.quest("ping", &Value::map())).await
    }

    /// Asserts the connection is still up and logged in: no close seen, and a `ping` on it
    /// is answered as a logged-in one.
    pub async fn assert_alive(&mut self) {
        if let Ok(reason) = self.closes.try_recv() {
            panic!("the connection closed: {reason}");
        }
        self.ping().await.expect("logged-in ping answers {}");
        assert!(self.kicks.try_recv().is_err(), "a kickout push arrived");
    }

    /// Waits for a `kickout` push.
    pub async fn kicked(&mut self) -> Value {
        within("the kickout push", self.kicks.recv())
            .await
            .expect("client alive")
    }

    /// Waits until the connection has closed; returns the reason.
    pub async fn closed(&mut self) -> String {
        within("the connection to close", self.closes.recv())
            .await
            .expect("client alive")
    }

    /// Waits for a `kickout` push and then the close of the connection.
    pub async fn kicked_and_closed(&mut self) {
        self.kicked().await;
        self.closed().await;
    }
}

/// A connection that writes and reads frames by hand.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    next_seq: u32,
    /// Quests the peer pushed while we waited for an answer.
    pub pushed: Vec<Quest>,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Orderly close (FIN).
    Eof,
    /// Reset.
    Reset,
}

impl RawConn {
    /// Connects to the gate at `gate` and logs in as `uid` of [`PID`] with `token`,
    /// asserting `{ok: true}`.
    pub async fn logged_in(gate: &str, uid: i64, token: &str) -> RawConn {
        RawConn::logged_in_to(gate, PID, uid, token).await
    }

    /// [`RawConn::logged_in`] to project `pid`.
    pub async fn logged_in_to(gate: &str, pid: i32, uid: i64, token: &str) -> RawConn {
        let mut raw = RawConn::connect(gate).await;
        let params = Value::map()
            .with("pid", pid)
            .with("uid", uid)
            .with("token", token);
        let ok = raw.quest("auth", &params).await.expect("auth answers");
        assert_eq!(
            ok.get("ok").and_then(Value::as_bool),
            Some(true),
            "auth of {uid}"
        );
        raw
    }

    /// Connects to `addr`.
    pub async fn connect(addr: &str) -> RawConn {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawConn {
            stream,
            buf: Vec::new(),
            next_seq: 1,
            pushed: Vec::new(),
        }
    }

    /// This side's address: the `ce` the gate sees.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Writes bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        within("write", self.stream.write_all(bytes)).await
    }

    /// The next frame; `Err` when the connection ended first.
    pub async fn next_frame(&mut self) -> Result<Frame, Ending> {
        let decoder = FrameDecoder::default();
        loop {
            if let Some(len) = decoder.needed(&self.buf).expect("peer sends valid frames") {
                if self.buf.len() >= len {
                    let frame = Frame::decode(&self.buf[..len], decoder.max_frame())
                        .expect("peer sends valid frames");
                    self.buf.drain(..len);
                    return Ok(frame);
                }
            }
            let mut chunk = [0u8; 4096];
            match within("read", self.stream.read(&mut chunk)).await {
                Ok(0) => return Err(Ending::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(Ending::Reset),
            }
        }
    }

    /// Sends a two-way msgpack quest and waits for its answer (quests pushed meanwhile go to
    /// [`RawConn::pushed`]).
    pub async fn quest(&mut self, method: &str, params: &Value) -> Result<Value, ErrorAnswer> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let quest = Quest::twoway(method, seq, params).expect("encodable quest");
        let bytes = Frame::Quest(quest).encode().expect("encodable frame");
        self.send(&bytes).await.expect("write quest");
        self.answer(seq).await
    }

    /// Waits for the answer to quest `seq`.
    pub async fn answer(&mut self, seq: u32) -> Result<Value, ErrorAnswer> {
        loop {
            match self.next_frame().await {
                Ok(Frame::Answer(answer)) if answer.seq == seq => {
                    return answer.into_result().expect("decodable answer");
                }
                Ok(Frame::Answer(other)) => panic!("answer to an unknown seq {}", other.seq),
                Ok(Frame::Quest(quest)) => self.pushed.push(quest),
                Err(ending) => panic!("connection ended ({ending:?}) before answer {seq}"),
            }
        }
    }

    /// Sends a raw frame and waits for the answer to `seq`.
    pub async fn raw_quest(&mut self, frame: &[u8], seq: u32) -> Result<Value, ErrorAnswer> {
        self.send(frame).await.expect("write frame");
        self.answer(seq).await
    }

    /// Reads what has arrived without waiting, as one read of a reader would: `true` when
    /// the peer's end of stream (FIN) has arrived, `false` when the connection is open with
    /// nothing more to read. Bytes read go to the buffer of [`RawConn::next_frame`].
    pub fn eof_arrived(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // A reset is an end too.
                Err(_) => return true,
            }
        }
    }

    /// Reads until the peer closes; returns the frames received meanwhile and how it ended.
    pub async fn until_closed(&mut self) -> (Vec<Frame>, Ending) {
        let mut frames = Vec::new();
        loop {
            match self.next_frame().await {
                Ok(frame) => frames.push(frame),
                Err(ending) => return (frames, ending),
            }
        }
    }
}

/// A raw two-way msgpack quest frame with a hand-built payload.
pub fn raw_frame(method: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"FPNN");
    out.push(1); // version
    out.push(0x80); // msgpack
    out.push(1); // two-way quest
    out.push(u8::try_from(method.len()).expect("short method"));
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Hand-built msgpack, to put integers on the wire in a chosen width.
#[derive(Default)]
pub struct Mp(pub Vec<u8>);

impl Mp {
    /// A map of `n` entries (fixmap).
    pub fn map(n: u8) -> Mp {
        assert!(n < 16);
        Mp(vec![0x80 | n])
    }
    /// A str (fixstr or str8).
    pub fn str(mut self, s: &str) -> Mp {
        if s.len() < 32 {
            self.0.push(0xa0 | s.len() as u8);
        } else {
            self.0.push(0xd9);
            self.0.push(u8::try_from(s.len()).expect("short string"));
        }
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// An integer as uint64 (0xcf).
    pub fn u64(mut self, v: u64) -> Mp {
        self.0.push(0xcf);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An integer as int64 (0xd3).
    pub fn i64(mut self, v: i64) -> Mp {
        self.0.push(0xd3);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An integer as uint32 (0xce).
    pub fn u32(mut self, v: u32) -> Mp {
        self.0.push(0xce);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An integer as int32 (0xd2).
    pub fn i32(mut self, v: i32) -> Mp {
        self.0.push(0xd2);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An integer as uint16 (0xcd).
    pub fn u16(mut self, v: u16) -> Mp {
        self.0.push(0xcd);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An integer as uint8 (0xcc).
    pub fn u8(mut self, v: u8) -> Mp {
        self.0.push(0xcc);
        self.0.push(v);
        self
    }
    /// An integer as int8 (0xd0).
    pub fn i8(mut self, v: i8) -> Mp {
        self.0.push(0xd0);
        self.0.push(v as u8);
        self
    }
    /// A positive fixint.
    pub fn fixint(mut self, v: u8) -> Mp {
        assert!(v < 128);
        self.0.push(v);
        self
    }
    /// `nil`.
    pub fn nil(mut self) -> Mp {
        self.0.push(0xc0);
        self
    }
}

/// Sends one HTTP GET to the admin port; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = within("connect to admin", TcpStream::connect(addr))
        .await
        .expect("admin connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    within("write request", stream.write_all(request.as_bytes()))
        .await
        .expect("write request");
    let mut response = Vec::new();
    within("read response", stream.read_to_end(&mut response))
        .await
        .expect("read response");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, body.to_owned())
}

/// The value of one sample (`name{labels} value`) in a Prometheus text page.
pub fn metric(page: &str, sample: &str) -> f64 {
    page.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().expect("numeric sample"))
        })
        .unwrap_or(0.0)
}

/// The `rtmd` binary, running.
pub struct Binary {
    child: Option<Child>,
    /// The server API address.
    pub api: String,
    /// The gate address.
    pub gate: String,
    /// The admin address.
    pub admin: String,
    /// Where its stderr goes.
    pub stderr: PathBuf,
}

/// The secret of the development project in `data_dir`.
pub fn dev_secret(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("dev-project.secret"))
        .expect("dev-project.secret")
        .trim()
        .to_owned()
}

impl Binary {
    /// Starts `rtmd` with the development project in `data_dir`, on loopback ports.
    pub fn start(data_dir: &Path) -> Binary {
        let stderr = data_dir.with_extension(format!("stderr-{}", now_nanos()));
        Binary::start_args(
            &[
                "--data-dir".as_ref(),
                data_dir.as_os_str(),
                "--server-api".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--gate".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--admin".as_ref(),
                "127.0.0.1:0".as_ref(),
            ],
            stderr,
        )
    }

    /// Starts `rtmd` with these arguments; waits for its `rtmd ready` line.
    pub fn start_args(args: &[&std::ffi::OsStr], stderr: PathBuf) -> Binary {
        let err_file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtmd"))
            .args(args)
            // The audit's debug events (device changes) too, for the log tests.
            .env("RUST_LOG", "info,rtmd::audit=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .expect("spawn rtmd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("rtmd ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                panic!("rtmd did not print its ready line; stderr:\n{log}");
            }
        };
        let field = |name: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
                .to_owned()
        };
        Binary {
            api: field("server_api"),
            gate: field("gate"),
            admin: field("admin"),
            child: Some(child),
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`, and reaps the process.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        // `Child::kill` sends SIGKILL on Unix.
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert!(!status.success());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(WAIT) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("rtmd did not exit within {WAIT:?}");
            }
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Runs `rtmd` with `args` until it exits by itself (bounded); returns its output.
pub fn run_to_exit(args: &[&str]) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_rtmd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rtmd");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.expect("rtmd output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("rtmd {args:?} did not exit within {WAIT:?}");
        }
    }
}

/// A memory store that can hold one call of a chosen operation, after the operation and
/// before its result is returned, until the test lets it go: a call that stays in flight,
/// or a race window held open, for as long as the test needs.
pub struct HeldStore {
    /// The store underneath.
    pub inner: MemoryStore,
    hold: std::sync::Mutex<Vec<&'static str>>,
    /// Notified when a held call has arrived.
    pub entered: tokio::sync::Notify,
    /// One permit lets one held call go on.
    pub release: tokio::sync::Semaphore,
}

impl HeldStore {
    /// A store that holds nothing yet.
    pub fn new() -> Arc<HeldStore> {
        Arc::new(HeldStore {
            inner: MemoryStore::new(),
            hold: std::sync::Mutex::new(Vec::new()),
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        })
    }

    /// Holds the next call of `op` (a [`Store`] method name).
    pub fn hold(&self, op: &'static str) {
        self.hold.lock().unwrap().push(op);
    }

    async fn gate(&self, op: &'static str) {
        let held = {
            let mut hold = self.hold.lock().unwrap();
            match hold.iter().position(|h| *h == op) {
                Some(i) => {
                    hold.remove(i);
                    true
                }
                None => false,
            }
        };
        if held {
            self.entered.notify_one();
            self.release
                .acquire()
                .await
                .expect("semaphore open")
                .forget();
        }
    }
}

type StoreResult<T> = Result<T, rtmd::store::StoreError>;

// Each operation runs first and is held after: its result is already decided.
#[async_trait::async_trait]
impl Store for HeldStore {
    async fn generation(&self, pid: i32, uid: i64) -> StoreResult<u64> {
        let result = self.inner.generation(pid, uid).await;
        self.gate("generation").await;
        result
    }
    async fn bump_generation(&self, pid: i32, uid: i64) -> StoreResult<u64> {
        let result = self.inner.bump_generation(pid, uid).await;
        self.gate("bump_generation").await;
        result
    }
    async fn add_device(
        &self,
        pid: i32,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> StoreResult<()> {
        let result = self
            .inner
            .add_device(pid, uid, apptype, device_token, now_ms, max_per_user)
            .await;
        self.gate("add_device").await;
        result
    }
    async fn remove_device(&self, pid: i32, uid: i64, token: &str) -> StoreResult<bool> {
        let result = self.inner.remove_device(pid, uid, token).await;
        self.gate("remove_device").await;
        result
    }
    async fn devices(&self, pid: i32, uid: i64) -> StoreResult<Vec<rtmd::store::DeviceRecord>> {
        let result = self.inner.devices(pid, uid).await;
        self.gate("devices").await;
        result
    }
    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &rtmd::store::Fingerprint,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let result = self
            .inner
            .check_and_record_request(pid, fingerprint, ttl)
            .await;
        self.gate("check_and_record_request").await;
        result
    }
    async fn token_keys(&self) -> StoreResult<Vec<rtmd::store::TokenKey>> {
        self.inner.token_keys().await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }
}
