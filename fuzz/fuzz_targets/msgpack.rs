//! The msgpack reader on arbitrary bytes.
//!
//! Checked: it never panics; the payload decoder (`Format::MsgPack.decode`) agrees with it;
//! a decoded value re-encodes, decodes back to an equal value, and its encoding is a fixed
//! point (the writer's smallest forms are canonical).
#![no_main]

use fpnn::msgpack;
use fpnn::{CodecError, Format, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = msgpack::decode(data);
    match (&decoded, Format::MsgPack.decode(data)) {
        (Ok(v @ Value::Map(_)), Ok(payload)) => assert_eq!(*v, payload),
        (Ok(v), Err(CodecError::NotAMap(kind))) => {
            assert!(!matches!(v, Value::Map(_)));
            assert_eq!(v.type_name(), kind);
        }
        (Err(e), Err(CodecError::Msgpack(payload_err))) => assert_eq!(*e, payload_err),
        (plain, payload) => panic!("decoders disagree: {plain:?} vs {payload:?}"),
    }

    if let Ok(value) = decoded {
        let bytes = msgpack::encode(&value).expect("a decoded value re-encodes");
        let again = msgpack::decode(&bytes).expect("re-encoded bytes decode");
        assert_eq!(again, value);
        assert_eq!(msgpack::encode(&again).as_deref(), Ok(&bytes[..]));
        let _ = value.to_string();
    }
});
