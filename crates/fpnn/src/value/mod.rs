//! The dynamic payload value: everything msgpack can carry.
//!
//! FPNN payloads are msgpack maps (or JSON objects, converted to the same model). [`Value`] is
//! that model, with the reading rules of the official C++ reader:
//!
//! * integers compare and convert **by value**, whatever width they had on the wire
//!   (`Value::Int(5) == Value::UInt(5)`);
//! * text can be read from a msgpack `str` or `bin` ([`Value::as_bytes`], [`Value::as_text`]);
//! * maps keep their wire order, and a lookup takes the first entry with that key.
//!
//! Typed structs go to and from a `Value` with serde: [`to_value`] and [`from_value`].

mod de;
mod ser;

pub use de::{from_value, DeError};
pub use ser::{to_value, SerError};

use std::fmt;

/// A msgpack value.
///
/// Strings that are not valid UTF-8 decode as [`Value::Bin`]; the C++ writer puts raw bytes in
/// `str`, and every reader here treats `str` and `bin` alike.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `nil`.
    #[default]
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// Any integer that fits in an `i64`.
    Int(i64),
    /// An integer above `i64::MAX`. The constructors never use this for smaller values.
    UInt(u64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A UTF-8 string (msgpack `str`).
    Str(String),
    /// A byte string (msgpack `bin`, or a `str` that was not UTF-8).
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in wire order. Keys are usually strings.
    Map(Vec<(Value, Value)>),
    /// A msgpack extension value: type tag and data.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// An empty map, the smallest valid payload.
    pub fn map() -> Value {
        Value::Map(Vec::new())
    }

    /// Appends `key: value` to a map, for building payloads in order.
    ///
    /// Does nothing when `self` is not a map.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        if let Value::Map(entries) = self {
            entries.push((Value::Str(key.into()), value.into()));
        }
    }

    /// Builder form of [`Value::insert`].
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Value {
        self.insert(key, value);
        self
    }

    /// The value of the first entry whose key is the string `key`, when `self` is a map.
    ///
    /// Entries with non-string keys are skipped.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                Value::Bin(b) if b == key.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The entries, when `self` is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, when `self` is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The integer, when it fits in an `i64` (any msgpack integer width).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The integer, when it is non-negative (any msgpack integer width).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(i) => u64::try_from(i).ok(),
            Value::UInt(u) => Some(u),
            _ => None,
        }
    }

    /// A float, or any integer converted to one (the C++ `getDouble` rule).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(f) => Some(f64::from(f)),
            Value::F64(f) => Some(f),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            _ => None,
        }
    }

    /// The boolean, when `self` is a msgpack bool (integers are not booleans).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes of a `str` or a `bin`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a `str`, or of a `bin` holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bin(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Like [`Value::as_str`], but a `bin` that is not UTF-8 is converted lossily.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bin(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// `true` for `nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// A short name of the value's type, for error messages (`"int"`, `"str"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::F32(_) | Value::F64(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(_) | UInt(_), Int(_) | UInt(_)) => {
                // By value, whatever the variant.
                match (self.as_i64(), other.as_i64()) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => self.as_u64() == other.as_u64(),
                    _ => false,
                }
            }
            // Bitwise, so that NaN payloads round-trip as equal.
            (F32(a), F32(b)) => a.to_bits() == b.to_bits(),
            (F64(a), F64(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Bin(a), Bin(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Ext(ta, a), Ext(tb, b)) => ta == tb && a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    /// A compact, JSON-like rendering for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::F32(x) => write!(f, "{x}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bin(b) => {
                f.write_str("bin:")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Ext(t, data) => write!(f, "ext({t}, {} bytes)", data.len()),
        }
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(i64::from(v)) }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::from(v as u64)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::F32(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F64(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bin(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bin(v.to_vec())
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Nil, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_compare_by_value() {
        assert_eq!(Value::Int(5), Value::UInt(5));
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_ne!(Value::Int(-1), Value::UInt(u64::MAX));
        assert_eq!(Value::from(7u8).as_u64(), Some(7));
        assert_eq!(Value::Int(-3).as_u64(), None);
        assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
    }

    #[test]
    fn text_reads_from_str_and_bin() {
        assert_eq!(Value::from("abc").as_str(), Some("abc"));
        assert_eq!(Value::Bin(b"abc".to_vec()).as_str(), Some("abc"));
        assert_eq!(Value::Bin(vec![0xff]).as_str(), None);
        assert_eq!(Value::Bin(vec![0xff]).as_bytes(), Some(&[0xff][..]));
        assert_eq!(Value::Int(1).as_str(), None);
    }

    #[test]
    fn lookup_takes_the_first_match_and_skips_non_string_keys() {
        let v = Value::Map(vec![
            (Value::Int(1), Value::from("int key")),
            (Value::from("a"), Value::from(1)),
            (Value::from("a"), Value::from(2)),
        ]);
        assert_eq!(v.get("a"), Some(&Value::Int(1)));
        assert_eq!(v.get("b"), None);
        assert_eq!(Value::Int(1).get("a"), None);
    }

    #[test]
    fn doubles_read_from_ints_but_bools_do_not() {
        assert_eq!(Value::Int(3).as_f64(), Some(3.0));
        assert_eq!(Value::Int(1).as_bool(), None);
        assert_eq!(Value::F32(1.5).as_f64(), Some(1.5));
    }
}
