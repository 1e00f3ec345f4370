//! Reading quest parameters with the error codes of the official server.
//!
//! A missing key answers 10009, a value of the wrong type 10010, as the C++ reader's
//! `want*` functions do; integers are read by value whatever their msgpack width.

use fpnn::{code, ErrorAnswer, Value};

/// A missing required key (10009).
pub fn missing(key: &str) -> ErrorAnswer {
    ErrorAnswer::new(code::PROTO_KEY_NOT_FOUND, format!("missing key '{key}'"))
}

/// A value of the wrong type (10010).
pub fn mistyped(key: &str, want: &str, got: &Value) -> ErrorAnswer {
    ErrorAnswer::new(
        code::PROTO_TYPE_CONVERT,
        format!("key '{key}' must be {want}, not {}", got.type_name()),
    )
}

/// A required key.
pub fn want<'a>(params: &'a Value, key: &str) -> Result<&'a Value, ErrorAnswer> {
    match params.get(key) {
        Some(v) => Ok(v),
        None => Err(missing(key)),
    }
}

/// A required integer, as its value (`i128` holds every msgpack integer).
pub fn want_int(params: &Value, key: &str) -> Result<i128, ErrorAnswer> {
    let value = want(params, key)?;
    int(value).ok_or_else(|| mistyped(key, "an integer", value))
}

/// An optional integer.
pub fn opt_int(params: &Value, key: &str) -> Result<Option<i128>, ErrorAnswer> {
    match params.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(value) => int(value)
            .map(Some)
            .ok_or_else(|| mistyped(key, "an integer", value)),
    }
}

/// A required string (from msgpack `str` or `bin`).
pub fn want_str<'a>(params: &'a Value, key: &str) -> Result<&'a str, ErrorAnswer> {
    let value = want(params, key)?;
    value
        .as_str()
        .ok_or_else(|| mistyped(key, "a string", value))
}

/// An optional string; `nil` counts as absent.
pub fn opt_str<'a>(params: &'a Value, key: &str) -> Result<Option<&'a str>, ErrorAnswer> {
    match params.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(value) => value
            .as_str()
            .map(Some)
            .ok_or_else(|| mistyped(key, "a string", value)),
    }
}

fn int(value: &Value) -> Option<i128> {
    match *value {
        Value::Int(i) => Some(i128::from(i)),
        Value::UInt(u) => Some(i128::from(u)),
        _ => None,
    }
}

/// The `uid`: a positive 64-bit integer, else 200001.
pub fn want_uid(params: &Value) -> Result<i64, ErrorAnswer> {
    let uid = want_int(params, "uid")?;
    match i64::try_from(uid) {
        Ok(uid) if uid > 0 => Ok(uid),
        _ => Err(ErrorAnswer::new(
            rtm_server_sdk::code::INVALID_PID_OR_UID,
            format!("uid {uid} is out of range: it must be a positive 64-bit integer"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_by_value_and_codes() {
        let p = Value::map()
            .with("a", Value::UInt(u64::MAX))
            .with("b", -5)
            .with("s", Value::Bin(b"txt".to_vec()))
            .with("n", Value::Nil);
        assert_eq!(want_int(&p, "a").unwrap(), i128::from(u64::MAX));
        assert_eq!(want_int(&p, "b").unwrap(), -5);
        assert_eq!(want_int(&p, "zz").unwrap_err().code, 10009);
        assert_eq!(want_int(&p, "s").unwrap_err().code, 10010);
        assert_eq!(want_str(&p, "s").unwrap(), "txt");
        assert_eq!(want_str(&p, "b").unwrap_err().code, 10010);
        assert_eq!(opt_str(&p, "n").unwrap(), None);
        assert_eq!(opt_int(&p, "zz").unwrap(), None);
    }

    #[test]
    fn uids_must_be_positive_int64() {
        for (v, ok) in [
            (Value::Int(1), true),
            (Value::Int(i64::MAX), true),
            (Value::Int(0), false),
            (Value::Int(-1), false),
            (Value::UInt(u64::MAX), false),
        ] {
            let p = Value::map().with("uid", v.clone());
            match want_uid(&p) {
                Ok(_) => assert!(ok, "{v}"),
                Err(e) => {
                    assert!(!ok, "{v}");
                    assert_eq!(e.code, 200001);
                }
            }
        }
    }
}
