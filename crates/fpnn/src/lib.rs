//! FPNN, the binary RPC protocol of the LiveData (RTM) services, wire-compatible with the
//! official C++, Go, Python and Java SDKs.
//!
//! The crate has four layers:
//!
//! * the **codec**, with no I/O: [`Frame`]s ([`Quest`], [`Answer`]) to and from bytes with a
//!   [`FrameDecoder`]; payloads as [`Value`]s in msgpack or JSON ([`Format`]); typed payloads
//!   with serde ([`to_value`], [`from_value`]); the error codes ([`code`]);
//! * the **connection**, with no I/O and no clock ([`proto::Connection`]): sequence numbers,
//!   quests waiting for answers, timers, budgets and the typed [`CloseReason`], driven by
//!   bytes and `now`; encryption and WebSocket plug in as [`proto::wire`] layers;
//! * an async **client** ([`client::Client`]) and **server** ([`server::Server`]), each
//!   connection one tokio task driving a [`proto::Connection`]: many quests in flight,
//!   timeouts, server push, keep-alive, the official reconnect schedule, a method router,
//!   bounded memory per connection and graceful shutdown.
//!
//! ```
//! use fpnn::{Frame, FrameDecoder, Quest, Value};
//! use bytes::BytesMut;
//!
//! let params = Value::map().with("uid", 42);
//! let quest = Quest::twoway("gettoken", 7, &params).unwrap();
//! let bytes = Frame::from(quest.clone()).encode().unwrap();
//!
//! let mut buf = BytesMut::from(&bytes[..]);
//! let frame = FrameDecoder::default().decode(&mut buf).unwrap();
//! assert_eq!(frame, Some(Frame::Quest(quest)));
//! ```
#![warn(missing_docs)]

#[cfg(feature = "encryption")]
mod answer;
mod codec_error;
pub mod encryption;
pub mod error;
pub mod frame;
pub mod msgpack;
pub mod payload;
pub mod value;

pub use error::{code, ConnectError, ErrorAnswer};
pub use frame::{Answer, CodecError, Frame, FrameDecoder, Quest, DEFAULT_MAX_FRAME};
pub use payload::Format;
pub use value::{from_value, to_value, DeError, SerError, Value};

mod driver;
pub mod proto;
pub mod router;
pub mod server;

pub use error::Error;
pub use proto::CloseReason;
pub use router::{HandlerResult, Router};
pub mod client;
pub mod web;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
