//! Property tests of the codec: round trips, canonical (smallest) encodings, streaming in
//! arbitrary chunks, typed payloads through serde, and "never panics" on arbitrary bytes.
//!
//! The runs are deterministic (a fixed seed) unless `PROPTEST_RNG_SEED` is set, so a failure
//! in CI reproduces locally; set `PROPTEST_CASES` to run more cases.

mod common;

use bytes::{Bytes, BytesMut};
use fpnn::msgpack::{self, MsgpackError};
use fpnn::{
    code, from_value, to_value, Answer, CodecError, Format, Frame, FrameDecoder, Quest, Value,
    DEFAULT_MAX_FRAME,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// `cases` cases, from this file's fixed seed unless the environment names one.
fn config(cases: u32) -> ProptestConfig {
    common::proptest_config(cases, 0x_f9_99_c0_de)
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Small lengths, and those on either side of the fix/8-bit and 8/16-bit size boundaries.
fn boundary_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..40,
        1 => prop::sample::select(vec![0usize, 1, 15, 16, 31, 32, 255, 256]),
    ]
}

/// Lengths on either side of the 16/32-bit size boundary (kept out of the nested values, where
/// they would make every case slow).
fn big_len() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![65_535usize, 65_536])
}

fn int_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::from),
        // Every boundary between two integer encodings, on both sides.
        prop::sample::select(vec![
            0i64,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            i64::MIN,
        ])
        .prop_map(Value::Int),
        prop::sample::select(vec![1u64 << 63, u64::MAX]).prop_map(Value::UInt),
        // A `UInt` holding a small value, as a hand-built value may: equal to the `Int`.
        (0..=i64::MAX as u64).prop_map(Value::UInt),
    ]
}

fn text(len: impl Strategy<Value = usize>) -> impl Strategy<Value = String> {
    len.prop_flat_map(|n| {
        prop_oneof![
            // Any characters, then cut to at most `n` bytes on a character boundary.
            prop::collection::vec(any::<char>(), 0..=n.min(64)).prop_map(move |cs| {
                let mut s: String = cs.into_iter().collect();
                while s.len() > n {
                    s.pop();
                }
                s
            }),
            // Exactly `n` bytes.
            Just("x".repeat(n)),
        ]
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Nil),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => int_value(),
        // Every bit pattern, so NaNs with payloads and signs too.
        1 => any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        1 => any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        1 => prop::sample::select(vec![f64::NAN, -f64::NAN, -0.0, f64::INFINITY]).prop_map(Value::F64),
        3 => text(boundary_len()).prop_map(Value::Str),
        1 => bin(boundary_len()),
        1 => ext(prop_oneof![
            prop::sample::select(vec![0usize, 1, 2, 3, 4, 8, 16, 17, 255, 256]),
            boundary_len()
        ]),
    ]
}

fn bin(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Value> {
    len.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n..=n))
        .prop_map(Value::Bin)
}

fn ext(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Value> {
    (any::<i8>(), len).prop_flat_map(|(tag, n)| {
        prop::collection::vec(any::<u8>(), n..=n).prop_map(move |d| Value::Ext(tag, d))
    })
}

/// Any value: nested arrays and maps (keys of any type) of every scalar.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

/// A payload: a map at the root.
fn payload() -> impl Strategy<Value = Value> {
    prop::collection::vec((value(), value()), 0..6).prop_map(Value::Map)
}

/// Values JSON can carry exactly: no bin, ext, f32 or non-finite float; string keys only.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::from),
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F64),
        text(0usize..40).prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(0usize..12).prop_map(Value::Str), inner), 0..6)
                .prop_map(Value::Map),
        ]
    })
}

fn json_payload() -> impl Strategy<Value = Value> {
    prop::collection::vec((text(0usize..12).prop_map(Value::Str), json_value()), 0..6)
        .prop_map(Value::Map)
}

/// A method name of 1..=255 bytes of UTF-8.
fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(any::<char>(), 1..=255).prop_map(|cs| {
            let mut s: String = cs.into_iter().collect();
            while s.len() > 255 {
                s.pop();
            }
            s
        }),
        1 => (1usize..=255).prop_map(|n| "m".repeat(n)),
        1 => Just("*ping".to_owned()),
    ]
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::MsgPack), Just(Format::Json)]
}

/// A format and a payload it can carry.
fn format_and_payload() -> impl Strategy<Value = (Format, Value)> {
    prop_oneof![
        payload().prop_map(|p| (Format::MsgPack, p)),
        json_payload().prop_map(|p| (Format::Json, p)),
    ]
}

fn quest() -> impl Strategy<Value = Quest> {
    (method(), any::<Option<u32>>(), format_and_payload()).prop_map(
        |(method, seq, (format, params))| {
            Quest::new(method, seq, format, &params).expect("a valid quest")
        },
    )
}

fn answer() -> impl Strategy<Value = Answer> {
    (any::<u32>(), any::<u8>(), format_and_payload()).prop_map(|(seq, status, (format, body))| {
        Answer {
            status,
            ..Answer::ok(seq, format, &body).expect("a valid answer")
        }
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        quest().prop_map(Frame::from),
        answer().prop_map(Frame::from)
    ]
}

// ---------------------------------------------------------------------------------------------
// A model of the smallest msgpack encoding, independent of the writer.

fn uint_size(u: u64) -> usize {
    match u {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn smallest_size(v: &Value) -> usize {
    let header = |n: usize, fix_limit: usize| match n {
        _ if n < fix_limit => 1,
        0..=0xffff => 3,
        _ => 5,
    };
    match v {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(i) if *i >= 0 => uint_size(*i as u64),
        Value::Int(i) if *i >= -32 => 1,
        Value::Int(i) if *i >= i8::MIN.into() => 2,
        Value::Int(i) if *i >= i16::MIN.into() => 3,
        Value::Int(i) if *i >= i32::MIN.into() => 5,
        Value::Int(_) => 9,
        Value::UInt(u) => uint_size(*u),
        Value::F32(_) => 5,
        Value::F64(_) => 9,
        Value::Str(s) => match s.len() {
            n @ 0..=31 => 1 + n,
            n @ 32..=0xff => 2 + n,
            n => header(n, 0) + n,
        },
        Value::Bin(b) => match b.len() {
            n @ 0..=0xff => 2 + n,
            n => header(n, 0) + n,
        },
        Value::Ext(_, d) => match d.len() {
            n @ (1 | 2 | 4 | 8 | 16) => 2 + n,
            n @ 0..=0xff => 3 + n,
            n @ 0..=0xffff => 4 + n,
            n => 6 + n,
        },
        Value::Array(items) => {
            header(items.len(), 16) + items.iter().map(smallest_size).sum::<usize>()
        }
        Value::Map(entries) => {
            header(entries.len(), 16)
                + entries
                    .iter()
                    .map(|(k, v)| smallest_size(k) + smallest_size(v))
                    .sum::<usize>()
        }
    }
}

/// Every msgpack encoding of the integer `i`, minimal or not.
fn all_int_encodings(i: i128) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if (0..=0x7f).contains(&i) {
        out.push(vec![i as u8]);
    }
    if (-32..0).contains(&i) {
        out.push(vec![i as i8 as u8]);
    }
    if (0..=u8::MAX as i128).contains(&i) {
        out.push(vec![0xcc, i as u8]);
    }
    if (0..=u16::MAX as i128).contains(&i) {
        out.push([&[0xcd][..], &(i as u16).to_be_bytes()].concat());
    }
    if (0..=u32::MAX as i128).contains(&i) {
        out.push([&[0xce][..], &(i as u32).to_be_bytes()].concat());
    }
    if (0..=u64::MAX as i128).contains(&i) {
        out.push([&[0xcf][..], &(i as u64).to_be_bytes()].concat());
    }
    if (i8::MIN as i128..=i8::MAX as i128).contains(&i) {
        out.push(vec![0xd0, i as i8 as u8]);
    }
    if (i16::MIN as i128..=i16::MAX as i128).contains(&i) {
        out.push([&[0xd1][..], &(i as i16).to_be_bytes()].concat());
    }
    if (i32::MIN as i128..=i32::MAX as i128).contains(&i) {
        out.push([&[0xd2][..], &(i as i32).to_be_bytes()].concat());
    }
    if (i64::MIN as i128..=i64::MAX as i128).contains(&i) {
        out.push([&[0xd3][..], &(i as i64).to_be_bytes()].concat());
    }
    out
}

fn int_of(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::UInt(u64::try_from(i).expect("a msgpack integer")),
    }
}

fn interesting_int() -> impl Strategy<Value = i128> {
    prop_oneof![
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
        (-300i128..300),
        prop::sample::select(vec![
            u8::MAX as i128,
            u16::MAX as i128,
            u32::MAX as i128,
            u64::MAX as i128,
            i8::MIN as i128,
            i16::MIN as i128,
            i32::MIN as i128,
            i64::MIN as i128,
            i32::MAX as i128,
            i64::MAX as i128,
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// msgpack

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn msgpack_round_trips(v in value()) {
        let bytes = msgpack::encode(&v).unwrap();
        prop_assert_eq!(msgpack::decode(&bytes), Ok(v));
    }

    #[test]
    fn msgpack_encoding_is_the_smallest_and_canonical(v in value()) {
        let bytes = msgpack::encode(&v).unwrap();
        prop_assert_eq!(bytes.len(), smallest_size(&v));
        let again = msgpack::encode(&msgpack::decode(&bytes).unwrap()).unwrap();
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn every_integer_width_decodes_by_value_and_re_encodes_smallest(i in interesting_int()) {
        let expected = int_of(i);
        let smallest = msgpack::encode(&expected).unwrap();
        prop_assert_eq!(smallest.len(), smallest_size(&expected));
        for form in all_int_encodings(i) {
            let decoded = msgpack::decode(&form).unwrap();
            prop_assert_eq!(&decoded, &expected, "{:02x?}", form);
            prop_assert_eq!(decoded.as_i64(), i64::try_from(i).ok());
            prop_assert_eq!(decoded.as_u64(), u64::try_from(i).ok());
            prop_assert!(form.len() >= smallest.len());
            prop_assert_eq!(msgpack::encode(&decoded).unwrap(), smallest.clone());
        }
    }

    #[test]
    fn msgpack_str_with_invalid_utf8_reads_as_bin(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        // The C++ writer puts raw bytes in `str`; `Value::Str` can only hold UTF-8.
        let mut encoded = Vec::new();
        msgpack::write_str(&bytes, &mut encoded).unwrap();
        let decoded = msgpack::decode(&encoded).unwrap();
        match String::from_utf8(bytes.clone()) {
            Ok(s) => prop_assert_eq!(&decoded, &Value::Str(s)),
            Err(_) => prop_assert_eq!(&decoded, &Value::Bin(bytes.clone())),
        }
        prop_assert_eq!(decoded.as_bytes(), Some(&bytes[..]));
        // Re-encoded as `bin` when it was not UTF-8: at most one byte longer (fixstr to bin8).
        let again = msgpack::encode(&decoded).unwrap();
        prop_assert!(again.len() <= encoded.len() + 1);
        prop_assert_eq!(msgpack::decode(&again), Ok(decoded));
    }

    #[test]
    fn big_strings_bins_and_exts_use_32_bit_lengths_only_past_65535(
        v in prop_oneof![text(big_len()).prop_map(Value::Str), bin(big_len()), ext(big_len())],
    ) {
        let bytes = msgpack::encode(&v).unwrap();
        prop_assert_eq!(bytes.len(), smallest_size(&v));
        prop_assert_eq!(msgpack::decode(&bytes), Ok(v));
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn array_and_map_headers_are_the_smallest(n in prop::sample::select(vec![0usize, 1, 15, 16, 17, 255, 256, 65_535, 65_536])) {
        let array = Value::Array(vec![Value::Nil; n]);
        let bytes = msgpack::encode(&array).unwrap();
        prop_assert_eq!(bytes.len(), smallest_size(&array));
        prop_assert_eq!(msgpack::decode(&bytes), Ok(array));

        let map = Value::Map((0..n).map(|i| (Value::from(i), Value::Nil)).collect());
        let bytes = msgpack::encode(&map).unwrap();
        prop_assert_eq!(bytes.len(), smallest_size(&map));
        prop_assert_eq!(msgpack::decode(&bytes), Ok(map));
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

fn check_frame_round_trip(frame: &Frame) -> Result<(), TestCaseError> {
    let bytes = frame.encode().unwrap();
    prop_assert_eq!(bytes.len(), frame.encoded_len());

    // The header, field by field.
    prop_assert_eq!(&bytes[..4], b"FPNN");
    prop_assert_eq!(bytes[4], 1);
    let (flag, mtype, ss, payload) = match frame {
        Frame::Quest(q) => (
            q.format.flag(),
            u8::from(q.seq.is_some()),
            q.method.len(),
            &q.payload,
        ),
        Frame::Answer(a) => (a.format.flag(), 2, usize::from(a.status), &a.payload),
    };
    prop_assert_eq!(bytes[5], flag);
    prop_assert_eq!(bytes[6], mtype);
    prop_assert_eq!(usize::from(bytes[7]), ss);
    prop_assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
        payload.len()
    );
    prop_assert!(bytes.ends_with(payload));

    prop_assert_eq!(Frame::decode(&bytes, DEFAULT_MAX_FRAME), Ok(frame.clone()));
    prop_assert_eq!(Frame::decode(&bytes, bytes.len()), Ok(frame.clone()));
    let mut buf = BytesMut::from(&bytes[..]);
    prop_assert_eq!(
        FrameDecoder::default().decode(&mut buf),
        Ok(Some(frame.clone()))
    );
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn quests_round_trip(
        method in method(),
        seq in any::<Option<u32>>(),
        (format, params) in format_and_payload(),
    ) {
        let quest = Quest::new(method.as_str(), seq, format, &params).unwrap();
        prop_assert_eq!(&quest.method, &method);
        prop_assert_eq!(quest.seq, seq);
        prop_assert_eq!(quest.is_twoway(), seq.is_some());
        let frame = Frame::from(quest);
        check_frame_round_trip(&frame)?;
        let Frame::Quest(decoded) = Frame::decode(&frame.encode().unwrap(), DEFAULT_MAX_FRAME).unwrap() else {
            panic!("not a quest");
        };
        prop_assert_eq!(decoded.params(), Ok(params));
    }

    #[test]
    fn answers_round_trip(
        seq in any::<u32>(),
        status in any::<u8>(),
        (format, body) in format_and_payload(),
    ) {
        let answer = Answer { status, ..Answer::ok(seq, format, &body).unwrap() };
        let frame = Frame::from(answer);
        check_frame_round_trip(&frame)?;
        let Frame::Answer(decoded) = Frame::decode(&frame.encode().unwrap(), DEFAULT_MAX_FRAME).unwrap() else {
            panic!("not an answer");
        };
        prop_assert_eq!(decoded.seq, seq);
        prop_assert_eq!(decoded.is_error(), status != 0);
        prop_assert_eq!(decoded.body(), Ok(body));
    }

    #[test]
    fn error_answers_round_trip(seq in any::<u32>(), code in any::<i32>(), ex in text(0usize..80), format in format()) {
        let error = fpnn::ErrorAnswer::new(code, ex);
        let answer = Answer::error(seq, format, &error);
        prop_assert_eq!(answer.status, 1);
        let frame = Frame::from(answer);
        check_frame_round_trip(&frame)?;
        let Frame::Answer(decoded) = frame else { unreachable!() };
        prop_assert_eq!(decoded.into_result(), Ok(Err(error)));
    }

    #[test]
    fn a_stream_in_random_chunks_yields_the_same_frames(
        frames in prop::collection::vec(frame(), 1..6),
        chunks in prop::collection::vec(1usize..80, 1..8),
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut stream).unwrap();
        }
        let stream = stream.freeze();

        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        for size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            rest = tail;
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes: an `Ok` or an `Err`, never a panic

/// Bytes that start like a frame (so that they get past the magic) and go on at random.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..4,
        prop::sample::select(vec![0x80u8, 0x40, 0xc0, 0x00, 0x90]),
        0u8..4,
        any::<u8>(),
        0u32..200,
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(version, flag, mtype, ss, psize, body)| {
            let mut bytes = b"FPNN".to_vec();
            bytes.extend_from_slice(&[version, flag, mtype, ss]);
            bytes.extend_from_slice(&psize.to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes
        })
}

/// A valid frame with a few bytes overwritten, and maybe cut short.
fn mangled_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        frame(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(frame, edits, cut)| {
            let mut bytes = frame.encode().unwrap().to_vec();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
            bytes.truncate(keep);
            bytes
        })
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        frame_like_bytes(),
        mangled_frame(),
    ]
}

/// Decodes everything in `bytes` with every decoder; only panics are failures.
fn decode_everything(bytes: &[u8]) {
    for max in [DEFAULT_MAX_FRAME, 64] {
        let mut decoder = FrameDecoder::new(max);
        let mut buf = BytesMut::from(bytes);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let _ = match &frame {
                Frame::Quest(q) => q.params(),
                Frame::Answer(a) => a.clone().into_result().map(|_| Value::Nil),
            };
            let _ = frame.encode();
        }
        let _ = decoder.needed(bytes);
        let _ = Frame::decode(bytes, max);
    }
    let _ = msgpack::decode(bytes);
    let _ = Format::MsgPack.decode(bytes);
    let _ = Format::Json.decode(bytes);
    if bytes.len() >= 12 {
        let _ = fpnn::frame::Header::parse(bytes);
    }
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn decoders_never_panic(bytes in arbitrary_bytes()) {
        decode_everything(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_msgpack_like_bytes(
        parts in prop::collection::vec(
            (
                prop::sample::select((0xc0u8..=0xdf).chain([0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xe0, 0x00, 0x7f]).collect::<Vec<_>>()),
                prop::collection::vec(any::<u8>(), 0..6),
            ),
            0..24,
        ),
    ) {
        // Type bytes with short, random "length" and data bytes after them: mostly lies.
        let bytes: Vec<u8> = parts
            .into_iter()
            .flat_map(|(tag, rest)| std::iter::once(tag).chain(rest))
            .collect();
        decode_everything(&bytes);
        let framed = Frame::from(Quest {
            method: "m".into(),
            seq: Some(1),
            format: Format::MsgPack,
            payload: Bytes::from(bytes),
        });
        if let Ok(bytes) = framed.encode() {
            decode_everything(&bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// serde

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Typed {
    pid: i32,
    uid: i64,
    mid: u64,
    name: String,
    attrs: Option<String>,
    ts: Option<i64>,
    tos: Vec<i64>,
    tags: Vec<String>,
    online: bool,
}

fn typed() -> impl Strategy<Value = Typed> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<u64>(),
        text(0usize..40),
        proptest::option::of(text(0usize..300)),
        any::<Option<i64>>(),
        prop::collection::vec(any::<i64>(), 0..20),
        prop::collection::vec(text(0usize..10), 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(pid, uid, mid, name, attrs, ts, tos, tags, online)| Typed {
                pid,
                uid,
                mid,
                name,
                attrs,
                ts,
                tos,
                tags,
                online,
            },
        )
}

/// The msgpack of a fixstr key.
fn key(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_str(name.as_bytes(), &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn typed_structs_round_trip(t in typed()) {
        let value = to_value(&t).unwrap();
        prop_assert_eq!(from_value::<Typed>(&value), Ok(t.clone()));
        // And through the wire, in both formats.
        for format in [Format::MsgPack, Format::Json] {
            let bytes = format.encode(&value).unwrap();
            let decoded = format.decode(&bytes).unwrap();
            prop_assert_eq!(from_value::<Typed>(&decoded), Ok(t.clone()));
        }
    }

    #[test]
    fn integer_fields_read_any_msgpack_width(
        t in typed(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 4),
        str_as_bin in any::<bool>(),
    ) {
        // The payload written by hand, each integer in a width picked at random among those
        // that can hold it, and `name` as `bin` (as the C++ writer's raw bytes may be) or `str`.
        let pick = |i: i128, which: &prop::sample::Index| {
            let forms = all_int_encodings(i);
            forms[which.index(forms.len())].clone()
        };
        let mut bytes = vec![0x89];
        bytes.extend(key("pid"));
        bytes.extend(pick(t.pid.into(), &picks[0]));
        bytes.extend(key("uid"));
        bytes.extend(pick(t.uid.into(), &picks[1]));
        bytes.extend(key("mid"));
        bytes.extend(pick(t.mid.into(), &picks[2]));
        bytes.extend(key("name"));
        if str_as_bin {
            msgpack::write_bin(t.name.as_bytes(), &mut bytes).unwrap();
        } else {
            msgpack::write_str(t.name.as_bytes(), &mut bytes).unwrap();
        }
        bytes.extend(key("attrs"));
        msgpack::encode_into(&Value::from(t.attrs.clone()), &mut bytes).unwrap();
        bytes.extend(key("ts"));
        match t.ts {
            Some(ts) => bytes.extend(pick(ts.into(), &picks[3])),
            None => bytes.push(0xc0),
        }
        bytes.extend(key("tos"));
        msgpack::write_array_len(t.tos.len(), &mut bytes).unwrap();
        for (n, &to) in t.tos.iter().enumerate() {
            bytes.extend(pick(to.into(), &picks[n % picks.len()]));
        }
        bytes.extend(key("tags"));
        msgpack::encode_into(&to_value(&t.tags).unwrap(), &mut bytes).unwrap();
        bytes.extend(key("online"));
        bytes.push(if t.online { 0xc3 } else { 0xc2 });

        let value = Format::MsgPack.decode(&bytes).unwrap();
        prop_assert_eq!(from_value::<Typed>(&value), Ok(t));
    }

    #[test]
    fn out_of_range_integers_are_type_errors(i in interesting_int()) {
        #[derive(Debug, Deserialize)]
        struct Narrow {
            #[allow(dead_code)]
            a: i32,
        }
        #[derive(Debug, Deserialize)]
        struct Unsigned {
            #[allow(dead_code)]
            a: u64,
        }
        let value = Value::map().with("a", int_of(i));
        match from_value::<Narrow>(&value) {
            Ok(_) => prop_assert!(i32::try_from(i).is_ok()),
            Err(e) => {
                prop_assert!(i32::try_from(i).is_err());
                prop_assert_eq!(e.code(), code::PROTO_TYPE_CONVERT);
            }
        }
        match from_value::<Unsigned>(&value) {
            Ok(_) => prop_assert!(u64::try_from(i).is_ok()),
            Err(e) => {
                prop_assert!(u64::try_from(i).is_err());
                prop_assert_eq!(e.code(), code::PROTO_TYPE_CONVERT);
            }
        }
    }

    #[test]
    fn string_fields_read_utf8_bin_and_refuse_other_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        #[derive(Debug, Deserialize)]
        struct S {
            s: String,
        }
        // Written as `str`, as the C++ writer does with raw bytes.
        let mut payload = vec![0x81];
        payload.extend(key("s"));
        msgpack::write_str(&bytes, &mut payload).unwrap();
        let value = Format::MsgPack.decode(&payload).unwrap();
        match std::str::from_utf8(&bytes) {
            Ok(s) => prop_assert_eq!(from_value::<S>(&value).map(|v| v.s), Ok(s.to_owned())),
            Err(_) => {
                prop_assert_eq!(value.get("s"), Some(&Value::Bin(bytes.clone())));
                let err = from_value::<S>(&value).unwrap_err();
                prop_assert_eq!(err.code(), code::PROTO_TYPE_CONVERT);
            }
        }
    }

    #[test]
    fn any_value_passes_through_serde(v in value()) {
        // `Value` -> serde -> `Value` is the identity, but for ext (serde has no such type).
        fn strip(v: &Value) -> Value {
            match v {
                Value::Ext(_, data) => Value::Bin(data.clone()),
                Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
                Value::Map(e) => Value::Map(e.iter().map(|(k, v)| (strip(k), strip(v))).collect()),
                other => other.clone(),
            }
        }
        prop_assert_eq!(from_value::<Value>(&v), Ok(strip(&v)));
    }
}

#[test]
fn truncated_frames_are_never_errors() {
    // A deterministic companion to the properties above: every prefix of a long frame is
    // "need more bytes", whatever its format.
    let body = Value::map()
        .with("s", "x".repeat(300))
        .with("a", vec![Value::Int(1); 20]);
    for format in [Format::MsgPack, Format::Json] {
        let bytes = Frame::from(Quest::new("m", Some(1), format, &body).unwrap())
            .encode()
            .unwrap();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(FrameDecoder::default().decode(&mut buf), Ok(None));
        }
    }
    assert_eq!(
        msgpack::decode(&[0x92, 0x01]),
        Err(MsgpackError::UnexpectedEof)
    );
    assert_eq!(
        Format::MsgPack.decode(&[0x01]),
        Err(CodecError::NotAMap("int"))
    );
}
