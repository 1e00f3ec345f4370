//! The RTM server SDK in Rust: the Token API of LiveData RTM.
//!
//! A game or app backend ("business server") uses it to mint login tokens for its users,
//! revoke them, register push device tokens, and force users offline. It speaks FPNN and puts
//! the same bytes on the wire as the official C++/Go/Java/Python SDKs, so it works against
//! the hosted RTM service and against `rtmd`, the self-hosted service in this workspace.
//!
//! | call | method on the wire | extra keys | returns |
//! |---|---|---|---|
//! | [`get_token`](RtmServerClient::get_token) | `gettoken` → `{token}` | `uid` | the token |
//! | [`remove_token`](RtmServerClient::remove_token) | `removetoken` | `uid` | |
//! | [`add_device`](RtmServerClient::add_device) | `adddevice` | `uid, apptype, devicetoken` | |
//! | [`remove_device`](RtmServerClient::remove_device) | `removedevice` | `uid, devicetoken` | |
//! | [`kickout`](RtmServerClient::kickout) | `kickout` | `uid` | sessions closed, when the server counts (`rtmd`) |
//! | [`kickout_endpoint`](RtmServerClient::kickout_endpoint) | `kickout` | `uid, ce` | the same |
//!
//! Every quest also carries `pid, sign, salt, ts`, signed as described in [`sign`]. The
//! requests, answers, codes and the signature are those of [`rtm_protocol`], the workspace's
//! one description of the RTM wire contract; this crate adds the connection and the calls.
//!
//! # Example: a login token for a user, and forcing the user out
//!
//! ```no_run
//! use rtm_server_sdk::{app_type, RtmServerClient};
//! use std::time::Duration;
//!
//! # async fn run() -> rtm_server_sdk::Result<()> {
//! let client = RtmServerClient::builder(11000001, "project-secret", "127.0.0.1:13315")
//!     .quest_timeout(Duration::from_secs(10))
//!     .build();
//!
//! // Mint a token and hand it to the user's app, which logs in to the gate with
//! // auth {pid, uid, token}.
//! let token = client.get_token(42).await?;
//!
//! // Push notifications: register the app's device token.
//! client.add_device(42, app_type::APNS, "a1b2c3...").await?;
//! client.remove_device(42, "a1b2c3...").await?;
//!
//! // Force the user offline now, and make sure the token cannot log in again.
//! client.remove_token(42).await?;
//! client.kickout(42).await?;
//!
//! // Kick only one of the user's logins (its client endpoint as the gate sees it).
//! client.kickout_endpoint(42, "203.0.113.7:51234").await?;
//!
//! // A per-call timeout.
//! client.with_timeout(Duration::from_secs(1)).get_token(42).await?;
//! # let _ = token;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every call returns [`Error`], whose [`code`](Error::code) is the number the official SDKs
//! report: RTM codes from the server (e.g. [`code::INVALID_PID_OR_SIGN`]), 20003 for a
//! timeout, 20002 when the connection closed during the call, 20012 when there is no
//! connection. The variants tell those kinds apart.
//!
//! The `Debug` form of an [`Error`] is its message, so `main` returning
//! `Result<(), rtm_server_sdk::Error>` (or `Box<dyn std::error::Error>`) prints
//! `Error: server error 200002 (RTM_EC_INVALID_PID_OR_SIGN): …`.
//!
//! # Transport security
//!
//! By default the connection is plain TCP. The sign of each call
//! (`MD5("pid:secret:salt:method:ts")`, see [`sign`]) proves that the call comes from a
//! holder of the secret and is fresh, and the server refuses a replayed sign; but it covers
//! neither the call's parameters (`uid`, `devicetoken`, `ce`) nor the answer (the token
//! `get_token` returns, with which anyone can log in as that user).
//!
//! [`RtmServerClientBuilder::enable_encryptor`] encrypts the connection as the official
//! SDKs do (ECDH on secp256r1, secp256k1, secp224r1 or secp192r1 with the server's public
//! key, then AES-128 or AES-256 in CFB mode): parameters and tokens then travel encrypted,
//! and only the holder of the server's private key can read them or answer. There is no
//! certificate: distribute the server's public key yourself (`rtmd keygen` writes the key
//! files). Without it, keep the connection on a network you trust.
//!
//! ```no_run
//! use rtm_server_sdk::encryption::{Bits, Curve, Mode, PublicKey};
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // PEM or DER name their curve; raw X‖Y needs it.
//! let raw = std::fs::read("server-secp256r1-public.key")?;
//! let server_key = PublicKey::decode(&raw, Some(Curve::Secp256r1))?;
//! let client = rtm_server_sdk::blocking::RtmServerClient::builder(11000001, "secret", "127.0.0.1:13315")
//!     .enable_encryptor(server_key, Mode::Stream, Bits::Aes256)
//!     .build_blocking()?;
//! let token = client.get_token(42)?;
//! # let _ = token;
//! # Ok(())
//! # }
//! ```
//!
//! # Blocking
//!
//! [`blocking::RtmServerClient`] has the same calls for code that is not async.
#![warn(missing_docs)]

pub mod blocking;
mod client;
/// The keys and options of [`RtmServerClientBuilder::enable_encryptor`], from
/// [`fpnn::encryption`].
pub mod encryption {
    pub use fpnn::encryption::{Bits, Curve, KeyError, Mode, PublicKey};
}
mod error;

pub use client::{
    RtmServerClient, RtmServerClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUEST_TIMEOUT,
};
pub use error::{CloseReason, ConnectError, Error, Result};
pub use fpnn::client::{ConnectionEvent, KeepAlive, RegressiveStrategy};
/// The device types `add_device` accepts.
pub use rtm_protocol::api::app_type;
/// A device token registered for a user, as [`RtmServerClient::get_devices`] returns it.
pub use rtm_protocol::api::Device;
/// Error codes: the RTM codes (`2000xx`) with their official names, and the FPNN codes.
pub use rtm_protocol::code;
/// Salts: the `salt` of a server quest, unique within the process.
pub use rtm_protocol::salt;
/// The server API signature.
pub use rtm_protocol::sign;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The workspace README's SDK example, compiled as a doc test (it is the first thing a
/// newcomer copies).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadmeDoctests;
