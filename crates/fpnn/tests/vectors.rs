//! Byte-for-byte checks against the frames of the official SDKs
//! (`tests/data/fpnn-vectors.txt`, the frames of the protocol's reference vectors).
//!
//! Each vector is checked both ways: our encoder produces exactly those bytes, and our decoder
//! reads them back to the same frame.

use bytes::BytesMut;
use fpnn::{Answer, ErrorAnswer, Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};

mod common;

use common::vector;

fn decode(bytes: &[u8]) -> Frame {
    // The streaming decoder and the whole-frame decoder must agree.
    let mut buf = BytesMut::from(bytes);
    let streamed = FrameDecoder::default()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("a whole frame");
    assert!(buf.is_empty(), "the decoder must consume exactly one frame");
    let whole = Frame::decode(bytes, DEFAULT_MAX_FRAME).expect("valid frame");
    assert_eq!(streamed, whole);
    whole
}

fn encode(frame: impl Into<Frame>) -> Vec<u8> {
    frame.into().encode().expect("encodable").to_vec()
}

fn v1_params() -> Value {
    Value::map()
        .with("pid", 11000001)
        .with("sign", "ABC")
        .with("salt", 123)
        .with("ts", 1600000000)
        .with("uid", 42)
}

#[test]
fn v1_twoway_quest() {
    let ours = Quest::twoway("gettoken", 7, &v1_params()).unwrap();
    assert_eq!(
        encode(ours.clone()),
        vector("V1 twoway quest gettoken seq=7 (version byte 1")
    );
    assert_eq!(
        fpnn::msgpack::encode(&v1_params()).unwrap(),
        vector("V1 payload only")
    );

    for title in [
        "V1 twoway quest gettoken seq=7 (python",
        "V1 twoway quest gettoken seq=7 (version byte 1",
    ] {
        let Frame::Quest(q) = decode(&vector(title)) else {
            panic!("not a quest")
        };
        assert_eq!(q, ours, "{title}");
        assert_eq!(q.params().unwrap(), v1_params());
    }
}

#[test]
fn v2_answer() {
    let body = Value::map().with("token", "xyz");
    let ours = Answer::ok(7, Format::MsgPack, &body).unwrap();
    assert_eq!(
        encode(ours.clone()),
        vector("V2 answer ok seq=7 {token:xyz} (version 1)")
    );
    for title in [
        "V2 answer ok seq=7 {token:xyz} (python",
        "V2 answer ok seq=7 {token:xyz} (version 1)",
    ] {
        let Frame::Answer(a) = decode(&vector(title)) else {
            panic!("not an answer")
        };
        assert_eq!(a, ours);
        assert_eq!(a.into_result().unwrap(), Ok(body.clone()));
    }
}

#[test]
fn v3_error_answers() {
    let err = ErrorAnswer::new(20001, "x");
    let v3 = vector("V3 error answer");
    assert_eq!(encode(Answer::error(7, Format::MsgPack, &err)), v3);
    let Frame::Answer(a) = decode(&v3) else {
        panic!("not an answer")
    };
    assert!(a.is_error());
    assert_eq!(a.into_result().unwrap(), Err(err.clone()));

    let with_raiser = ErrorAnswer {
        raiser: Some(String::new()),
        ..err.clone()
    };
    let v3b = vector("V3b error answer");
    assert_eq!(encode(Answer::error(7, Format::MsgPack, &with_raiser)), v3b);
    let Frame::Answer(a) = decode(&v3b) else {
        panic!("not an answer")
    };
    assert_eq!(a.into_result().unwrap(), Err(with_raiser));

    // The Python SDK writes the code into `ex`: read it as text, keep the code.
    let Frame::Answer(a) = decode(&vector("V3c error answer")) else {
        panic!("not an answer")
    };
    assert_eq!(
        a.into_result().unwrap(),
        Err(ErrorAnswer::new(20001, "20001"))
    );
}

#[test]
fn v4_oneway_quests() {
    let bye = Quest::oneway("bye", &Value::map()).unwrap();
    assert_eq!(
        encode(bye.clone()),
        vector("V4 oneway quest bye {} (version 1)")
    );
    for title in [
        "V4 oneway quest bye {} (python",
        "V4 oneway quest bye {} (version 1)",
    ] {
        assert_eq!(decode(&vector(title)), Frame::Quest(bye.clone()));
    }

    let push = Quest::oneway("pushmsg", &Value::map().with("uid", 42).with("msg", "hi")).unwrap();
    let v4b = vector("V4b oneway quest pushmsg");
    assert_eq!(encode(push.clone()), v4b);
    assert_eq!(decode(&v4b), Frame::Quest(push));
}

#[test]
fn v5_ping_and_its_answer() {
    let ping = Quest::twoway("*ping", 1, &Value::map()).unwrap();
    let v5 = vector("V5 twoway *ping");
    assert_eq!(encode(ping.clone()), v5);
    assert_eq!(decode(&v5), Frame::Quest(ping));

    // An int64 millisecond timestamp above 2^32 goes out as uint64 (0xcf).
    let pong = Answer::ok(
        1,
        Format::MsgPack,
        &Value::map().with("ts", 1600000000123i64),
    )
    .unwrap();
    let v5a = vector("V5 answer to *ping");
    assert_eq!(encode(pong.clone()), v5a);
    assert_eq!(decode(&v5a), Frame::Answer(pong));
}

#[test]
fn v6_json_quest() {
    let q = Quest::new(
        "getinfo",
        Some(9),
        Format::Json,
        &Value::map().with("uid", 42),
    )
    .unwrap();
    let v6 = vector("V6 JSON twoway quest");
    assert_eq!(encode(q.clone()), v6);
    let Frame::Quest(decoded) = decode(&v6) else {
        panic!("not a quest")
    };
    assert_eq!(decoded, q);
    assert_eq!(decoded.params().unwrap(), Value::map().with("uid", 42));
}

#[test]
fn v7_scalar_encodings() {
    let v = Value::map()
        .with("n", -1)
        .with("big", 1i64 << 40)
        .with("neg", -(1i64 << 40))
        .with("s", "a".repeat(40))
        .with("b", vec![1u8, 2, 3]);
    let v7 = vector("V7 msgpack");
    assert_eq!(fpnn::msgpack::encode(&v).unwrap(), v7);
    let decoded = fpnn::msgpack::decode(&v7).unwrap();
    assert_eq!(decoded, v);
    // The string is str8 and the bytes are bin: the distinction survives decoding.
    assert_eq!(decoded.get("s"), Some(&Value::Str("a".repeat(40))));
    assert_eq!(decoded.get("b"), Some(&Value::Bin(vec![1, 2, 3])));
}

#[test]
fn the_copy_of_the_vectors_matches_the_spec() {
    // When FPNN_SPEC_VECTORS names the reference vector file this copy was taken from, the
    // copy in tests/data must be identical to it.
    let Some(spec) = std::env::var_os("FPNN_SPEC_VECTORS") else {
        eprintln!("SKIPPED: FPNN_SPEC_VECTORS not set; comparing against the copy only");
        return;
    };
    match std::fs::read_to_string(&spec) {
        Ok(text) => assert_eq!(text, include_str!("data/fpnn-vectors.txt")),
        Err(e) => panic!("FPNN_SPEC_VECTORS={spec:?} is not readable: {e}"),
    }
}
