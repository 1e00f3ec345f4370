//! serde: [`Value`] into typed values, and any serde format into a [`Value`].

use super::Value;
use crate::error::code;
use serde::de::{self, Deserialize, IntoDeserializer, Visitor};
use std::fmt;

/// Why a [`Value`] could not become the wanted type.
///
/// [`DeError::code`] gives the FPNN code the C++ reader would raise for the same failure, so a
/// server can answer it as an error: a missing key is 10009, a wrong type 10010, a non-string
/// map key 10005.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeError {
    /// A required key is missing.
    #[error("missing key '{0}'")]
    KeyNotFound(String),
    /// A value has a type the target does not accept, or a value out of its range.
    #[error("{0}")]
    TypeConvert(String),
    /// A map key is not a string where a field name was expected.
    #[error("map key is not a string: {0}")]
    StringKey(String),
}

impl DeError {
    /// The FPNN error code for this failure.
    pub fn code(&self) -> i32 {
        match self {
            DeError::KeyNotFound(_) => code::PROTO_KEY_NOT_FOUND,
            DeError::TypeConvert(_) => code::PROTO_TYPE_CONVERT,
            DeError::StringKey(_) => code::PROTO_STRING_KEY,
        }
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::TypeConvert(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::KeyNotFound(field.to_owned())
    }
}

/// Converts a [`Value`] into any `Deserialize` type.
///
/// The rules are those of the official C++ reader: strings from `str` or `bin`; integers by
/// value whatever their msgpack width (an out-of-range value is a type error); floats from
/// floats or integers; booleans only from msgpack booleans; a missing `Option` field or a
/// `nil` is `None`.
pub fn from_value<'de, T: Deserialize<'de>>(value: &'de Value) -> std::result::Result<T, DeError> {
    T::deserialize(value)
}

type Result<T> = std::result::Result<T, DeError>;

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Nil => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(*i),
        Value::UInt(u) => de::Unexpected::Unsigned(*u),
        Value::F32(f) => de::Unexpected::Float(f64::from(*f)),
        Value::F64(f) => de::Unexpected::Float(*f),
        Value::Str(s) => de::Unexpected::Str(s),
        Value::Bin(b) => de::Unexpected::Bytes(b),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
        Value::Ext(..) => de::Unexpected::Other("ext"),
    }
}

impl<'de> de::Deserializer<'de> for &'de Value {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::F32(f) => visitor.visit_f32(*f),
            Value::F64(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Bin(b) => visitor.visit_borrowed_bytes(b),
            Value::Array(items) => visitor.visit_seq(SeqAccess(items.iter())),
            Value::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                current: None,
            }),
            // Extension data reads as its bytes; the tag is not representable in serde.
            Value::Ext(_, data) => visitor.visit_borrowed_bytes(data),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Bin(b) => match std::str::from_utf8(b) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Str(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Value::Bin(b) => visitor.visit_borrowed_bytes(b),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => {
                let (variant, content) = &entries[0];
                visitor.visit_enum(EnumAccess { variant, content })
            }
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Str(_) | Value::Bin(_) => self.deserialize_str(visitor),
            other => Err(DeError::StringKey(other.to_string())),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        unit unit_struct seq tuple tuple_struct map struct
    }
}

struct SeqAccess<'de>(std::slice::Iter<'de, Value>);

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        self.0.next().map(|v| seed.deserialize(v)).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapAccess<'de> {
    entries: std::slice::Iter<'de, (Value, Value)>,
    /// The current entry, so that a type error can name its key.
    current: Option<&'de (Value, Value)>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.entries.next() {
            Some(entry) => {
                self.current = Some(entry);
                seed.deserialize(&entry.0).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let (key, value) = self
            .current
            .take()
            .ok_or_else(|| DeError::TypeConvert("map value without a key".into()))?;
        seed.deserialize(value)
            .map_err(|e| match (e, key.as_str()) {
                (DeError::TypeConvert(msg), Some(key)) => {
                    DeError::TypeConvert(format!("key '{key}': {msg}"))
                }
                (e, _) => e,
            })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccess<'de> {
    variant: &'de Value,
    content: &'de Value,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = VariantAccess<'de>;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant)> {
        let variant = seed.deserialize(self.variant)?;
        Ok((variant, VariantAccess(self.content)))
    }
}

struct VariantAccess<'de>(&'de Value);

impl<'de> de::VariantAccess<'de> for VariantAccess<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.0)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(self.0, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_map(self.0, visitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any msgpack value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f32<E>(self, v: f32) -> std::result::Result<Value, E> {
        Ok(Value::F32(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
        Ok(Value::Bin(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::to_value;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Req {
        pid: i32,
        uid: i64,
        sign: String,
        salt: i64,
        ts: Option<i64>,
    }

    fn req_value(uid: Value, sign: Value) -> Value {
        Value::map()
            .with("pid", 11000001)
            .with("sign", sign)
            .with("salt", 123)
            .with("uid", uid)
    }

    #[test]
    fn struct_from_map_with_any_integer_width_and_bin_strings() {
        let v = req_value(Value::UInt(42), Value::Bin(b"ABC".to_vec()));
        let req: Req = from_value(&v).unwrap();
        assert_eq!(
            req,
            Req {
                pid: 11000001,
                uid: 42,
                sign: "ABC".into(),
                salt: 123,
                ts: None
            }
        );
    }

    #[test]
    fn errors_carry_fpnn_codes() {
        let missing = Value::map().with("pid", 1);
        let err = from_value::<Req>(&missing).unwrap_err();
        assert_eq!(err.code(), code::PROTO_KEY_NOT_FOUND, "{err}");

        let mistyped = req_value(Value::from("42"), Value::from("ABC"));
        let err = from_value::<Req>(&mistyped).unwrap_err();
        assert_eq!(err.code(), code::PROTO_TYPE_CONVERT, "{err}");

        let out_of_range = req_value(Value::UInt(u64::MAX), Value::from("ABC"));
        assert_eq!(
            from_value::<Req>(&out_of_range).unwrap_err().code(),
            code::PROTO_TYPE_CONVERT
        );

        let int_as_string = req_value(Value::Int(1), Value::Int(5));
        assert_eq!(
            from_value::<Req>(&int_as_string).unwrap_err().code(),
            code::PROTO_TYPE_CONVERT
        );
    }

    #[test]
    fn booleans_are_not_integers_and_doubles_accept_integers() {
        #[derive(Deserialize)]
        struct B {
            #[allow(dead_code)]
            b: bool,
        }
        #[derive(Deserialize)]
        struct F {
            f: f64,
        }
        assert!(from_value::<B>(&Value::map().with("b", 1)).is_err());
        assert_eq!(from_value::<F>(&Value::map().with("f", 3)).unwrap().f, 3.0);
    }

    #[test]
    fn typed_round_trip_keeps_field_order() {
        let req = Req {
            pid: 1,
            uid: 2,
            sign: "S".into(),
            salt: 3,
            ts: Some(4),
        };
        let v = to_value(&req).unwrap();
        let keys: Vec<_> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(
            keys,
            ["\"pid\"", "\"uid\"", "\"sign\"", "\"salt\"", "\"ts\""]
        );
        assert_eq!(from_value::<Req>(&v).unwrap(), req);
    }

    #[test]
    fn value_from_json_keeps_order_and_integer_kinds() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":-2,"c":1.5,"d":"x","e":null}"#).unwrap();
        assert_eq!(
            v,
            Value::map()
                .with("b", 1)
                .with("a", -2)
                .with("c", 1.5)
                .with("d", "x")
                .with("e", Value::Nil)
        );
    }
}
