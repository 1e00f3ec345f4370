//! Reading a quest's parameters as the official server does, with its error codes.
//!
//! A missing key answers 10009 and a value of the wrong type 10010, as the C++ reader's
//! `want*` functions do; each value is converted with `serde` over [`fpnn::Value`] (strings
//! from `str` or `bin`, integers by value). The checks that have codes of their own come
//! after: a `uid` outside `1..=i64::MAX` answers 200001, a bad device field 200034.

use crate::code;
use crate::int::Int;
use fpnn::Value;
use serde::Deserialize;

/// Why a quest's parameters were refused. [`ParamError::code`] is the error answer's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A required key is missing (10009).
    #[error("missing key '{key}'")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A value has the wrong type or is out of the type's range (10010).
    #[error("key '{key}': {detail}")]
    Mistyped {
        /// The key.
        key: &'static str,
        /// What was wrong, e.g. `invalid type: string "42", expected an integer`.
        detail: String,
    },
    /// The `uid` is not a positive 64-bit integer (200001).
    #[error("uid {uid} is out of range: it must be a positive 64-bit integer")]
    Uid {
        /// The uid sent.
        uid: Int,
    },
    /// A value of the right type that the server does not accept (200034); the message
    /// names the key.
    #[error("{detail}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong with it, naming the key.
        detail: String,
    },
}

impl ParamError {
    /// The code of the error answer.
    pub fn code(&self) -> i32 {
        match self {
            ParamError::Missing { .. } => code::PROTO_KEY_NOT_FOUND,
            ParamError::Mistyped { .. } => code::PROTO_TYPE_CONVERT,
            ParamError::Uid { .. } => code::INVALID_PID_OR_UID,
            ParamError::Invalid { .. } => code::INVALID_PARAMETER,
        }
    }

    /// The key the error is about (`uid` for [`ParamError::Uid`]).
    pub fn key(&self) -> &'static str {
        match self {
            ParamError::Missing { key }
            | ParamError::Mistyped { key, .. }
            | ParamError::Invalid { key, .. } => key,
            ParamError::Uid { .. } => "uid",
        }
    }
}

/// A quest's parameters, read key by key.
///
/// A key that appears twice is read from its first entry, as the official readers do. A
/// payload that is not a map has no keys.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    entries: &'a [(Value, Value)],
}

impl<'a> Params<'a> {
    /// The parameters of a payload.
    pub fn new(payload: &'a Value) -> Params<'a> {
        Params {
            entries: payload.as_map().unwrap_or_default(),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// A required key: 10009 when it is missing, 10010 when its value is not a `T` (`nil`
    /// included).
    pub fn want<T: Deserialize<'a>>(&self, key: &'static str) -> Result<T, ParamError> {
        let value = self.get(key).ok_or(ParamError::Missing { key })?;
        convert(key, value)
    }

    /// An optional key: absent or `nil` is `None`; another value that is not a `T` is 10010.
    pub fn opt<T: Deserialize<'a>>(&self, key: &'static str) -> Result<Option<T>, ParamError> {
        match self.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(value) => convert(key, value).map(Some),
        }
    }

    /// The `uid`: required, an integer, and in `1..=i64::MAX` (else 200001).
    pub fn uid(&self) -> Result<i64, ParamError> {
        let uid: Int = self.want("uid")?;
        match uid.to_i64() {
            Some(valid) if valid > 0 => Ok(valid),
            _ => Err(ParamError::Uid { uid }),
        }
    }
}

fn convert<'a, T: Deserialize<'a>>(key: &'static str, value: &'a Value) -> Result<T, ParamError> {
    fpnn::from_value(value).map_err(|e| ParamError::Mistyped {
        key,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_keys() {
        let payload = Value::map()
            .with("a", Value::UInt(u64::MAX))
            .with("b", -5)
            .with("s", Value::Bin(b"txt".to_vec()))
            .with("n", Value::Nil)
            .with("b", "second");
        let p = Params::new(&payload);
        assert_eq!(p.want::<Int>("a").unwrap(), Int::from(u64::MAX));
        // The first of two entries.
        assert_eq!(p.want::<i64>("b").unwrap(), -5);
        assert_eq!(p.want::<&str>("s").unwrap(), "txt");
        let e = p.want::<Int>("zz").unwrap_err();
        assert_eq!((e.code(), e.key()), (10009, "zz"));
        assert_eq!(e.to_string(), "missing key 'zz'");
        let e = p.want::<Int>("s").unwrap_err();
        assert_eq!(e.code(), 10010);
        assert!(e.to_string().starts_with("key 's': "), "{e}");
        assert_eq!(p.want::<&str>("n").unwrap_err().code(), 10010);
        assert_eq!(p.opt::<&str>("n").unwrap(), None);
        assert_eq!(p.opt::<&str>("zz").unwrap(), None);
        assert_eq!(p.opt::<&str>("b").unwrap_err().code(), 10010);
        // Not a map: no keys at all.
        assert_eq!(
            Params::new(&Value::from(3))
                .want::<Int>("a")
                .unwrap_err()
                .code(),
            10009
        );
    }

    #[test]
    fn uids_must_be_positive_int64() {
        for (v, ok) in [
            (Value::Int(1), true),
            (Value::UInt(1), true),
            (Value::Int(i64::MAX), true),
            (Value::Int(0), false),
            (Value::Int(-1), false),
            (Value::UInt(i64::MAX as u64 + 1), false),
            (Value::UInt(u64::MAX), false),
        ] {
            let payload = Value::map().with("uid", v.clone());
            match Params::new(&payload).uid() {
                Ok(_) => assert!(ok, "{v}"),
                Err(e) => {
                    assert!(!ok, "{v}");
                    assert_eq!(e.code(), 200001);
                    assert!(e.to_string().contains(&format!("uid {v}")), "{e}");
                }
            }
        }
        let payload = Value::map().with("uid", "1");
        assert_eq!(Params::new(&payload).uid().unwrap_err().code(), 10010);
    }
}
