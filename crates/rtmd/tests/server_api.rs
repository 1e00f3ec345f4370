//! The server API end to end: every call through the SDK, and every error path with its
//! exact code, over real connections on loopback.

mod common;

use common::*;
use fpnn::Value;
use rtm_server_sdk::app_type;
use rtm_server_sdk::sign::{sign, sign_legacy};

#[tokio::test]
async fn every_call_through_the_sdk() {
    let server = TestServer::start().await;
    let sdk = server.sdk();

    let token = within("gettoken", sdk.get_token(1001)).await.unwrap();
    assert_eq!(token.len(), 80, "{token}");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    within(
        "adddevice",
        sdk.add_device(1001, app_type::APNS, "apns-token-1"),
    )
    .await
    .unwrap();
    within(
        "adddevice",
        sdk.add_device(1001, app_type::FCM, "fcm-token-1"),
    )
    .await
    .unwrap();
    // `gcm` and `pcm` are older names of `fcm`; re-adding is idempotent.
    within("adddevice", sdk.add_device(1001, "gcm", "fcm-token-2"))
        .await
        .unwrap();
    within("adddevice", sdk.add_device(1001, "pcm", "fcm-token-2"))
        .await
        .unwrap();
    let devices = within("getdevices", sdk.get_devices(1001)).await.unwrap();
    let listed: Vec<(&str, &str)> = devices
        .iter()
        .map(|d| (d.apptype.as_str(), d.devicetoken.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("apns", "apns-token-1"),
            ("fcm", "fcm-token-1"),
            ("fcm", "fcm-token-2")
        ]
    );
    let t = now() * 1000;
    assert!(devices
        .iter()
        .all(|d| (t - 60_000..t + 60_000).contains(&d.time)));

    within("removedevice", sdk.remove_device(1001, "fcm-token-1"))
        .await
        .unwrap();
    // Removing a token the user does not own answers OK and does nothing.
    within("removedevice", sdk.remove_device(1001, "never-added"))
        .await
        .unwrap();
    within("removedevice", sdk.remove_device(1002, "apns-token-1"))
        .await
        .unwrap();
    let tokens: Vec<String> = within("getdevices", sdk.get_devices(1001))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.devicetoken)
        .collect();
    assert_eq!(tokens, ["apns-token-1", "fcm-token-2"]);

    // A device token belongs to one user: adding it for another moves it.
    within(
        "adddevice",
        sdk.add_device(1002, app_type::APNS, "apns-token-1"),
    )
    .await
    .unwrap();
    let first = within("getdevices", sdk.get_devices(1001)).await.unwrap();
    let second = within("getdevices", sdk.get_devices(1002)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(second[0].devicetoken, "apns-token-1");
    assert!(within("getdevices", sdk.get_devices(1003))
        .await
        .unwrap()
        .is_empty());

    within("removetoken", sdk.remove_token(1001)).await.unwrap();
    within("removetoken again", sdk.remove_token(1001))
        .await
        .unwrap();
    within("kickout", sdk.kickout(1001)).await.unwrap();
    within(
        "kickout_endpoint",
        sdk.kickout_endpoint(1001, "127.0.0.1:1"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_user_keeps_at_most_max_devices() {
    let mut p = project(PID, SECRET);
    p.max_devices = 3;
    let server = TestServer::start_with(vec![p], |_| {}).await;
    let sdk = server.sdk();
    for i in 0..5 {
        within(
            "adddevice",
            sdk.add_device(7, app_type::FCM, &format!("device-{i}")),
        )
        .await
        .unwrap();
    }
    let tokens: Vec<String> = within("getdevices", sdk.get_devices(7))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.devicetoken)
        .collect();
    assert_eq!(tokens, ["device-2", "device-3", "device-4"]);
}

#[tokio::test]
async fn unknown_pid_and_bad_sign_answer_200002() {
    let server = TestServer::start().await;
    let unknown = sdk(&server.api(), 12345, SECRET);
    assert_eq!(sdk_code(within("call", unknown.get_token(1)).await), 200002);
    let wrong = sdk(&server.api(), PID, "not-the-secret");
    assert_eq!(sdk_code(within("call", wrong.get_token(1)).await), 200002);
    assert_eq!(sdk_code(within("call", wrong.kickout(1)).await), 200002);

    let raw = server.raw_api();
    // Signed for another method.
    let q = signed(PID, SECRET, "kickout", fresh_salt(), now()).with("uid", 1);
    let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
    assert_eq!(e.code, 200002, "{e}");
    // A sign that is not even hex, and one of the wrong length.
    for bad in ["zz", "", "0123456789ABCDEF0123456789ABCDEF00"] {
        let q = Value::map()
            .with("pid", PID)
            .with("sign", bad)
            .with("salt", fresh_salt())
            .with("ts", now())
            .with("uid", 1);
        let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
        assert_eq!(e.code, 200002, "{bad:?}: {e}");
    }
    // A pid outside the int32 range.
    let q = Value::map()
        .with("pid", i64::from(i32::MAX) + 1)
        .with("sign", "x")
        .with("salt", 1)
        .with("ts", now())
        .with("uid", 1);
    let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
    assert_eq!(e.code, 200002, "{e}");
    // The sign is compared without regard to case.
    let salt = fresh_salt();
    let ts = now();
    let q = Value::map()
        .with("pid", PID)
        .with(
            "sign",
            sign(PID, SECRET, salt, "gettoken", ts).to_lowercase(),
        )
        .with("salt", salt)
        .with("ts", ts)
        .with("uid", 1);
    within("lower-case sign", raw.quest("gettoken", &q))
        .await
        .expect("a lower-case sign is accepted");
}

#[tokio::test]
async fn ts_outside_the_window_answers_200008() {
    let server = TestServer::start().await;
    let raw = server.raw_api();
    // The default window is 300 s each way; stay clear of its edge.
    for ts in [now() - 400, now() + 400, 0, i64::from(i32::MAX) * 2] {
        let q = signed(PID, SECRET, "gettoken", fresh_salt(), ts).with("uid", 1);
        let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
        assert_eq!(e.code, 200008, "ts {ts}: {e}");
        assert!(e.ex.contains("clock"), "{e}");
    }
    for ts in [now() - 200, now() + 200, now() + 5] {
        let q = signed(PID, SECRET, "gettoken", fresh_salt(), ts).with("uid", 1);
        within("quest", raw.quest("gettoken", &q))
            .await
            .unwrap_or_else(|e| panic!("ts {ts} is inside the window: {e}"));
    }
    // A project with a narrower window.
    let mut narrow = project(PID + 1, "narrow-secret");
    narrow.sign_window = std::time::Duration::from_secs(30);
    let server = TestServer::start_with(vec![narrow], |_| {}).await;
    let raw = server.raw_api();
    let q = signed(
        PID + 1,
        "narrow-secret",
        "gettoken",
        fresh_salt(),
        now() - 100,
    )
    .with("uid", 1);
    let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
    assert_eq!(e.code, 200008, "{e}");
}

#[tokio::test]
async fn a_replayed_sign_answers_200006() {
    let server = TestServer::start().await;
    let raw = server.raw_api();
    let salt = fresh_salt();
    let ts = now();
    let q = signed(PID, SECRET, "adddevice", salt, ts)
        .with("uid", 5)
        .with("apptype", "apns")
        .with("devicetoken", "replayed-device");
    within("first", raw.quest("adddevice", &q))
        .await
        .expect("the first quest is accepted");
    let e = answer_error(within("replay", raw.quest("adddevice", &q)).await);
    assert_eq!(e.code, 200006, "{e}");
    // From another connection too.
    let other = server.raw_api();
    let e = answer_error(within("replay", other.quest("adddevice", &q)).await);
    assert_eq!(e.code, 200006, "{e}");
    // The same sign in lower case is the same sign.
    let mut lower = q.clone();
    if let Value::Map(entries) = &mut lower {
        for (k, v) in entries.iter_mut() {
            if k.as_str() == Some("sign") {
                *v = Value::from(sign(PID, SECRET, salt, "adddevice", ts).to_lowercase());
            }
        }
    }
    let e = answer_error(within("replay", raw.quest("adddevice", &lower)).await);
    assert_eq!(e.code, 200006, "{e}");
    // Another salt makes another sign.
    let q = signed(PID, SECRET, "adddevice", salt + 1, ts)
        .with("uid", 5)
        .with("apptype", "apns")
        .with("devicetoken", "replayed-device");
    within("new salt", raw.quest("adddevice", &q))
        .await
        .expect("a new salt is accepted");
}

#[tokio::test]
async fn missing_keys_answer_10009() {
    let server = TestServer::start().await;
    let raw = server.raw_api();
    let full = |method: &str| -> Vec<(&'static str, Value)> {
        let salt = fresh_salt();
        let ts = now();
        let mut keys = vec![
            ("pid", Value::from(PID)),
            ("sign", Value::from(sign(PID, SECRET, salt, method, ts))),
            ("salt", Value::from(salt)),
            ("ts", Value::from(ts)),
            ("uid", Value::from(9)),
        ];
        if method == "adddevice" {
            keys.push(("apptype", Value::from("fcm")));
        }
        if method == "adddevice" || method == "removedevice" {
            keys.push(("devicetoken", Value::from("tok")));
        }
        keys
    };
    for method in [
        "gettoken",
        "removetoken",
        "adddevice",
        "removedevice",
        "kickout",
        "getdevices",
    ] {
        let keys = full(method);
        // `ts` missing is the legacy form: refused as a bad sign (its own test).
        for skip in keys.iter().map(|(k, _)| *k).filter(|k| *k != "ts") {
            let mut q = Value::map();
            for (k, v) in full(method) {
                if k != skip {
                    q.insert(k, v);
                }
            }
            let e = answer_error(within("quest", raw.quest(method, &q)).await);
            assert_eq!(e.code, 10009, "{method} without {skip}: {e}");
            assert!(e.ex.contains(skip), "{method} without {skip}: {e}");
        }
    }
}

#[tokio::test]
async fn mistyped_keys_answer_10010() {
    let server = TestServer::start().await;
    let raw = server.raw_api();
    let cases: Vec<(&str, &str, Value)> = vec![
        ("gettoken", "uid", Value::from("42")),
        ("gettoken", "uid", Value::F64(42.0)),
        ("gettoken", "sign", Value::from(12345)),
        ("gettoken", "pid", Value::from(PID.to_string())),
        ("gettoken", "salt", Value::from("1")),
        ("gettoken", "ts", Value::from(now().to_string())),
        ("adddevice", "apptype", Value::from(1)),
        ("adddevice", "devicetoken", Value::Array(vec![])),
        ("removedevice", "devicetoken", Value::Bool(true)),
        ("kickout", "ce", Value::from(5)),
    ];
    for (method, key, bad) in cases {
        let salt = fresh_salt();
        let ts = now();
        let mut q = Value::map();
        let mut good = vec![
            ("pid", Value::from(PID)),
            ("sign", Value::from(sign(PID, SECRET, salt, method, ts))),
            ("salt", Value::from(salt)),
            ("ts", Value::from(ts)),
            ("uid", Value::from(9)),
            ("apptype", Value::from("apns")),
            ("devicetoken", Value::from("tok")),
            ("ce", Value::from("")),
        ];
        for (k, v) in good.iter_mut() {
            if *k == key {
                *v = bad.clone();
            }
        }
        for (k, v) in good {
            q.insert(k, v);
        }
        let e = answer_error(within("quest", raw.quest(method, &q)).await);
        assert_eq!(e.code, 10010, "{method} with {key} = {bad}: {e}");
        assert!(e.ex.contains(key), "{e}");
    }
}

#[tokio::test]
async fn bad_device_fields_answer_200034_naming_the_field() {
    let server = TestServer::start().await;
    let sdk = server.sdk();
    let e = within("adddevice", sdk.add_device(3, "app type", "tok"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 200034, "{e}");
    assert!(e.message().contains("apptype"), "{e}");
    for apptype in ["", "apns2", "ios"] {
        let e = within("adddevice", sdk.add_device(3, apptype, "tok"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 200034, "{apptype:?}: {e}");
    }

    let e = within("adddevice", sdk.add_device(3, app_type::APNS, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 200034, "{e}");
    assert!(e.message().contains("devicetoken"), "{e}");
    let e = within("removedevice", sdk.remove_device(3, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 200034, "{e}");
    assert!(e.message().contains("devicetoken"), "{e}");

    let oversize = "x".repeat(4097);
    let e = within("adddevice", sdk.add_device(3, app_type::APNS, &oversize))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 200034, "{e}");
    assert!(
        e.message().contains("devicetoken") && e.message().contains("4096"),
        "{e}"
    );
    let e = within("removedevice", sdk.remove_device(3, &oversize))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 200034, "{e}");

    // 4096 bytes is the largest accepted.
    let largest = "y".repeat(4096);
    within("adddevice", sdk.add_device(3, app_type::APNS, &largest))
        .await
        .unwrap();
    let devices = within("getdevices", sdk.get_devices(3)).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].devicetoken, largest);
}

#[tokio::test]
async fn uids_out_of_range_answer_200001() {
    let server = TestServer::start().await;
    let sdk = server.sdk();
    for uid in [0, -1, i64::MIN] {
        for code in [
            sdk_code(within("gettoken", sdk.get_token(uid)).await),
            sdk_code(within("removetoken", sdk.remove_token(uid)).await),
            sdk_code(within("kickout", sdk.kickout(uid)).await),
            sdk_code(within("adddevice", sdk.add_device(uid, "fcm", "t")).await),
            sdk_code(within("removedevice", sdk.remove_device(uid, "t")).await),
            sdk_code(within("getdevices", sdk.get_devices(uid)).await),
        ] {
            assert_eq!(code, 200001, "uid {uid}");
        }
    }
    // Above i64::MAX, as msgpack uint64.
    let raw = server.raw_api();
    for uid in [i64::MAX as u64 + 1, u64::MAX] {
        let q = signed(PID, SECRET, "gettoken", fresh_salt(), now()).with("uid", Value::UInt(uid));
        let e = answer_error(within("quest", raw.quest("gettoken", &q)).await);
        assert_eq!(e.code, 200001, "uid {uid}: {e}");
        assert!(e.ex.contains("uid"), "{e}");
    }
    // i64::MAX itself is a valid uid.
    within("gettoken", sdk.get_token(i64::MAX)).await.unwrap();
}

#[tokio::test]
async fn the_legacy_signature_is_refused_unless_enabled() {
    let mut legacy = project(PID + 1, "legacy-secret");
    legacy.legacy_sign = true;
    let server = TestServer::start_with(vec![project(PID, SECRET), legacy], |_| {}).await;
    let raw = server.raw_api();
    let legacy_quest = |pid: i32, secret: &str, salt: i64| {
        Value::map()
            .with("pid", pid)
            .with("sign", sign_legacy(pid, secret, salt))
            .with("salt", salt)
            .with("uid", 77)
    };
    let e = answer_error(
        within(
            "legacy on a modern project",
            raw.quest("gettoken", &legacy_quest(PID, SECRET, fresh_salt())),
        )
        .await,
    );
    assert_eq!(e.code, 200002, "{e}");
    assert!(e.ex.contains("legacy"), "{e}");

    let salt = fresh_salt();
    let q = legacy_quest(PID + 1, "legacy-secret", salt);
    let answer = within("legacy", raw.quest("gettoken", &q))
        .await
        .expect("the legacy form is accepted when enabled");
    assert!(answer.get("token").and_then(Value::as_str).is_some());
    // Replay is still refused: the same request again.
    let e = answer_error(within("legacy replay", raw.quest("gettoken", &q)).await);
    assert_eq!(e.code, 200006, "{e}");
    // The legacy sign covers neither the method nor `ts`: in the default replay mode its
    // use for another method is another request (the "sign" mode would refuse it).
    within("legacy sign, other method", raw.quest("kickout", &q))
        .await
        .expect("another request");
    // A bad legacy sign.
    let e = answer_error(
        within(
            "bad legacy sign",
            raw.quest("gettoken", &legacy_quest(PID + 1, "wrong", fresh_salt())),
        )
        .await,
    );
    assert_eq!(e.code, 200002, "{e}");
    // The current form still works on that project.
    let q = signed(PID + 1, "legacy-secret", "gettoken", fresh_salt(), now()).with("uid", 77);
    within("current form", raw.quest("gettoken", &q))
        .await
        .expect("the current form is accepted too");
}

#[tokio::test]
async fn every_secret_of_a_project_is_accepted() {
    let mut rotating = project(PID, "new-secret");
    rotating.secrets.push("old-secret".into());
    let server = TestServer::start_with(vec![rotating], |_| {}).await;
    let old = sdk(&server.api(), PID, "old-secret");
    let new = sdk(&server.api(), PID, "new-secret");
    let t1 = within("old", old.get_token(5)).await.unwrap();
    let t2 = within("new", new.get_token(5)).await.unwrap();
    within("old", old.add_device(5, "apns", "d")).await.unwrap();
    within("new", new.remove_device(5, "d")).await.unwrap();
    // Tokens minted under either secret log in alike.
    for token in [t1, t2] {
        let gate = GateClient::connect(&server.gate()).await;
        gate.login(PID, 5, &token).await;
    }
    let neither = sdk(&server.api(), PID, "other-secret");
    assert_eq!(sdk_code(within("call", neither.get_token(5)).await), 200002);
}

#[tokio::test]
async fn an_unknown_method_answers_20004() {
    let server = TestServer::start().await;
    let raw = server.raw_api();
    for method in ["getonlineusers", "addoption", "GetToken", "auth"] {
        let q = signed(PID, SECRET, method, fresh_salt(), now()).with("uid", 1);
        let e = answer_error(within("quest", raw.quest(method, &q)).await);
        assert_eq!(e.code, 20004, "{method}: {e}");
    }
    // The connection is still usable.
    within(
        "gettoken",
        raw.quest("gettoken", &signed_now("gettoken", 1)),
    )
    .await
    .unwrap();
}

/// Sends a hand-built msgpack payload and returns the answer.
async fn raw_call(
    server: &TestServer,
    method: &str,
    payload: Mp,
) -> Result<Value, fpnn::ErrorAnswer> {
    let mut conn = RawConn::connect(&server.api()).await;
    conn.raw_quest(&raw_frame(method, 1, &payload.0), 1).await
}

#[tokio::test]
async fn integers_are_read_by_value_in_any_msgpack_width() {
    let server = TestServer::start().await;
    let pid = PID as u32;
    let uid = 4242u64;

    // Every integer as uint64, the Python way.
    let (salt, ts) = (fresh_salt(), now());
    let payload = Mp::map(5)
        .str("pid")
        .u64(u64::from(pid))
        .str("sign")
        .str(&sign(PID, SECRET, salt, "gettoken", ts))
        .str("salt")
        .u64(salt as u64)
        .str("ts")
        .u64(ts as u64)
        .str("uid")
        .u64(uid);
    let token = raw_call(&server, "gettoken", payload)
        .await
        .expect("uint64 integers")
        .get("token")
        .and_then(Value::as_text)
        .expect("a token");
    let gate = GateClient::connect(&server.gate()).await;
    gate.login(PID, uid as i64, &token).await;

    // Every integer as int64, the Node way.
    let (salt, ts) = (fresh_salt(), now());
    let payload = Mp::map(7)
        .str("pid")
        .i64(i64::from(pid))
        .str("sign")
        .str(&sign(PID, SECRET, salt, "adddevice", ts))
        .str("salt")
        .i64(salt)
        .str("ts")
        .i64(ts)
        .str("uid")
        .i64(uid as i64)
        .str("apptype")
        .str("apns")
        .str("devicetoken")
        .str("int64-device");
    raw_call(&server, "adddevice", payload)
        .await
        .expect("int64 integers");

    // 32-bit widths, and small values in the narrowest ones.
    let (salt, ts) = (fresh_salt() & 0x7fff_ffff, now());
    let payload = Mp::map(7)
        .str("pid")
        .u32(pid)
        .str("sign")
        .str(&sign(PID, SECRET, salt, "adddevice", ts))
        .str("salt")
        .i32(salt as i32)
        .str("ts")
        .u32(ts as u32)
        .str("uid")
        .u16(uid as u16)
        .str("apptype")
        .str("fcm")
        .str("devicetoken")
        .str("int32-device");
    raw_call(&server, "adddevice", payload)
        .await
        .expect("32-bit integers");

    for (i, uid_mp) in [
        Mp::default().u8(9),
        Mp::default().i8(9),
        Mp::default().fixint(9),
    ]
    .into_iter()
    .enumerate()
    {
        let (salt, ts) = (fresh_salt(), now());
        let mut payload = Mp::map(5)
            .str("pid")
            .i32(PID)
            .str("sign")
            .str(&sign(PID, SECRET, salt, "getdevices", ts))
            .str("salt")
            .i64(salt)
            .str("ts")
            .i64(ts)
            .str("uid");
        payload.0.extend_from_slice(&uid_mp.0);
        raw_call(&server, "getdevices", payload)
            .await
            .unwrap_or_else(|e| panic!("uid encoding {i}: {e}"));
    }

    // A salt above i64::MAX (uint64) signs by its decimal text.
    let (salt, ts) = (u64::MAX - 7, now());
    let text = format!("{PID}:{SECRET}:{salt}:removetoken:{ts}");
    let payload = Mp::map(5)
        .str("pid")
        .u64(u64::from(pid))
        .str("sign")
        .str(&rtm_server_sdk::sign::upper_hex_md5(text.as_bytes()))
        .str("salt")
        .u64(salt)
        .str("ts")
        .u64(ts as u64)
        .str("uid")
        .u64(uid);
    raw_call(&server, "removetoken", payload)
        .await
        .expect("uint64 salt above i64::MAX");

    // Both devices were recorded for the one user.
    let tokens: Vec<String> = within("getdevices", server.sdk().get_devices(uid as i64))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.devicetoken)
        .collect();
    assert_eq!(tokens, ["int64-device", "int32-device"]);
}

#[tokio::test]
async fn gettoken_accepts_the_version_key() {
    // Python and C# send `version` with gettoken.
    let server = TestServer::start().await;
    let raw = server.raw_api();
    let q = signed_now("gettoken", 8).with("version", "PYTHON-2.2.6");
    let answer = within("gettoken", raw.quest("gettoken", &q)).await.unwrap();
    assert!(answer.get("token").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_client_makes_every_call() {
    let server = TestServer::start().await;
    let api = server.api();
    // From a plain thread: the blocking client refuses threads that have a tokio runtime
    // handle (spawn_blocking's included).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let client = rtm_server_sdk::RtmServerClient::builder(PID, SECRET, api)
            .quest_timeout(WAIT)
            .auto_reconnect(false)
            .build_blocking()
            .unwrap();
        let token = client.get_token(90).unwrap();
        client
            .add_device(90, app_type::APNS, "blocking-device")
            .unwrap();
        let devices = client.get_devices(90).unwrap();
        client.remove_device(90, "blocking-device").unwrap();
        client.kickout(90).unwrap();
        client.kickout_endpoint(90, "127.0.0.1:9").unwrap();
        let bad = client.add_device(90, "nope", "d").unwrap_err();
        client.remove_token(90).unwrap();
        let _ = tx.send((token, devices, bad));
    });
    let (token, devices, bad) = within("blocking calls", rx)
        .await
        .expect("the blocking calls succeed");
    assert_eq!(token.len(), 80);
    assert_eq!(devices.len(), 1);
    assert_eq!(bad.code(), 200034);
    let gate = GateClient::connect(&server.gate()).await;
    gate.refused(PID, 90, &token).await;
}

#[tokio::test]
async fn replay_capacity_is_exact_and_a_full_window_answers_200999() {
    // Issue 12: `replay_capacity = 100` became 256 requests split over shards, and calls
    // failed from the 15th on. Through the configuration and the embedded store, as rtmd
    // runs: exactly 100 distinct calls are answered, the 101st is refused (and counted),
    // replays are still refused as replays.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = loopback_config(dir.path(), vec![project(PID, SECRET)]);
    config.limits.replay_capacity = 100;
    config.validate().expect("valid configuration");
    let rtmd = within("start rtmd", rtmd::Rtmd::start(config))
        .await
        .expect("rtmd starts");
    let raw = fpnn::client::Client::builder(rtmd.server_api_addr().to_string())
        .quest_timeout(WAIT)
        .build();
    let first = signed_now("gettoken", 1);
    within("call 1", raw.quest("gettoken", &first))
        .await
        .expect("call 1 is answered");
    for uid in 2..=100 {
        within("call", raw.quest("gettoken", &signed_now("gettoken", uid)))
            .await
            .unwrap_or_else(|e| panic!("call {uid} of 100: {e}"));
    }
    let e = answer_error(
        within(
            "call 101",
            raw.quest("gettoken", &signed_now("gettoken", 101)),
        )
        .await,
    );
    assert_eq!(e.code, 200999, "{e}");
    assert!(e.ex.contains("replay window is full (100 requests)"), "{e}");
    let e = answer_error(within("replay", raw.quest("gettoken", &first)).await);
    assert_eq!(e.code, 200006, "{e}");

    let admin = rtmd.admin_addr().expect("admin port");
    let (_, page) = http_get(admin, "/metrics").await;
    assert_eq!(metric(&page, "rtmd_replay_window_entries"), 100.0, "{page}");
    assert_eq!(metric(&page, "rtmd_replay_window_capacity"), 100.0);
    assert_eq!(metric(&page, "rtmd_replay_window_refused_total"), 1.0);
    assert_eq!(metric(&page, "rtmd_replay_window_bytes"), 20.0 * 64.0);
    within("shutdown", rtmd.shutdown()).await;
}
