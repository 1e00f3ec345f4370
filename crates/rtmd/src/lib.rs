//! `rtmd`, a self-hosted token service compatible with LiveData RTM.
//!
//! It answers the RTM server API ([`server_api`]: `gettoken`, `removetoken`, `adddevice`,
//! `removedevice`, `kickout`, and the extension `getdevices`), runs the client gate
//! ([`gate`]: `auth`, `bye`, server-pushed `kickout`) and keeps its state in a
//! [`store::Store`]: an embedded database by default ([`store::EmbeddedStore`]), Redis when
//! several nodes share the work ([`store::RedisStore`], with the session registry and
//! kickout fan-out of [`cluster`]; see `docs/cluster.md`), and memory in tests
//! ([`store::MemoryStore`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = rtmd::config::Config::development(std::path::Path::new("rtmd-data"))?;
//! let service = rtmd::Rtmd::start(config).await?;
//! println!("server API on {}, gate on {}", service.server_api_addr(), service.gate_addr());
//! service.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod fingerprint;
pub mod gate;
mod hex;
pub mod metrics;
pub mod params;
pub mod server_api;
pub mod service;
pub mod sessions;
pub mod signature;
pub mod state;
pub mod store;
pub mod token;

pub use service::{Rtmd, StartError};
