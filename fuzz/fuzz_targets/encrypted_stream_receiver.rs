//! The stream-mode receiver of an encrypted connection, fed in chunks.
//!
//! Input: a byte `k`, then `k & 7` chunk sizes (each byte `b` is a chunk of `b + 1` bytes,
//! cycled; none means "all at once"), then the data. Bits of `k`: `0x08` a small frame limit
//! (128 bytes) instead of 8 MiB, `0x10` AES-256 instead of AES-128, `0x20` the data is the
//! ciphertext itself (garbage, a wrong key) rather than the plaintext to encrypt.
//!
//! Checked:
//! * decoding in chunks gives exactly the frames and the error of decoding all at once;
//! * with the data as plaintext, the receiver gives exactly what the plain `FrameDecoder`
//!   gives on that plaintext: stream mode is the plain protocol under one cipher stream.
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
    let max_frame = if k & 0x08 != 0 { 128 } else { DEFAULT_MAX_FRAME };
    let bits = if k & 0x10 != 0 { Bits::Aes256 } else { Bits::Aes128 };
    let Some(keys) = KeyMaterial::derive(&[0x5a; 32], bits) else {
        return;
    };

    let wire = if k & 0x20 != 0 {
        data.to_vec()
    } else {
        let mut wire = BytesMut::new();
        FrameEncryptor::new(&keys, Mode::Stream)
            .encrypt_frame(data, &mut wire)
            .expect("any length below 4 GiB");
        wire.to_vec()
    };

    let whole = receive(&keys, max_frame, &wire, &[]);
    let chunked = receive(&keys, max_frame, &wire, sizes);
    assert_eq!(chunked.0, whole.0);
    assert_eq!(chunked.1, whole.1);

    if k & 0x20 == 0 {
        assert_eq!(whole, plain(data, max_frame));
    }
});

type Outcome = (Vec<Frame>, Option<CodecError>);

fn receive(keys: &KeyMaterial, max_frame: usize, wire: &[u8], sizes: &[u8]) -> Outcome {
    let mut receiver = FrameReceiver::new(keys, Mode::Stream, max_frame);
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
            match receiver.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    // A failed receiver keeps failing the same way.
                    assert_eq!(receiver.decode(&mut buf), Err(e.clone()));
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

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
