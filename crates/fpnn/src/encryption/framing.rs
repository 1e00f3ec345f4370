//! Encrypted framing: how frames travel once the key exchange is done, sans I/O.
//!
//! ```text
//! package mode  (streamMode = false)        stream mode  (streamMode = true)
//!   u32 LE  length of the frame               AES-CFB128 of every frame, back to back,
//!   AES-CFB128(key, IV, frame)                one continuous stream per direction
//!   (the cipher restarts at the IV            (the receiver decrypts 12 header bytes,
//!    for every frame)                          then the body the header announces)
//! ```
//!
//! [`FrameEncryptor`] turns encoded frames into wire bytes; [`FrameReceiver`] turns wire bytes
//! back into [`Frame`]s one at a time, with the same contract and limits as the plain
//! [`FrameDecoder`]: the largest frame is checked on the length prefix (package mode) or on
//! the decrypted header (stream mode) before the body is buffered, and nothing is reserved on
//! the strength of what a peer announces.

use super::cipher::{PackageCipher, StreamDecrypt, StreamEncrypt};
use super::derive::KeyMaterial;
use crate::frame::{CodecError, Frame, FrameDecoder, Header, HEADER_LEN};
use bytes::{Buf, BufMut, BytesMut};
use std::fmt;

/// How an encrypted connection frames its bytes: the `streamMode` parameter of `*key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Each frame is sent as its length and its ciphertext, the cipher restarting at the IV
    /// for every frame. The default of the C++ client, and the only mode of the Python and
    /// Node.js SDKs.
    #[default]
    Package,
    /// Each direction is one continuous cipher stream. The only mode of the Go SDK.
    Stream,
}

impl Mode {
    /// The mode a `streamMode` flag names.
    pub const fn from_stream_mode(stream_mode: bool) -> Mode {
        if stream_mode {
            Mode::Stream
        } else {
            Mode::Package
        }
    }

    /// The `streamMode` flag of this mode.
    pub const fn is_stream(self) -> bool {
        matches!(self, Mode::Stream)
    }
}

/// The size of the length that precedes every frame in package mode.
pub const PACKAGE_PREFIX_LEN: usize = 4;

/// Encrypts outgoing frames, one at a time, in order.
///
/// Two ways to use it:
///
/// * [`FrameEncryptor::encrypt_frame`] appends the wire form of an encoded frame to a buffer;
/// * without a copy, in the output buffer itself: [`FrameEncryptor::start_frame`] reserves the
///   prefix, the frame is encoded right after it, and [`FrameEncryptor::seal_frame`] fills the
///   prefix and encrypts in place.
///
/// Frames must be sealed in the order they go on the wire: in stream mode every byte
/// continues the cipher stream.
pub struct FrameEncryptor {
    cipher: Encrypt,
}

enum Encrypt {
    Package(PackageCipher),
    Stream(StreamEncrypt),
}

impl FrameEncryptor {
    /// An encryptor for one direction of a connection.
    pub fn new(keys: &KeyMaterial, mode: Mode) -> FrameEncryptor {
        let cipher = match mode {
            Mode::Package => Encrypt::Package(PackageCipher::new(keys)),
            Mode::Stream => Encrypt::Stream(StreamEncrypt::new(keys)),
        };
        FrameEncryptor { cipher }
    }

    /// The framing mode.
    pub fn mode(&self) -> Mode {
        match self.cipher {
            Encrypt::Package(_) => Mode::Package,
            Encrypt::Stream(_) => Mode::Stream,
        }
    }

    /// The bytes added in front of every frame: [`PACKAGE_PREFIX_LEN`] in package mode, none
    /// in stream mode. The ciphertext itself is as long as the frame.
    pub fn prefix_len(&self) -> usize {
        match self.cipher {
            Encrypt::Package(_) => PACKAGE_PREFIX_LEN,
            Encrypt::Stream(_) => 0,
        }
    }

    /// Appends the placeholder for a frame's prefix to `out` and returns where the frame's
    /// wire form starts, for [`FrameEncryptor::seal_frame`].
    pub fn start_frame(&self, out: &mut BytesMut) -> usize {
        let start = out.len();
        out.put_bytes(0, self.prefix_len());
        start
    }

    /// Encrypts in place the frame that `out[start..]` holds after its prefix placeholder
    /// (see [`FrameEncryptor::start_frame`]), and fills the prefix.
    ///
    /// Fails, changing nothing, when `out[start..]` is shorter than the prefix or (package
    /// mode) the frame is longer than a `u32` can say.
    pub fn seal_frame(&mut self, out: &mut BytesMut, start: usize) -> Result<(), CodecError> {
        let prefix = self.prefix_len();
        let available = out.len().saturating_sub(start);
        if available < prefix {
            return Err(CodecError::LengthMismatch {
                expected: prefix,
                actual: available,
            });
        }
        let wire = &mut out[start..];
        match &mut self.cipher {
            Encrypt::Package(cipher) => {
                let (len, frame) = wire.split_at_mut(PACKAGE_PREFIX_LEN);
                let frame_len =
                    u32::try_from(frame.len()).map_err(|_| CodecError::FrameTooLarge {
                        len: frame.len(),
                        max: u32::MAX as usize,
                    })?;
                len.copy_from_slice(&frame_len.to_le_bytes());
                cipher.encrypt(frame);
            }
            Encrypt::Stream(cipher) => cipher.encrypt(wire),
        }
        Ok(())
    }

    /// Appends the wire form of one encoded frame to `out`.
    pub fn encrypt_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
        out.reserve(self.prefix_len() + frame.len());
        let start = self.start_frame(out);
        out.put_slice(frame);
        self.seal_frame(out, start)
            .inspect_err(|_| out.truncate(start))
    }
}

impl fmt::Debug for FrameEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameEncryptor")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// Turns the encrypted bytes of one direction back into frames, sans I/O.
///
/// [`FrameReceiver::decode`] has the contract of [`FrameDecoder::decode`]: feed it the bytes
/// read so far, in one buffer that only grows at its end; it takes whole frames off the front
/// and leaves a partial frame in place (in stream mode it keeps the decrypted header of that
/// frame inside, so the buffer always holds ciphertext only). The bytes left in the plain
/// decoder's buffer after the `*key` frame are the first bytes this receiver decodes.
///
/// Any error means the stream is corrupt (a wrong key reads as garbage, usually a bad magic):
/// the connection must be closed. The receiver then keeps returning that error.
pub struct FrameReceiver {
    max_frame: usize,
    state: Receive,
    failed: Option<CodecError>,
}

enum Receive {
    Package(PackageCipher),
    Stream {
        cipher: StreamDecrypt,
        /// The decrypted header of the frame at the front of the buffer, and that frame's
        /// length, once its first 12 bytes have arrived.
        pending: Option<([u8; HEADER_LEN], usize)>,
    },
}

impl FrameReceiver {
    /// A receiver for one direction of a connection that refuses frames longer than
    /// `max_frame` bytes (header included; in package mode, the length prefix is checked).
    pub fn new(keys: &KeyMaterial, mode: Mode, max_frame: usize) -> FrameReceiver {
        let state = match mode {
            Mode::Package => Receive::Package(PackageCipher::new(keys)),
            Mode::Stream => Receive::Stream {
                cipher: StreamDecrypt::new(keys),
                pending: None,
            },
        };
        FrameReceiver {
            max_frame,
            state,
            failed: None,
        }
    }

    /// The framing mode.
    pub fn mode(&self) -> Mode {
        match self.state {
            Receive::Package(_) => Mode::Package,
            Receive::Stream { .. } => Mode::Stream,
        }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes the next whole frame off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed, and nothing was taken. An error means the
    /// stream is corrupt and the connection must be closed; what is left in `buf` is then
    /// unspecified.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let max_frame = self.max_frame;
        match self.decrypt_next(buf)? {
            Some(frame) => decode_exact(frame, max_frame)
                .map(Some)
                .inspect_err(|e| self.failed = Some(e.clone())),
            None => Ok(None),
        }
    }

    /// Takes the next whole frame off the front of `buf` and returns its decrypted bytes
    /// (header included), without decoding it: what a [`crate::proto::WireLayer`] hands to
    /// the connection. The frame's length is checked against the limit, not its content.
    pub(crate) fn decrypt_next(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<BytesMut>, CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.take_next(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// How many bytes of input the frame at the front of the buffer needs in all, once
    /// known (its length prefix, or its decrypted header, has arrived).
    pub(crate) fn needed(&self, buf: &BytesMut) -> Option<usize> {
        match &self.state {
            Receive::Package(_) => {
                let prefix = buf.get(..PACKAGE_PREFIX_LEN)?;
                let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                usize::try_from(len)
                    .ok()
                    .map(|len| len.saturating_add(PACKAGE_PREFIX_LEN))
            }
            Receive::Stream { pending, .. } => pending.map(|(_, len)| len),
        }
    }

    pub(crate) fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    fn take_next(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        let max_frame = self.max_frame;
        let frame = match &mut self.state {
            Receive::Package(cipher) => {
                let Some(prefix) = buf.get(..PACKAGE_PREFIX_LEN) else {
                    return Ok(None);
                };
                let announced = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                // A u32 always fits in a usize on the targets tokio supports; saturate anyway.
                let len = usize::try_from(announced).unwrap_or(usize::MAX);
                if len > max_frame {
                    return Err(CodecError::FrameTooLarge {
                        len,
                        max: max_frame,
                    });
                }
                // len <= max_frame, so this cannot overflow unless max_frame is near usize::MAX.
                let total = len.saturating_add(PACKAGE_PREFIX_LEN);
                if buf.len() < total {
                    // Not reserving `total`: a peer announcing large frames must not make us
                    // allocate before it has sent the bytes.
                    return Ok(None);
                }
                let mut frame = buf.split_to(total);
                frame.advance(PACKAGE_PREFIX_LEN);
                cipher.decrypt(&mut frame);
                frame
            }
            Receive::Stream { cipher, pending } => {
                let (header, len) = match *pending {
                    Some(known) => known,
                    None => {
                        let Some(wire) = buf.get(..HEADER_LEN) else {
                            return Ok(None);
                        };
                        let mut header = [0u8; HEADER_LEN];
                        header.copy_from_slice(wire);
                        cipher.decrypt(&mut header);
                        let len = Header::parse(&header)?.frame_len(max_frame)?;
                        *pending = Some((header, len));
                        (header, len)
                    }
                };
                if buf.len() < len {
                    return Ok(None);
                }
                let mut frame = buf.split_to(len);
                frame[..HEADER_LEN].copy_from_slice(&header);
                cipher.decrypt(&mut frame[HEADER_LEN..]);
                *pending = None;
                frame
            }
        };
        Ok(Some(frame))
    }
}

/// Decodes a decrypted frame that must fill `bytes` exactly.
fn decode_exact(mut bytes: BytesMut, max_frame: usize) -> Result<Frame, CodecError> {
    let mut decoder = FrameDecoder::new(max_frame);
    let actual = bytes.len();
    let mismatch = |expected| CodecError::LengthMismatch { expected, actual };
    match decoder.needed(&bytes)? {
        Some(len) if len == actual => decoder.decode(&mut bytes)?.ok_or(mismatch(len)),
        Some(len) => Err(mismatch(len)),
        None => Err(mismatch(HEADER_LEN)),
    }
}

impl fmt::Debug for FrameReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReceiver")
            .field("mode", &self.mode())
            .field("max_frame", &self.max_frame)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
