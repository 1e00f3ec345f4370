//! The `rtm` binary against a real `rtmd` on loopback: the README's walk-through, kickouts by
//! endpoint and their counts, the device table, and `--json`.

mod common;

use common::*;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_token_login_kickout_revoke() {
    let (rtmd, _dir) = start().await;
    let token = token(&rtmd, 42).await;
    assert!(token.len() >= 64, "a token on stdout: {token:?}");

    // `rtm login` stays connected until it is kicked out, and says where from.
    let login = Login::start(&rtmd, 42, &token, &[]).await;
    let gate = rtmd.gate_addr();
    assert!(
        login.first.starts_with(&format!(
            "logged in as user 42 of project {PID} at {gate} from 127.0.0.1:"
        )),
        "{}",
        login.first
    );
    assert_eq!(rtmd.sessions(), 1);

    let out = run(rtm(&rtmd, SECRET), &["kickout", "--uid", "42"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stderr(&out),
        "kicked out every login of user 42: 1 session closed"
    );
    let (rest, status) = login.finish().await;
    assert!(
        status.success(),
        "login exits 0 after a kickout: {status:?} {rest:?}"
    );
    assert_eq!(
        rest,
        [
            "kicked out: the server pushed kickout",
            "connection closed after the kickout"
        ]
    );

    // Revoked: the same token no longer logs in (exit code 3).
    let out = run(rtm(&rtmd, SECRET), &["token", "remove", "--uid", "42"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = run(
        rtm(&rtmd, SECRET),
        &["login", "--uid", "42", "--token", &token, "--for-secs", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "rtm: login refused at {gate}: error 200027 (RTM_EC_INVALID_AUTH_TOEKN): \
             the token is invalid, expired or revoked for user 42"
        )),
        "{err}"
    );
    assert!(
        err.ends_with("hint: get a new token with `rtm token get --uid 42`; check --pid"),
        "{err}"
    );
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kickout_ce_closes_exactly_the_login_at_the_endpoint_it_printed() {
    let (rtmd, _dir) = start().await;
    let token = token(&rtmd, 7).await;
    let first = Login::start(&rtmd, 7, &token, &[]).await;
    let mut second = Login::start(&rtmd, 7, &token, &[]).await;
    let (a, b) = (first.endpoint(), second.endpoint());
    assert_ne!(a, b);
    assert_eq!(rtmd.sessions(), 2);

    // An endpoint with no login of the user: nothing closed, said so.
    let out = run(
        rtm(&rtmd, SECRET),
        &["kickout", "--uid", "7", "--ce", "127.0.0.1:1"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stderr(&out),
        "kicked out the login of user 7 at 127.0.0.1:1: 0 sessions closed (none was online)"
    );
    assert_eq!(rtmd.sessions(), 2);

    // The endpoint the first login printed: that login, and only it.
    let out = run(rtm(&rtmd, SECRET), &["kickout", "--uid", "7", "--ce", &a]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!("kicked out the login of user 7 at {a}: 1 session closed")
    );
    let (rest, status) = first.finish().await;
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("kicked out")), "{rest:?}");
    assert_eq!(rtmd.sessions(), 1);
    assert!(second.is_running());

    // The count, for scripts.
    let out = run(rtm(&rtmd, SECRET), &["kickout", "--uid", "7", "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "uid": 7, "ce": null, "kicked": 1 })
    );
    let (_, status) = second.finish().await;
    assert!(status.success());
    assert_eq!(rtmd.sessions(), 0);
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_malformed_ce_is_refused_and_kicks_nobody() {
    let (rtmd, _dir) = start().await;
    let token = token(&rtmd, 8).await;
    let mut login = Login::start(&rtmd, 8, &token, &[]).await;

    let out = run(rtm(&rtmd, SECRET), &["kickout", "--uid", "8", "--ce", ""]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).starts_with(
            "error: invalid value '' for '--ce <IP:PORT>': an empty endpoint names no login; \
             to kick every login of the user, leave --ce out"
        ),
        "{out:?}"
    );
    for bad in ["garbage", "127.0.0.1", "localhost:5000"] {
        let out = run(rtm(&rtmd, SECRET), &["kickout", "--uid", "8", "--ce", bad]).await;
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(
            stderr(&out).contains(&format!("'{bad}' is not an ip:port")),
            "{out:?}"
        );
    }
    // Nothing reached the server: the login is still there.
    assert_eq!(rtmd.sessions(), 1);
    assert!(login.is_running());
    rtmd.shutdown().await;
    let (_, status) = login.finish().await;
    assert_eq!(status.code(), Some(4), "closed without a kickout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_is_a_table_with_utc_times_and_json_for_scripts() {
    let (rtmd, _dir) = start().await;
    let before = SystemTime::now() - Duration::from_secs(1);
    for (apptype, device) in [("apns", "dev-1"), ("fcm", "dev-\u{1b}[2J-2")] {
        let out = run(
            rtm(&rtmd, SECRET),
            &[
                "device",
                "add",
                "--uid",
                "7",
                "--apptype",
                apptype,
                "--token",
                device,
            ],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
    }
    let after = SystemTime::now() + Duration::from_secs(1);

    let out = run(rtm(&rtmd, SECRET), &["device", "list", "--uid", "7"]).await;
    assert!(out.status.success(), "{out:?}");
    let listed = stdout(&out);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert_eq!(lines[0], "APPTYPE  ADDED (UTC)               DEVICE TOKEN");
    let mut table_times = Vec::new();
    for (line, (apptype, device)) in lines[1..]
        .iter()
        .zip([("apns", "dev-1"), ("fcm", "dev-\\u{1b}[2J-2")])
    {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 3, "{line}");
        assert_eq!(cells[0], apptype);
        assert_eq!(cells[2], device, "control characters are shown escaped");
        // ISO 8601 in UTC, to the millisecond, and the time it was added.
        assert!(
            cells[1].len() == 24 && cells[1].ends_with('Z'),
            "{}",
            cells[1]
        );
        let added = humantime::parse_rfc3339(cells[1]).unwrap();
        assert!(before <= added && added <= after, "{}", cells[1]);
        table_times.push(cells[1].to_owned());
    }

    let out = run(
        rtm(&rtmd, SECRET),
        &["device", "list", "--uid", "7", "--json"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["uid"], 7);
    let devices = answer["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        devices[1]["devicetoken"], "dev-\u{1b}[2J-2",
        "JSON keeps it exact"
    );
    for (device, shown) in devices.iter().zip(&table_times) {
        assert_eq!(device["added"], shown.as_str());
        let ms = device["time"].as_u64().unwrap();
        let added = humantime::parse_rfc3339(shown).unwrap();
        let since = added.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_millis(), u128::from(ms));
    }

    // No devices: nothing on stdout (a JSON empty list with --json).
    let out = run(rtm(&rtmd, SECRET), &["device", "list", "--uid", "9"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "user 9 has no devices");
    let out = run(
        rtm(&rtmd, SECRET),
        &["device", "list", "--uid", "9", "--json"],
    )
    .await;
    assert_eq!(stdout(&out), r#"{"devices":[],"uid":9}"#);
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_for_the_token_and_the_login_events() {
    let (rtmd, _dir) = start().await;
    let out = run(
        rtm(&rtmd, SECRET),
        &["token", "get", "--uid", "12", "--json"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["pid"], PID);
    assert_eq!(answer["uid"], 12);
    let token = answer["token"].as_str().unwrap().to_owned();

    let login = Login::start(&rtmd, 12, &token, &["--json"]).await;
    let event: serde_json::Value = serde_json::from_str(&login.first).unwrap();
    assert_eq!(event["event"], "logged_in");
    assert_eq!(event["uid"], 12);
    assert_eq!(event["gate"], rtmd.gate_addr().to_string());
    let endpoint = event["endpoint"].as_str().unwrap().to_owned();
    let out = run(
        rtm(&rtmd, SECRET),
        &["kickout", "--uid", "12", "--ce", &endpoint, "--json"],
    )
    .await;
    assert_eq!(
        stdout(&out),
        format!(r#"{{"ce":"{endpoint}","kicked":1,"uid":12}}"#)
    );
    let (rest, status) = login.finish().await;
    assert!(status.success());
    let events: Vec<serde_json::Value> = rest
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events,
        [
            serde_json::json!({ "event": "kickout" }),
            serde_json::json!({ "event": "closed", "after_kickout": true, "reason": "closed by the client after the kickout" }),
        ]
    );

    // A refused login says so on stdout too, and exits 3.
    let out = run(
        rtm(&rtmd, SECRET),
        &["login", "--uid", "12", "--token", "not-a-token", "--json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let event: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        event,
        serde_json::json!({ "event": "refused", "pid": PID, "uid": 12, "code": 200027 })
    );
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_for_a_while_leaves_by_itself_and_exits_0() {
    let (rtmd, _dir) = start().await;
    let token = token(&rtmd, 13).await;
    let login = Login::start(&rtmd, 13, &token, &["--for-secs", "0"]).await;
    let (rest, status) = login.finish().await;
    assert!(status.success(), "{rest:?}");
    assert_eq!(rest, ["logged out after 0 s"]);
    rtmd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kickout_counts_the_sessions_it_closed_on_every_node() {
    let Some(prefix) = redis_prefix_or_skip("kicked").await else {
        return;
    };
    let (a, _dir_a) = start_node(&prefix).await;
    let (b, _dir_b) = start_node(&prefix).await;
    let token = token(&a, 21).await;
    let on_a = Login::start(&a, 21, &token, &[]).await;
    let on_b = Login::start(&b, 21, &token, &[]).await;
    let also_on_b = Login::start(&b, 21, &token, &[]).await;

    // Called on node A: its own session, and the two node B holds.
    let out = run(rtm(&a, SECRET), &["kickout", "--uid", "21"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stderr(&out),
        "kicked out every login of user 21: 3 sessions closed"
    );
    for login in [on_a, on_b, also_on_b] {
        let (rest, status) = login.finish().await;
        assert!(status.success(), "{rest:?}");
        assert_eq!(rest[0], "kicked out: the server pushed kickout");
    }
    a.shutdown().await;
    b.shutdown().await;
    delete_redis_prefix(&prefix).await;
}
