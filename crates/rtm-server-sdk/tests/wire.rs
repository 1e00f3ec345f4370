//! What the SDK puts on the wire, checked against a scripted FPNN server: every key, its type
//! and order, the signature; and how answers, errors, timeouts and disconnects come back.

use fpnn::server::{Connection, Server};
use fpnn::{ErrorAnswer, Value};
use rtm_server_sdk::{sign::sign, Error, RtmServerClient};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

const PID: i32 = 11000001;
const SECRET: &str = "b9a7e0c4-secret";

/// How the scripted server answers.
#[derive(Clone)]
enum Script {
    Ok(Value),
    Fail(i32, &'static str),
    Silent,
    Hangup,
}

struct Scripted {
    server: Server,
    quests: mpsc::UnboundedReceiver<(String, Value)>,
}

async fn scripted(script: Script) -> Scripted {
    let (tx, quests) = mpsc::unbounded_channel();
    let mut builder = Server::builder();
    for method in [
        "gettoken",
        "removetoken",
        "adddevice",
        "removedevice",
        "kickout",
        "getdevices",
    ] {
        let tx = tx.clone();
        let script = script.clone();
        builder = builder.route(method, move |conn: Connection, params: Value| {
            let _ = tx.send((method.to_string(), params));
            let script = script.clone();
            async move {
                match script {
                    Script::Ok(v) => Ok(v),
                    Script::Fail(code, ex) => Err(ErrorAnswer::new(code, ex)),
                    Script::Silent => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(Value::map())
                    }
                    Script::Hangup => {
                        conn.close();
                        Ok(Value::map())
                    }
                }
            }
        });
    }
    let server = builder.bind("127.0.0.1:0").await.expect("bind");
    Scripted { server, quests }
}

fn client(server: &Server) -> RtmServerClient {
    RtmServerClient::builder(PID, SECRET, server.local_addr().to_string())
        .quest_timeout(Duration::from_secs(5))
        .build()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks the common envelope and returns the keys in order.
fn check_envelope(method: &str, params: &Value, uid: i64) -> Vec<String> {
    let entries = params.as_map().expect("payload is a map");
    let keys: Vec<String> = entries
        .iter()
        .map(|(k, _)| k.as_str().expect("string key").to_owned())
        .collect();
    assert_eq!(
        &keys[..5],
        ["pid", "sign", "salt", "ts", "uid"],
        "{method}: envelope order"
    );
    assert!(matches!(params.get("pid"), Some(Value::Int(p)) if *p == i64::from(PID)));
    let salt = params
        .get("salt")
        .and_then(Value::as_i64)
        .expect("int salt");
    assert!(salt > 0);
    let ts = params.get("ts").and_then(Value::as_i64).expect("int ts");
    assert!((ts - now()).abs() <= 5, "ts {ts} is Unix seconds");
    let Some(Value::Str(signature)) = params.get("sign") else {
        panic!("{method}: sign must be a str")
    };
    assert_eq!(signature.len(), 32);
    assert!(
        signature
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "upper-case hex"
    );
    assert_eq!(
        signature,
        &sign(PID, SECRET, salt, method, ts),
        "{method}: signature"
    );
    assert!(matches!(params.get("uid"), Some(Value::Int(u)) if *u == uid));
    keys
}

#[tokio::test]
async fn all_five_calls_send_exactly_the_official_keys() {
    let mut s = scripted(Script::Ok(Value::map().with("token", "tok-1"))).await;
    let c = client(&s.server);

    assert_eq!(c.get_token(42).await.unwrap(), "tok-1");
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "gettoken");
    assert_eq!(check_envelope(&m, &p, 42).len(), 5);

    c.remove_token(43).await.unwrap();
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "removetoken");
    assert_eq!(check_envelope(&m, &p, 43).len(), 5);

    c.add_device(44, "apns", "dev-token-1").await.unwrap();
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "adddevice");
    assert_eq!(check_envelope(&m, &p, 44)[5..], ["apptype", "devicetoken"]);
    assert_eq!(p.get("apptype"), Some(&Value::from("apns")));
    assert_eq!(p.get("devicetoken"), Some(&Value::from("dev-token-1")));

    c.remove_device(45, "dev-token-1").await.unwrap();
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "removedevice");
    assert_eq!(check_envelope(&m, &p, 45)[5..], ["devicetoken"]);
    assert_eq!(p.get("devicetoken"), Some(&Value::from("dev-token-1")));

    c.kickout(46).await.unwrap();
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "kickout");
    assert_eq!(
        check_envelope(&m, &p, 46).len(),
        5,
        "current kickout sends no ce"
    );

    c.kickout_endpoint(47, "10.0.0.1:5555").await.unwrap();
    let (m, p) = s.quests.recv().await.unwrap();
    assert_eq!(m, "kickout");
    assert_eq!(check_envelope(&m, &p, 47)[5..], ["ce"]);
    assert_eq!(p.get("ce"), Some(&Value::from("10.0.0.1:5555")));
}

#[tokio::test]
async fn the_gettoken_frame_is_byte_exact() {
    // A raw listener sees the bytes themselves: header, method, and a payload laid out as the
    // official SDKs lay it out (vector V1 of fpnn's `tests/data/fpnn-vectors.txt`, with this call's salt and ts).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let raw = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 12];
        sock.read_exact(&mut header).await.unwrap();
        let psize = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
        let mut body = vec![0u8; 4 + usize::from(header[7]) + psize];
        sock.read_exact(&mut body).await.unwrap();
        // Keep the socket open: the client must time out, not see a close.
        (header, body, sock)
    });
    let c = RtmServerClient::builder(PID, SECRET, endpoint)
        .quest_timeout(Duration::from_millis(300))
        .auto_reconnect(false)
        .build();
    let err = c.get_token(42).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let (header, body, _sock) = raw.await.unwrap();
    assert_eq!(
        &header[..8],
        b"FPNN\x01\x80\x01\x08",
        "magic, version 1, msgpack, twoway, ss=8"
    );
    assert_eq!(&body[4..12], b"gettoken");
    let payload = &body[12..];
    let params = fpnn::msgpack::decode(payload).unwrap();
    let salt = params.get("salt").and_then(Value::as_i64).unwrap() as u64;
    let ts = params.get("ts").and_then(Value::as_i64).unwrap() as u32;
    let sign = params.get("sign").and_then(Value::as_str).unwrap();
    let mut expected = vec![0x85];
    expected.extend(b"\xa3pid\xce");
    expected.extend(11000001u32.to_be_bytes());
    expected.extend(b"\xa4sign\xd9\x20");
    expected.extend(sign.as_bytes());
    expected.extend(b"\xa4salt\xcf");
    expected.extend(salt.to_be_bytes());
    expected.extend(b"\xa2ts\xce");
    expected.extend(ts.to_be_bytes());
    expected.extend(b"\xa3uid\x2a");
    assert_eq!(payload, &expected[..]);
}

#[tokio::test]
async fn server_errors_keep_their_code_and_message() {
    let s = scripted(Script::Fail(200002, "invalid pid or sign")).await;
    let err = client(&s.server).get_token(1).await.unwrap_err();
    assert_eq!(err.code(), rtm_server_sdk::code::INVALID_PID_OR_SIGN);
    assert_eq!(err.message(), "invalid pid or sign");
    assert!(matches!(err, Error::Server { .. }));
    assert!(
        err.to_string().contains("RTM_EC_INVALID_PID_OR_SIGN"),
        "{err}"
    );
}

#[tokio::test]
async fn per_call_and_global_timeouts_give_20003() {
    let s = scripted(Script::Silent).await;
    let c = RtmServerClient::builder(PID, SECRET, s.server.local_addr().to_string())
        .quest_timeout(Duration::from_millis(200))
        .build();
    let err = c.kickout(1).await.unwrap_err();
    assert_eq!(err, Error::Timeout(Duration::from_millis(200)));
    assert_eq!(err.code(), 20003);
    let err = c
        .with_timeout(Duration::from_millis(50))
        .kickout(1)
        .await
        .unwrap_err();
    assert_eq!(err, Error::Timeout(Duration::from_millis(50)));
    // Zero means the global setting.
    let err = c.with_timeout(Duration::ZERO).kickout(1).await.unwrap_err();
    assert_eq!(err, Error::Timeout(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_dropped_connection_gives_20002_and_no_server_gives_20012() {
    let s = scripted(Script::Hangup).await;
    let err = client(&s.server).remove_token(1).await.unwrap_err();
    assert_eq!(err.code(), 20002, "{err}");
    assert_eq!(
        err,
        Error::Closed(rtm_server_sdk::CloseReason::ClosedByPeer)
    );

    let addr = s.server.local_addr();
    s.server.shutdown().await;
    let c = RtmServerClient::builder(PID, SECRET, addr.to_string())
        .auto_reconnect(false)
        .build();
    let started = std::time::Instant::now();
    let err = c.get_token(1).await.unwrap_err();
    assert_eq!(err.code(), 20012, "{err}");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails at once, not after the timeout"
    );
}

#[tokio::test]
async fn unexpected_answers_are_protocol_errors() {
    let s = scripted(Script::Ok(Value::map().with("tok", 1))).await;
    let err = client(&s.server).get_token(1).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn concurrent_calls_from_clones_share_one_connection_and_never_reuse_a_sign() {
    let mut s = scripted(Script::Ok(Value::map().with("token", "t"))).await;
    let c = client(&s.server);
    let calls: Vec<_> = (0..1000)
        .map(|uid| {
            let c = c.clone();
            tokio::spawn(async move { c.get_token(uid).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "t");
    }
    let mut signs = std::collections::HashSet::new();
    for _ in 0..1000 {
        let (_, p) = s.quests.recv().await.unwrap();
        assert!(signs.insert(p.get("sign").and_then(Value::as_text).unwrap()));
    }
    assert_eq!(s.server.connection_count(), 1);
}

#[test]
fn the_blocking_client_works_from_plain_threads_and_refuses_async_contexts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(scripted(Script::Ok(Value::map().with("token", "blocking"))));
    let endpoint = s.server.local_addr().to_string();
    let c = rtm_server_sdk::blocking::RtmServerClient::new(PID, SECRET, endpoint).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let token = c.get_token(i).unwrap();
                seen.lock().unwrap().push(token);
                c.with_timeout(Duration::from_secs(1)).kickout(i).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), 4);
    let err = rt.block_on(async { c.get_token(1) }).unwrap_err();
    assert!(matches!(err, Error::Runtime(_)), "{err}");
    drop(c);
    drop(s);
}

#[tokio::test]
async fn kickout_returns_the_kicked_count_when_the_server_sends_one() {
    for (answer, expected) in [
        (Value::map().with("kicked", 3), Some(3)),
        (Value::map().with("kicked", 0u64), Some(0)),
        // The hosted RTM service answers `{}`.
        (Value::map(), None),
        // A count in another form is ignored: the kickout itself succeeded.
        (Value::map().with("kicked", "3"), None),
        (Value::map().with("kicked", -1), None),
    ] {
        let s = scripted(Script::Ok(answer.clone())).await;
        let c = client(&s.server);
        assert_eq!(c.kickout(1).await, Ok(expected), "{answer}");
        assert_eq!(
            c.kickout_endpoint(1, "10.0.0.1:5").await,
            Ok(expected),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_error_returned_from_main_prints_as_its_message() {
    let s = scripted(Script::Fail(200002, "invalid sign for project 11000001")).await;
    let err = client(&s.server).get_token(1).await.unwrap_err();
    // `main` returning `Err(e)` prints `Error: {e:?}`, directly or through a `Box<dyn Error>`.
    let message =
        "server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): invalid sign for project 11000001";
    assert_eq!(format!("{err:?}"), message);
    let boxed: Box<dyn std::error::Error> = Box::new(err.clone());
    assert_eq!(format!("{boxed:?}"), message);
    // The alternate form lists the parts.
    let parts = format!("{err:#?}");
    for field in [
        "code: 200002",
        "name: Some(\n        \"RTM_EC_INVALID_PID_OR_SIGN\",\n    )",
        &format!("message: {message:?}"),
    ] {
        assert!(parts.contains(field), "{field} in {parts}");
    }
}
