//! The connection state machine fed arbitrary bytes in arbitrary pieces, with timers firing
//! and quests answered, held or left unanswered (see `connection_driver.rs`).
#![no_main]

#[path = "connection_driver.rs"]
mod connection_driver;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connection_driver::run(data, None));
