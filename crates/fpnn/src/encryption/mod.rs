//! FPNN encryption: the `*key` exchange (ECDH) and AES-CFB framing, sans I/O.
//!
//! The official framework can encrypt a TCP connection: the server holds a static key pair on
//! one of four curves ([`Curve`]); the client knows the server's public key in advance (PEM,
//! DER or raw, [`PublicKey`]), makes a fresh key pair per connection and sends its public key
//! in a plaintext `*key` quest. Both sides take the X coordinate of the shared point as the
//! secret, derive an AES key and IV from it ([`KeyMaterial`]), and from then on every frame
//! travels encrypted with AES-128 or AES-256 in CFB128 mode, either frame by frame
//! ([`Mode::Package`]: length prefix, cipher restarted at the IV) or as one stream per
//! direction ([`Mode::Stream`]).
//!
//! There is no authentication beyond the static key: only its holder can read the client's
//! frames or produce an answer the client can decrypt. Everything here checks its input
//! (point on the curve, scalar range, lengths, frame limits) and never panics on what a peer
//! sends; the elliptic-curve arithmetic, AES and the hashes are RustCrypto's (constant-time
//! scalar multiplication and AES); private keys and derived secrets are wiped on drop and
//! never shown by `Debug`.
//!
//! ```
//! use fpnn::encryption::{self, Bits, ClientEncryption, Curve, Mode, PrivateKey};
//! use fpnn::{Frame, Quest, Value, DEFAULT_MAX_FRAME};
//! use bytes::BytesMut;
//!
//! // The server's static key (from `PrivateKey::from_file` in real life); the client
//! // gets the public half as PEM, DER or raw bytes.
//! let server_key = PrivateKey::generate(Curve::Secp256r1)?;
//! let client = ClientEncryption::new(server_key.public_key().clone())
//!     .mode(Mode::Stream)
//!     .bits(Bits::Aes256);
//!
//! // Client: `*key` goes first, in plaintext, then an encrypted quest right behind it.
//! let handshake = client.start()?;
//! let mut wire = BytesMut::new();
//! Frame::from(handshake.quest(1)?).encode_into(&mut wire)?;
//! let mut client_out = handshake.session().encryptor();
//! let hello = Quest::twoway("hello", 2, &Value::map())?;
//! client_out.encrypt_frame(&Frame::from(hello.clone()).encode()?, &mut wire)?;
//!
//! // Server: the plain decoder reads exactly one frame, the `*key` quest ...
//! let Some(Frame::Quest(key_quest)) = fpnn::FrameDecoder::default().decode(&mut wire)? else {
//!     unreachable!()
//! };
//! let accepted = encryption::accept(&server_key, &key_quest)?;
//! // ... then switches: what is left in the buffer is read through the receiver,
//! let mut server_in = accepted.session.receiver(DEFAULT_MAX_FRAME);
//! assert_eq!(server_in.decode(&mut wire)?, Some(Frame::Quest(hello)));
//! // and the answer `{}` is the first encrypted output.
//! let mut server_out = accepted.session.encryptor();
//! let mut reply = BytesMut::new();
//! server_out.encrypt_frame(&Frame::from(accepted.answer.clone()).encode()?, &mut reply)?;
//!
//! // Client: its receiver is encrypted from the start.
//! let mut client_in = handshake.session().receiver(DEFAULT_MAX_FRAME);
//! let Some(Frame::Answer(answer)) = client_in.decode(&mut reply)? else { unreachable!() };
//! encryption::ClientHandshake::check_answer(&answer)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Plugging it into a connection
//!
//! This module moves no bytes; the connection does, around it:
//!
//! * **Client.** Before anything else is written, [`ClientEncryption::start`] makes the
//!   handshake; its [`ClientHandshake::quest`] is the connection's first frame, written in
//!   plaintext. From then on, every outgoing frame goes through the session's
//!   [`FrameEncryptor`] (the `*key` quest itself never does), and every incoming byte through
//!   its [`FrameReceiver`], which is in place before the answer arrives: the server's answer
//!   to `*key` is its first encrypted output. The C++ client sends nothing else until that
//!   answer has come ([`ClientHandshake::check_answer`]); an error answer, a timeout or a
//!   close fails the connection (the C++ client closes it). Go and Node.js clients pipeline
//!   their next frames right behind `*key`, which is legal. A reconnect runs a new exchange
//!   with a new ephemeral key.
//! * **Server.** When the first frame read from a connection is a `*key` quest and nothing
//!   has been sent on it yet, [`accept`] reads it with the static [`PrivateKey`]. On success,
//!   the connection switches *before it reads the next frame*: the bytes already buffered
//!   after `*key` are ciphertext and go to [`Session::receiver`], and its output goes through
//!   [`Session::encryptor`], starting with [`Accepted::answer`] (so the answer is the first
//!   encrypted bytes, as the client expects). On any [`HandshakeError`] the connection is
//!   closed without an answer. A `*key` that is not the first frame, or that comes after the
//!   server has sent bytes, closes the connection too; so does `*key` on a server with no key,
//!   on TLS, HTTP or WebSocket connections. Whether plain connections may still call user
//!   methods is the server's policy (the C++ `forceEncrypt.userMethods` closes them).
//! * **Limits.** The receivers apply the plain decoder's frame limit: on the length prefix in
//!   package mode, on the decrypted header in stream mode, before the body is buffered. A
//!   wrong key reads as garbage, which fails as a codec error (a bad magic, most often)
//!   within the first 12 bytes: close the connection.
//!
//! # Wire compatibility
//!
//! The bytes match the official SDKs' test vectors for every curve and mode (see the crate's
//! `tests/encryption.rs`). Known deviations of other SDKs, which we do not copy: the Go SDK
//! zero-pads 192/224-bit keys to 64 bytes (it works only on 256-bit curves); the Python and
//! Node.js SDKs have package mode only. One deliberate difference with the C++ server: it
//! multiplies whatever point the client sends (micro-ecc does not check it), while
//! [`accept`] refuses a point that is not on the curve.

mod cipher;
mod curve;
mod derive;
mod exchange;
mod framing;
mod keyfiles;
mod keys;
mod wire;

pub use curve::{Curve, KeyKind};
pub use derive::{Bits, KeyMaterial};
pub use exchange::{
    accept, Accepted, ClientEncryption, ClientHandshake, HandshakeError, KeyRequest, Session,
    KEY_METHOD,
};
pub use framing::{FrameEncryptor, FrameReceiver, Mode, PACKAGE_PREFIX_LEN};
pub use keyfiles::{write_key_files, KeyFiles};
pub use keys::{KeyError, PrivateKey, PublicKey};
pub use wire::EncryptedWire;
