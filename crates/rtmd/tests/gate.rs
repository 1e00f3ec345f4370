//! The client gate end to end: `auth` with good and bad tokens, the order of quests, the
//! auth timeout and `bye`.
//!
//! Every test runs on tokio's paused clock (real loopback sockets, simulated time): the auth
//! timeout, the gate's pings and a token's expiry take no real time, and the service reads
//! its date from the same clock (`Clock::tokio`).

mod common;

use common::*;
use fpnn::Value;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_valid_token_logs_in_many_times() {
    let server = TestServer::start().await;
    let token = server.token(10).await;
    // One token, many logins: one after another, and at once.
    for _ in 0..3 {
        let gate = GateClient::connect(&server.gate()).await;
        gate.login(PID, 10, &token).await;
        gate.client.close().await;
    }
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(GateClient::connect(&server.gate()).await);
    }
    // Sent at once, each on its own connection.
    let logins: Vec<_> = clients
        .iter()
        .map(|c| {
            let client = c.client.clone();
            let params = Value::map()
                .with("pid", PID)
                .with("uid", 10)
                .with("token", token.as_str());
            tokio::spawn(async move { client.quest("auth", &params).await })
        })
        .collect();
    for login in logins {
        let answer = within("auth", login).await.unwrap().expect("auth answers");
        assert_eq!(answer.get("ok").and_then(Value::as_bool), Some(true));
    }
    assert_eq!(server.sessions(), 5);
    for c in &mut clients {
        c.assert_alive().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_minted_token_carries_the_project_ttl() {
    let mut p = project(PID, SECRET);
    p.token_ttl = Duration::from_secs(3600);
    let server = TestServer::start_with(vec![p], |_| {}).await;
    let token = server.token(11).await;
    let claims = server
        .rtmd()
        .tokens()
        .verify(&token, PID, 11, server.now() as u64)
        .expect("a valid token");
    assert_eq!(claims.expires - claims.issued, 3600);
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_refused() {
    let mut short = project(PID, SECRET);
    short.token_ttl = Duration::from_secs(1);
    let server = TestServer::start_with(vec![short], |_| {}).await;

    // Minted with the service's own keys at a past time.
    let tokens = server.rtmd().tokens();
    let past = server.now() as u64 - 100;
    let old = tokens.mint(PID, 12, 0, past, 50);
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 12, &old).await;
    let fresh = tokens.mint(PID, 12, 0, past, 500);
    gate.login(PID, 12, &fresh).await;

    // Through gettoken with a TTL of one second: let it run out.
    let token = server.token(13).await;
    let gate = GateClient::connect(&server.gate()).await;
    gate.login(PID, 13, &token).await;
    tokio::time::advance(Duration::from_millis(2100)).await;
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 13, &token).await;

    let page = http_get(server.admin(), "/metrics").await.1;
    assert_eq!(metric(&page, "rtmd_auth_total{result=\"expired\"}"), 2.0);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_refused_and_a_new_one_works() {
    let server = TestServer::start().await;
    let sdk = server.sdk();
    let t1 = server.token(14).await;
    let t2 = server.token(14).await;
    within("removetoken", sdk.remove_token(14)).await.unwrap();
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 14, &t1).await;
    gate.refused(PID, 14, &t2).await;
    // A failed auth does not count as a login: the connection may try again.
    let t3 = server.token(14).await;
    gate.login(PID, 14, &t3).await;
    // Another user's tokens are untouched.
    let other = server.token(15).await;
    within("removetoken", sdk.remove_token(14)).await.unwrap();
    let gate = GateClient::connect(&server.gate()).await;
    gate.login(PID, 15, &other).await;
}

#[tokio::test(start_paused = true)]
async fn forged_tokens_are_refused() {
    let server = TestServer::start().await;
    let token = server.token(16).await;
    let gate = GateClient::connect(&server.gate()).await;
    // Every character altered in turn.
    for i in 0..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        gate.refused(PID, 16, &forged).await;
    }
    for forged in [
        String::new(),
        "x".into(),
        "A".repeat(token.len()),
        "not a token at all, with spaces and ünïcode".into(),
        format!("{token}A"),
        token[..token.len() - 1].to_owned(),
        "é".repeat(token.len() / 2),
        "Z".repeat(100_000),
    ] {
        gate.refused(PID, 16, &forged).await;
    }
    // A token of another rtmd (another key ring) is refused.
    let elsewhere = TestServer::start().await;
    let foreign = elsewhere.token(16).await;
    gate.refused(PID, 16, &foreign).await;
    // And the real one still works on this connection.
    gate.login(PID, 16, &token).await;
}

#[tokio::test(start_paused = true)]
async fn a_token_of_another_user_or_project_is_refused() {
    let server = TestServer::start_with(
        vec![project(PID, SECRET), project(PID + 1, "other")],
        |_| {},
    )
    .await;
    let token = server.token(17).await;
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 18, &token).await;
    gate.refused(PID + 1, 17, &token).await;
    // Unknown projects, and ids out of range, are refused the same way.
    gate.refused(424242, 17, &token).await;
    for uid in [0, -17] {
        gate.refused(PID, uid, &token).await;
    }
    let answer = within(
        "auth",
        gate.client.quest(
            "auth",
            &Value::map()
                .with("pid", i64::from(u32::MAX) + 5)
                .with("uid", Value::UInt(u64::MAX))
                .with("token", token.as_str()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.get("ok").and_then(Value::as_bool), Some(false));
    gate.login(PID, 17, &token).await;
}

#[tokio::test(start_paused = true)]
async fn auth_with_missing_or_mistyped_keys_is_an_error_answer() {
    let server = TestServer::start().await;
    let token = server.token(19).await;
    let gate = GateClient::connect(&server.gate()).await;
    let q = Value::map().with("pid", PID).with("uid", 19);
    let e = answer_error(within("auth", gate.client.quest("auth", &q)).await);
    assert_eq!(e.code, 10009, "{e}");
    let q = Value::map()
        .with("pid", PID)
        .with("uid", "19")
        .with("token", token.as_str());
    let e = answer_error(within("auth", gate.client.quest("auth", &q)).await);
    assert_eq!(e.code, 10010, "{e}");
    gate.login(PID, 19, &token).await;
}

#[tokio::test(start_paused = true)]
async fn quests_before_auth_answer_200022() {
    let server = TestServer::start().await;
    let gate = GateClient::connect(&server.gate()).await;
    for method in ["ping", "getattrs", "sendmsg", "kickout"] {
        let e = answer_error(within(method, gate.client.quest(method, &Value::map())).await);
        assert_eq!(e.code, 200022, "{method}: {e}");
    }
    let token = server.token(20).await;
    gate.login(PID, 20, &token).await;
    gate.ping().await.expect("ping after auth");
    // After auth, methods the gate does not have answer 20004.
    let e = answer_error(within("getattrs", gate.client.quest("getattrs", &Value::map())).await);
    assert_eq!(e.code, 20004, "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_second_auth_answers_200023() {
    let server = TestServer::start().await;
    let token = server.token(21).await;
    let mut gate = GateClient::connect(&server.gate()).await;
    gate.login(PID, 21, &token).await;
    let e = gate.auth(PID, 21, &token).await.unwrap_err();
    assert_eq!(answer_error(Err(e)).code, 200023);
    // Also as another user, and with a bad token.
    let other = server.token(22).await;
    assert_eq!(
        answer_error(gate.auth(PID, 22, &other).await.map(Value::from)).code,
        200023
    );
    assert_eq!(
        answer_error(gate.auth(PID, 21, "bad").await.map(Value::from)).code,
        200023
    );
    gate.assert_alive().await;
    assert_eq!(server.sessions(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unauthenticated_connection_is_closed_after_the_auth_timeout() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.auth_timeout = Duration::from_millis(300);
    })
    .await;
    // Logged in first, so that its own timer runs out before the others'.
    let mut logged_in = server.logged_in(23).await;
    let mut silent = GateClient::connect(&server.gate()).await;
    let mut failed = GateClient::connect(&server.gate()).await;
    failed.refused(PID, 23, "forged").await;
    let mut raw = RawConn::connect(&server.gate()).await;

    silent.closed().await;
    failed.closed().await;
    let (frames, _) = raw.until_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    logged_in.assert_alive().await;
}

#[tokio::test(start_paused = true)]
async fn bye_answers_and_closes_the_connection() {
    let server = TestServer::start().await;
    let mut gate = server.logged_in(24).await;
    assert_eq!(server.sessions(), 1);
    let answer = within("bye", gate.client.quest("bye", &Value::map()))
        .await
        .expect("bye answers");
    assert_eq!(answer, Value::map());
    gate.closed().await;

    // On a raw connection: the answer comes, then the end of the stream.
    let mut raw = server.raw_logged_in(24).await;
    assert_eq!(raw.quest("bye", &Value::map()).await.unwrap(), Value::map());
    let (frames, ending) = raw.until_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(ending, Ending::Eof);
    // The sessions are gone once the connections are.
    server.until_sessions(0).await;
}

#[tokio::test(start_paused = true)]
async fn a_second_gettoken_leaves_the_first_valid() {
    let server = TestServer::start().await;
    let first = server.token(25).await;
    let second = server.token(25).await;
    assert_ne!(first, second);
    let a = GateClient::connect(&server.gate()).await;
    a.login(PID, 25, &first).await;
    let b = GateClient::connect(&server.gate()).await;
    b.login(PID, 25, &second).await;
    let c = GateClient::connect(&server.gate()).await;
    c.login(PID, 25, &first).await;
}

#[tokio::test(start_paused = true)]
async fn a_one_way_quest_before_auth_is_ignored() {
    let server = TestServer::start().await;
    let gate = GateClient::connect(&server.gate()).await;
    within("oneway", gate.client.oneway("sendmsg", &Value::map()))
        .await
        .unwrap();
    let token = server.token(26).await;
    gate.login(PID, 26, &token).await;
}

#[tokio::test(start_paused = true)]
async fn a_logged_in_client_that_stops_answering_pings_is_closed() {
    let server = TestServer::start_with(vec![project(PID, SECRET)], |c| {
        c.limits.client_ping_interval = Duration::from_millis(200);
    })
    .await;
    // The FPNN client answers the gate's pings (with 20004, having no handler): alive.
    let mut answering = server.logged_in(27).await;
    let mut silent = server.raw_logged_in(28).await;
    let (frames, _) = silent.until_closed().await;
    let pings = frames
        .iter()
        .filter(|f| matches!(f, fpnn::Frame::Quest(q) if q.method == "ping" && q.seq.is_some()))
        .count();
    assert_eq!(pings, frames.len(), "{frames:?}");
    assert!(pings >= 2, "closed after {pings} pings");
    answering.assert_alive().await;
}

#[tokio::test(start_paused = true)]
async fn auth_reads_integers_in_any_width() {
    let server = TestServer::start().await;
    let token = server.token(29).await;
    let payload = Mp::map(3)
        .str("pid")
        .u64(PID as u64)
        .str("uid")
        .i64(29)
        .str("token")
        .str(&token);
    let mut raw = RawConn::connect(&server.gate()).await;
    let answer = raw
        .raw_quest(&raw_frame("auth", 1, &payload.0), 1)
        .await
        .unwrap();
    assert_eq!(answer.get("ok").and_then(Value::as_bool), Some(true));
}

#[tokio::test(start_paused = true)]
async fn bye_before_auth_also_answers_and_closes() {
    let server = TestServer::start().await;
    let mut raw = RawConn::connect(&server.gate()).await;
    assert_eq!(raw.quest("bye", &Value::map()).await.unwrap(), Value::map());
    let (frames, ending) = raw.until_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(ending, Ending::Eof);
}
