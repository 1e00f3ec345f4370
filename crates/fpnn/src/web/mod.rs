//! FPNN for web clients: HTTP/JSON and WebSocket on the FPNN port, and TLS under all three.
//!
//! The official framework serves binary FPNN, HTTP/JSON and WebSocket on one TCP port, and
//! TLS on separate ports. This module holds the pieces, with no I/O (TLS aside, which is
//! rustls' state machine behind `tokio-rustls`):
//!
//! | module | what it does |
//! |---|---|
//! | [`detect`] | from the first bytes: an FPNN frame, an HTTP request, a TLS ClientHello, or a connection to close; consumes nothing |
//! | [`http`] | HTTP/1.1 requests to two-way JSON quests, answers to `200`/`500` responses, keep-alive, pipelining, responses in request order |
//! | [`ws`] | the WebSocket handshake and frames, server and client: one FPNN frame per message |
//! | [`tls`] | certificates and keys from PEM files into rustls configurations |
//!
//! # How the pieces plug into a connection
//!
//! The connection reads wire bytes into a buffer and turns them into frames through a wire
//! layer, one frame at a time; its output keeps frame boundaries so that a layer can wrap
//! each frame. The layers here fit that boundary:
//!
//! 1. **TLS** sits under everything. On a listener with a certificate, [`detect::detect`]
//!    with [`detect::Accept::ANY`] sees `16 03` → hand the socket to
//!    `tokio_rustls::TlsAcceptor` and run the detection again, with
//!    [`detect::Accept::PLAIN`], on the decrypted bytes.
//! 2. **Detection** picks the layer from the first bytes, leaving them in the buffer for it:
//!    `FPNN` → the plain layer (today's `FrameDecoder`); `POST`/`GET ` → HTTP. The framework
//!    detects per message, so a connection may mix HTTP requests and FPNN frames; the
//!    detector is cheap and consumes nothing, so a driver may run it again between messages
//!    (we recommend keeping the first layer: mixing is discouraged by the framework's own docs).
//! 3. **HTTP**: [`http::HttpSession::read`] yields a two-way quest (JSON flag, a seq of its
//!    own) per request; the connection runs it like any quest. The answer frame goes to
//!    [`http::HttpSession::send_frame`] instead of the socket, and
//!    [`http::HttpSession::poll_transmit`] writes the responses, in request order. A quest
//!    pushed by the server cannot travel over HTTP ([`http::HttpError::PushOverHttp`]).
//!    After a `Connection: close` request, [`http::HttpSession::should_close`] says when.
//! 4. **WebSocket**: when the session yields an [`ws::Upgrade`], write its `101`
//!    ([`ws::Upgrade::write_response`]) and switch the layer to [`ws::WebSocket::server`]
//!    (bytes already buffered after the request are frames). Input: each
//!    [`ws::WebSocket::read`] gives the bytes of exactly one FPNN frame (decode them with
//!    `FrameDecoder`). Output: each outgoing frame, answers and pushes alike, goes through
//!    [`ws::WebSocket::write_frame`]; after each read, [`ws::WebSocket::take_control`] adds
//!    the owed pong or close. A close from the peer ([`ws::Incoming::Closed`]) ends the
//!    connection like an EOF. Limits, budgets, idle and ping rules stay those of the
//!    connection: the max FPNN frame is also the max message.
//!
//! Every error type here means "close this connection", as the framework does (it never
//! answers a broken request); none of them panics on any input.

pub mod detect;
pub mod http;
pub mod layer;
#[cfg(feature = "tls")]
pub mod tls;
pub mod ws;
