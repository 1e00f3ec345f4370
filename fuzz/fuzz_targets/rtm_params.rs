//! The server's reading of RTM parameters, what any peer of either port reaches before it is
//! authenticated: the fuzz input is a msgpack payload, read as every server API request, as
//! the envelope `{pid, sign, salt, ts}` and as the gate's `auth` (`rtm-protocol`'s `parse`).
//!
//! Checked:
//! * reading never panics;
//! * a refusal carries a code the server answers for parameters (10009, 10010, 200001,
//!   200034) and its message names the key;
//! * a request that is read, written back as a client writes it (signed, envelope first),
//!   reads as the same request.
#![no_main]

use fpnn::{msgpack, Value};
use libfuzzer_sys::fuzz_target;
use rtm_protocol::api::{
    AddDevice, Envelope, GetDevices, GetToken, Kickout, RemoveDevice, RemoveToken, Request, Signer,
};
use rtm_protocol::gate::Auth;
use rtm_protocol::ParamError;

fn check_refusal(e: &ParamError) {
    assert!(
        [10009, 10010, 200001, 200034].contains(&e.code()),
        "unexpected code {} ({e})",
        e.code()
    );
    assert!(e.to_string().contains(e.key()), "{e} does not name {}", e.key());
}

fn read<R: Request + PartialEq + std::fmt::Debug>(payload: &Value) {
    match R::parse(payload) {
        Ok(request) => {
            let written = Signer::new(7, "secret")
                .payload(&request, 1, 2)
                .expect("our requests write");
            assert_eq!(R::parse(&written).expect("reads back"), request);
        }
        Err(e) => check_refusal(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = msgpack::decode(data) else {
        return;
    };
    if let Err(e) = Envelope::parse(&payload) {
        check_refusal(&e);
    }
    read::<GetToken>(&payload);
    read::<RemoveToken>(&payload);
    read::<AddDevice>(&payload);
    read::<RemoveDevice>(&payload);
    read::<Kickout>(&payload);
    read::<GetDevices>(&payload);
    match Auth::parse(&payload) {
        Ok(auth) => {
            let written = fpnn::to_value(&auth).expect("auth writes");
            assert_eq!(Auth::parse(&written).expect("reads back"), auth);
        }
        Err(e) => check_refusal(&e),
    }
});
