//! Kickout end to end: the server API's `kickout` (all logins, one `ce`, an offline user),
//! multi-login off, and `removetoken_kicks`; and the grace every kick leaves the client to
//! close the connection (a reader that reads late still finds the push, the connection
//! open).
//!
//! The tests run on tokio's paused clock (real loopback sockets, simulated time), but for
//! the one that needs several worker threads: the grace, and a reader that reads 200 ms
//! late, take no real time and cannot be upset by a slow machine.

mod common;

use common::*;
use fpnn::{Frame, Value};
use rtmd::config::DEFAULT_KICKOUT_GRACE;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn kickout_closes_every_login_of_the_user() {
    let server = TestServer::start().await;
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(server.logged_in(30).await);
    }
    let mut bystander = server.logged_in(31).await;
    assert_eq!(server.sessions(), 4);

    within("kickout", server.sdk().kickout(30)).await.unwrap();
    for login in &mut logins {
        let push = login.kicked().await;
        assert!(push.as_map().is_some(), "{push}");
        login.closed().await;
    }
    bystander.assert_alive().await;
    assert_eq!(server.sessions(), 1);

    // The token still works: kickout is not removetoken.
    let again = server.logged_in(30).await;
    again.ping().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_kickout_push_is_one_way_and_then_the_server_closes() {
    let server = TestServer::start().await;
    let mut raw = server.raw_logged_in(32).await;
    let called = Instant::now();
    within("kickout", server.sdk().kickout(32)).await.unwrap();
    let (frames, ending) = raw.until_closed().await;
    assert_eq!(ending, Ending::Eof);
    // Not before the grace: the close waited for the client.
    assert!(called.elapsed() >= DEFAULT_KICKOUT_GRACE);
    match frames.as_slice() {
        [Frame::Quest(q)] => {
            assert_eq!(q.method, "kickout");
            assert_eq!(q.seq, None, "the kickout push is one-way");
        }
        other => panic!("expected exactly the kickout push, got {other:?}"),
    }
}

/// Asserts that a raw connection is up and logged in, with nothing pushed.
async fn assert_raw_alive(raw: &mut RawConn) {
    assert_eq!(
        raw.quest("ping", &Value::map()).await.unwrap(),
        Value::map()
    );
    assert!(raw.pushed.is_empty(), "{:?}", raw.pushed);
}

async fn assert_raw_kicked(raw: &mut RawConn) {
    let (frames, _) = raw.until_closed().await;
    assert!(
        matches!(frames.as_slice(), [Frame::Quest(q)] if q.method == "kickout"),
        "{frames:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn kickout_with_ce_closes_only_that_login() {
    let server = TestServer::start().await;
    let mut first = server.raw_logged_in(33).await;
    let mut second = server.raw_logged_in(33).await;
    let mut third = server.raw_logged_in(33).await;
    let sdk = server.sdk();

    // An endpoint no login has: nothing happens.
    within("kickout", sdk.kickout_endpoint(33, "127.0.0.1:1"))
        .await
        .unwrap();
    // The endpoint of another user's login does not touch it either.
    let mut other_user = server.raw_logged_in(34).await;
    let ce = other_user.local_addr().to_string();
    within("kickout", sdk.kickout_endpoint(33, &ce))
        .await
        .unwrap();
    assert_raw_alive(&mut other_user).await;

    // `ce` is the client's ip:port as the gate sees it.
    let ce = second.local_addr().to_string();
    within("kickout", sdk.kickout_endpoint(33, &ce))
        .await
        .unwrap();
    assert_raw_kicked(&mut second).await;
    assert_raw_alive(&mut first).await;
    assert_raw_alive(&mut third).await;
    assert_eq!(server.sessions(), 3);
}

#[tokio::test(start_paused = true)]
async fn kickout_of_an_offline_user_answers_ok() {
    let server = TestServer::start().await;
    let sdk = server.sdk();
    within("kickout", sdk.kickout(35)).await.unwrap();
    within("kickout", sdk.kickout_endpoint(35, "10.0.0.1:4000"))
        .await
        .unwrap();
    // A user who was online and left.
    let gate = server.logged_in(35).await;
    gate.client.close().await;
    within("kickout", sdk.kickout(35)).await.unwrap();
    let page = http_get(server.admin(), "/metrics").await.1;
    assert_eq!(
        metric(
            &page,
            "rtmd_server_calls_total{method=\"kickout\",result=\"ok\"}"
        ),
        3.0
    );
}

#[tokio::test(start_paused = true)]
async fn ce_absent_nil_and_empty_all_mean_every_login() {
    let server = TestServer::start().await;
    let raw_api = server.raw_api();
    for (label, ce) in [
        ("absent", None),
        ("nil", Some(Value::Nil)),
        ("empty", Some(Value::from(""))),
    ] {
        let mut a = server.raw_logged_in(36).await;
        let mut b = server.raw_logged_in(36).await;
        let mut q = signed_now("kickout", 36);
        if let Some(ce) = ce {
            q.insert("ce", ce);
        }
        within("kickout", raw_api.quest("kickout", &q))
            .await
            .unwrap_or_else(|e| panic!("ce {label}: {e}"));
        assert_raw_kicked(&mut a).await;
        assert_raw_kicked(&mut b).await;
    }
}

#[tokio::test(start_paused = true)]
async fn without_multi_login_a_new_login_kicks_the_older_one() {
    let mut single = project(PID, SECRET);
    single.multi_login = false;
    let server = TestServer::start_with(vec![single], |_| {}).await;
    let mut first = server.logged_in(37).await;
    let mut other_user = server.logged_in(38).await;
    let mut second = server.logged_in(37).await;
    first.kicked_and_closed().await;
    second.assert_alive().await;
    other_user.assert_alive().await;
    assert_eq!(server.sessions(), 2);
    // A failed login kicks nobody.
    let third = GateClient::connect(&server.gate()).await;
    third.refused(PID, 37, "forged").await;
    second.assert_alive().await;

    let page = http_get(server.admin(), "/metrics").await.1;
    assert_eq!(metric(&page, "rtmd_kicked_sessions_total"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn removetoken_keeps_live_sessions_by_default() {
    let server = TestServer::start().await;
    let mut gate = server.logged_in(39).await;
    within("removetoken", server.sdk().remove_token(39))
        .await
        .unwrap();
    gate.assert_alive().await;
}

#[tokio::test(start_paused = true)]
async fn removetoken_kicks_closes_live_sessions() {
    let mut strict = project(PID, SECRET);
    strict.removetoken_kicks = true;
    let server = TestServer::start_with(vec![strict], |_| {}).await;
    let mut a = server.logged_in(40).await;
    let mut b = server.logged_in(40).await;
    let mut other_user = server.logged_in(41).await;
    let token = server.token(40).await;
    within("removetoken", server.sdk().remove_token(40))
        .await
        .unwrap();
    a.kicked_and_closed().await;
    b.kicked_and_closed().await;
    other_user.assert_alive().await;
    // And the user cannot come back with a token minted before.
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 40, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_multi_login_concurrent_logins_leave_one_session() {
    let mut single = project(PID, SECRET);
    single.multi_login = false;
    let server = TestServer::start_with(vec![single], |_| {}).await;
    for uid in 100..140 {
        let token = server.token(uid).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(GateClient::connect(&server.gate()).await);
        }
        let logins: Vec<_> = clients
            .iter()
            .map(|c| {
                let client = c.client.clone();
                let params = Value::map()
                    .with("pid", PID)
                    .with("uid", uid)
                    .with("token", token.as_str());
                tokio::spawn(async move { client.quest("auth", &params).await })
            })
            .collect();
        for login in logins {
            // A login kicked by a later one at once may lose its answer with the
            // connection; it has had the kickout push.
            match within("auth", login).await.unwrap() {
                Ok(answer) => assert_eq!(answer.get("ok").and_then(Value::as_bool), Some(true)),
                Err(fpnn::Error::Closed(_)) => {}
                Err(e) => panic!("auth failed: {e}"),
            }
        }
        let live = server.rtmd().sessions_of(PID, uid);
        assert_eq!(live, 1, "uid {uid}: {live} sessions with multi-login off");
    }
}

#[tokio::test(start_paused = true)]
async fn removetoken_kicks_also_stops_a_login_in_progress() {
    let mut strict = project(PID, SECRET);
    strict.removetoken_kicks = true;
    let store = HeldStore::new();
    let server = TestServer::start_over(vec![strict], |_| {}, store.clone()).await;
    let token = server.token(42).await;
    let mut gate = GateClient::connect(&server.gate()).await;

    // The login has checked the token's generation and not yet registered its session
    // when removetoken revokes and kicks.
    store.hold("generation");
    let login = {
        let client = gate.client.clone();
        let params = Value::map()
            .with("pid", PID)
            .with("uid", 42)
            .with("token", token.as_str());
        tokio::spawn(async move { client.quest("auth", &params).await })
    };
    within("the login to read the generation", store.entered.notified()).await;
    within("removetoken", server.sdk().remove_token(42))
        .await
        .unwrap();
    store.release.add_permits(1);

    match within("auth", login).await.unwrap() {
        Ok(answer) if answer.get("ok").and_then(Value::as_bool) == Some(false) => {
            // Refused, and the connection (which cannot log in again) closed.
            gate.closed().await;
        }
        Ok(answer) => {
            // Logged in: then it must be kicked at once.
            assert_eq!(answer.get("ok").and_then(Value::as_bool), Some(true));
            gate.kicked_and_closed().await;
        }
        Err(e) => panic!("auth failed: {e}"),
    }
    assert_eq!(server.sessions(), 0, "a revoked login stayed online");
}

#[tokio::test(start_paused = true)]
async fn ce_is_the_plain_ipv4_endpoint_on_a_dual_stack_gate() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.listen.gate = "[::]:0".into();
    })
    .await;
    let port = server.rtmd().gate_addr().port();
    let gate = format!("127.0.0.1:{port}");
    let token = server.token(43).await;
    let login = || RawConn::logged_in(&gate, 43, &token);
    let mut first = login().await;
    let mut second = login().await;
    let sdk = server.sdk();
    // The client's own view of its address: 127.0.0.1:port.
    let ce = first.local_addr().to_string();
    assert!(ce.starts_with("127.0.0.1:"), "{ce}");
    within("kickout", sdk.kickout_endpoint(43, &ce))
        .await
        .unwrap();
    assert_raw_kicked(&mut first).await;
    // The IPv4-mapped form names the same endpoint.
    let mapped = format!("[::ffff:127.0.0.1]:{}", second.local_addr().port());
    within("kickout", sdk.kickout_endpoint(43, &mapped))
        .await
        .unwrap();
    assert_raw_kicked(&mut second).await;
}

/// Reads a kicked raw connection the way the 2018 Java reader does: nothing until 200 ms
/// after the kick returned, then one read. The `kickout` push must be there, without the
/// server's FIN behind it (which that reader would take as the end of the stream, dropping
/// the frame read with it). Then the session is over (a quest answers 200022) while the
/// connection is open, and the server closes it once the grace has run out.
///
/// `kicked_at` is when the call that kicked started: the server's close cannot come before
/// `kicked_at + grace`.
async fn read_late_like_the_java_client(raw: &mut RawConn, kicked_at: Instant) {
    tokio::time::advance(Duration::from_millis(200)).await;
    match within("the kickout push", raw.next_frame()).await {
        Ok(Frame::Quest(q)) => {
            assert_eq!(q.method, "kickout");
            assert_eq!(q.seq, None, "the kickout push is one-way");
        }
        other => panic!("expected the kickout push, got {other:?}"),
    }
    // On simulated time the read comes 200 ms after the kick exactly, well inside the grace.
    assert!(kicked_at.elapsed() < DEFAULT_KICKOUT_GRACE);
    assert!(
        !raw.eof_arrived(),
        "the server's FIN came with the kickout push"
    );
    // The session is over: nothing more is served on the connection.
    let e = raw.quest("ping", &Value::map()).await.unwrap_err();
    assert_eq!(e.code, 200022, "{e}");
    assert!(e.ex.contains("kickout"), "{e}");
    let (frames, ending) = raw.until_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(ending, Ending::Eof);
    assert!(
        kicked_at.elapsed() >= DEFAULT_KICKOUT_GRACE,
        "the server closed the connection before the grace ran out"
    );
}

#[tokio::test(start_paused = true)]
async fn every_kick_leaves_the_connection_to_the_client_for_the_grace() {
    let mut single = project(PID + 1, SECRET);
    single.multi_login = false;
    let mut strict = project(PID + 2, SECRET);
    strict.removetoken_kicks = true;
    let server = TestServer::start_with(vec![project(PID, SECRET), single, strict], |_| {}).await;
    let sdks = [PID, PID + 1, PID + 2].map(|pid| sdk(&server.api(), pid, SECRET));
    let login = |pid: i32, uid: i64| {
        let (gate, sdk) = (server.gate(), &sdks[(pid - PID) as usize]);
        async move {
            let token = within("gettoken", sdk.get_token(uid)).await.unwrap();
            RawConn::logged_in_to(&gate, pid, uid, &token).await
        }
    };

    // The server API's kickout.
    let mut raw = login(PID, 50).await;
    let kicked_at = Instant::now();
    within("kickout", sdks[0].kickout(50)).await.unwrap();
    // Not online any more, while its connection is still open.
    assert_eq!(server.sessions(), 0);
    read_late_like_the_java_client(&mut raw, kicked_at).await;

    // A login that replaces the user's other one (multi-login off).
    let mut older = login(PID + 1, 51).await;
    let kicked_at = Instant::now();
    let _newer = login(PID + 1, 51).await;
    assert_eq!(server.sessions(), 1);
    read_late_like_the_java_client(&mut older, kicked_at).await;

    // removetoken, for a project where it kicks.
    let mut raw = login(PID + 2, 52).await;
    let kicked_at = Instant::now();
    within("removetoken", sdks[2].remove_token(52))
        .await
        .unwrap();
    assert_eq!(server.sessions(), 1);
    read_late_like_the_java_client(&mut raw, kicked_at).await;

    let page = http_get(server.admin(), "/metrics").await.1;
    assert_eq!(metric(&page, "rtmd_kicked_sessions_total"), 3.0);
    assert_eq!(
        metric(&page, "rtmd_kicked_connections_closed_total{by=\"server\"}"),
        3.0
    );
    assert_eq!(metric(&page, "rtmd_sessions"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_closes_on_kickout_ends_it_at_once() {
    let server = TestServer::start().await;
    let mut raw = server.raw_logged_in(53).await;
    within("kickout", server.sdk().kickout(53)).await.unwrap();
    // As the official clients do: close on the push.
    assert!(matches!(
        within("the push", raw.next_frame()).await,
        Ok(Frame::Quest(q)) if q.method == "kickout"
    ));
    drop(raw);
    let closed_by_client = "rtmd_kicked_connections_closed_total{by=\"client\"}";
    let deadline = Instant::now() + WAIT;
    loop {
        let page = http_get(server.admin(), "/metrics").await.1;
        if metric(&page, closed_by_client) == 1.0 {
            assert_eq!(
                metric(&page, "rtmd_kicked_connections_closed_total{by=\"server\"}"),
                0.0
            );
            assert_eq!(metric(&page, "rtmd_connections{port=\"gate\"}"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "the client's close was not seen");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_grace_closes_right_after_the_push() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.kickout_grace = Duration::ZERO;
    })
    .await;
    let mut raw = server.raw_logged_in(54).await;
    within("kickout", server.sdk().kickout(54)).await.unwrap();
    let (frames, ending) = raw.until_closed().await;
    assert_eq!(ending, Ending::Eof);
    assert!(
        matches!(frames.as_slice(), [Frame::Quest(q)] if q.method == "kickout"),
        "{frames:?}"
    );
}

/// A logged-in client that pipelines `ping` and never reads: the gate stops reading it once
/// its answers pile up, and a kickout still ends the session and the connection (the push
/// may or may not find room; the close is what matters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_and_never_reads_is_still_kicked_out() {
    use fpnn::Quest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let token = server.token(33).await;
    let mut stream = tokio::net::TcpStream::connect(server.gate()).await.unwrap();
    let params = Value::map()
        .with("pid", PID)
        .with("uid", 33)
        .with("token", token.as_str());
    let auth = Frame::from(Quest::twoway("auth", 1, &params).unwrap())
        .encode()
        .unwrap();
    stream.write_all(&auth).await.unwrap();
    within("the login", async {
        while server.sessions() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let ping = Frame::from(Quest::twoway("ping", 2, &Value::map()).unwrap())
        .encode()
        .unwrap();
    let batch = ping.repeat(1000);
    let blocked = std::time::Duration::from_millis(500);
    let mut batches = 0;
    while let Ok(written) = tokio::time::timeout(blocked, stream.write_all(&batch)).await {
        written.unwrap();
        batches += 1;
        assert!(batches < 100_000, "the gate never stopped reading");
    }
    within("kickout", server.sdk().kickout(33)).await.unwrap();
    within("the session to end", async {
        while server.sessions() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    within("the connection to close", async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
