//! The RTM wire contract over FPNN, in one place: what `rtmd`, the server SDK, the `rtm`
//! command-line tool and `rtm-bench` say to each other, and what the official SDKs say to
//! all of them.
//!
//! * [`api`]: the server API (business server → RTM): its [`api::Method`]s, one typed request
//!   and answer per method, the envelope `{pid, sign, salt, ts}` and how a server reads it;
//! * [`gate`]: the client gate (app → RTM): `auth`, `bye`, `ping`, and the gate's pushes;
//! * [`code`]: the RTM error codes with their official names (and the FPNN codes, whose table
//!   is [`fpnn::code`]'s), and the one [`code::name`] that knows both;
//! * [`sign`]: the signature, one implementation for signing and checking;
//! * [`salt`]: unique salts; [`clock`]: Unix time in the units RTM uses; [`hex`]: hex text;
//! * [`Int`]: an integer read by value, whatever its msgpack width;
//! * [`params`]: reading parameters with the official server's error codes.
//!
//! It does no I/O: the transports are [`fpnn`]'s.
//!
//! ```
//! use rtm_protocol::api::{GetToken, Request, Signer};
//!
//! // A business server signs a `gettoken` for user 42…
//! let signer = Signer::new(11000001, "project-secret");
//! let payload = signer.payload(&GetToken { uid: 42 }, 9001, 1_700_000_000).unwrap();
//! // …and the server reads it back.
//! assert_eq!(GetToken::parse(&payload).unwrap().uid, 42);
//! ```
#![warn(missing_docs)]

pub mod api;
pub mod clock;
pub mod code;
pub mod gate;
pub mod hex;
mod int;
pub mod params;
pub mod salt;
pub mod sign;

pub use int::{Decimal, Int};
pub use params::ParamError;
