//! Cluster mode end to end: several real `rtmd` processes sharing one Redis.
//!
//! The shared Redis is 127.0.0.1:6379; each test uses a key prefix of its own and deletes its
//! keys at the end. When no Redis answers there, the tests print
//! "SKIPPED: no Redis on 127.0.0.1:6379" and return, unless `RTM_REQUIRE_REDIS=1` (CI), where
//! they fail. The outage test runs a private `redis-server` on a free port and kills it; the
//! shared Redis is never stopped. Every wait is bounded; all traffic stays on loopback.
//!
//! The kickout latency measurement is an ignored test, run by hand:
//!
//! ```text
//! cargo test -p rtmd --release --test cluster -- --ignored --nocapture kickout_latency
//! ```
//!
//! Set `RTMD_TEST_LOG=1` to see the nodes' logs.

#[path = "common/official_sdk.rs"]
#[allow(dead_code)] // the Python generator is for the other tests
mod official_sdk;
#[path = "../../../test-support/redis_keys.rs"]
mod redis_keys;

use fpnn::client::{Client, ConnectionEvent};
use fpnn::Value;
use redis_keys::delete_prefix;
use rtm_server_sdk::RtmServerClient;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const PID: i32 = 4242;
const SECRET: &str = "cluster-test-secret";
const SHARED_REDIS: &str = "redis://127.0.0.1:6379/0";
/// RTM's "unknown error", what a store failure answers.
const UNKNOWN_ERROR: i32 = 200999;

// ---------------------------------------------------------------------------------------
// Redis helpers

/// `true` when the shared Redis answers; otherwise says SKIPPED (or fails under
/// `RTM_REQUIRE_REDIS=1`).
async fn shared_redis_or_skip() -> bool {
    match redis_ping(SHARED_REDIS).await {
        Ok(()) => true,
        Err(e) if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("RTM_REQUIRE_REDIS=1 but no Redis on 127.0.0.1:6379: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Redis on 127.0.0.1:6379 ({e})");
            false
        }
    }
}

async fn redis_conn(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    match tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

async fn redis_ping(url: &str) -> Result<(), String> {
    let mut conn = redis_conn(url).await?;
    let pong: Result<String, _> = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async(&mut conn),
    )
    .await
    .map_err(|_| "PING timed out".to_string())?;
    pong.map(drop).map_err(|e| e.to_string())
}

/// A key prefix no other test run uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("rtmd-cluster-{test}-{}-{nanos}", std::process::id())
}

/// The user's live registry members (`node|conn|ce`), as the layout in `store/redis.rs`
/// documents them.
async fn live_sessions(url: &str, prefix: &str, uid: i64) -> Vec<String> {
    let mut conn = redis_conn(url).await.expect("redis");
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    redis::cmd("ZRANGEBYSCORE")
        .arg(format!("{{{prefix}:{PID}:{uid}}}:sessions"))
        .arg(format!("({now_ms}"))
        .arg("+inf")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The `ce` part of a registry member.
fn ce_of(member: &str) -> String {
    member
        .splitn(3, '|')
        .nth(2)
        .expect("node|conn|ce")
        .to_owned()
}

/// A private `redis-server` on a port of its own, without persistence; killed on drop.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

impl PrivateRedis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn start_on(port: u16) -> Option<PrivateRedis> {
        PrivateRedis::start_with(port, &[]).await
    }

    async fn start_with(port: u16, extra: &[&str]) -> Option<PrivateRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = PrivateRedis {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if redis_ping(&redis.url()).await.is_ok() {
                return Some(redis);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Sends a signal to the server (`STOP` freezes it: connections stay open, nothing
    /// answers; `CONT` thaws it).
    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------
// rtmd nodes

struct Options {
    session_ttl: &'static str,
    command_timeout: &'static str,
    multi_login: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session_ttl: "3s",
            command_timeout: "1s",
            multi_login: true,
        }
    }
}

/// One `rtmd` process; killed on drop.
struct Node {
    child: Child,
    server_api: String,
    gate: String,
    admin: String,
    _dir: tempfile::TempDir,
}

fn write_config(dir: &Path, redis_url: &str, prefix: &str, o: &Options) -> std::path::PathBuf {
    let path = dir.join("rtmd.toml");
    let text = format!(
        r#"
data_dir = "{data}"
store = "{redis_url}"
[listen]
server_api = "127.0.0.1:0"
gate = "127.0.0.1:0"
admin = "127.0.0.1:0"
[redis]
key_prefix = "{prefix}"
session_ttl = "{ttl}"
command_timeout = "{timeout}"
[[projects]]
pid = {PID}
secrets = ["{SECRET}"]
multi_login = {multi}
"#,
        data = dir.join("data").display(),
        ttl = o.session_ttl,
        timeout = o.command_timeout,
        multi = o.multi_login,
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

fn rtmd_command(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rtmd"));
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "rtmd=info,warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if std::env::var_os("RTMD_TEST_LOG").is_some() {
        command.stderr(Stdio::inherit());
    } else {
        command.stderr(Stdio::null());
    }
    command
}

impl Node {
    fn start(redis_url: &str, prefix: &str, options: &Options) -> Node {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), redis_url, prefix, options);
        let mut child = rtmd_command(&config).spawn().expect("start rtmd");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("rtmd ready ") => {
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                            .expect("a field of the ready line")
                            .to_owned()
                    };
                    return Node {
                        server_api: field("server_api"),
                        gate: field("gate"),
                        admin: field("admin"),
                        child,
                        _dir: dir,
                    };
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("rtmd did not get ready within 20 s ({status:?}); rerun with RTMD_TEST_LOG=1");
                }
            }
        }
    }

    fn sdk(&self) -> RtmServerClient {
        RtmServerClient::builder(PID, SECRET, self.server_api.clone())
            .quest_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
    }

    fn kill9(&mut self) {
        // `Child::kill` is SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn metrics(&self) -> String {
        let fetch = async {
            let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: rtmd\r\n\r\n")
                .await
                .ok()?;
            let mut body = String::new();
            stream.read_to_string(&mut body).await.ok()?;
            Some(body)
        };
        tokio::time::timeout(Duration::from_secs(5), fetch)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Sessions of this node kicked on behalf of another node, by message or by refresh (a
    /// refresh running between the kicker's registry update and its message applies it first).
    async fn kicks_received(&self) -> f64 {
        let mut sum = 0.0;
        for path in ["message", "refresh"] {
            let sample = format!("rtmd_cluster_kicks_received_total{{path=\"{path}\"}}");
            sum += self.metric(&sample).await.unwrap_or(0.0);
        }
        sum
    }

    async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// End users

/// A logged-in (or refused) app connection to a gate.
struct User {
    client: Client,
    closed: watch::Receiver<bool>,
    pushed_kickout: Arc<AtomicBool>,
    kicked: watch::Receiver<bool>,
}

impl User {
    /// Connects to `gate` and sends `auth`; the answer's `ok`, or the error answer.
    async fn login(gate: &str, uid: i64, token: &str) -> (Result<bool, fpnn::Error>, User) {
        let (tx, closed) = watch::channel(false);
        let (kick_tx, kicked) = watch::channel(false);
        let pushed = Arc::new(AtomicBool::new(false));
        let flag = pushed.clone();
        let client = Client::builder(gate)
            .quest_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .on_push("kickout", move |_client, _params| {
                flag.store(true, Ordering::SeqCst);
                let _ = kick_tx.send(true);
                async { Ok(Value::map()) }
            })
            .on_event(move |event| {
                if matches!(event, ConnectionEvent::Closed { .. }) {
                    let _ = tx.send(true);
                }
            })
            .build();
        let params = Value::map()
            .with("pid", PID)
            .with("uid", uid)
            .with("token", token);
        let answer = client.quest("auth", &params).await.map(|answer| {
            answer
                .get("ok")
                .and_then(Value::as_bool)
                .expect("auth answers {ok: bool}")
        });
        let user = User {
            client,
            closed,
            pushed_kickout: pushed,
            kicked,
        };
        (answer, user)
    }

    async fn logged_in(gate: &str, uid: i64, token: &str) -> User {
        let (ok, user) = User::login(gate, uid, token).await;
        assert!(ok.expect("auth answered"), "auth refused a valid token");
        user
    }

    /// Waits until the gate closed the connection; `false` after `limit`.
    async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.closed.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the gate pushed `kickout`; `false` after `limit`.
    async fn kicked_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.kicked.wait_for(|k| *k))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn is_open(&self) -> bool {
        !*self.closed.borrow() && self.client.is_connected()
    }
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn tokens_and_revocations_work_across_nodes() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("tokens");
    let o = Options::default();
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let uid = 1001;
    let token = a.sdk().get_token(uid).await.unwrap();
    let _on_b = User::logged_in(&b.gate, uid, &token).await;

    b.sdk().remove_token(uid).await.unwrap();
    let (ok, _) = User::login(&a.gate, uid, &token).await;
    assert!(!ok.unwrap(), "a token revoked on B still logs in on A");

    // A new token, minted on B after the revocation, logs in on A.
    let fresh = b.sdk().get_token(uid).await.unwrap();
    let _on_a = User::logged_in(&a.gate, uid, &fresh).await;
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn kickout_reaches_sessions_on_other_nodes() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("kickout");
    let o = Options::default();
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let uid = 2002;
    let token = a.sdk().get_token(uid).await.unwrap();

    // Two logins on B; the registry tells their endpoints apart.
    let mut first = User::logged_in(&b.gate, uid, &token).await;
    let members = live_sessions(SHARED_REDIS, &prefix, uid).await;
    assert_eq!(members.len(), 1, "{members:?}");
    let first_ce = ce_of(&members[0]);
    let mut second = User::logged_in(&b.gate, uid, &token).await;
    let mut third = User::logged_in(&a.gate, uid, &token).await;
    assert_eq!(live_sessions(SHARED_REDIS, &prefix, uid).await.len(), 3);

    // kickout with ce on A: only that login, held on B.
    a.sdk().kickout_endpoint(uid, &first_ce).await.unwrap();
    assert!(first.closed_within(Duration::from_secs(5)).await);
    assert!(first.pushed_kickout.load(Ordering::SeqCst));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(second.is_open() && third.is_open());

    // kickout of every login on A: the one on B and the one on A itself.
    a.sdk().kickout(uid).await.unwrap();
    assert!(second.closed_within(Duration::from_secs(5)).await);
    assert!(third.closed_within(Duration::from_secs(5)).await);
    assert!(second.pushed_kickout.load(Ordering::SeqCst));
    assert!(live_sessions(SHARED_REDIS, &prefix, uid).await.is_empty());
    assert_eq!(b.kicks_received().await, 2.0);

    // An offline user: OK as on a single node.
    b.sdk().kickout(uid + 1).await.unwrap();
    delete_prefix(SHARED_REDIS, &prefix).await;
}

/// A kick whose message never arrives (here: written into the registry by hand, as a node
/// does before publishing) still reaches its session at the owner's next refresh.
#[tokio::test]
async fn a_lost_kick_message_is_repaired_by_the_refresh() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("repair");
    let o = Options {
        session_ttl: "3s",
        ..Options::default()
    };
    let b = Node::start(SHARED_REDIS, &prefix, &o);
    let uid = 2003;
    let token = b.sdk().get_token(uid).await.unwrap();
    let mut user = User::logged_in(&b.gate, uid, &token).await;
    let member = live_sessions(SHARED_REDIS, &prefix, uid).await.remove(0);

    let mut conn = redis_conn(SHARED_REDIS).await.unwrap();
    let sessions = format!("{{{prefix}:{PID}:{uid}}}:sessions");
    let kicked = format!("{{{prefix}:{PID}:{uid}}}:kicked");
    let (secs, _): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let _: i64 = redis::cmd("ZREM")
        .arg(&sessions)
        .arg(&member)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(&kicked)
        .arg((secs + 3600) * 1000)
        .arg(&member)
        .query_async(&mut conn)
        .await
        .unwrap();

    // One refresh period is 1 s.
    assert!(user.closed_within(Duration::from_secs(3)).await);
    assert!(user.pushed_kickout.load(Ordering::SeqCst));
    assert_eq!(
        b.metric("rtmd_cluster_kicks_received_total{path=\"refresh\"}")
            .await,
        Some(1.0)
    );
    assert!(live_sessions(SHARED_REDIS, &prefix, uid).await.is_empty());
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn single_login_projects_kick_the_older_login_on_another_node() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("single");
    let o = Options {
        multi_login: false,
        ..Options::default()
    };
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let uid = 3003;
    let token = a.sdk().get_token(uid).await.unwrap();
    let mut older = User::logged_in(&a.gate, uid, &token).await;
    let newer = User::logged_in(&b.gate, uid, &token).await;
    assert!(older.closed_within(Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(newer.is_open());
    assert_eq!(live_sessions(SHARED_REDIS, &prefix, uid).await.len(), 1);
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn devices_are_one_registry() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("devices");
    let o = Options::default();
    let (a, b, c) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    a.sdk().add_device(1, "apns", "device-x").await.unwrap();
    let on_b = b.sdk().get_devices(1).await.unwrap();
    assert_eq!(on_b.len(), 1);
    assert_eq!(on_b[0].devicetoken, "device-x");

    // Added for another user on C: it moves.
    c.sdk().add_device(2, "fcm", "device-x").await.unwrap();
    assert!(a.sdk().get_devices(1).await.unwrap().is_empty());
    let moved = b.sdk().get_devices(2).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].apptype, "fcm");

    // The former owner cannot remove it any more, from any node.
    a.sdk().remove_device(1, "device-x").await.unwrap();
    assert_eq!(c.sdk().get_devices(2).await.unwrap().len(), 1);
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn a_signed_call_replayed_to_another_node_is_refused() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("replay");
    let o = Options::default();
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let salt = 987_654_321;
    let params = Value::map()
        .with("pid", PID)
        .with(
            "sign",
            rtm_protocol::sign::sign(PID, SECRET, salt, "gettoken", ts),
        )
        .with("salt", salt)
        .with("ts", ts)
        .with("uid", 7);
    let to_a = Client::new(a.server_api.clone());
    let first = to_a.quest("gettoken", &params).await.unwrap();
    assert!(first.get("token").is_some());
    let to_b = Client::new(b.server_api.clone());
    match to_b.quest("gettoken", &params).await {
        Err(fpnn::Error::Answer(answer)) => assert_eq!(answer.code, 200006, "{}", answer.ex),
        other => panic!("a replay on another node was not refused: {other:?}"),
    }
    delete_prefix(SHARED_REDIS, &prefix).await;
}

/// Two official C++ SDK processes started in the same second, each behind its own node:
/// the same salts, so the same signs, for distinct users. Every call is answered; an exact
/// resend of one of them to the other node is refused.
#[tokio::test]
async fn two_cpp_processes_on_two_nodes_share_salts_and_are_all_answered() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("cpp-salts");
    let o = Options::default();
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let burst = |first_uid: i64| {
        let mut process = official_sdk::CppMidGenerator::new(official_sdk::frozen(second));
        (0..100)
            .map(|i| {
                official_sdk::cpp_gettoken(PID, SECRET, process.gen_mid(), second, first_uid + i)
            })
            .collect::<Vec<_>>()
    };
    let (to_a, to_b) = (
        Client::new(a.server_api.clone()),
        Client::new(b.server_api.clone()),
    );
    let send = |client: &Client, quests: Vec<Value>| {
        let calls: Vec<_> = quests
            .into_iter()
            .map(|q| {
                let client = client.clone();
                tokio::spawn(async move { client.quest("gettoken", &q).await })
            })
            .collect();
        async move {
            let mut answered = 0;
            for call in calls {
                let answer = call.await.unwrap().expect("answered");
                assert!(answer.get("token").is_some());
                answered += 1;
            }
            answered
        }
    };
    let (first, second_process) = (burst(1), burst(1001));
    let resend = first[5].clone();
    assert_eq!(first[5].get("sign"), second_process[5].get("sign"));
    let (x, y) = tokio::join!(send(&to_a, first), send(&to_b, second_process));
    assert_eq!(x + y, 200);
    match to_b.quest("gettoken", &resend).await {
        Err(fpnn::Error::Answer(answer)) => assert_eq!(answer.code, 200006, "{}", answer.ex),
        other => panic!("a resend on another node was not refused: {other:?}"),
    }
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn a_killed_node_leaves_the_registry_within_the_session_ttl() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("kill9");
    let o = Options {
        session_ttl: "2s",
        ..Options::default()
    };
    let a = Node::start(SHARED_REDIS, &prefix, &o);
    let mut b = Node::start(SHARED_REDIS, &prefix, &o);
    let token = a.sdk().get_token(4004).await.unwrap();
    let _user = User::logged_in(&b.gate, 4004, &token).await;
    // Refreshed while B lives: still there after more than one TTL.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(live_sessions(SHARED_REDIS, &prefix, 4004).await.len(), 1);

    b.kill9();
    let killed = Instant::now();
    let gone = eventually(Duration::from_secs(5), || async {
        live_sessions(SHARED_REDIS, &prefix, 4004).await.is_empty()
    })
    .await;
    let took = killed.elapsed();
    assert!(gone, "the dead node's session is still live after 5 s");
    // Bound: the TTL (2 s) after its last refresh, which was at most TTL/3 before the kill.
    assert!(took <= Duration::from_millis(2500), "took {took:?}");
    // A kickout of that user now answers OK at once (nothing to reach).
    a.sdk()
        .with_timeout(Duration::from_secs(2))
        .kickout(4004)
        .await
        .unwrap();
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn a_stopped_node_takes_its_sessions_out_of_the_registry() {
    if !shared_redis_or_skip().await {
        return;
    }
    let prefix = unique_prefix("sigterm");
    let o = Options {
        session_ttl: "30s",
        ..Options::default()
    };
    let a = Node::start(SHARED_REDIS, &prefix, &o);
    let token = a.sdk().get_token(4005).await.unwrap();
    let mut user = User::logged_in(&a.gate, 4005, &token).await;
    assert_eq!(live_sessions(SHARED_REDIS, &prefix, 4005).await.len(), 1);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(a.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(user.closed_within(Duration::from_secs(15)).await);
    // Long before the 30 s TTL.
    assert!(
        eventually(Duration::from_secs(5), || async {
            live_sessions(SHARED_REDIS, &prefix, 4005).await.is_empty()
        })
        .await
    );
    delete_prefix(SHARED_REDIS, &prefix).await;
}

#[tokio::test]
async fn a_redis_outage_gives_bounded_errors_and_the_nodes_recover() {
    if !shared_redis_or_skip().await {
        return;
    }
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start_on(port).await else {
        if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("RTM_REQUIRE_REDIS=1 but redis-server could not be started");
        }
        eprintln!("SKIPPED: redis-server could not be started for the outage test");
        return;
    };
    let url = redis.url();
    let prefix = unique_prefix("outage");
    let o = Options {
        session_ttl: "3s",
        command_timeout: "500ms",
        ..Options::default()
    };
    let a = Node::start(&url, &prefix, &o);
    let b = Node::start(&url, &prefix, &o);
    let uid = 5005;
    let token = a.sdk().get_token(uid).await.unwrap();
    let mut before = User::logged_in(&b.gate, uid, &token).await;
    let bound = Duration::from_secs(3);

    // A frozen Redis: connections open, no answers. Calls time out within the bound.
    redis.signal("STOP");
    let started = Instant::now();
    let e = a.sdk().get_token(uid).await.unwrap_err();
    assert!(
        started.elapsed() < bound,
        "gettoken took {:?}",
        started.elapsed()
    );
    assert_eq!(e.code(), UNKNOWN_ERROR, "{e}");
    assert!(e.message().contains("did not answer"), "{e}");
    let started = Instant::now();
    let (answer, _refused) = User::login(&b.gate, uid, &token).await;
    assert!(
        started.elapsed() < bound,
        "auth took {:?}",
        started.elapsed()
    );
    assert!(
        !matches!(answer, Ok(true)),
        "a login was accepted without Redis"
    );
    redis.signal("CONT");
    assert!(
        eventually(Duration::from_secs(10), || async {
            a.sdk()
                .with_timeout(Duration::from_secs(2))
                .get_token(uid)
                .await
                .is_ok()
        })
        .await,
        "gettoken does not work again after Redis thawed"
    );

    // A dead Redis: connections refused.
    redis.stop();

    // Calls that need Redis answer an error, quickly, saying why.
    let started = Instant::now();
    let e = a.sdk().get_token(uid).await.unwrap_err();
    assert!(
        started.elapsed() < bound,
        "gettoken took {:?}",
        started.elapsed()
    );
    assert_eq!(e.code(), UNKNOWN_ERROR, "{e}");
    assert!(e.message().contains("Redis"), "{e}");

    let started = Instant::now();
    let e = a.sdk().kickout(uid).await.unwrap_err();
    assert!(
        started.elapsed() < bound,
        "kickout took {:?}",
        started.elapsed()
    );
    assert_eq!(e.code(), UNKNOWN_ERROR, "{e}");

    // A login that needs Redis fails closed.
    let started = Instant::now();
    let (answer, _refused) = User::login(&b.gate, uid, &token).await;
    assert!(
        started.elapsed() < bound,
        "auth took {:?}",
        started.elapsed()
    );
    match answer {
        Err(fpnn::Error::Answer(a)) => assert_eq!(a.code, UNKNOWN_ERROR, "{}", a.ex),
        Ok(ok) => assert!(!ok, "a login was accepted without Redis"),
        Err(other) => panic!("unexpected auth failure: {other}"),
    }

    // What does not need Redis goes on: the open session stays, the metrics show the outage.
    assert!(before.is_open());
    assert!(
        eventually(Duration::from_secs(12), || async {
            a.metric("rtmd_store_up").await == Some(0.0)
                && b.metric("rtmd_cluster_registry_up").await == Some(0.0)
        })
        .await,
        "the metrics do not show the outage"
    );

    // Redis returns (empty: no persistence); the nodes recover by themselves.
    let mut redis = PrivateRedis::start_on(port)
        .await
        .expect("restart redis-server on the same port");
    assert!(
        eventually(Duration::from_secs(15), || async {
            a.sdk()
                .with_timeout(Duration::from_secs(2))
                .get_token(uid)
                .await
                .is_ok()
        })
        .await,
        "gettoken does not work again after Redis returned"
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            b.metric("rtmd_cluster_subscribed").await == Some(1.0)
                && a.metric("rtmd_cluster_subscribed").await == Some(1.0)
                && b.metric("rtmd_cluster_registry_up").await == Some(1.0)
                && a.metric("rtmd_store_up").await == Some(1.0)
        })
        .await,
        "the metrics do not show the recovery"
    );
    // The surviving session is back in the (emptied) registry, and kicks reach B again
    // over its restored subscription.
    assert!(
        eventually(Duration::from_secs(5), || async {
            live_sessions(&url, &prefix, uid).await.len() == 1
        })
        .await,
        "the open session was not registered again"
    );
    // The key ring survived in the nodes and was written back: A's tokens log in on B.
    let fresh = a.sdk().get_token(uid).await.unwrap();
    let mut after = User::logged_in(&b.gate, uid, &fresh).await;
    // Both nodes' kick channels are subscribed again on the new Redis.
    let mut conn = redis_conn(&url).await.unwrap();
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{prefix}:node:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(channels.len(), 2, "{channels:?}");
    let received = b.kicks_received().await;
    a.sdk().kickout(uid).await.unwrap();
    assert!(after.closed_within(Duration::from_secs(5)).await);
    assert!(before.closed_within(Duration::from_secs(5)).await);
    assert_eq!(b.kicks_received().await, received + 2.0);
    redis.stop();
}

/// The same code on a Redis in cluster mode: one node holding every slot, which refuses any
/// script or command whose declared keys span slots (CROSSSLOT) as a Redis Cluster of many
/// nodes would. Every store and registry operation runs here once. (Keys a script touches
/// without declaring them are not checked by a single node; ours declare all of theirs.)
#[tokio::test]
async fn the_key_layout_runs_on_a_redis_in_cluster_mode() {
    if !shared_redis_or_skip().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes_conf = dir.path().join("nodes.conf");
    let port = free_port();
    let extra = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        nodes_conf.to_str().unwrap(),
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    let Some(mut redis) = PrivateRedis::start_with(port, &extra).await else {
        if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("RTM_REQUIRE_REDIS=1 but redis-server could not be started in cluster mode");
        }
        eprintln!("SKIPPED: redis-server could not be started in cluster mode");
        return;
    };
    let url = redis.url();
    let mut admin = redis_conn(&url).await.unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut admin = admin.clone();
            async move {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut admin)
                    .await
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
            }
        })
        .await,
        "the cluster did not come up"
    );
    // The check is real: keys of two slots in one script are refused.
    let crossslot: Result<(), _> = redis::cmd("EVAL")
        .arg("return redis.call('MGET', KEYS[1], KEYS[2])")
        .arg(2)
        .arg("a")
        .arg("b")
        .query_async(&mut admin)
        .await;
    let e = crossslot.expect_err("cluster mode does not check slots");
    assert!(
        format!("{e:?} {e}").to_lowercase().contains("crossslot")
            || e.to_string().contains("same slot"),
        "{e:?}"
    );

    let prefix = unique_prefix("cluster-mode");
    let o = Options {
        multi_login: false,
        ..Options::default()
    };
    let (a, b) = (
        Node::start(&url, &prefix, &o),
        Node::start(&url, &prefix, &o),
    );
    let uid = 7007;
    // Generations, key ring, replay window, registry (single login kicks across nodes).
    let token = a.sdk().get_token(uid).await.unwrap();
    let mut first = User::logged_in(&b.gate, uid, &token).await;
    let second = User::logged_in(&a.gate, uid, &token).await;
    assert!(first.closed_within(Duration::from_secs(5)).await);
    b.sdk().remove_token(uid).await.unwrap();
    let (ok, _) = User::login(&a.gate, uid, &token).await;
    assert!(!ok.unwrap());
    // Kickout with and without ce, and the refresh.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ce = ce_of(&live_sessions(&url, &prefix, uid).await[0]);
    b.sdk().kickout_endpoint(uid, &ce).await.unwrap();
    let mut second = second;
    assert!(second.closed_within(Duration::from_secs(5)).await);
    b.sdk().kickout(uid).await.unwrap();
    // Devices: add, move, cap, remove.
    a.sdk().add_device(1, "apns", "d1").await.unwrap();
    b.sdk().add_device(2, "fcm", "d1").await.unwrap();
    b.sdk().add_device(2, "fcm", "d2").await.unwrap();
    assert!(a.sdk().get_devices(1).await.unwrap().is_empty());
    assert_eq!(a.sdk().get_devices(2).await.unwrap().len(), 2);
    a.sdk().remove_device(2, "d1").await.unwrap();
    assert_eq!(b.sdk().get_devices(2).await.unwrap().len(), 1);
    drop((a, b));
    redis.stop();
}

#[tokio::test]
async fn a_node_pointed_at_a_dead_redis_refuses_to_start_with_a_clear_error() {
    if !shared_redis_or_skip().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let config = write_config(
        dir.path(),
        &url,
        "rtmd-dead",
        &Options {
            command_timeout: "500ms",
            ..Options::default()
        },
    );
    let started = Instant::now();
    let mut child = rtmd_command(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rtmd kept running without Redis");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = reader.join().unwrap();
    assert!(text.contains("cannot reach Redis"), "{text}");
}

/// Kickout latency across nodes: from the SDK call on node A to the client on node B
/// receiving the `kickout` push (the client then closes the connection, as the official
/// clients do). Not a test of speed (it asserts nothing about it): run by hand.
#[tokio::test]
#[ignore = "a measurement; run by hand with --ignored --nocapture"]
async fn kickout_latency() {
    if !shared_redis_or_skip().await {
        return;
    }
    let kicks: usize = std::env::var("RTM_KICKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let prefix = unique_prefix("latency");
    let o = Options::default();
    let (a, b) = (
        Node::start(SHARED_REDIS, &prefix, &o),
        Node::start(SHARED_REDIS, &prefix, &o),
    );
    let sdk = a.sdk();
    let uid = 6006;
    let token = sdk.get_token(uid).await.unwrap();
    let mut pushed = Vec::with_capacity(kicks);
    let mut answered = Vec::with_capacity(kicks);
    let deadline = Instant::now() + Duration::from_secs(300);
    for _ in 0..kicks {
        assert!(Instant::now() < deadline, "the measurement ran over 300 s");
        let mut user = User::logged_in(&b.gate, uid, &token).await;
        let started = Instant::now();
        sdk.kickout(uid).await.unwrap();
        answered.push(started.elapsed());
        assert!(user.kicked_within(Duration::from_secs(5)).await);
        pushed.push(started.elapsed());
        user.client.close().await;
    }
    let report = |name: &str, samples: &mut Vec<Duration>| {
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        println!(
            "{name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
            samples.len(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            samples[samples.len() - 1].as_secs_f64() * 1e3,
        );
    };
    // Every kick reached B through Redis: by its message, or (when B's refresh ran between
    // A's registry update and the message) by the refresh.
    let by_message = b
        .metric("rtmd_cluster_kicks_received_total{path=\"message\"}")
        .await
        .unwrap_or(0.0);
    let by_refresh = b
        .metric("rtmd_cluster_kicks_received_total{path=\"refresh\"}")
        .await
        .unwrap_or(0.0);
    assert_eq!(by_message + by_refresh, kicks as f64);
    println!("kicks received by node B: {by_message} by message, {by_refresh} by refresh");
    report(
        "kickout call to the push's arrival (node A -> node B)",
        &mut pushed,
    );
    report("kickout call to its answer", &mut answered);
    delete_prefix(SHARED_REDIS, &prefix).await;
}
