//! The `rtm` binary against a real `rtmd` on loopback: the README's walk-through.

use rtmd::config::{Config, Project};
use rtmd::store::MemoryStore;
use rtmd::Rtmd;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PID: i32 = 11000001;
const SECRET: &str = "cli-test-secret";

async fn start() -> (Rtmd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::development(dir.path()).unwrap();
    config.listen.server_api = "127.0.0.1:0".into();
    config.listen.gate = "127.0.0.1:0".into();
    config.listen.admin = String::new();
    config.projects = vec![Project::new(PID, SECRET)];
    let rtmd = Rtmd::start_with_store(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    (rtmd, dir)
}

fn rtm(rtmd: &Rtmd, secret: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtm"));
    cmd.env_remove("RTM_PID")
        .env_remove("RTM_SECRET")
        .args(["--endpoint", &rtmd.server_api_addr().to_string()])
        .args(["--gate", &rtmd.gate_addr().to_string()])
        .args([
            "--pid",
            &PID.to_string(),
            "--secret",
            secret,
            "--timeout",
            "5",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("rtm finishes in time")
        .expect("rtm runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_token_login_kickout_revoke() {
    let (rtmd, _dir) = start().await;

    let mut get = rtm(&rtmd, SECRET);
    get.args(["token", "get", "--uid", "42"]);
    let out = run(get).await;
    assert!(out.status.success(), "{out:?}");
    let token = stdout(&out);
    assert!(token.len() >= 64, "a token on stdout: {token:?}");

    // `rtm login` stays connected until it is kicked out.
    let mut login = rtm(&rtmd, SECRET);
    login
        .args(["login", "--uid", "42", "--token", &token])
        .stdout(Stdio::piped());
    let mut child = login.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("login prints in time")
        .unwrap()
        .unwrap_or_default();
    assert!(first.starts_with("logged in as user 42"), "{first}");
    assert_eq!(rtmd.state().sessions.len(), 1);

    let mut kick = rtm(&rtmd, SECRET);
    kick.args(["kickout", "--uid", "42"]);
    let out = run(kick).await;
    assert!(out.status.success(), "{out:?}");

    let mut rest = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("login reports the kickout in time")
    {
        rest.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "login exits 0 after a kickout: {status:?} {rest:?}"
    );
    assert!(rest.iter().any(|l| l.contains("kicked out")), "{rest:?}");

    // Revoked: the same token no longer logs in (exit code 3).
    let mut remove = rtm(&rtmd, SECRET);
    remove.args(["token", "remove", "--uid", "42"]);
    assert!(run(remove).await.status.success());
    let mut again = rtm(&rtmd, SECRET);
    again.args(["login", "--uid", "42", "--token", &token, "--for-secs", "1"]);
    let out = run(again).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("200027"),
        "{out:?}"
    );
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_errors() {
    let (rtmd, _dir) = start().await;
    let mut add = rtm(&rtmd, SECRET);
    add.args([
        "device",
        "add",
        "--uid",
        "7",
        "--apptype",
        "apns",
        "--token",
        "dev-1",
    ]);
    assert!(run(add).await.status.success());
    let mut list = rtm(&rtmd, SECRET);
    list.args(["device", "list", "--uid", "7"]);
    let out = run(list).await;
    assert!(out.status.success(), "{out:?}");
    let listed = stdout(&out);
    assert!(listed.starts_with("apns\tdev-1\t"), "{listed}");

    let mut bad = rtm(&rtmd, SECRET);
    bad.args([
        "device",
        "add",
        "--uid",
        "7",
        "--apptype",
        "pager",
        "--token",
        "dev-2",
    ]);
    let out = run(bad).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("200034") && err.contains("apptype"), "{err}");

    let mut wrong = rtm(&rtmd, "not-the-secret");
    wrong.args(["token", "get", "--uid", "7"]);
    let out = run(wrong).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("200002") && err.contains("RTM_EC_INVALID_PID_OR_SIGN"),
        "{err}"
    );

    let mut no_pid = Command::new(env!("CARGO_BIN_EXE_rtm"));
    no_pid
        .env_remove("RTM_PID")
        .env_remove("RTM_SECRET")
        .args(["token", "get", "--uid", "7"]);
    let out = run(no_pid).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RTM_PID"));
    rtmd.shutdown().await;
}
