//! Property tests of the encrypted framing and of the `*key` parameters: round trips in every
//! mode and key size, arbitrary chunking, the stream receiver against the plain decoder, and
//! "never panics" on arbitrary bytes and parameters.
//!
//! Deterministic (a fixed seed) unless `PROPTEST_RNG_SEED` is set; `PROPTEST_CASES` runs more.
#![cfg(feature = "encryption")]

mod common;

use bytes::BytesMut;
use fpnn::encryption::{Bits, FrameEncryptor, FrameReceiver, KeyMaterial, KeyRequest, Mode};
use fpnn::{CodecError, Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};
use proptest::prelude::*;

/// `cases` cases, from this file's fixed seed unless the environment names one.
fn config(cases: u32) -> ProptestConfig {
    common::proptest_config(cases, 0x_e1_c0_de)
}

/// Key material from a random secret of a supported curve's length, and a mode.
fn session() -> impl Strategy<Value = (KeyMaterial, Mode)> {
    (
        prop::sample::select(vec![24usize, 28, 32])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(secret, big, stream)| {
            let bits = if big { Bits::Aes256 } else { Bits::Aes128 };
            let keys = KeyMaterial::derive(&secret, bits).expect("24 bytes or more");
            (keys, Mode::from_stream_mode(stream))
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        "[a-z*]{1,12}",
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::bool::ANY,
    )
        .prop_map(|(method, seq, blob, json)| {
            let (format, params) = if json {
                (Format::Json, Value::map().with("n", blob.len()))
            } else {
                (Format::MsgPack, Value::map().with("b", blob))
            };
            Frame::Quest(Quest::new(method, seq, format, &params).expect("a valid quest"))
        })
}

/// Chunk sizes to feed a receiver with, cycled.
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 1..6)
}

struct Received {
    frames: Vec<Frame>,
    error: Option<CodecError>,
    left: usize,
}

/// Feeds `wire` to `receiver` in chunks of the given sizes (cycled), taking every frame.
fn receive(mut receiver: FrameReceiver, wire: &[u8], sizes: &[usize]) -> Received {
    let mut out = Received {
        frames: Vec::new(),
        error: None,
        left: 0,
    };
    let mut buf = BytesMut::new();
    let mut rest = wire;
    let mut size = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = size.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match receiver.decode(&mut buf) {
                Ok(Some(frame)) => out.frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out.left = buf.len();
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn frames_round_trip_in_every_mode(
        (keys, mode) in session(),
        frames in prop::collection::vec(frame(), 0..6),
        sizes in chunks(),
    ) {
        let mut encryptor = FrameEncryptor::new(&keys, mode);
        let mut wire = BytesMut::new();
        for frame in &frames {
            encryptor.encrypt_frame(&frame.encode().unwrap(), &mut wire).unwrap();
        }
        let whole = receive(FrameReceiver::new(&keys, mode, DEFAULT_MAX_FRAME), &wire, &[usize::MAX]);
        let chunked = receive(FrameReceiver::new(&keys, mode, DEFAULT_MAX_FRAME), &wire, &sizes);
        prop_assert_eq!(whole.error, None);
        prop_assert_eq!(chunked.error, None);
        prop_assert_eq!(&whole.frames, &frames);
        prop_assert_eq!(&chunked.frames, &frames);
        prop_assert_eq!((whole.left, chunked.left), (0, 0));
    }

    #[test]
    fn arbitrary_bytes_fail_cleanly_whatever_the_chunking(
        (keys, mode) in session(),
        wire in prop::collection::vec(any::<u8>(), 0..400),
        sizes in chunks(),
        small in prop::bool::ANY,
    ) {
        let max = if small { 64 } else { DEFAULT_MAX_FRAME };
        let whole = receive(FrameReceiver::new(&keys, mode, max), &wire, &[usize::MAX]);
        let chunked = receive(FrameReceiver::new(&keys, mode, max), &wire, &sizes);
        prop_assert_eq!(&chunked.frames, &whole.frames);
        prop_assert_eq!(&chunked.error, &whole.error);
        if whole.error.is_none() {
            prop_assert_eq!(chunked.left, whole.left);
        }
    }

    /// Stream mode is the plain decoder on the decrypted stream: the same frames, the same
    /// error, whatever the plaintext (valid frames, then anything).
    #[test]
    fn the_stream_receiver_is_the_plain_decoder_on_the_decrypted_stream(
        (keys, _) in session(),
        frames in prop::collection::vec(frame(), 0..4),
        tail in prop::collection::vec(any::<u8>(), 0..40),
        sizes in chunks(),
        small in prop::bool::ANY,
    ) {
        let max = if small { 200 } else { DEFAULT_MAX_FRAME };
        let mut plain = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut plain).unwrap();
        }
        plain.extend_from_slice(&tail);

        let mut expected = Received { frames: Vec::new(), error: None, left: 0 };
        let mut decoder = FrameDecoder::new(max);
        let mut buf = plain.clone();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => expected.frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    expected.error = Some(e);
                    break;
                }
            }
        }

        let mut wire = BytesMut::new();
        FrameEncryptor::new(&keys, Mode::Stream).encrypt_frame(&plain, &mut wire).unwrap();
        let got = receive(FrameReceiver::new(&keys, Mode::Stream, max), &wire, &sizes);
        prop_assert_eq!(&got.frames, &expected.frames);
        prop_assert_eq!(&got.error, &expected.error);
        if expected.error.is_none() {
            prop_assert_eq!(got.left, buf.len());
        }
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop::sample::select(vec![128i64, 256, 192, (1 << 32) + 128]).prop_map(Value::Int),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        ".{0,70}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..70).prop_map(Value::Bin),
        Just(Value::Array(vec![])),
        Just(Value::map()),
    ]
}

fn any_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["publicKey", "streamMode", "bits", "other"])
            .prop_map(Value::from),
        1 => any_value(),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn key_parameters_never_panic(
        entries in prop::collection::vec((any_key(), any_value()), 0..6),
    ) {
        let params = Value::Map(entries);
        if let Ok(request) = KeyRequest::from_value(&params) {
            // What was read writes back and reads the same.
            prop_assert_eq!(KeyRequest::from_value(&request.to_value()).unwrap(), request);
        }
        // Through a quest too, in both formats.
        for format in [Format::MsgPack, Format::Json] {
            if let Ok(quest) = Quest::new("*key", Some(1), format, &params) {
                let _ = KeyRequest::from_quest(&quest);
            }
        }
    }

    #[test]
    fn key_requests_round_trip(
        public_key in prop::collection::vec(any::<u8>(), 0..80),
        stream in prop::bool::ANY,
        big in prop::bool::ANY,
    ) {
        let request = KeyRequest {
            public_key,
            mode: Mode::from_stream_mode(stream),
            bits: if big { Bits::Aes256 } else { Bits::Aes128 },
        };
        let quest = request.quest(9).unwrap();
        let decoded = match Frame::decode(&Frame::from(quest).encode().unwrap(), DEFAULT_MAX_FRAME).unwrap() {
            Frame::Quest(q) => q,
            Frame::Answer(_) => unreachable!(),
        };
        prop_assert_eq!(KeyRequest::from_quest(&decoded).unwrap(), request);
    }
}
