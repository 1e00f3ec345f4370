//! WebSocket (RFC 6455, version 13) carrying FPNN: the handshake and the frames, both ends.
//!
//! * Server: the HTTP layer hands over a checked [`Upgrade`]; [`Upgrade::write_response`]
//!   writes the `101`; from then on [`WebSocket::server`] unwraps one FPNN frame per incoming
//!   message and wraps each outgoing frame in one unmasked binary message.
//! * Client (`rtm login --ws`): [`ClientHandshake`] writes the upgrade request and checks the
//!   answer's accept key; [`WebSocket::client`] masks every frame with a fresh random key and
//!   tolerates the framework's 126-byte length bug on receive.
//!
//! What the server does, beside RFC 6455, and why:
//!
//! | input | framework | here |
//! |---|---|---|
//! | unmasked client frame | close | close ([`WsError::Unmasked`]) |
//! | fragments | concatenated until FIN | the same, refused past the max frame before buffering |
//! | text message | read as binary | the same |
//! | message that is not exactly one FPNN frame | close | close ([`WsError::NotOneFrame`]) |
//! | ping | pong `8a 00` | pong echoing the ping's payload (RFC), only the latest one owed |
//! | pong | close ("other opcodes") | ignored (RFC: pongs may be unsolicited) |
//! | close | TCP closed, no close frame | a close frame echoing the code, then the TCP close |
//! | reserved opcodes, RSV bits | close | close |
//! | a 126-byte message we send | length byte 126 without the extended length (bug) | `7e 00 7e` |

mod codec;
mod handshake;

pub use codec::{Incoming, Role, WebSocket, WsError};
pub use handshake::{ClientHandshake, HandshakeError, Upgrade, VERSION};

pub(crate) use handshake::{has_token, header};
