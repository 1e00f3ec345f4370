//! `rtmd`, a self-hosted token service compatible with LiveData RTM.
//!
//! It answers the RTM server API (`server_api`: `gettoken`, `removetoken`, `adddevice`,
//! `removedevice`, `kickout`, and the extension `getdevices`), runs the client gate (`gate`:
//! `auth`, `bye`, server-pushed `kickout`) and keeps its state in a [`store::Store`]: an
//! embedded database by default ([`store::EmbeddedStore`]), Redis when several nodes share
//! the work ([`store::RedisStore`], with the session registry and kickout fan-out of
//! cluster mode; see `docs/cluster.md`), and memory in tests ([`store::MemoryStore`]). The
//! wire contract (methods, parameters, answers, codes, the signature) is
//! [`rtm_protocol`]'s.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = rtmd::config::Config::development(std::path::Path::new("rtmd-data"))?;
//! let service = rtmd::Rtmd::start(config).await?;
//! println!("server API on {}, gate on {}", service.server_api_addr(), service.gate_addr());
//! service.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The modules, from the bottom up: `clock`, `config`, `token` (login tokens), `store` (the
//! data), `fingerprint` (what the replay window keys on), `sessions` (this node's logged-in
//! connections), `metrics`, `registry` (the sessions of every node: local, Redis, in-memory),
//! `state` (what may be done, by intent), then the two ports, `server_api` (one handler per
//! method behind the signature check) and `gate`, the `admin` page and `service`, which
//! starts and stops them. Only `config`, `store` and [`Rtmd`] are public; the `testing`
//! feature opens [`testing`] to the integration tests, benches and fuzz targets.
#![warn(missing_docs)]

mod admin;
mod audit;
mod clock;
pub mod config;
mod fingerprint;
mod gate;
mod metrics;
mod process;
mod registry;
mod server_api;
mod service;
mod sessions;
mod state;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod token;

pub use service::{open_store, Rtmd, RtmdBuilder, StartError};
