//! The server API's requests and answers against the official frames, and round trips.

use super::*;
use crate::code;
use crate::int::Int;
use crate::sign::Sign;
use fpnn::Value;
use proptest::prelude::*;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Vector V1's payload (the Python SDK's `gettoken`; C++ writes the same bytes):
/// `{pid: 11000001, sign: "ABC", salt: 123, ts: 1600000000, uid: 42}`.
const V1_PAYLOAD: &str =
    "85a3706964ce00a7d8c1a47369676ea3414243a473616c747ba27473ce5f5e1000a37569642a";

#[test]
fn the_official_gettoken_payload_reads() {
    let payload = fpnn::msgpack::decode(&unhex(V1_PAYLOAD)).unwrap();
    let envelope = Envelope::parse(&payload).unwrap();
    assert_eq!(
        envelope,
        Envelope {
            pid: Int::from(11_000_001),
            sign: "ABC",
            salt: Int::from(123),
            ts: Some(Int::from(1_600_000_000)),
        }
    );
    assert_eq!(GetToken::parse(&payload).unwrap(), GetToken { uid: 42 });
}

#[test]
fn our_gettoken_payload_is_the_official_one() {
    // The same call signed by us: the bytes of V1 but for the sign, which here is the real one.
    let signer = Signer::new(11_000_001, "secret");
    let payload = signer
        .payload(&GetToken { uid: 42 }, 123, 1_600_000_000)
        .unwrap();
    let sign = Sign::new(11_000_001, "secret", 123, "gettoken", 1_600_000_000).to_hex();
    let official = unhex(V1_PAYLOAD);
    let sign_at = official.windows(4).position(|w| w == b"\xa3ABC").unwrap();
    let mut expected = official[..sign_at].to_vec();
    expected.extend(b"\xd9\x20");
    expected.extend(sign.as_bytes());
    expected.extend(&official[sign_at + 4..]);
    assert_eq!(fpnn::msgpack::encode(&payload).unwrap(), expected);
}

/// The keys of a payload, in order.
fn keys(payload: &Value) -> Vec<&str> {
    payload
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect()
}

#[test]
fn every_request_in_the_order_of_the_official_sdks() {
    let s = Signer::new(1, "s");
    let envelope = ["pid", "sign", "salt", "ts", "uid"];
    let payload = |v: Result<Value, fpnn::SerError>| v.unwrap();
    assert_eq!(
        keys(&payload(s.payload(&GetToken { uid: 1 }, 2, 3))),
        envelope
    );
    assert_eq!(
        keys(&payload(s.payload(&RemoveToken { uid: 1 }, 2, 3))),
        envelope
    );
    assert_eq!(
        keys(&payload(s.payload(&GetDevices { uid: 1 }, 2, 3))),
        envelope
    );
    let add = AddDevice {
        uid: 1,
        apptype: "apns".into(),
        devicetoken: "d".into(),
    };
    assert_eq!(
        keys(&payload(s.payload(&add, 2, 3)))[5..],
        ["apptype", "devicetoken"]
    );
    let remove = RemoveDevice {
        uid: 1,
        devicetoken: "d".into(),
    };
    assert_eq!(
        keys(&payload(s.payload(&remove, 2, 3)))[5..],
        ["devicetoken"]
    );
    let all = Kickout { uid: 1, ce: None };
    assert_eq!(keys(&payload(s.payload(&all, 2, 3))), envelope);
    let one = Kickout {
        uid: 1,
        ce: Some("1.2.3.4:5".into()),
    };
    assert_eq!(keys(&payload(s.payload(&one, 2, 3)))[5..], ["ce"]);
    // The sign is the method's.
    let p = payload(s.payload(&one, 2, 3));
    assert_eq!(
        p.get("sign").and_then(Value::as_str).unwrap(),
        Sign::new(1, "s", 2, "kickout", 3).to_hex()
    );
}

#[test]
fn methods_by_name() {
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name()), Some(m));
        assert_eq!(Method::ALL[m.index()], m);
    }
    assert_eq!(Method::from_name("GetToken"), None);
    assert_eq!(Method::from_name("auth"), None);
    assert_eq!(GetToken::METHOD.name(), "gettoken");
    assert_eq!(Kickout::METHOD.to_string(), "kickout");
}

#[test]
fn parse_errors_have_the_servers_codes() {
    let code_of = |payload: Value| AddDevice::parse(&payload).unwrap_err().code();
    let full = || {
        Value::map()
            .with("uid", 9)
            .with("apptype", "fcm")
            .with("devicetoken", "t")
    };
    assert_eq!(
        code_of(Value::map().with("uid", 9)),
        code::PROTO_KEY_NOT_FOUND
    );
    // A key sent twice is read from its first entry.
    let Value::Map(mut twice) = full() else {
        unreachable!()
    };
    twice.push((Value::from("uid"), Value::from("9")));
    assert_eq!(AddDevice::parse(&Value::Map(twice)).unwrap().uid, 9);
    let mut mistyped = Value::map().with("uid", 9).with("apptype", 1);
    mistyped.insert("devicetoken", "t");
    assert_eq!(code_of(mistyped), code::PROTO_TYPE_CONVERT);
    assert_eq!(
        code_of(Value::map().with("uid", 0).with("apptype", "fcm")),
        code::INVALID_PID_OR_UID
    );
    for apptype in ["", "app type", "apns2", "ios"] {
        let e = AddDevice::parse(
            &Value::map()
                .with("uid", 9)
                .with("apptype", apptype)
                .with("devicetoken", "t"),
        )
        .unwrap_err();
        assert_eq!(e.code(), code::INVALID_PARAMETER, "{apptype:?}");
        assert!(e.to_string().contains("apptype"), "{e}");
    }
    for (token, ok) in [
        (String::new(), false),
        ("x".repeat(MAX_DEVICE_TOKEN), true),
        ("x".repeat(MAX_DEVICE_TOKEN + 1), false),
    ] {
        let payload = Value::map()
            .with("uid", 9)
            .with("devicetoken", token.as_str());
        match RemoveDevice::parse(&payload) {
            Ok(r) => assert!(ok && r.devicetoken == token),
            Err(e) => {
                assert!(!ok);
                assert_eq!(e.code(), code::INVALID_PARAMETER);
                assert!(e.to_string().contains("devicetoken"), "{e}");
            }
        }
    }
}

#[test]
fn apptypes_read_as_their_current_names() {
    for (sent, read) in [
        ("apns", "apns"),
        ("APNs", "apns"),
        ("fcm", "fcm"),
        ("gcm", "fcm"),
        ("PCM", "fcm"),
    ] {
        let payload = Value::map()
            .with("uid", 1)
            .with("apptype", sent)
            .with("devicetoken", "t");
        assert_eq!(AddDevice::parse(&payload).unwrap().apptype, read);
    }
}

#[test]
fn kickout_ce_absent_nil_or_text() {
    let ce = |v: Option<Value>| {
        let mut p = Value::map().with("uid", 1);
        if let Some(v) = v {
            p.insert("ce", v);
        }
        Kickout::parse(&p).map(|k| k.ce)
    };
    assert_eq!(ce(None), Ok(None));
    assert_eq!(ce(Some(Value::Nil)), Ok(None));
    assert_eq!(ce(Some(Value::from(""))), Ok(Some(String::new())));
    assert_eq!(
        ce(Some(Value::Bin(b"1.2.3.4:5".to_vec()))),
        Ok(Some("1.2.3.4:5".into()))
    );
    assert_eq!(ce(Some(Value::from(5))).unwrap_err().code(), 10010);
}

#[test]
fn answers() {
    // V2: the official answer {token: "xyz"}.
    let answer = fpnn::msgpack::decode(&unhex("81a5746f6b656ea378797a")).unwrap();
    let token: GetTokenAnswer = fpnn::from_value(&answer).unwrap();
    assert_eq!(token.token, "xyz");
    assert_eq!(fpnn::to_value(&token).unwrap(), answer);
    let e = fpnn::from_value::<GetTokenAnswer>(&Value::map().with("tok", 1)).unwrap_err();
    assert_eq!(e.code(), 10009);

    assert_eq!(fpnn::to_value(&Empty).unwrap(), Value::map());
    for any in [Value::map(), Value::Nil, Value::map().with("x", 1)] {
        assert_eq!(fpnn::from_value::<Empty>(&any), Ok(Empty));
    }

    for (sent, read) in [
        (Value::map().with("kicked", 3), Some(3)),
        (Value::map().with("kicked", 0u64), Some(0)),
        (Value::map(), None),
        (Value::map().with("kicked", "3"), None),
        (Value::map().with("kicked", -1), None),
    ] {
        let answer: KickoutAnswer = fpnn::from_value(&sent).unwrap();
        assert_eq!(answer.kicked, read, "{sent}");
    }
    assert_eq!(
        fpnn::to_value(&KickoutAnswer { kicked: Some(2) }).unwrap(),
        Value::map().with("kicked", 2)
    );

    let devices = GetDevicesAnswer {
        devices: vec![Device {
            apptype: "apns".into(),
            devicetoken: "d".into(),
            time: 1_700_000_000_000,
        }],
    };
    let value = fpnn::to_value(&devices).unwrap();
    assert_eq!(
        value,
        Value::map().with(
            "devices",
            vec![Value::map()
                .with("apptype", "apns")
                .with("devicetoken", "d")
                .with("time", 1_700_000_000_000i64)]
        )
    );
    assert_eq!(
        fpnn::from_value::<GetDevicesAnswer>(&value).unwrap(),
        devices
    );
}

fn uid() -> impl Strategy<Value = i64> {
    1..=i64::MAX
}

/// A payload as another SDK may encode it: integers in the other variant where it holds
/// them, strings as bin.
fn re_encoded(payload: &Value) -> Value {
    match payload {
        Value::Int(i) if *i >= 0 => Value::UInt(*i as u64),
        Value::Str(s) if s.len() % 2 == 0 => Value::Bin(s.as_bytes().to_vec()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), re_encoded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Writes `request` as a client does and reads it as the server does, from both encodings.
fn round_trip<R: Request + PartialEq + std::fmt::Debug>(request: R) -> Result<(), TestCaseError> {
    let payload = Signer::new(7, "s").payload(&request, 1, 2).unwrap();
    prop_assert_eq!(&R::parse(&payload).unwrap(), &request);
    prop_assert_eq!(&R::parse(&re_encoded(&payload)).unwrap(), &request);
    let bytes = fpnn::msgpack::encode(&payload).unwrap();
    let decoded = fpnn::msgpack::decode(&bytes).unwrap();
    prop_assert_eq!(R::parse(&decoded).unwrap(), request);
    let envelope = Envelope::parse(&decoded).unwrap();
    prop_assert_eq!(envelope.pid, Int::from(7));
    prop_assert_eq!(envelope.ts, Some(Int::from(2)));
    Ok(())
}

proptest! {
    #[test]
    fn requests_round_trip(
        uid in uid(),
        fcm in any::<bool>(),
        token in "[ -~]{1,64}",
        ce in proptest::option::of("[0-9.:]{1,21}"),
    ) {
        round_trip(GetToken { uid })?;
        round_trip(RemoveToken { uid })?;
        round_trip(GetDevices { uid })?;
        let apptype = if fcm { app_type::FCM } else { app_type::APNS };
        round_trip(AddDevice { uid, apptype: apptype.into(), devicetoken: token.clone() })?;
        round_trip(RemoveDevice { uid, devicetoken: token })?;
        round_trip(Kickout { uid, ce })?;
    }

    #[test]
    fn parsing_any_payload_never_panics(payload in payload()) {
        let _ = Envelope::parse(&payload);
        let _ = GetToken::parse(&payload);
        let _ = AddDevice::parse(&payload);
        let _ = RemoveDevice::parse(&payload);
        let _ = Kickout::parse(&payload);
    }
}

/// Maps with the keys requests read, holding values of any type.
fn payload() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f64>().prop_map(Value::F64),
        ".{0,8}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bin),
        Just(Value::Array(vec![])),
    ];
    let key = prop_oneof![
        Just("pid"),
        Just("sign"),
        Just("salt"),
        Just("ts"),
        Just("uid"),
        Just("apptype"),
        Just("devicetoken"),
        Just("ce"),
        Just("other"),
    ];
    proptest::collection::vec((key.prop_map(Value::from), value), 0..10).prop_map(Value::Map)
}
