//! FPNN over HTTP/1.1 and JSON, as the framework serves it on its TCP port.
//!
//! `POST /service/<method>` with a JSON object as the body (`Content-Length` or chunked), or
//! `GET /service/<method>?fpnn=<url-encoded JSON>` (`{}` without it), becomes a two-way quest
//! with a JSON payload; its answer becomes `200 OK` with the answer's JSON, or `500 Internal
//! Server Error` with `{"code":…,"ex":"…"}` for an error answer. A `GET` with `Upgrade:
//! websocket` is handed to the WebSocket layer instead. Several requests may follow each other
//! on one connection (keep-alive), pipelined or not.
//!
//! * [`RequestDecoder`]: requests off a buffer, one at a time (`httparse` for the head);
//! * [`write_response`]: an [`Answer`](crate::Answer) as an HTTP response;
//! * [`HttpSession`]: both, for one connection, with responses kept in request order.
//!
//! Any malformed request closes the connection without a response, as in the framework.

mod request;
mod response;
mod session;

pub use request::{Call, Request, RequestDecoder};
pub use response::{write_response, Render};
pub use session::{HttpSession, Incoming, DEFAULT_MAX_PIPELINED};

use crate::frame::{CodecError, DEFAULT_MAX_FRAME};
use crate::web::ws::HandshakeError;

/// The size limits of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The longest request head (request line and headers), and the longest trailer section
    /// of a chunked body. Default 16 KiB; each connection may buffer this much before the
    /// request is refused.
    pub max_head: usize,
    /// The longest body (the framework applies its max frame to bodies). Default 8 MiB.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: DEFAULT_MAX_FRAME,
        }
    }
}

/// Why a request could not be read or answered. The connection is closed, without a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Not HTTP/1.x.
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    /// A request head (or chunked trailers) over the limit.
    #[error("HTTP request head over {0} bytes")]
    HeadTooLarge(usize),
    /// More headers than the limit.
    #[error("more than {0} HTTP headers")]
    TooManyHeaders(usize),
    /// A method other than `POST` and `GET`.
    #[error("HTTP method {0} is not served (only POST and GET)")]
    MethodNotAllowed(String),
    /// A path other than `/service/<method>`.
    #[error("HTTP path {0:?} is not /service/<method>")]
    BadPath(String),
    /// A body over the limit, refused from its announced length.
    #[error("HTTP body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// The announced (or, chunked, accumulated) length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A body whose framing cannot be trusted.
    #[error("bad HTTP body: {0}")]
    BadBody(&'static str),
    /// A malformed chunked body.
    #[error("bad chunked body: {0}")]
    BadChunk(&'static str),
    /// The parameters are not a JSON object.
    #[error("the parameters are not a JSON object: {0}")]
    BadParams(CodecError),
    /// A WebSocket upgrade that is not acceptable.
    #[error("WebSocket upgrade refused: {0}")]
    Upgrade(HandshakeError),
    /// A WebSocket upgrade pipelined behind calls still waiting for their answers.
    #[error("WebSocket upgrade requested while HTTP calls are still waiting")]
    UpgradeBehindCalls,
    /// An answer to no quest of this connection.
    #[error("answer with seq {0} matches no waiting HTTP request")]
    UnknownAnswer(u32),
    /// A quest (a server push) sent on an HTTP connection.
    #[error("cannot push quest {0:?} over HTTP")]
    PushOverHttp(String),
}
