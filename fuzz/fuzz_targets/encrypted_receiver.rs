//! The receivers of an encrypted connection, package and stream mode, fed in chunks.
//!
//! Input: a byte `k`, then `k & 7` chunk sizes (each byte `b` is a chunk of `b + 1` bytes,
//! cycled; none means "all at once"), then the data. Bits of `k`:
//! * `0x08`: a small frame limit (128 bytes) instead of 8 MiB;
//! * `0x10`: AES-256 instead of AES-128;
//! * `0x20`: the data is the wire itself (garbage, or a wrong key), not the plaintext;
//! * `0x40`: stream mode instead of package mode.
//!
//! With the data as plaintext, the wire is built as a sender builds it: in stream mode the
//! whole data is encrypted as one stream; in package mode the data is read as packages,
//! `u32 LE length` then that many bytes of plaintext (the last one may be cut short), each
//! encrypted on its own.
//!
//! Checked:
//! * decoding in chunks gives exactly the frames and the error of decoding all at once, and a
//!   call that returns no frame takes nothing;
//! * stream mode gives exactly what the plain `FrameDecoder` gives on the plaintext;
//! * package mode gives, for each package, the frame that fills its plaintext exactly or the
//!   error the plain decoder finds in it (a length over the limit is refused on the prefix,
//!   before its bytes are waited for);
//! * a failed receiver keeps failing the same way;
//! * every frame re-encrypts and decodes back to itself.
#![no_main]

use bytes::BytesMut;
use fpnn::encryption::{Bits, FrameEncryptor, FrameReceiver, KeyMaterial, Mode};
use fpnn::{CodecError, Frame, FrameDecoder, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let (sizes, data) = rest.split_at(usize::from(k & 0x07).min(rest.len()));
    let max_frame = if k & 0x08 != 0 {
        128
    } else {
        DEFAULT_MAX_FRAME
    };
    let bits = if k & 0x10 != 0 {
        Bits::Aes256
    } else {
        Bits::Aes128
    };
    let mode = if k & 0x40 != 0 {
        Mode::Stream
    } else {
        Mode::Package
    };
    let Some(keys) = KeyMaterial::derive(&[0x5a; 28], bits) else {
        return;
    };

    let (wire, expected) = if k & 0x20 != 0 {
        (data.to_vec(), None)
    } else if mode == Mode::Stream {
        let mut wire = BytesMut::new();
        FrameEncryptor::new(&keys, Mode::Stream)
            .encrypt_frame(data, &mut wire)
            .expect("any length below 4 GiB");
        (wire.to_vec(), Some(plain(data, max_frame)))
    } else {
        let (wire, expected) = seal_packages(&keys, data, max_frame);
        (wire, Some(expected))
    };

    let whole = receive(&keys, mode, max_frame, &wire, &[]);
    let chunked = receive(&keys, mode, max_frame, &wire, sizes);
    assert_eq!(chunked, whole);
    if let Some(expected) = expected {
        assert_eq!(whole, expected);
    }

    for frame in &whole.0 {
        let mut wire = BytesMut::new();
        FrameEncryptor::new(&keys, mode)
            .encrypt_frame(
                &frame.encode().expect("a decoded frame re-encodes"),
                &mut wire,
            )
            .expect("a frame under 4 GiB");
        let mut receiver = FrameReceiver::new(&keys, mode, usize::MAX);
        assert_eq!(
            receiver.decode(&mut wire).as_ref(),
            Ok(&Some(frame.clone()))
        );
        assert!(wire.is_empty());
    }
});

type Outcome = (Vec<Frame>, Option<CodecError>);

/// Feeds `wire` to a new receiver in chunks of the given sizes (cycled).
fn receive(keys: &KeyMaterial, mode: Mode, max_frame: usize, wire: &[u8], sizes: &[u8]) -> Outcome {
    let mut receiver = FrameReceiver::new(keys, mode, max_frame);
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = wire;
    let mut size = sizes.iter().map(|&b| usize::from(b) + 1).cycle();
    while !rest.is_empty() {
        let n = size.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match receiver.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "no frame, nothing taken");
                    break;
                }
                Err(e) => {
                    assert_eq!(receiver.decode(&mut buf), Err(e.clone()));
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

/// What the plain decoder makes of a plaintext stream.
fn plain(data: &[u8], max_frame: usize) -> Outcome {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// The wire of the packages `data` describes, and what a receiver must make of it.
fn seal_packages(keys: &KeyMaterial, data: &[u8], max_frame: usize) -> (Vec<u8>, Outcome) {
    let mut wire = BytesMut::new();
    let mut frames = Vec::new();
    let mut error = None;
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        if body.len() < len {
            // Cut short: the receiver waits for the rest, unless the length is refused.
            if len > max_frame && error.is_none() {
                error = Some(CodecError::FrameTooLarge {
                    len,
                    max: max_frame,
                });
            }
            break;
        }
        let plaintext = &body[..len];
        let mut sender = FrameEncryptor::new(keys, Mode::Package);
        sender
            .encrypt_frame(plaintext, &mut wire)
            .expect("under 4 GiB");
        rest = &body[len..];
        if error.is_some() {
            continue;
        }
        if len > max_frame {
            error = Some(CodecError::FrameTooLarge {
                len,
                max: max_frame,
            });
            continue;
        }
        match exactly_one(plaintext, max_frame) {
            Ok(frame) => frames.push(frame),
            Err(e) => error = Some(e),
        }
    }
    // What is left (a cut package or fewer than 4 bytes) goes on the wire as it is.
    wire.extend_from_slice(rest);
    (wire.to_vec(), (frames, error))
}

/// The frame that fills `plaintext` exactly, by the plain decoder's rules.
fn exactly_one(plaintext: &[u8], max_frame: usize) -> Result<Frame, CodecError> {
    let mut decoder = FrameDecoder::new(max_frame);
    let actual = plaintext.len();
    match decoder.needed(plaintext)? {
        None => Err(CodecError::LengthMismatch {
            expected: 12,
            actual,
        }),
        Some(expected) if expected != actual => {
            Err(CodecError::LengthMismatch { expected, actual })
        }
        Some(_) => {
            let mut buf = BytesMut::from(plaintext);
            Ok(decoder.decode(&mut buf)?.expect("a whole frame"))
        }
    }
}
