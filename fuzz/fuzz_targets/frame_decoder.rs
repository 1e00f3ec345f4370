//! The streaming frame decoder, fed in chunks whose sizes come from the input.
//!
//! Input: a byte `k`, then `k & 7` chunk sizes (each byte `b` is a chunk of `b + 1` bytes,
//! used in turn and repeated; none means "all at once"), then the stream. Bit `0x08` of `k`
//! selects a small frame limit (128 bytes) instead of the default 8 MiB.
//!
//! Checked:
//! * decoding in chunks gives exactly the frames (and the error, and the leftover bytes) of
//!   decoding the whole stream at once;
//! * `needed()` agrees with `decode()`; a call that returns no frame consumes nothing;
//! * each frame's bytes decode to the same frame with `Frame::decode`;
//! * each frame's payload decodes or fails cleanly, and a decoded payload re-encodes to an
//!   equal value;
//! * each frame re-encodes and decodes back to itself, to the very same bytes (version byte
//!   aside: we always write 1) when its method name is UTF-8.
#![no_main]

use bytes::BytesMut;
use fpnn::{CodecError, Frame, FrameDecoder, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use std::ops::Range;

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(k & 0x07).min(rest.len()));
    let max_frame = if k & 0x08 != 0 {
        128
    } else {
        DEFAULT_MAX_FRAME
    };

    let whole = decode_whole(stream, max_frame);
    let chunked = decode_chunked(stream, sizes, max_frame);
    assert_eq!(chunked.frames, whole.frames);
    assert_eq!(chunked.error, whole.error);
    if whole.error.is_none() {
        assert_eq!(chunked.left, whole.left);
    }

    for (frame, span) in whole.frames.iter().zip(whole.spans) {
        check_frame(frame, &stream[span], max_frame);
    }
});

struct Decoded {
    frames: Vec<Frame>,
    error: Option<CodecError>,
    /// Bytes still buffered at the end.
    left: usize,
    /// Where each frame was in the stream.
    spans: Vec<Range<usize>>,
}

/// Takes every frame off `buf`, checking what each call consumes.
fn drain(decoder: &mut FrameDecoder, buf: &mut BytesMut, out: &mut Decoded, offset: &mut usize) {
    loop {
        let before = buf.len();
        let needed = decoder.needed(buf);
        match decoder.decode(buf) {
            Ok(Some(frame)) => {
                let used = before - buf.len();
                assert_eq!(needed, Ok(Some(used)));
                out.spans.push(*offset..*offset + used);
                *offset += used;
                out.frames.push(frame);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "no frame, nothing consumed");
                match needed {
                    Ok(None) => assert!(before < 12),
                    Ok(Some(len)) => assert!(before < len),
                    Err(e) => panic!("needed() failed with {e:?} but decode() did not"),
                }
                return;
            }
            Err(e) => {
                assert_eq!(buf.len(), before, "an error consumes nothing");
                assert_eq!(needed, Err(e.clone()));
                out.error = Some(e);
                return;
            }
        }
    }
}

fn decode_whole(stream: &[u8], max_frame: usize) -> Decoded {
    let mut out = Decoded {
        frames: Vec::new(),
        error: None,
        left: 0,
        spans: Vec::new(),
    };
    let mut buf = BytesMut::from(stream);
    drain(
        &mut FrameDecoder::new(max_frame),
        &mut buf,
        &mut out,
        &mut 0,
    );
    out.left = buf.len();
    out
}

fn decode_chunked(stream: &[u8], sizes: &[u8], max_frame: usize) -> Decoded {
    let mut out = Decoded {
        frames: Vec::new(),
        error: None,
        left: 0,
        spans: Vec::new(),
    };
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::new();
    let mut offset = 0;
    let mut rest = stream;
    let mut size = sizes.iter().map(|&b| usize::from(b) + 1).cycle();
    while !rest.is_empty() {
        let n = size.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        drain(&mut decoder, &mut buf, &mut out, &mut offset);
        if out.error.is_some() {
            // A real connection is closed here.
            break;
        }
    }
    out.left = buf.len();
    out
}

fn check_frame(frame: &Frame, original: &[u8], max_frame: usize) {
    assert_eq!(Frame::decode(original, max_frame).as_ref(), Ok(frame));

    let (format, payload) = match frame {
        Frame::Quest(q) => (q.format, q.params()),
        Frame::Answer(a) => (a.format, a.body()),
    };
    if let Ok(value) = payload {
        let bytes = format.encode(&value).expect("a decoded payload re-encodes");
        assert_eq!(format.decode(&bytes), Ok(value));
    }

    let bytes = frame.encode().expect("a decoded frame re-encodes");
    assert_eq!(Frame::decode(&bytes, usize::MAX).as_ref(), Ok(frame));
    let method_is_utf8 = match frame {
        Frame::Quest(q) => {
            let start = if q.seq.is_some() { 16 } else { 12 };
            let ss = usize::from(original[7]);
            std::str::from_utf8(&original[start..start + ss]).is_ok()
        }
        Frame::Answer(_) => true,
    };
    if method_is_utf8 {
        let mut expected = original.to_vec();
        expected[4] = 1;
        assert_eq!(&bytes[..], &expected[..]);
    }
}
