//! The admin port (`/metrics`, `/healthz`) and graceful shutdown, in process.

mod common;

use common::*;
use rtmd::store::{Store, StoreError};

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.admin(), "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = http_get(server.admin(), "/nowhere").await;
    assert_eq!(status, 404);
}

/// Sends `method path` to the admin port and returns the raw response.
async fn http_raw(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("read", stream.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/metrics", "/nowhere"] {
        let get = http_raw(server.admin(), "GET", path).await;
        let head = http_raw(server.admin(), "HEAD", path).await;
        let (get_head, get_body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty(), "{path}");
        let (head_head, head_body) = head.split_once("\r\n\r\n").unwrap();
        assert_eq!(head_body, "", "HEAD {path} sends no body");
        let status = |h: &str| h.lines().next().unwrap().to_owned();
        assert_eq!(status(head_head), status(get_head), "{path}");
        if path != "/metrics" {
            // The metrics page may change between the two requests; the others do not.
            assert_eq!(head_head, get_head, "{path}");
        }
        assert!(head_head.contains("Content-Length: "), "{head_head}");
    }
    assert!(http_raw(server.admin(), "HEAD", "/healthz")
        .await
        .starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(http_raw(server.admin(), "POST", "/healthz")
        .await
        .starts_with("HTTP/1.1 405 "));
}

#[tokio::test]
async fn metrics_show_build_info_and_the_process() {
    let server = TestServer::start().await;
    let (status, page) = http_get(server.admin(), "/metrics").await;
    assert_eq!(status, 200);
    let build = format!(
        "rtmd_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric(&page, &build), 1.0, "{page}");
    assert!(page.contains("# TYPE rtmd_build_info gauge\n"));
    if cfg!(target_os = "linux") {
        assert!(
            metric(&page, "process_resident_memory_bytes") > 1e6,
            "{page}"
        );
        assert!(metric(&page, "process_open_fds") >= 3.0, "{page}");
        assert!(page.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(page.contains("\nprocess_cpu_seconds_total "));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = metric(&page, "process_start_time_seconds");
        assert!(
            started > now - 3600.0 && started <= now + 1.0,
            "{started} vs {now}"
        );
    } else {
        assert!(!page.contains("process_"), "{page}");
    }
}

#[tokio::test]
async fn metrics_show_the_counters_moving() {
    let server = TestServer::start().await;
    let scrape = || async { http_get(server.admin(), "/metrics").await };
    let (status, before) = scrape().await;
    assert_eq!(status, 200);
    for sample in [
        "rtmd_server_calls_total{method=\"gettoken\",result=\"ok\"}",
        "rtmd_auth_total{result=\"ok\"}",
        "rtmd_kicked_sessions_total",
        "rtmd_sessions",
        "rtmd_connections{port=\"gate\"}",
        "rtmd_connections{port=\"server_api\"}",
    ] {
        assert!(
            before.contains(&format!("{sample} 0")),
            "{sample}:\n{before}"
        );
    }

    // Calls by method and result.
    let sdk = server.sdk();
    within("gettoken", sdk.get_token(60)).await.unwrap();
    within("gettoken", sdk.get_token(60)).await.unwrap();
    within("adddevice", sdk.add_device(60, "apns", "d"))
        .await
        .unwrap();
    assert_eq!(
        within("adddevice", sdk.add_device(60, "bogus", "d"))
            .await
            .unwrap_err()
            .code(),
        200034
    );
    let wrong = sdk_fn(&server, "wrong-secret");
    assert!(within("gettoken", wrong.get_token(60)).await.is_err());
    // Auth failures by reason, sessions, connections, kicked sessions.
    let mut a = server.logged_in(60).await;
    let _b = server.logged_in(61).await;
    let refused = GateClient::connect(&server.gate()).await;
    refused.refused(PID, 60, "forged").await;
    within("removetoken", sdk.remove_token(62)).await.unwrap();
    let revoked = server.token(62).await;
    within("removetoken", sdk.remove_token(62)).await.unwrap();
    refused.refused(PID, 62, &revoked).await;

    let (_, during) = scrape().await;
    let m = |sample: &str| metric(&during, sample);
    assert_eq!(
        m("rtmd_server_calls_total{method=\"gettoken\",result=\"ok\"}"),
        5.0,
        "{during}"
    );
    assert_eq!(
        m("rtmd_server_calls_total{method=\"adddevice\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        m("rtmd_server_calls_total{method=\"adddevice\",result=\"200034\"}"),
        1.0
    );
    assert_eq!(
        m("rtmd_server_calls_total{method=\"gettoken\",result=\"200002\"}"),
        1.0
    );
    assert_eq!(
        m("rtmd_server_calls_total{method=\"removetoken\",result=\"ok\"}"),
        2.0
    );
    assert_eq!(m("rtmd_auth_total{result=\"ok\"}"), 2.0);
    assert_eq!(m("rtmd_auth_total{result=\"malformed\"}"), 1.0);
    assert_eq!(m("rtmd_auth_total{result=\"revoked\"}"), 1.0);
    assert_eq!(m("rtmd_sessions"), 2.0);
    assert_eq!(m("rtmd_connections{port=\"gate\"}"), 3.0);
    // The test's SDK clients: `sdk` and `wrong`, plus the one `logged_in` uses per token.
    assert!(
        m("rtmd_connections{port=\"server_api\"}") >= 2.0,
        "{during}"
    );
    assert!(m("rtmd_store_latency_seconds_count") > 0.0);

    within("kickout", sdk.kickout(60)).await.unwrap();
    a.kicked_and_closed().await;
    let (_, after) = scrape().await;
    assert_eq!(metric(&after, "rtmd_kicked_sessions_total"), 1.0);
    assert_eq!(metric(&after, "rtmd_sessions"), 1.0);
    assert_eq!(
        metric(
            &after,
            "rtmd_server_calls_total{method=\"kickout\",result=\"ok\"}"
        ),
        1.0
    );
}

fn sdk_fn(server: &TestServer, secret: &str) -> rtm_server_sdk::RtmServerClient {
    sdk(&server.api(), PID, secret)
}

#[tokio::test]
async fn graceful_shutdown_answers_calls_in_flight() {
    let store = HeldStore::new();
    store.hold("add_device");
    let mut server =
        TestServer::start_over(vec![project(PID, SECRET)], |_| {}, store.clone()).await;
    let sdk = server.sdk();
    let other = server.raw_api();
    within("connect", other.connect()).await.unwrap();
    let mut gate = server.logged_in(70).await;

    let in_flight = {
        let sdk = sdk.clone();
        tokio::spawn(async move { sdk.add_device(70, "apns", "held").await })
    };
    within("the call to reach the store", store.entered.notified()).await;

    let rtmd = server.rtmd.take().unwrap();
    let shutdown = tokio::spawn(rtmd.shutdown());
    // New quests on open connections are refused with 20014 while the call is held.
    let refused = within("a quest refused as stopping", async {
        loop {
            match other.quest("gettoken", &signed_now("gettoken", 70)).await {
                Err(fpnn::Error::Answer(e)) if e.code == 20014 => return e,
                Ok(_) => tokio::task::yield_now().await,
                Err(e) => panic!("unexpected failure while stopping: {e}"),
            }
        }
    })
    .await;
    assert_eq!(refused.code, 20014);
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the call in flight"
    );

    store.release.add_permits(1);
    within("the call in flight", in_flight)
        .await
        .unwrap()
        .expect("the call in flight is answered");
    within("shutdown", shutdown).await.unwrap();
    gate.closed().await;
    // The store was closed after the last answer.
    assert!(matches!(store.inner.ping().await, Err(StoreError::Closed)));
}
