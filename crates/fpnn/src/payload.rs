//! Payloads: the body of a quest or an answer, in msgpack (flag `0x80`) or JSON (flag `0x40`).
//!
//! The root of every payload must be a map (a JSON object); anything else is a protocol error
//! that closes the connection in the official framework.

use crate::codec_error::CodecError;
use crate::msgpack;
use crate::value::Value;
use bytes::Bytes;

/// How a payload is encoded, from the frame's flag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// msgpack, flag `0x80`: what every official SDK sends.
    #[default]
    MsgPack,
    /// JSON text, flag `0x40`.
    Json,
}

impl Format {
    /// The flag byte for this format.
    pub const fn flag(self) -> u8 {
        match self {
            Format::MsgPack => FLAG_MSGPACK,
            Format::Json => FLAG_JSON,
        }
    }

    /// The format a flag byte names: exactly one of `0x80` and `0x40` must be set.
    ///
    /// The zip (`0x20`) and encrypt (`0x10`) bits are defined by the protocol but never used
    /// on TCP; a frame carrying them cannot be read.
    pub const fn from_flag(flag: u8) -> Result<Format, CodecError> {
        match flag {
            FLAG_MSGPACK => Ok(Format::MsgPack),
            FLAG_JSON => Ok(Format::Json),
            other => Err(CodecError::BadFlag(other)),
        }
    }

    /// Encodes `value` (which should be a map) in this format.
    pub fn encode(self, value: &Value) -> Result<Bytes, CodecError> {
        match self {
            Format::MsgPack => Ok(Bytes::from(msgpack::encode(value)?)),
            Format::Json => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| CodecError::Json(e.to_string())),
        }
    }

    /// Decodes a payload in this format; its root must be a map.
    pub fn decode(self, bytes: &[u8]) -> Result<Value, CodecError> {
        let value = match self {
            Format::MsgPack => msgpack::decode(bytes)?,
            Format::Json => {
                serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string()))?
            }
        };
        match value {
            Value::Map(_) => Ok(value),
            other => Err(CodecError::NotAMap(other.type_name())),
        }
    }
}

/// The flag bit of a msgpack payload.
pub const FLAG_MSGPACK: u8 = 0x80;
/// The flag bit of a JSON payload.
pub const FLAG_JSON: u8 = 0x40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_must_be_a_map() {
        assert_eq!(
            Format::MsgPack.decode(&[0x01]),
            Err(CodecError::NotAMap("int"))
        );
        assert_eq!(
            Format::Json.decode(b"[1]"),
            Err(CodecError::NotAMap("array"))
        );
        assert!(matches!(
            Format::Json.decode(b"{"),
            Err(CodecError::Json(_))
        ));
        assert_eq!(Format::MsgPack.decode(&[0x80]), Ok(Value::map()));
    }

    #[test]
    fn json_floats_read_back_exactly() {
        // Without serde_json's `float_roundtrip`, these came back one ulp off (found by the
        // proptest round trip and the json_payload fuzz target).
        for f in [
            9.712651442567999e-219,
            1.3333333333333339e31,
            0.1,
            5e-324,
            f64::MAX,
        ] {
            let v = Value::map().with("f", f);
            let json = Format::Json.encode(&v).unwrap();
            assert_eq!(Format::Json.decode(&json), Ok(v), "{f:e}");
        }
        let big = br#"{"a":13333333333333338446744070955161}"#;
        let v = Format::Json.decode(big).unwrap();
        assert_eq!(v.get("a"), Some(&Value::F64(1.3333333333333339e31)));
        let json = Format::Json.encode(&v).unwrap();
        assert_eq!(Format::Json.decode(&json), Ok(v));
    }

    #[test]
    fn flags() {
        assert_eq!(Format::from_flag(0x80), Ok(Format::MsgPack));
        assert_eq!(Format::from_flag(0x40), Ok(Format::Json));
        assert_eq!(Format::from_flag(0xc0), Err(CodecError::BadFlag(0xc0)));
        assert_eq!(Format::from_flag(0x00), Err(CodecError::BadFlag(0x00)));
        assert_eq!(Format::from_flag(0x90), Err(CodecError::BadFlag(0x90)));
    }
}
