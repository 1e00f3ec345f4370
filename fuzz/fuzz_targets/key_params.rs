//! The server's reading of a `*key` quest: the payload bytes are the fuzz input.
//!
//! Checked:
//! * reading never panics, in msgpack and as JSON text;
//! * parameters that are read write back (`KeyRequest::to_value`) and read the same;
//! * `accept` with a real static key either refuses or yields a session whose answer is the
//!   empty map to the quest's seq, and whose encryptor and receiver agree with each other.
#![no_main]

use bytes::{Bytes, BytesMut};
use fpnn::encryption::{self, Curve, KeyRequest, PrivateKey};
use fpnn::{Format, Frame, Quest, Value, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn server_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::from_bytes(Curve::Secp256r1, &[0x22; 32]).expect("a valid scalar")
    })
}

fuzz_target!(|data: &[u8]| {
    for format in [Format::MsgPack, Format::Json] {
        let quest = Quest {
            method: encryption::KEY_METHOD.to_owned(),
            seq: Some(7),
            format,
            payload: Bytes::copy_from_slice(data),
        };
        if let Ok(request) = KeyRequest::from_quest(&quest) {
            assert_eq!(
                KeyRequest::from_value(&request.to_value()).expect("our own parameters"),
                request
            );
        }
        if let Ok(accepted) = encryption::accept(server_key(), &quest) {
            assert_eq!(accepted.answer.seq, 7);
            assert_eq!(accepted.answer.format, format);
            assert_eq!(accepted.answer.body().expect("an empty map"), Value::map());
            let frame = Frame::from(accepted.answer.clone())
                .encode()
                .expect("encodes");
            let (mut out, mut back) = accepted.session.split(DEFAULT_MAX_FRAME);
            let mut wire = BytesMut::new();
            out.encrypt_frame(&frame, &mut wire).expect("small frame");
            assert_eq!(
                back.decode(&mut wire).expect("our own bytes"),
                Some(Frame::Answer(accepted.answer))
            );
        }
    }
});
