//! A real browser: headless Chromium opens a page that talks FPNN over WebSocket (`ws://`,
//! and `wss://` with a throwaway certificate it is told to trust) to a server built on
//! `fpnn::web` alone, and reports what it saw. The page's client (`fpnn.js`) and the harness
//! live in `test-support/browser/`; the screenshots are kept in `target/tmp/browser/`.
//!
//! Without Chromium these print `SKIPPED: …` and pass; `RTM_REQUIRE_BROWSER=1` (CI) makes a
//! missing Chromium a failure.
#![cfg(feature = "tls")]

mod common;
mod web_echo;

#[path = "../../../test-support/browser/harness.rs"]
mod browser;

use fpnn::web::tls;
use fpnn::Value;
use std::time::Duration;
use web_echo::{EchoServer, Event, TestPki};

/// Opens `html` in Chromium with `query` and returns what the page reported, checked `ok`.
async fn open_page(
    test: &str,
    chromium: std::path::PathBuf,
    html: &'static str,
    query: String,
    flags: Vec<String>,
) -> serde_json::Value {
    let name = test.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        browser::run(&browser::PageRun {
            chromium: &chromium,
            name: &name,
            html,
            query: &query,
            extra_flags: &flags,
            timeout: Duration::from_secs(60),
        })
    })
    .await
    .expect("the harness thread")
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let result: serde_json::Value = serde_json::from_str(&report.result).expect("the page's JSON");
    assert_eq!(result["ok"], true, "the page reported {result:#}");
    let screenshot = report.screenshot.expect("a screenshot of the page");
    eprintln!("{test}: screenshot at {}", screenshot.display());
    result
}

async fn echo_in_a_browser(test: &str, use_tls: bool) {
    let Some(chromium) = browser::chromium_or_skip(test) else {
        return;
    };
    let pki = use_tls.then(|| TestPki::new(test));
    let config = pki
        .as_ref()
        .map(|p| tls::server_config(&p.cert, &p.key).expect("TLS config"));
    let mut server = EchoServer::start(config).await;
    let scheme = if use_tls { "wss" } else { "ws" };
    let query = format!("ws={scheme}://{}/service/websocket", server.addr);
    // Trust exactly the test certificate's key, rather than ignoring every certificate error.
    let flags: Vec<String> = pki
        .iter()
        .map(|p| format!("--ignore-certificate-errors-spki-list={}", p.spki_sha256))
        .collect();
    let result = open_page(test, chromium, browser::ECHO_HTML, query, flags).await;
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "connected",
            "echo of a 3-char string",
            "echo of a 105-char string",
            "echo of a 70000-char string",
            "echo of every msgpack type",
            "error answer 123456: failed on purpose",
            "gate answered",
            "ping pushed, n=7",
            "kickout pushed",
            "closed by the server: code 1000",
        ]
    );
    // The server saw the same story from its side.
    assert_eq!(
        server.next_event().await,
        Event::Layer {
            layer: "ws",
            tls: use_tls
        }
    );
    assert_eq!(
        server.next_event().await,
        Event::PingAnswered(Value::map().with("got", 7))
    );
    assert_eq!(server.next_event().await, Event::Closed("kickout".into()));
}

/// The page's msgpack and frames (`fpnn.js`) write exactly the official SDKs' bytes and read
/// them back, in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_client_matches_the_official_vectors() {
    let test = "browser_vectors";
    let Some(chromium) = browser::chromium_or_skip(test) else {
        return;
    };
    let hex = |title: &str| {
        common::vector(title)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let query = [
        ("v1", "V1 twoway quest gettoken seq=7 (version byte 1"),
        ("v2", "V2 answer ok seq=7 {token:xyz} (version 1)"),
        ("v3", "V3 error answer"),
        ("v4b", "V4b oneway quest pushmsg"),
        ("v5q", "V5 twoway *ping"),
        ("v5a", "V5 answer to *ping"),
        ("v6", "V6 JSON twoway quest"),
        ("v7", "V7 msgpack"),
    ]
    .iter()
    .map(|(name, title)| format!("{name}={}", hex(title)))
    .collect::<Vec<_>>()
    .join("&");
    let result = open_page(test, chromium, browser::VECTORS_HTML, query, Vec::new()).await;
    assert_eq!(
        result["steps"].as_array().map(Vec::len),
        Some(12),
        "{result:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_speaks_fpnn_over_websocket() {
    echo_in_a_browser("browser_ws", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_speaks_fpnn_over_wss_with_the_test_certificate() {
    echo_in_a_browser("browser_wss", true).await;
}
