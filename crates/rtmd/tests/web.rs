//! rtmd's ports for web clients: HTTP/JSON calls to the server API (what `curl` does), the
//! gate over WebSocket and over TLS (`wss://`, with a throwaway certificate), and a real
//! browser: headless Chromium mints a token over HTTP, logs in to the gate over `ws://` and
//! `wss://`, answers the gate's ping, is kicked out by a server API call and sees it. The
//! screenshots are kept in `target/tmp/browser/`.
//!
//! Without Chromium the browser tests print `SKIPPED: …` and pass; `RTM_REQUIRE_BROWSER=1`
//! (CI) makes a missing Chromium a failure.

mod common;

#[path = "../../../test-support/pki.rs"]
mod pki;

#[path = "../../../test-support/browser/harness.rs"]
mod browser;

use common::{fresh_salt, now, signed, within, GateClient, TestServer, PID, SECRET, WAIT};
use fpnn::client::Client;
use fpnn::web::tls;
use fpnn::{Format, Value};
use pki::TestPki;
use rtmd::config::TlsFiles;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A signed server API call of the test project as the JSON body of an HTTP request.
fn signed_json(method: &str, uid: i64) -> String {
    let params = signed(PID, SECRET, method, fresh_salt(), now()).with("uid", uid);
    String::from_utf8(Format::Json.encode(&params).expect("JSON").to_vec()).expect("UTF-8")
}

/// Sends one HTTP request with `Connection: close` and returns the status and the body.
async fn http_call(addr: &str, method: &str, body: &str) -> (u16, Value) {
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    let request = format!(
        "POST /service/{method} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("the HTTP response", s.read_to_end(&mut response))
        .await
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (
        status,
        Format::Json.decode(body.as_bytes()).expect("a JSON body"),
    )
}

#[tokio::test]
async fn a_token_minted_over_http_logs_in_over_websocket() {
    let server = TestServer::start().await;
    let (status, answer) = http_call(&server.api(), "gettoken", &signed_json("gettoken", 7)).await;
    assert_eq!(status, 200, "{answer}");
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .expect("a token");

    // The gate over WebSocket, with our client.
    let client = Client::builder(server.gate())
        .websocket("/service/websocket")
        .quest_timeout(WAIT)
        .build();
    let auth = Value::map()
        .with("pid", PID)
        .with("uid", 7)
        .with("token", token)
        .with("version", "WebSocket_2.7.6");
    let ok = within("auth", client.quest("auth", &auth)).await.unwrap();
    assert_eq!(ok.get("ok").and_then(Value::as_bool), Some(true));
    assert_eq!(server.sessions(), 1);

    // A bad signature: 500 with {code, ex}.
    let bad = signed(PID, "not the secret", "gettoken", fresh_salt(), now()).with("uid", 7);
    let body = String::from_utf8(Format::Json.encode(&bad).unwrap().to_vec()).unwrap();
    let (status, error) = http_call(&server.api(), "gettoken", &body).await;
    assert_eq!(status, 500);
    assert!(
        error.get("code").and_then(Value::as_i64).is_some(),
        "{error}"
    );
    assert!(error.get("ex").and_then(Value::as_str).is_some(), "{error}");

    // The gate over HTTP: no session, answered as the handlers answer (an error).
    let (status, error) = http_call(&server.gate(), "ping", "{}").await;
    assert_eq!(status, 500, "{error}");
}

#[tokio::test]
async fn curl_mints_a_token() {
    let Ok(curl) = which("curl") else {
        eprintln!("SKIPPED: curl_mints_a_token: no curl on PATH");
        return;
    };
    let server = TestServer::start().await;
    let url = format!("http://{}/service/gettoken", server.api());
    let body = signed_json("gettoken", 8);
    let output = tokio::process::Command::new(curl)
        .args(["-sS", "--max-time", "10", "-d", &body, &url])
        .output();
    let output = within("curl", output).await.expect("curl runs");
    assert!(output.status.success(), "{output:?}");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(answer["token"].is_string(), "{answer}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[tokio::test]
async fn wss_and_fpnn_over_tls_on_the_gate_and_plain_beside_them() {
    let pki = TestPki::new("rtmd_wss");
    let files = TlsFiles {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    };
    let server = TestServer::start_with(vec![common::project(PID, SECRET)], |c| {
        c.listen.gate_tls = Some(files.clone());
        c.listen.server_api_tls = Some(files);
    })
    .await;
    let ca = tls::client_config(&pki.ca).unwrap();
    let api = format!("localhost:{}", server.rtmd().server_api_addr().port());
    let gate = format!("localhost:{}", server.rtmd().gate_addr().port());

    // gettoken over FPNN-over-TLS, login over wss://.
    let api_client = Client::builder(&api).tls(ca.clone()).build();
    let minted = within(
        "gettoken over TLS",
        api_client.quest("gettoken", &common::signed_now("gettoken", 9)),
    )
    .await
    .unwrap();
    let token = minted.get("token").and_then(Value::as_str).unwrap();
    let client = Client::builder(&gate)
        .tls(ca.clone())
        .websocket("/service/websocket")
        .build();
    let auth = Value::map()
        .with("pid", PID)
        .with("uid", 9)
        .with("token", token);
    let ok = within("auth over wss", client.quest("auth", &auth))
        .await
        .unwrap();
    assert_eq!(ok.get("ok").and_then(Value::as_bool), Some(true));

    // Plain FPNN still works on the TLS ports.
    let mut plain = GateClient::connect(&server.gate()).await;
    let token = server.token(10).await;
    plain.login(PID, 10, &token).await;
    plain.assert_alive().await;
}

#[tokio::test]
async fn a_missing_certificate_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::loopback_config(dir.path(), vec![common::project(PID, SECRET)]);
    config.listen.gate_tls = Some(TlsFiles {
        cert: dir.path().join("missing-cert.pem"),
        key: dir.path().join("missing-key.pem"),
    });
    let store = std::sync::Arc::new(rtmd::store::MemoryStore::new());
    let e = rtmd::Rtmd::start_with_store(config, store)
        .await
        .err()
        .expect("refused");
    let text = e.to_string();
    assert!(
        text.contains("gate") && text.contains("missing-cert.pem"),
        "{text}"
    );
}

/// The browser session of `gate.html` against rtmd's gate over `scheme`.
async fn browser_session(test: &str, use_tls: bool) {
    let Some(chromium) = browser::chromium_or_skip(test) else {
        return;
    };
    let pki = TestPki::new(test);
    let files = TlsFiles {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    };
    let server = TestServer::start_with(vec![common::project(PID, SECRET)], |c| {
        c.listen.gate_tls = Some(files);
        c.limits.client_ping_interval = Duration::from_millis(500);
    })
    .await;
    let uid = 77;
    let (scheme, host) = if use_tls {
        ("wss", "localhost")
    } else {
        ("ws", "127.0.0.1")
    };
    let gate_port = server.rtmd().gate_addr().port();
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let query = format!(
        "ws={}&api={}&pid={PID}&uid={uid}&gettoken={}&kickout={}",
        enc(&format!("{scheme}://{host}:{gate_port}/service/websocket")),
        enc(&format!("http://{}", server.api())),
        enc(&signed_json("gettoken", uid)),
        enc(&signed_json("kickout", uid)),
    );
    let flags = vec![format!(
        "--ignore-certificate-errors-spki-list={}",
        pki.spki_sha256
    )];
    let name = test.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        browser::run(&browser::PageRun {
            chromium: &chromium,
            name: &name,
            html: include_str!("../../../test-support/browser/gate.html"),
            query: &query,
            extra_flags: &flags,
            timeout: Duration::from_secs(55),
        })
    })
    .await
    .expect("the harness thread")
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let result: serde_json::Value = serde_json::from_str(&report.result).expect("the page's JSON");
    assert_eq!(result["ok"], true, "the page reported {result:#}");
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "token minted over HTTP",
            "connected",
            "logged in",
            "pinged by the gate",
            "kickout called over HTTP",
            "kickout pushed",
            "closed",
        ]
    );
    let screenshot = report.screenshot.expect("a screenshot of the page");
    eprintln!(
        "{test}: steps at {} ms; screenshot at {}",
        result["times"],
        screenshot.display()
    );
    // The session is gone on the server's side too.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.sessions() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_over_ws_and_is_kicked_out() {
    browser_session("rtmd_browser_ws", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_over_wss_and_is_kicked_out() {
    browser_session("rtmd_browser_wss", true).await;
}
