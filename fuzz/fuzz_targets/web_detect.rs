//! First-bytes detection on arbitrary bytes.
//!
//! Input: a byte choosing what the listener accepts (bit 0: TLS, bit 1: HTTP off), then the
//! bytes. Checked: no panic; the decision (FPNN, HTTP, TLS, refused) never changes once made
//! as more bytes arrive, and is always made by `MAX_DETECT_LEN` bytes.
#![no_main]

use fpnn::web::detect::{detect, Accept, MAX_DETECT_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let accept = Accept {
        fpnn: true,
        http: k & 2 == 0,
        tls: k & 1 != 0,
    };
    let mut decided = None;
    for n in 0..=bytes.len().min(16) {
        let now = detect(&bytes[..n], accept).map_err(|_| ());
        match &decided {
            Some(before) => assert_eq!(&now, before, "the decision changed at {n} bytes"),
            None if now != Ok(None) => decided = Some(now),
            None => {}
        }
        if n >= MAX_DETECT_LEN {
            assert!(decided.is_some(), "undecided after {n} bytes");
        }
    }
});
