//! `rtm` and rtmd's web side: `rtm login --ws` and `--wss` through a whole session (login,
//! kickout, close), and `rtm token get --curl` whose command mints a token with curl.

mod common;

#[path = "../../../test-support/pki.rs"]
#[allow(dead_code)] // the SPKI hash is for the browser tests
mod pki;

use common::*;
use rtmd::config::TlsFiles;
use rtmd::store::MemoryStore;
use rtmd::Rtmd;
use std::sync::Arc;

/// A login with `extra` flags, kicked out by `rtm kickout`: the same story as over TCP.
async fn login_and_kickout(rtmd: &Rtmd, uid: i64, extra: &[&str]) {
    let token = token(rtmd, uid).await;
    let login = Login::start(rtmd, uid, &token, extra).await;
    assert!(
        login
            .first
            .starts_with(&format!("logged in as user {uid} of project {PID}")),
        "{}",
        login.first
    );
    assert_eq!(rtmd.sessions(), 1);
    let out = run(rtm(rtmd, SECRET), &["kickout", "--uid", &uid.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    let (rest, status) = login.finish().await;
    assert!(status.success(), "{status:?} {rest:?}");
    assert_eq!(
        rest,
        [
            "kicked out: the server pushed kickout",
            "connection closed after the kickout"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_websocket() {
    let (rtmd, _dir) = start().await;
    login_and_kickout(&rtmd, 42, &["--ws"]).await;
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_wss_with_the_ca() {
    let pki = pki::TestPki::new("rtm_cli_wss");
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config(dir.path());
    config.listen.gate_tls = Some(TlsFiles {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    });
    let rtmd = Rtmd::start_with_store(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let ca = pki.ca.to_str().unwrap();
    login_and_kickout(&rtmd, 43, &["--wss", "--tls-ca", ca]).await;

    // Without the CA the certificate is not trusted: refused at connect.
    let other = pki::TestPki::new("rtm_cli_wss_other");
    let token = token(&rtmd, 44).await;
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "login",
            "--uid",
            "44",
            "--token",
            &token,
            "--wss",
            "--tls-ca",
            other.ca.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS handshake failed"), "{out:?}");
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_get_curl_prints_a_command_that_mints_a_token() {
    let (rtmd, _dir) = start().await;
    let out = run(
        rtm(&rtmd, SECRET),
        &["token", "get", "--uid", "7", "--curl"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let command = stdout(&out);
    let api = rtmd.server_api_addr();
    assert!(
        command.starts_with("curl -sS -d '{\"pid\":")
            && command.ends_with(&format!("'http://{api}/service/gettoken'")),
        "{command}"
    );
    let has_curl = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|dir| dir.join("curl").is_file());
    if !has_curl {
        eprintln!("SKIPPED: running the curl command: no curl on PATH");
        return;
    }
    let ran = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .await
        .unwrap();
    assert!(ran.status.success(), "{ran:?}");
    let answer: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let token = answer["token"].as_str().expect("a token");
    // The token logs in.
    let login = Login::start(&rtmd, 7, token, &["--for-secs", "1"]).await;
    assert!(
        login.first.starts_with("logged in as user 7"),
        "{}",
        login.first
    );
    let (_, status) = login.finish().await;
    assert!(status.success());
    rtmd.shutdown().await;
}
