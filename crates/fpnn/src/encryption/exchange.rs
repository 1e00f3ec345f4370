//! The `*key` exchange: the client's first quest, the server's reading of it, and the
//! [`Session`] both sides reach.
//!
//! ```text
//! client                                             server (static key pair)
//!   fresh key pair, secret = ECDH(own, server pub)
//!   *key {publicKey: X‖Y, streamMode, bits}  ──────▶  secret = ECDH(static, publicKey)
//!   (plaintext, the connection's first frame)          checks; on any error: close, no answer
//!                                           ◀──────  answer {} (its first encrypted bytes)
//!   everything after *key is encrypted, both ways
//! ```

use super::derive::{Bits, KeyMaterial};
use super::framing::{FrameEncryptor, FrameReceiver, Mode};
use super::keys::{KeyError, PrivateKey, PublicKey};
use crate::error::ErrorAnswer;
use crate::frame::{Answer, CodecError, Quest};
use crate::value::Value;
use std::fmt;

/// The method of the key exchange quest.
pub const KEY_METHOD: &str = "*key";

/// Why a key exchange failed.
///
/// On the server, every one of these closes the connection without an answer, as the
/// official framework does. On the client, the connection is closed and the failure reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A one-way `*key`: there would be no answer to switch on.
    #[error("*key must be a two-way quest")]
    Oneway,
    /// The payload is not a map (or not msgpack / JSON at all).
    #[error("bad *key payload: {0}")]
    Payload(CodecError),
    /// A map key that is not a string stands before `publicKey`; the official reader stops
    /// there.
    #[error("bad *key payload: a map key that is not a string comes before {0:?}")]
    NonStringKey(&'static str),
    /// No `publicKey`.
    #[error("*key has no publicKey")]
    MissingPublicKey,
    /// A `publicKey` that is neither a string nor binary.
    #[error("*key publicKey is a {0}, not a string or binary")]
    PublicKeyType(&'static str),
    /// A `bits` other than 128 and 256.
    #[error("*key bits is {0}: only 128 and 256 are supported")]
    Bits(i64),
    /// The client's public key is not a point of the server's curve (its length, or the point).
    #[error("*key publicKey: {0}")]
    PublicKey(#[source] KeyError),
    /// A key could not be made (the random source failed) or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The server answered `*key` with an error.
    #[error("the server refused the key exchange: {0}")]
    Refused(ErrorAnswer),
}

/// The parameters of a `*key` quest: `{publicKey, streamMode, bits}`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// The client's ephemeral public key, raw `X ‖ Y` (no `0x04`).
    pub public_key: Vec<u8>,
    /// The framing the client asks for.
    pub mode: Mode,
    /// The AES key size the client asks for.
    pub bits: Bits,
}

impl fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRequest {{ public_key: ")?;
        for b in &self.public_key {
            write!(f, "{b:02x}")?;
        }
        write!(f, ", mode: {:?}, bits: {} }}", self.mode, self.bits.bits())
    }
}

/// Where a key stands in a map, as the official reader (`FPReader::_find`) looks it up.
enum Lookup<'a> {
    Found(&'a Value),
    Missing,
    /// A key that is not a string came first; the official reader throws there.
    NonStringKey,
}

/// Looks `key` up the way the C++ reader does: entries in order, the first match wins, and a
/// key that is not a msgpack `str` before the match is an error.
///
/// Our decoder reads a `str` that is not UTF-8 as binary, indistinguishable from a real `bin`.
/// Such a key never equals the (ASCII) name looked for; a binary key that is UTF-8 can only
/// have been a real `bin` and stops the lookup as in C++, one that is not is passed over (the
/// C++ reader would stop on it only if it was a real `bin`).
fn lookup<'a>(entries: &'a [(Value, Value)], key: &str) -> Lookup<'a> {
    for (k, v) in entries {
        match k {
            Value::Str(s) if s == key => return Lookup::Found(v),
            Value::Str(_) => {}
            Value::Bin(b) if std::str::from_utf8(b).is_err() => {}
            _ => return Lookup::NonStringKey,
        }
    }
    Lookup::Missing
}

impl KeyRequest {
    /// The request of a client whose ephemeral key is `public_key`.
    pub fn new(public_key: &PublicKey, mode: Mode, bits: Bits) -> KeyRequest {
        KeyRequest {
            public_key: public_key.as_bytes().to_vec(),
            mode,
            bits,
        }
    }

    /// The payload, in the official order: `publicKey` (as msgpack `bin`, as the Go and
    /// Python SDKs send it; the C++ client sends a `str`, which servers read alike),
    /// `streamMode`, `bits`.
    pub fn to_value(&self) -> Value {
        Value::map()
            .with("publicKey", Value::Bin(self.public_key.clone()))
            .with("streamMode", self.mode.is_stream())
            .with("bits", i64::from(self.bits.bits()))
    }

    /// The `*key` quest, two-way, msgpack.
    pub fn quest(&self, seq: u32) -> Result<Quest, CodecError> {
        Quest::twoway(KEY_METHOD, seq, &self.to_value())
    }

    /// Reads the parameters as the official server does (`processECDH`):
    ///
    /// * `publicKey` is required, a `str` or a `bin`;
    /// * `streamMode` is read only from a msgpack bool: anything else (an int 1, a string)
    ///   silently means package mode;
    /// * `bits` is read from an integer and truncated to 32 bits as the C++ `int` does;
    ///   missing or not an integer (a float, a string) means 128; then anything but 128 and
    ///   256 is refused.
    ///
    /// The public key's length is checked against the curve by the server, which knows it.
    pub fn from_value(params: &Value) -> Result<KeyRequest, HandshakeError> {
        let entries = params
            .as_map()
            .ok_or(HandshakeError::Payload(CodecError::NotAMap(
                params.type_name(),
            )))?;
        let public_key = match lookup(entries, "publicKey") {
            Lookup::Found(Value::Str(s)) => s.as_bytes().to_vec(),
            Lookup::Found(Value::Bin(b)) => b.clone(),
            Lookup::Found(other) => return Err(HandshakeError::PublicKeyType(other.type_name())),
            Lookup::Missing => return Err(HandshakeError::MissingPublicKey),
            Lookup::NonStringKey => return Err(HandshakeError::NonStringKey("publicKey")),
        };
        let stream_mode = match lookup(entries, "streamMode") {
            Lookup::Found(v) => v.as_bool().unwrap_or(false),
            Lookup::Missing | Lookup::NonStringKey => false,
        };
        let bits = match lookup(entries, "bits") {
            // `int bits = qr.getInt("bits", 128)`: intmax_t into a 32-bit int.
            Lookup::Found(v) => v.as_i64().map_or(128, |b| i64::from(b as i32)),
            Lookup::Missing | Lookup::NonStringKey => 128,
        };
        Ok(KeyRequest {
            public_key,
            mode: Mode::from_stream_mode(stream_mode),
            bits: Bits::from_bits(bits).ok_or(HandshakeError::Bits(bits))?,
        })
    }

    /// Reads the parameters of a received `*key` quest (see [`KeyRequest::from_value`]).
    pub fn from_quest(quest: &Quest) -> Result<KeyRequest, HandshakeError> {
        if !quest.is_twoway() {
            return Err(HandshakeError::Oneway);
        }
        let params = quest.params().map_err(HandshakeError::Payload)?;
        KeyRequest::from_value(&params)
    }
}

/// The outcome of a key exchange: the key material and the framing, the same on both sides.
#[derive(Clone)]
pub struct Session {
    keys: KeyMaterial,
    mode: Mode,
}

impl Session {
    /// A session from its parts.
    pub fn new(keys: KeyMaterial, mode: Mode) -> Session {
        Session { keys, mode }
    }

    /// The framing mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The key and IV.
    pub fn keys(&self) -> &KeyMaterial {
        &self.keys
    }

    /// The encryptor of this side's outgoing frames.
    pub fn encryptor(&self) -> FrameEncryptor {
        FrameEncryptor::new(&self.keys, self.mode)
    }

    /// The receiver of this side's incoming frames, refusing frames over `max_frame` bytes.
    pub fn receiver(&self, max_frame: usize) -> FrameReceiver {
        FrameReceiver::new(&self.keys, self.mode, max_frame)
    }

    /// Both halves: `(encryptor, receiver)`.
    pub fn split(&self, max_frame: usize) -> (FrameEncryptor, FrameReceiver) {
        (self.encryptor(), self.receiver(max_frame))
    }

    /// The server's side: the session for a client's request, with the static key.
    pub fn accept_request(
        key: &PrivateKey,
        request: &KeyRequest,
    ) -> Result<Session, HandshakeError> {
        let secret = key
            .shared_secret(&request.public_key)
            .map_err(HandshakeError::PublicKey)?;
        Ok(Session::from_secret(&secret, request.mode, request.bits))
    }

    fn from_secret(secret: &[u8], mode: Mode, bits: Bits) -> Session {
        match KeyMaterial::derive(secret, bits) {
            Some(keys) => Session { keys, mode },
            // Every supported curve's secret is 24 bytes or more.
            None => unreachable!("an ECDH secret of {} bytes", secret.len()),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("mode", &self.mode)
            .field("keys", &self.keys)
            .finish()
    }
}

/// A key exchange the server accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The parameters the client sent.
    pub request: KeyRequest,
    /// The connection's keys and framing, to switch to before the next frame is read.
    pub session: Session,
    /// The answer `{}` to queue as the first encrypted output (same seq and format as the
    /// quest).
    pub answer: Answer,
}

/// The server's side of the exchange: reads a received `*key` quest and derives the session
/// with the static key, or says why the connection must be closed without an answer.
///
/// Whether `*key` may be accepted at all (the first frame received, nothing sent yet, not an
/// HTTP/WebSocket or TLS connection) is the connection's to check.
pub fn accept(key: &PrivateKey, quest: &Quest) -> Result<Accepted, HandshakeError> {
    let request = KeyRequest::from_quest(quest)?;
    let session = Session::accept_request(key, &request)?;
    let seq = quest.seq.ok_or(HandshakeError::Oneway)?;
    let answer = Answer::ok(seq, quest.format, &Value::map()).map_err(HandshakeError::Payload)?;
    Ok(Accepted {
        request,
        session,
        answer,
    })
}

/// What a client needs to encrypt its connections: the server's public key and the mode and
/// key size to ask for. The defaults are those of the C++ client: package mode, 128 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEncryption {
    server_key: PublicKey,
    mode: Mode,
    bits: Bits,
}

impl ClientEncryption {
    /// Encryption to the server whose public key is `server_key`, in package mode with
    /// AES-128.
    pub fn new(server_key: PublicKey) -> ClientEncryption {
        ClientEncryption {
            server_key,
            mode: Mode::Package,
            bits: Bits::Aes128,
        }
    }

    /// Asks for another framing mode.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> ClientEncryption {
        self.mode = mode;
        self
    }

    /// Asks for another key size.
    #[must_use]
    pub fn bits(mut self, bits: Bits) -> ClientEncryption {
        self.bits = bits;
        self
    }

    /// The server's public key.
    pub fn server_key(&self) -> &PublicKey {
        &self.server_key
    }

    /// The framing mode asked for.
    pub fn framing(&self) -> Mode {
        self.mode
    }

    /// The key size asked for.
    pub fn key_bits(&self) -> Bits {
        self.bits
    }

    /// Starts the exchange for a new connection, with a fresh ephemeral key pair.
    pub fn start(&self) -> Result<ClientHandshake, HandshakeError> {
        let ephemeral = PrivateKey::generate(self.server_key.curve())?;
        self.start_with(&ephemeral)
    }

    /// Starts the exchange with a given ephemeral key, on the server's curve. For tests and
    /// test vectors: a real client uses [`ClientEncryption::start`], a new key every time.
    pub fn start_with(&self, ephemeral: &PrivateKey) -> Result<ClientHandshake, HandshakeError> {
        if ephemeral.curve() != self.server_key.curve() {
            return Err(HandshakeError::Key(KeyError::CurveMismatch {
                expected: self.server_key.curve(),
                found: ephemeral.curve(),
            }));
        }
        let secret = ephemeral.shared_secret(self.server_key.as_bytes())?;
        Ok(ClientHandshake {
            request: KeyRequest::new(ephemeral.public_key(), self.mode, self.bits),
            session: Session::from_secret(&secret, self.mode, self.bits),
        })
    }
}

/// A client's side of one connection's key exchange.
///
/// Send [`ClientHandshake::quest`] as the connection's first frame, in plaintext; switch the
/// receiver to [`Session::receiver`] at once (the answer arrives encrypted) and the sender to
/// [`Session::encryptor`] for every later frame.
#[derive(Debug)]
pub struct ClientHandshake {
    request: KeyRequest,
    session: Session,
}

impl ClientHandshake {
    /// The parameters to send.
    pub fn request(&self) -> &KeyRequest {
        &self.request
    }

    /// The `*key` quest with sequence number `seq`.
    pub fn quest(&self, seq: u32) -> Result<Quest, CodecError> {
        self.request.quest(seq)
    }

    /// The session the exchange leads to.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, consuming the handshake.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// Checks the server's answer to `*key`: an error answer means the exchange failed (the
    /// C++ client then closes the connection). A server that refuses usually just closes the
    /// connection instead.
    pub fn check_answer(answer: &Answer) -> Result<(), HandshakeError> {
        if answer.is_error() {
            let body = answer.body().map_err(HandshakeError::Payload)?;
            return Err(HandshakeError::Refused(ErrorAnswer::from_value(&body)));
        }
        Ok(())
    }
}
