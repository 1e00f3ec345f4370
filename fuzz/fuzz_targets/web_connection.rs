//! A web server connection (the first-bytes detection, then binary FPNN, HTTP or WebSocket)
//! fed arbitrary bytes in arbitrary pieces, with the checks of `connection_driver.rs`.
#![no_main]

#[path = "connection_driver.rs"]
mod connection_driver;

use fpnn::web::http::Limits;
use fpnn::web::layer::Detect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head: 1024,
        max_body: connection_driver::MAX_FRAME,
    };
    connection_driver::run(data, Some(Detect::new(limits).into()));
});
