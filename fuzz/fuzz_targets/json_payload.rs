//! JSON payloads (flag 0x40) on arbitrary bytes.
//!
//! Checked: decoding never panics; a decoded payload re-encodes as JSON and decodes back to an
//! equal value; and, as the C++ framework converts JSON payloads to msgpack, the same value
//! survives a trip through msgpack too.
#![no_main]

use fpnn::{CodecError, Format, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = match Format::Json.decode(data) {
        Ok(value) => value,
        Err(CodecError::Json(_) | CodecError::NotAMap(_)) => return,
        Err(other) => panic!("unexpected error kind for JSON: {other:?}"),
    };
    assert!(matches!(value, Value::Map(_)));

    let json = Format::Json
        .encode(&value)
        .expect("a decoded JSON value re-encodes");
    assert_eq!(Format::Json.decode(&json), Ok(value.clone()));

    let packed = Format::MsgPack
        .encode(&value)
        .expect("JSON values encode as msgpack");
    assert_eq!(Format::MsgPack.decode(&packed), Ok(value));
});
