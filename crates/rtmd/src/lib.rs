//! `rtmd`, a self-hosted token service compatible with LiveData RTM.
//!
//! It answers the RTM server API (`gettoken`, `removetoken`, `adddevice`, `removedevice`,
//! `kickout`), runs the client gate (`auth`) and keeps its state in a [`store::Store`]: an
//! embedded database by default ([`store::EmbeddedStore`]), Redis when several nodes share
//! the work, and memory in tests ([`store::MemoryStore`]).
//!
//! This crate currently holds the store layer only; the service is wired on top of it.
#![warn(missing_docs)]

pub mod store;
