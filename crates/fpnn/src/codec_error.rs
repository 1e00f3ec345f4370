//! The codec's error: why bytes could not be read as a frame or a payload, or a frame could
//! not be written. A file of its own, so that frames and payloads both use it without
//! importing each other.

use crate::answer::code;
use crate::msgpack::MsgpackError;
use crate::value::SerError;

/// Why bytes could not be read as a frame, or a frame could not be written.
///
/// Every decoding error means the stream can no longer be trusted: the official framework
/// closes the connection without an answer, and so do our client and server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The first four bytes are not `FPNN`.
    #[error("{}", bad_magic_message(.0))]
    BadMagic([u8; 4]),
    /// A version byte other than 0 or 1.
    #[error("unsupported FPNN protocol version {0}")]
    UnsupportedVersion(u8),
    /// A flag byte that does not name exactly one payload format.
    #[error("bad flag byte {0:#04x}: exactly one of msgpack (0x80) and JSON (0x40) must be set")]
    BadFlag(u8),
    /// A message type other than 0, 1 and 2.
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// A quest whose method name is empty (`ss == 0`).
    #[error("quest with an empty method name")]
    EmptyMethod,
    /// A method name longer than 255 bytes (encoding only).
    #[error("method name of {0} bytes is longer than 255")]
    MethodTooLong(usize),
    /// A frame larger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length, from its header.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A complete frame whose length disagrees with its header.
    #[error("frame length {actual} does not match the {expected} bytes its header announces")]
    LengthMismatch {
        /// What the header announces.
        expected: usize,
        /// What was given.
        actual: usize,
    },
    /// A frame with no payload bytes (the smallest payload is an empty map, `0x80`).
    #[error("frame with an empty payload")]
    EmptyPayload,
    /// The payload is not valid msgpack.
    #[error("bad msgpack payload: {0}")]
    Msgpack(#[from] MsgpackError),
    /// The payload is not valid JSON, or could not be written as JSON.
    #[error("bad JSON payload: {0}")]
    Json(String),
    /// The payload's root is not a map.
    #[error("payload root is a {0}, not a map")]
    NotAMap(&'static str),
    /// A typed value could not be serialised.
    #[error(transparent)]
    Serialize(#[from] SerError),
}

fn bad_magic_message(magic: &[u8; 4]) -> String {
    let hint = match magic {
        b"POST" | b"GET " => " (an HTTP request; HTTP is not enabled)",
        _ => "",
    };
    format!("bad magic {magic:02x?}: not an FPNN frame{hint}")
}

impl CodecError {
    /// The FPNN error code that describes this failure.
    pub fn code(&self) -> i32 {
        match self {
            CodecError::BadMagic(_)
            | CodecError::UnsupportedVersion(_)
            | CodecError::BadFlag(_) => code::PROTO_NOT_SUPPORTED,
            CodecError::BadMessageType(_) => code::PROTO_METHOD_TYPE,
            CodecError::EmptyMethod
            | CodecError::MethodTooLong(_)
            | CodecError::FrameTooLarge { .. }
            | CodecError::LengthMismatch { .. }
            | CodecError::EmptyPayload => code::PROTO_INVALID_PACKAGE,
            CodecError::Msgpack(_) => code::PROTO_UNKNOWN_ERROR,
            CodecError::Json(_) => code::PROTO_JSON_CONVERT,
            CodecError::NotAMap(_) => code::PROTO_MAP_VALUE,
            CodecError::Serialize(_) => code::CORE_ENCODING,
        }
    }
}
