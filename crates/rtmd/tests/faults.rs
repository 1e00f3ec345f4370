//! Bad bytes on either port close that connection and nothing else; limits and timeouts
//! close what they should. On tokio's paused clock (real loopback sockets, simulated time).

mod common;

use common::*;
use fpnn::client::ConnectionEvent;
use rtm_server_sdk::RtmServerClient;
use rtmd::store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// What a misbehaving peer sends.
fn bad_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut garbage = vec![0u8; 4096];
    // A fixed pseudo-random stream (xorshift), so a failure can be replayed.
    let mut x: u32 = 0x9e37_79b9;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // A header announcing a frame far over the limit (and no body).
    let mut oversize = b"FPNN\x01\x80\x01\x08".to_vec();
    oversize.extend_from_slice(&0x7fff_0000u32.to_le_bytes());
    oversize.extend_from_slice(&1u32.to_le_bytes());
    oversize.extend_from_slice(b"gettoken");
    // A well-formed frame whose payload is not msgpack.
    let bad_payload = raw_frame("gettoken", 1, &[0xc1, 0xc1, 0xc1]);
    // A payload whose root is not a map.
    let not_a_map = raw_frame("gettoken", 1, &[0x93, 1, 2, 3]);
    // A frame with an unknown message type.
    let mut bad_mtype = raw_frame("gettoken", 1, &[0x80]);
    bad_mtype[6] = 7;
    vec![
        ("random garbage", garbage),
        (
            "an HTTP request",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad magic",
            b"FPNX\x01\x80\x01\x08\x01\x00\x00\x00".to_vec(),
        ),
        ("an oversize frame", oversize),
        ("an undecodable payload", bad_payload),
        ("a payload that is not a map", not_a_map),
        ("an unknown message type", bad_mtype),
    ]
}

/// An SDK client that counts how often its connection closed, and notifies each close.
fn watched_sdk(server: &TestServer) -> (RtmServerClient, Arc<AtomicUsize>, Arc<Notify>) {
    let closes = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    let (counter, notify) = (closes.clone(), closed.clone());
    let client = RtmServerClient::builder(PID, SECRET, server.api())
        .quest_timeout(WAIT)
        .auto_reconnect(false)
        .on_event(move |e| {
            if matches!(e, ConnectionEvent::Closed { .. }) {
                counter.fetch_add(1, Ordering::SeqCst);
                notify.notify_one();
            }
        })
        .build();
    (client, closes, closed)
}

#[tokio::test(start_paused = true)]
async fn bad_bytes_on_the_server_api_close_only_that_connection() {
    // A small frame limit, so that "oversize" is also tested for frames a little over it.
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.max_frame = 64 * 1024;
    })
    .await;
    let (sdk, closes, _) = watched_sdk(&server);
    within("gettoken", sdk.get_token(1)).await.unwrap();

    let mut inputs = bad_inputs();
    let mut just_over = raw_frame("adddevice", 1, &vec![0x80; 64 * 1024]);
    just_over.truncate(64 * 1024 + 100);
    inputs.push(("a frame just over the limit", just_over));
    for (what, bytes) in inputs {
        let mut raw = RawConn::connect(&server.api()).await;
        // The peer may close before reading everything; a failed write is fine.
        let _ = raw.send(&bytes).await;
        let (frames, _) = raw.until_closed().await;
        assert!(frames.is_empty(), "{what}: answered {frames:?}");
        // The concurrent client is unaffected, on the same connection.
        within("gettoken", sdk.get_token(1))
            .await
            .unwrap_or_else(|e| panic!("after {what}: {e}"));
        assert_eq!(closes.load(Ordering::SeqCst), 0, "after {what}");
    }
    // A partial frame followed by the peer going away is no trouble either.
    let mut raw = RawConn::connect(&server.api()).await;
    raw.send(b"FPNN\x01\x80").await.unwrap();
    drop(raw);
    within("gettoken", sdk.get_token(1)).await.unwrap();
    assert_eq!(closes.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn bad_bytes_on_the_gate_close_only_that_connection() {
    let server = TestServer::start().await;
    let mut gate = server.logged_in(50).await;
    for (what, bytes) in bad_inputs() {
        let mut raw = RawConn::connect(&server.gate()).await;
        let _ = raw.send(&bytes).await;
        let (frames, _) = raw.until_closed().await;
        assert!(frames.is_empty(), "{what}: answered {frames:?}");
        gate.assert_alive().await;
    }
    // Also from a connection that had logged in.
    let mut raw = server.raw_logged_in(51).await;
    let _ = raw.send(b"FPNN\x09garbage garbage").await;
    let (frames, _) = raw.until_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    gate.assert_alive().await;
    // The broken session is gone; the good one stays.
    server.until_sessions(1).await;
    // The service still serves new connections on both ports.
    let again = server.logged_in(52).await;
    again.ping().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_limit_are_closed_and_the_others_kept() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.max_connections = 2;
        // Long, so that only the limit can close the connection over it in time.
        c.limits.auth_timeout = std::time::Duration::from_secs(60);
    })
    .await;
    let mut first = server.logged_in(53).await;
    let second = GateClient::connect(&server.gate()).await;
    let mut third = RawConn::connect(&server.gate()).await;
    let (frames, _) = third.until_closed().await;
    assert!(frames.is_empty());
    first.assert_alive().await;
    // Once one leaves, a new one is accepted.
    second.client.close().await;
    let token = server.token(54).await;
    let accepted = within("a free slot", async {
        loop {
            let gate = GateClient::connect(&server.gate()).await;
            match gate.auth(PID, 54, &token).await {
                Ok(true) => return gate,
                // Still counted: the server has not seen the close yet.
                Err(fpnn::Error::Closed(_)) => tokio::task::yield_now().await,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    accepted.ping().await.unwrap();
}

// On real time: fpnn's idle timer measures quiet with the system's monotonic clock, which
// tokio's paused clock does not move.
#[tokio::test]
async fn an_idle_server_api_connection_is_closed_and_the_sdk_reconnects() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.idle_timeout = std::time::Duration::from_millis(300);
        c.limits.client_ping_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let (sdk, closes, closed) = watched_sdk(&server);
    within("gettoken", sdk.get_token(55)).await.unwrap();
    let mut raw = RawConn::connect(&server.api()).await;
    let (frames, ending) = raw.until_closed().await;
    assert!(frames.is_empty());
    assert_eq!(ending, Ending::Eof);
    within("the SDK connection to close", closed.notified()).await;
    assert_eq!(closes.load(Ordering::SeqCst), 1);
    within("gettoken", sdk.get_token(55))
        .await
        .expect("the next call connects again");
}

#[tokio::test(start_paused = true)]
async fn a_failed_store_answers_errors_and_logins_fail_closed() {
    let store = HeldStore::new();
    let server = TestServer::start_over(vec![project(PID, SECRET)], |_| {}, store.clone()).await;
    let token = server.token(56).await;
    let mut online = server.logged_in(57).await;
    // The store stops serving (closed under the service's feet).
    store.inner.close().await.unwrap();

    let sdk = server.sdk();
    for code in [
        sdk_code(within("gettoken", sdk.get_token(56)).await),
        sdk_code(within("adddevice", sdk.add_device(56, "fcm", "d")).await),
        sdk_code(within("removetoken", sdk.remove_token(56)).await),
    ] {
        assert_eq!(code, 200999);
    }
    let gate = GateClient::connect(&server.gate()).await;
    let e = answer_error(
        within(
            "auth",
            gate.client.quest(
                "auth",
                &fpnn::Value::map()
                    .with("pid", PID)
                    .with("uid", 56)
                    .with("token", token.as_str()),
            ),
        )
        .await,
    );
    assert_eq!(e.code, 200999, "{e}");
    assert!(e.ex.contains("store"), "{e}");
    // Live sessions are not dropped for it.
    online.assert_alive().await;

    let (status, body) = http_get(server.admin(), "/healthz").await;
    assert_eq!(status, 503, "{body}");
    let page = http_get(server.admin(), "/metrics").await.1;
    assert_eq!(metric(&page, "rtmd_store_up"), 0.0);
    assert!(metric(&page, "rtmd_store_errors_total") >= 4.0, "{page}");
    assert_eq!(
        metric(&page, "rtmd_auth_total{result=\"store_error\"}"),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn json_quests_are_answered_in_json() {
    let server = TestServer::start().await;
    let mut raw = RawConn::connect(&server.api()).await;
    let quest = fpnn::Quest::new(
        "gettoken",
        Some(7),
        fpnn::Format::Json,
        &signed_now("gettoken", 58),
    )
    .unwrap();
    raw.send(&fpnn::Frame::Quest(quest).encode().unwrap())
        .await
        .unwrap();
    match raw.next_frame().await {
        Ok(fpnn::Frame::Answer(answer)) => {
            assert_eq!(answer.seq, 7);
            assert_eq!(answer.format, fpnn::Format::Json);
            let body = answer.into_result().unwrap().expect("a normal answer");
            let token = body.get("token").and_then(fpnn::Value::as_text).unwrap();
            let gate = GateClient::connect(&server.gate()).await;
            gate.login(PID, 58, &token).await;
        }
        other => panic!("{other:?}"),
    }
}
