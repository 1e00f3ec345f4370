//! msgpack bytes decoded, then read into typed structs with serde (`from_value`), the way a
//! server reads the parameters of an RTM request.
//!
//! Checked: nothing panics; every failure carries one of the FPNN codes the C++ reader would
//! raise (10005, 10009, 10010); a struct that was read writes back (`to_value`) to a value that
//! reads as the same struct; `Value` itself passes through serde unchanged (ext values aside,
//! which serde sees as bytes).
#![no_main]

use fpnn::{code, from_value, msgpack, to_value, DeError, ErrorAnswer, Value};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Shaped like RTM's `sendmsg`, with the `gettoken` fields first so that the official
/// `gettoken` payload (`{pid, sign, salt, ts, uid}`) reads as one.
#[derive(Debug, Deserialize, Serialize)]
struct Request {
    pid: i32,
    sign: String,
    salt: i64,
    ts: u32,
    uid: u64,
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    tos: Option<Vec<i64>>,
    #[serde(default)]
    mid: Option<i64>,
    #[serde(default)]
    mtype: Option<u8>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    attrs: Option<String>,
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    small: Option<i16>,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    extra: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize, Serialize)]
enum Kind {
    Chat,
    Cmd(String),
    File { url: String, size: u32 },
}

fn check_error(e: &DeError) {
    assert!(
        [
            code::PROTO_STRING_KEY,
            code::PROTO_KEY_NOT_FOUND,
            code::PROTO_TYPE_CONVERT
        ]
        .contains(&e.code()),
        "{e:?}"
    );
    let _ = e.to_string();
}

/// What serde sees of a value: ext values are their bytes.
fn without_ext(v: &Value, ext: &dyn Fn(i8, &[u8]) -> Value) -> Value {
    match v {
        Value::Ext(tag, data) => ext(*tag, data),
        Value::Array(items) => Value::Array(items.iter().map(|i| without_ext(i, ext)).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (without_ext(k, ext), without_ext(v, ext)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = msgpack::decode(data) else {
        return;
    };
    let _ = ErrorAnswer::from_value(&value);

    match from_value::<Request>(&value) {
        Ok(request) => {
            let written = to_value(&request).expect("a request writes back");
            let reread: Request = from_value(&written).expect("a written request reads");
            assert_eq!(to_value(&reread), Ok(written));
        }
        Err(e) => check_error(&e),
    }
    for result in [
        from_value::<BTreeMap<String, i64>>(&value).map(|_| ()),
        from_value::<Vec<Option<String>>>(&value).map(|_| ()),
        from_value::<(bool, f32, u128)>(&value).map(|_| ()),
    ] {
        if let Err(e) = result {
            check_error(&e);
        }
    }

    // Value -> serde -> Value: ext reads as bytes, and writes as `[tag, bytes]`.
    let read: Value = from_value(&value).expect("any value reads as a Value");
    assert_eq!(
        read,
        without_ext(&value, &|_, data| Value::Bin(data.to_vec()))
    );
    let written = to_value(&value).expect("any value writes");
    assert_eq!(
        written,
        without_ext(&value, &|tag, data| Value::Array(vec![
            Value::from(tag),
            Value::Bin(data.to_vec())
        ]))
    );
});
