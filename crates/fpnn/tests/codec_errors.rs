//! Every decoding failure of spec §1.5 (and the encoder's refusals), each with the exact
//! typed [`CodecError`] it must produce.
//!
//! The rule under test: bad input gets a clear, typed error, never a panic, a hang or a large
//! allocation; a partial frame is "need more bytes", never an error; and the decoder never
//! consumes bytes it did not turn into a frame.

use bytes::{Bytes, BytesMut};
use fpnn::msgpack::{self, MsgpackError, MAX_DEPTH};
use fpnn::{
    code, Answer, CodecError, Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME,
};

mod common;

use common::vector;

fn v1() -> Vec<u8> {
    vector("V1 twoway quest gettoken seq=7 (version byte 1")
}

/// A 12-byte header with every field chosen by the caller.
fn header(magic: &[u8; 4], version: u8, flag: u8, mtype: u8, ss: u8, psize: u32) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&[version, flag, mtype, ss]);
    h.extend_from_slice(&psize.to_le_bytes());
    h
}

/// A well-formed msgpack twoway quest `m`, seq 1, with `payload` as its raw payload bytes.
fn twoway_with_payload(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(b"FPNN", 1, flag, 1, 1, payload.len() as u32);
    f.extend_from_slice(&1u32.to_le_bytes());
    f.push(b'm');
    f.extend_from_slice(payload);
    f
}

/// Feeds `bytes` to a fresh default decoder in one go.
fn decode_stream(bytes: &[u8]) -> Result<Option<Frame>, CodecError> {
    FrameDecoder::default().decode(&mut BytesMut::from(bytes))
}

/// Decodes a whole frame, then its payload: the path every received frame takes.
fn decode_payload(bytes: &[u8]) -> Result<Value, CodecError> {
    match Frame::decode(bytes, DEFAULT_MAX_FRAME)? {
        Frame::Quest(q) => q.params(),
        Frame::Answer(a) => a.body(),
    }
}

/// The decoder refuses with `expected`, and leaves the buffer exactly as it was.
fn assert_refused(bytes: &[u8], expected: CodecError) {
    let mut buf = BytesMut::from(bytes);
    let got = FrameDecoder::default().decode(&mut buf);
    assert_eq!(got, Err(expected.clone()), "stream decoder, {bytes:02x?}");
    assert_eq!(&buf[..], bytes, "the buffer must be left untouched");
    if bytes.len() >= 12 {
        assert_eq!(
            Frame::decode(bytes, DEFAULT_MAX_FRAME),
            Err(expected),
            "whole-frame decoder, {bytes:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Max frame size

#[test]
fn default_max_frame_is_8_mib_and_refused_from_the_header_alone() {
    assert_eq!(DEFAULT_MAX_FRAME, 8 * 1024 * 1024);
    assert_eq!(FrameDecoder::default().max_frame(), DEFAULT_MAX_FRAME);

    // twoway, method of 8 bytes: the frame is 12 + 4 + 8 + psize.
    let fits = (DEFAULT_MAX_FRAME - 12 - 4 - 8) as u32;
    // Exactly at the limit: only the header is here, so "need more bytes", no error.
    let mut buf = BytesMut::from(&header(b"FPNN", 1, 0x80, 1, 8, fits)[..]);
    assert_eq!(FrameDecoder::default().decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 12);
    assert_eq!(
        FrameDecoder::default().needed(&buf),
        Ok(Some(DEFAULT_MAX_FRAME))
    );

    // One byte over: refused as soon as the 12 header bytes are in, before any body byte.
    let over = header(b"FPNN", 1, 0x80, 1, 8, fits + 1);
    let too_large = CodecError::FrameTooLarge {
        len: DEFAULT_MAX_FRAME + 1,
        max: DEFAULT_MAX_FRAME,
    };
    assert_refused(&over, too_large.clone());
    assert_eq!(
        FrameDecoder::default().needed(&over),
        Err(too_large.clone())
    );
    assert_eq!(too_large.code(), code::PROTO_INVALID_PACKAGE);
    assert_eq!(
        too_large.to_string(),
        "frame of 8388609 bytes exceeds the limit of 8388608 bytes"
    );

    // The largest psize a header can announce is refused too, for every message type.
    for (mtype, ss, body) in [(0u8, 255u8, 255usize), (1, 255, 259), (2, 0, 4)] {
        assert_refused(
            &header(b"FPNN", 1, 0x80, mtype, ss, u32::MAX),
            CodecError::FrameTooLarge {
                len: 12 + body + u32::MAX as usize,
                max: DEFAULT_MAX_FRAME,
            },
        );
    }
}

#[test]
fn custom_max_frame() {
    let v1 = v1(); // 62 bytes
    let mut at_limit = FrameDecoder::new(62);
    let mut buf = BytesMut::from(&v1[..]);
    assert!(matches!(
        at_limit.decode(&mut buf),
        Ok(Some(Frame::Quest(_)))
    ));
    assert!(buf.is_empty());
    assert!(Frame::decode(&v1, 62).is_ok());

    let too_large = CodecError::FrameTooLarge { len: 62, max: 61 };
    let mut below = FrameDecoder::new(61);
    assert_eq!(below.max_frame(), 61);
    // Refused with only the header buffered.
    let mut buf = BytesMut::from(&v1[..12]);
    assert_eq!(below.decode(&mut buf), Err(too_large.clone()));
    assert_eq!(buf.len(), 12);
    // And with the whole frame buffered.
    let mut buf = BytesMut::from(&v1[..]);
    assert_eq!(below.decode(&mut buf), Err(too_large.clone()));
    assert_eq!(&buf[..], &v1[..]);
    assert_eq!(Frame::decode(&v1, 61), Err(too_large));
}

// ---------------------------------------------------------------------------------------------
// Header fields

#[test]
fn empty_method_is_refused_for_oneway_and_twoway() {
    // oneway `ss = 0` with a 1-byte payload, and twoway `ss = 0` with seq + payload.
    let mut oneway = header(b"FPNN", 1, 0x80, 0, 0, 1);
    oneway.push(0x80);
    assert_refused(&oneway, CodecError::EmptyMethod);
    // Refused from the header alone, too.
    assert_refused(&oneway[..12], CodecError::EmptyMethod);

    let mut twoway = header(b"FPNN", 1, 0x80, 1, 0, 1);
    twoway.extend_from_slice(&[7, 0, 0, 0, 0x80]);
    assert_refused(&twoway, CodecError::EmptyMethod);
    assert_eq!(CodecError::EmptyMethod.code(), code::PROTO_INVALID_PACKAGE);

    // For an answer the same byte is the status, and 0 is "ok".
    let ok = vector("V2 answer ok seq=7 {token:xyz} (version 1)");
    assert_eq!(ok[7], 0);
    assert!(matches!(decode_stream(&ok), Ok(Some(Frame::Answer(a))) if a.status == 0));
}

#[test]
fn length_mismatch_on_an_exact_slice() {
    let v1 = v1();
    assert_eq!(v1.len(), 62);
    // Too short: every truncation that still has a whole header.
    for cut in 12..v1.len() {
        assert_eq!(
            Frame::decode(&v1[..cut], DEFAULT_MAX_FRAME),
            Err(CodecError::LengthMismatch {
                expected: 62,
                actual: cut
            }),
            "cut at {cut}"
        );
    }
    // Shorter than the header itself.
    assert_eq!(
        Frame::decode(&v1[..5], DEFAULT_MAX_FRAME),
        Err(CodecError::LengthMismatch {
            expected: 12,
            actual: 5
        })
    );
    // Too long: one stray byte, and a whole second frame.
    let mut longer = v1.clone();
    longer.push(0);
    assert_eq!(
        Frame::decode(&longer, DEFAULT_MAX_FRAME),
        Err(CodecError::LengthMismatch {
            expected: 62,
            actual: 63
        })
    );
    let doubled = [v1.clone(), v1.clone()].concat();
    let err = Frame::decode(&doubled, DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(
        err,
        CodecError::LengthMismatch {
            expected: 62,
            actual: 124
        }
    );
    assert_eq!(err.code(), code::PROTO_INVALID_PACKAGE);
    assert_eq!(
        err.to_string(),
        "frame length 124 does not match the 62 bytes its header announces"
    );
}

#[test]
fn unknown_magic() {
    let mut frame = v1();
    frame[..4].copy_from_slice(b"FPNX");
    assert_refused(&frame, CodecError::BadMagic(*b"FPNX"));
    let err = CodecError::BadMagic(*b"FPNX");
    assert!(!err.to_string().contains("HTTP"), "{err}");
    assert!(err.to_string().contains("not an FPNN frame"), "{err}");
    assert_eq!(err.code(), code::PROTO_NOT_SUPPORTED);

    // Twelve zero bytes, and a TLS ClientHello, are not FPNN either.
    assert_refused(&[0; 12], CodecError::BadMagic([0; 4]));
    assert_refused(
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00,
        ],
        CodecError::BadMagic([0x16, 0x03, 0x01, 0x02]),
    );
}

#[test]
fn http_requests_are_named_as_such() {
    for request in [
        &b"POST /service/quest HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let magic: [u8; 4] = request[..4].try_into().unwrap();
        assert_refused(request, CodecError::BadMagic(magic));
        let text = CodecError::BadMagic(magic).to_string();
        assert!(text.contains("HTTP"), "{text}");
    }
    // A "GET" without its trailing space is just bad magic.
    let text = CodecError::BadMagic(*b"GETX").to_string();
    assert!(!text.contains("HTTP"), "{text}");
}

#[test]
fn bad_message_types() {
    for mtype in [3u8, 4, 0x7f, 255] {
        let mut frame = v1();
        frame[6] = mtype;
        assert_refused(&frame, CodecError::BadMessageType(mtype));
        assert_refused(&frame[..12], CodecError::BadMessageType(mtype));
    }
    assert_eq!(
        CodecError::BadMessageType(3).code(),
        code::PROTO_METHOD_TYPE
    );
}

#[test]
fn bad_flags() {
    for flag in [
        0x00, // neither msgpack nor JSON
        0xc0, // both
        0x80 | 0x20,
        0x80 | 0x10,
        0x40 | 0x20,
        0x40 | 0x10,
        0x20,
        0x10,
        0xff,
    ] {
        let mut frame = v1();
        frame[5] = flag;
        assert_refused(&frame, CodecError::BadFlag(flag));
    }
    assert_eq!(CodecError::BadFlag(0).code(), code::PROTO_NOT_SUPPORTED);
}

#[test]
fn versions_0_and_1_accepted_2_and_up_refused() {
    let python = vector("V1 twoway quest gettoken seq=7 (python");
    assert_eq!(python[4], 0);
    let cpp = v1();
    assert_eq!(cpp[4], 1);
    let a = decode_stream(&python).unwrap().unwrap();
    let b = decode_stream(&cpp).unwrap().unwrap();
    assert_eq!(a, b, "nothing differs on the wire between versions 0 and 1");

    for version in [2u8, 3, 255] {
        let mut frame = v1();
        frame[4] = version;
        assert_refused(&frame, CodecError::UnsupportedVersion(version));
    }
    assert_eq!(
        CodecError::UnsupportedVersion(2).code(),
        code::PROTO_NOT_SUPPORTED
    );
}

#[test]
fn empty_payload_is_refused() {
    // oneway "m", twoway "m" seq 1, answer seq 1: all with psize 0.
    let oneway = [header(b"FPNN", 1, 0x80, 0, 1, 0), b"m".to_vec()].concat();
    let twoway = [header(b"FPNN", 1, 0x80, 1, 1, 0), vec![1, 0, 0, 0, b'm']].concat();
    let answer = [header(b"FPNN", 1, 0x80, 2, 0, 0), vec![1, 0, 0, 0]].concat();
    for frame in [oneway, twoway, answer] {
        assert_refused(&frame, CodecError::EmptyPayload);
        assert_refused(&frame[..12], CodecError::EmptyPayload);
    }
    assert_eq!(CodecError::EmptyPayload.code(), code::PROTO_INVALID_PACKAGE);
}

// ---------------------------------------------------------------------------------------------
// Payloads

#[test]
fn payload_root_must_be_a_map() {
    for (payload, kind) in [
        (&[0x2a][..], "int"),
        (&[0xcd, 0x01, 0x00][..], "int"),
        (&[0x92, 0x01, 0x02][..], "array"),
        (&[0xa2, b'h', b'i'][..], "str"),
        (&[0xc4, 0x01, 0x00][..], "bin"),
        (&[0xc0][..], "nil"),
        (&[0xc3][..], "bool"),
        (&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0][..], "float"),
    ] {
        // The frame itself is fine; the payload is what fails.
        let frame = twoway_with_payload(0x80, payload);
        assert!(decode_stream(&frame).unwrap().is_some());
        let err = decode_payload(&frame).unwrap_err();
        assert_eq!(err, CodecError::NotAMap(kind), "{payload:02x?}");
        assert_eq!(err.code(), code::PROTO_MAP_VALUE);
    }
    for (json, kind) in [
        (&b"[1]"[..], "array"),
        (b"1", "int"),
        (b"\"s\"", "str"),
        (b"null", "nil"),
        (b"1.5", "float"),
    ] {
        let frame = twoway_with_payload(0x40, json);
        assert_eq!(decode_payload(&frame), Err(CodecError::NotAMap(kind)));
        assert_eq!(Format::Json.decode(json), Err(CodecError::NotAMap(kind)));
    }
    assert_eq!(
        CodecError::NotAMap("array").to_string(),
        "payload root is a array, not a map"
    );
}

#[test]
fn invalid_json_is_a_json_error() {
    for json in [&b"{"[..], b"{\"a\":}", b"\xff", b"{} {}", b"{\"a\":1e999}"] {
        let err = decode_payload(&twoway_with_payload(0x40, json)).unwrap_err();
        assert!(matches!(err, CodecError::Json(_)), "{json:?}: {err:?}");
        assert_eq!(err.code(), code::PROTO_JSON_CONVERT);
    }
}

#[test]
fn invalid_msgpack() {
    let err = decode_payload(&twoway_with_payload(0x80, &[0xc1])).unwrap_err();
    assert_eq!(err, CodecError::Msgpack(MsgpackError::Reserved(0)));
    assert_eq!(err.code(), code::PROTO_UNKNOWN_ERROR);
    // The reserved byte in the middle of a map names its offset.
    assert_eq!(
        decode_payload(&twoway_with_payload(0x80, &[0x81, 0xa1, b'a', 0xc1])),
        Err(CodecError::Msgpack(MsgpackError::Reserved(3)))
    );
}

#[test]
fn truncated_msgpack() {
    let full = vector("V1 payload only");
    assert!(msgpack::decode(&full).is_ok());
    // Every proper prefix of a valid payload ends inside a value.
    for cut in 0..full.len() {
        assert_eq!(
            msgpack::decode(&full[..cut]),
            Err(MsgpackError::UnexpectedEof),
            "cut at {cut}"
        );
        if cut > 0 {
            assert_eq!(
                decode_payload(&twoway_with_payload(0x80, &full[..cut])),
                Err(CodecError::Msgpack(MsgpackError::UnexpectedEof)),
                "cut at {cut}"
            );
        }
    }
    // Every fixed-width scalar whose bytes are cut short.
    for bytes in [
        &[0xcc][..],
        &[0xcd, 0],
        &[0xce, 0, 0, 0],
        &[0xcf, 0, 0, 0, 0, 0, 0, 0],
        &[0xd3, 0],
        &[0xca, 0, 0],
        &[0xcb, 0],
        &[0xd4, 0],
        &[0xd8, 0, 0],
        &[0xd9],
        &[0xda, 0],
        &[0xc4, 2, 0],
        &[0xc7, 1, 0],
    ] {
        assert_eq!(
            msgpack::decode(bytes),
            Err(MsgpackError::UnexpectedEof),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn trailing_bytes_after_the_root_value() {
    assert_eq!(
        decode_payload(&twoway_with_payload(0x80, &[0x80, 0x80])),
        Err(CodecError::Msgpack(MsgpackError::TrailingBytes(1)))
    );
    let mut payload = vector("V1 payload only");
    payload.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        msgpack::decode(&payload),
        Err(MsgpackError::TrailingBytes(3))
    );
}

#[test]
fn nesting_deeper_than_max_depth() {
    // MAX_DEPTH nested containers are fine: 127 one-item arrays around an empty one.
    let mut ok = vec![0x91; MAX_DEPTH - 1];
    ok.push(0x90);
    assert!(msgpack::decode(&ok).is_ok());

    // One more level is refused, however it is built.
    let mut arrays = vec![0x91; MAX_DEPTH];
    arrays.push(0x90);
    assert_eq!(msgpack::decode(&arrays), Err(MsgpackError::TooDeep));

    // A payload map `{"a": [[[...]]]}` whose value nests too deep.
    let mut payload = vec![0x81, 0xa1, b'a'];
    payload.extend(vec![0x91; MAX_DEPTH - 1]);
    payload.push(0x90);
    assert_eq!(
        decode_payload(&twoway_with_payload(0x80, &payload)),
        Err(CodecError::Msgpack(MsgpackError::TooDeep))
    );

    // Maps nested as keys, with nothing after them: refused before running out of input.
    let keys = vec![0x81; MAX_DEPTH + 1];
    assert_eq!(msgpack::decode(&keys), Err(MsgpackError::TooDeep));

    // A very deep input (far past any stack limit) is refused just the same, no overflow.
    let huge = [0xdc, 0x00, 0x01].repeat(100_000);
    assert_eq!(msgpack::decode(&huge), Err(MsgpackError::TooDeep));
}

#[test]
fn huge_length_prefixes_do_not_allocate_or_hang() {
    // Each header claims 2^32 - 1 items or bytes in a handful of input bytes. Honouring the
    // claim would mean allocating up to 256 GiB (which aborts the process) or looping for
    // billions of iterations; the reader must stop at the end of the input instead.
    for bytes in [
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],             // map32
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02][..], // map32 with one entry
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0][..],       // array32 with one item
        &[0xde, 0xff, 0xff][..],                         // map16
        &[0xdc, 0xff, 0xff, 0xc0, 0xc0][..],             // array16
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00][..],       // bin32
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'][..],       // str32
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00][..], // ext32
    ] {
        let started = std::time::Instant::now();
        assert_eq!(
            msgpack::decode(bytes),
            Err(MsgpackError::UnexpectedEof),
            "{bytes:02x?}"
        );
        // Not a speed assertion: a reader that walked the claimed count would take minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    // The same claim nested at every level, as deep as allowed.
    let nested = [0xdd, 0xff, 0xff, 0xff, 0xff].repeat(MAX_DEPTH);
    assert_eq!(msgpack::decode(&nested), Err(MsgpackError::UnexpectedEof));

    // Inside a frame, as the payload's root.
    assert_eq!(
        decode_payload(&twoway_with_payload(0x80, &[0xdf, 0xff, 0xff, 0xff, 0xff])),
        Err(CodecError::Msgpack(MsgpackError::UnexpectedEof))
    );
}

// ---------------------------------------------------------------------------------------------
// Streaming

#[test]
fn every_prefix_is_need_more_bytes_and_leaves_the_buffer_intact() {
    for title in [
        "V1 twoway quest gettoken seq=7 (python",
        "V2 answer ok seq=7 {token:xyz} (version 1)",
        "V3b error answer",
        "V4 oneway quest bye {} (version 1)",
        "V4b oneway quest pushmsg",
        "V6 JSON twoway quest",
        "K1 *key quest",
    ] {
        let frame = vector(title);
        let mut decoder = FrameDecoder::default();
        for cut in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..cut]);
            assert_eq!(decoder.decode(&mut buf), Ok(None), "{title}, cut at {cut}");
            assert_eq!(&buf[..], &frame[..cut], "{title}, cut at {cut}");
        }
        let mut buf = BytesMut::from(&frame[..]);
        let decoded = decoder.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "{title}");
        assert_eq!(decoded, Frame::decode(&frame, DEFAULT_MAX_FRAME).unwrap());

        // Byte by byte into one growing buffer, as a socket might deliver it.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for &byte in &frame {
            buf.extend_from_slice(&[byte]);
            if let Some(f) = decoder.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames, [decoded], "{title}");
        assert!(buf.is_empty());
    }
}

#[test]
fn frames_back_to_back_decode_in_order() {
    let v1 = v1();
    let v2 = vector("V2 answer ok seq=7 {token:xyz} (version 1)");
    let v4 = vector("V4 oneway quest bye {} (python");
    let mut buf =
        BytesMut::from(&[v1.clone(), v2.clone(), v4.clone(), v1[..20].to_vec()].concat()[..]);
    let mut decoder = FrameDecoder::default();
    for expected in [&v1, &v2, &v4] {
        let frame = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame, Frame::decode(expected, DEFAULT_MAX_FRAME).unwrap());
    }
    // The partial fourth frame stays in the buffer.
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &v1[..20]);
    buf.extend_from_slice(&v1[20..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(Frame::Quest(q))) if q.seq == Some(7)));
    assert!(buf.is_empty());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn a_bad_frame_after_a_good_one_is_reported_only_when_reached() {
    let v1 = v1();
    let mut bad = v1.clone();
    bad[6] = 9;
    let mut buf = BytesMut::from(&[v1.clone(), bad.clone()].concat()[..]);
    let mut decoder = FrameDecoder::default();
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert_eq!(decoder.decode(&mut buf), Err(CodecError::BadMessageType(9)));
    assert_eq!(&buf[..], &bad[..], "the bad frame is left where it was");
}

// ---------------------------------------------------------------------------------------------
// Encoding

#[test]
fn method_names_over_255_bytes_are_refused() {
    let params = Value::map();
    let long = "m".repeat(256);
    assert_eq!(
        Quest::twoway(long.as_str(), 1, &params),
        Err(CodecError::MethodTooLong(256))
    );
    assert_eq!(
        Quest::oneway(long.as_str(), &params),
        Err(CodecError::MethodTooLong(256))
    );
    // Counted in bytes, not characters: 128 two-byte characters are 256 bytes.
    assert_eq!(
        Quest::oneway("é".repeat(128), &params),
        Err(CodecError::MethodTooLong(256))
    );
    assert_eq!(
        CodecError::MethodTooLong(256).code(),
        code::PROTO_INVALID_PACKAGE
    );

    // 255 bytes is the longest that fits in `ss`.
    let q = Quest::twoway("m".repeat(255), 1, &params).unwrap();
    let bytes = Frame::from(q.clone()).encode().unwrap();
    assert_eq!(bytes[7], 255);
    assert_eq!(decode_stream(&bytes), Ok(Some(Frame::Quest(q.clone()))));

    // A quest built by hand is checked when it is encoded, and nothing is written.
    let hand_made = Quest { method: long, ..q };
    let mut out = BytesMut::from(&b"keep"[..]);
    assert_eq!(
        Frame::from(hand_made).encode_into(&mut out),
        Err(CodecError::MethodTooLong(256))
    );
    assert_eq!(&out[..], b"keep");
}

#[test]
fn empty_method_is_refused_when_encoding() {
    assert_eq!(
        Quest::twoway("", 1, &Value::map()),
        Err(CodecError::EmptyMethod)
    );
    assert_eq!(
        Quest::oneway("", &Value::map()),
        Err(CodecError::EmptyMethod)
    );
    let hand_made = Quest {
        method: String::new(),
        seq: None,
        format: Format::MsgPack,
        payload: Bytes::from_static(&[0x80]),
    };
    assert_eq!(
        Frame::from(hand_made).encode(),
        Err(CodecError::EmptyMethod)
    );
}

#[test]
fn empty_payload_is_refused_when_encoding() {
    let quest = Quest {
        method: "m".into(),
        seq: Some(1),
        format: Format::MsgPack,
        payload: Bytes::new(),
    };
    let answer = Answer {
        seq: 1,
        status: 0,
        format: Format::Json,
        payload: Bytes::new(),
    };
    for frame in [Frame::from(quest), Frame::from(answer)] {
        let mut out = BytesMut::new();
        assert_eq!(frame.encode_into(&mut out), Err(CodecError::EmptyPayload));
        assert!(out.is_empty(), "nothing is written on failure");
        assert_eq!(frame.encode(), Err(CodecError::EmptyPayload));
    }
    // The smallest payload, an empty map, is fine in both formats.
    for format in [Format::MsgPack, Format::Json] {
        let a = Answer::ok(1, format, &Value::map()).unwrap();
        assert!(!a.payload.is_empty());
        assert!(Frame::from(a).encode().is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions found by the fuzz targets (fuzz/)

#[test]
fn a_method_name_that_is_not_utf8_still_fits_in_255_bytes() {
    // Found by `frame_decoder`: a method of 255 bytes that are not UTF-8 was decoded with one
    // U+FFFD (3 bytes) per bad byte, into a quest of 765 bytes that could not be encoded again
    // (MethodTooLong).
    for method in [
        vec![0xff; 255],
        [&b"a"[..], &[0xc8; 254]].concat(),
        [&[0xff; 100][..], "é".repeat(77).as_bytes()].concat(),
        vec![0x80],
    ] {
        let mut frame = header(b"FPNN", 1, 0x80, 0, method.len() as u8, 1);
        frame.extend_from_slice(&method);
        frame.push(0x80);
        let Ok(Some(Frame::Quest(quest))) = decode_stream(&frame) else {
            panic!("a quest")
        };
        assert!(!quest.method.is_empty());
        assert!(quest.method.len() <= 255, "{} bytes", quest.method.len());
        assert!(quest
            .method
            .starts_with(String::from_utf8_lossy(&method[..1]).as_ref()));
        assert!(quest.method.contains('\u{fffd}'));
        let again = Frame::from(quest.clone()).encode().expect("re-encodes");
        assert_eq!(
            Frame::decode(&again, DEFAULT_MAX_FRAME),
            Ok(Frame::Quest(quest))
        );
    }
    // 255 bytes of UTF-8 are kept as they are.
    let name = "é".repeat(127) + "x";
    let mut frame = header(b"FPNN", 1, 0x80, 0, 255, 1);
    frame.extend_from_slice(name.as_bytes());
    frame.push(0x80);
    assert!(matches!(decode_stream(&frame), Ok(Some(Frame::Quest(q))) if q.method == name));
}

/// Runs the test `name` of this binary again, in a child process whose address space is
/// limited to `kib` KiB, with `marker` set in its environment; panics with the child's output
/// if it fails.
#[cfg(target_os = "linux")]
fn run_with_address_space_limit(name: &str, marker: &str, kib: u64) {
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            r#"ulimit -v {kib} && exec "$0" --exact {name} --test-threads=1 --nocapture"#
        ))
        .arg(exe)
        .env(marker, "1")
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{name} failed with {} KiB of address space ({}):\n{}{}",
        kib,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg(target_os = "linux")]
fn nested_length_claims_reserve_memory_in_proportion_to_the_input() {
    // Found by review (the fuzz targets' 4 KiB inputs are too small to show it): an array32
    // header claiming 2^32 - 1 items at each of the MAX_DEPTH levels, then 8 MiB of input. Each
    // level reserved room for one 32-byte Value per byte left, 32 GiB in all: harmless where
    // memory is overcommitted, but an abort of the whole process (not an error) where the
    // address space is limited. Run it in a child limited to 1 GiB.
    const CHILD: &str = "FPNN_TEST_ADDRESS_SPACE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        run_with_address_space_limit(
            "nested_length_claims_reserve_memory_in_proportion_to_the_input",
            CHILD,
            1 << 20,
        );
        return;
    }
    let mut payload = [0xdd, 0xff, 0xff, 0xff, 0xff].repeat(MAX_DEPTH);
    // The innermost array's first item: one bin32 of (nearly) 8 MiB. Then the input ends.
    let bin_len = DEFAULT_MAX_FRAME - 1024;
    payload.push(0xc6);
    payload.extend_from_slice(&(bin_len as u32).to_be_bytes());
    payload.resize(payload.len() + bin_len, 0);
    assert_eq!(msgpack::decode(&payload), Err(MsgpackError::UnexpectedEof));
}
