//! What the `rtm` tests share: an `rtmd` on loopback, the `rtm` binary pointed at it, and a
//! running `rtm login`.
#![allow(dead_code)]

#[path = "../../../../test-support/redis_keys.rs"]
mod redis_keys;

use rtmd::config::{Config, Project};
use rtmd::store::MemoryStore;
use rtmd::Rtmd;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const PID: i32 = 11000001;
pub const SECRET: &str = "cli-test-secret";

/// How long any one step may take before the test fails (never reached when things work).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An `rtmd` on loopback ports, with project [`PID`] and its secret [`SECRET`].
pub async fn start() -> (Rtmd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path());
    let rtmd = Rtmd::start_with_store(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    (rtmd, dir)
}

/// The configuration of a test `rtmd`: ports picked by the system, no admin port.
pub fn loopback_config(dir: &std::path::Path) -> Config {
    let mut config = Config::development(dir).unwrap();
    config.listen.server_api = "127.0.0.1:0".into();
    config.listen.gate = "127.0.0.1:0".into();
    config.listen.admin = String::new();
    config.projects = vec![Project::new(PID, SECRET)];
    config
}

/// The `rtm` binary with no `RTM_*` variables from the caller's shell.
pub fn bare_rtm() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtm"));
    for var in [
        "RTM_PID",
        "RTM_SECRET",
        "RTM_ENDPOINT",
        "RTM_GATE",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// `rtm` at the given server API and gate, as project [`PID`] with `secret`.
pub fn rtm_at(endpoint: &str, gate: &str, secret: &str) -> Command {
    let mut cmd = bare_rtm();
    cmd.args(["--endpoint", endpoint, "--gate", gate]).args([
        "--pid",
        &PID.to_string(),
        "--secret",
        secret,
    ]);
    cmd
}

/// `rtm` at `rtmd`, as project [`PID`] with `secret`.
pub fn rtm(rtmd: &Rtmd, secret: &str) -> Command {
    let mut cmd = rtm_at(
        &rtmd.server_api_addr().to_string(),
        &rtmd.gate_addr().to_string(),
        secret,
    );
    cmd.args(["--timeout", "5"]);
    cmd
}

/// Runs `rtm … args` to the end.
pub async fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args);
    tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("rtm finishes in time")
        .expect("rtm runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

/// A login token for `uid`, from `rtm token get`.
pub async fn token(rtmd: &Rtmd, uid: i64) -> String {
    let out = run(
        rtm(rtmd, SECRET),
        &["token", "get", "--uid", &uid.to_string()],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    stdout(&out)
}

/// A running `rtm login`, once it has said it is logged in.
pub struct Login {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Its first line.
    pub first: String,
}

impl Login {
    /// Starts `rtm login --uid uid --token token extra…` and waits for its first line.
    pub async fn start(rtmd: &Rtmd, uid: i64, token: &str, extra: &[&str]) -> Login {
        let mut cmd = rtm(rtmd, SECRET);
        cmd.args(["login", "--uid", &uid.to_string(), "--token", token])
            .args(extra)
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("login prints in time")
            .unwrap()
            .unwrap_or_default();
        Login {
            child,
            lines,
            first,
        }
    }

    /// The endpoint it says it logs in from (`… from <ip:port>; …`).
    pub fn endpoint(&self) -> String {
        let from = self
            .first
            .split(" from ")
            .nth(1)
            .unwrap_or_else(|| panic!("no endpoint in {:?}", self.first));
        from.split(';').next().unwrap_or_default().to_owned()
    }

    /// The rest of its output and its exit status, once it ends.
    pub async fn finish(mut self) -> (Vec<String>, ExitStatus) {
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("login ends in time")
            .unwrap()
        {
            rest.push(line);
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("login exits in time")
            .unwrap();
        (rest, status)
    }

    /// `true` while it runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The Redis the cluster tests share (CI starts it).
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379/0";

/// A key prefix of this test run in the shared Redis, or `None` (and "SKIPPED: …") when no
/// Redis answers there; under `RTM_REQUIRE_REDIS=1` a missing Redis fails the test instead.
pub async fn redis_prefix_or_skip(test: &str) -> Option<String> {
    match redis_conn().await {
        Ok(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            Some(format!("rtm-cli-{test}-{}-{nanos}", std::process::id()))
        }
        Err(e) if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("RTM_REQUIRE_REDIS=1 but no Redis on 127.0.0.1:6379: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Redis on 127.0.0.1:6379 ({e})");
            None
        }
    }
}

async fn redis_conn() -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(SHARED_REDIS).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "no answer within 2 s".to_string())?
    .map_err(|e| e.to_string())?;
    let pong: Result<String, _> = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async(&mut conn),
    )
    .await
    .map_err(|_| "PING timed out".to_string())?;
    pong.map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Deletes the keys under `prefix` (rtmd writes `prefix:…` and `{prefix:…}…`).
pub async fn delete_redis_prefix(prefix: &str) {
    redis_keys::delete_prefix(SHARED_REDIS, prefix).await;
}

/// A cluster node: an `rtmd` on the shared Redis under `prefix`.
pub async fn start_node(prefix: &str) -> (Rtmd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config(dir.path());
    config.store = SHARED_REDIS.into();
    config.redis.key_prefix = prefix.into();
    let rtmd = tokio::time::timeout(PATIENCE, Rtmd::start(config))
        .await
        .expect("the node starts in time")
        .unwrap();
    (rtmd, dir)
}
