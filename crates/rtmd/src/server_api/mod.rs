//! The RTM server API: `gettoken`, `removetoken`, `adddevice`, `removedevice`, `kickout`,
//! and the extension `getdevices`.
//!
//! One handler per method, each in its own file, implemented on the method's request type
//! of [`rtm_protocol::api`] (`handler::Handler`). Every call first passes `signed::Signed`:
//! signature, `ts` window, parameters, replay window. Every failure is an [`ApiError`], turned into an
//! error answer in one place. A method the API does not have is answered 20004 by the
//! router.
//!
//! Adding a method: its request and answer in `rtm_protocol::api`, a file here with its
//! `impl Handler`, and its arm in [`routes`].

mod add_device;
mod error;
mod get_devices;
mod get_token;
mod handler;
mod kickout;
mod remove_device;
mod remove_token;
mod signature;
mod signed;

#[cfg(feature = "testing")]
pub use error::ApiError;
#[cfg(feature = "testing")]
pub use signature::{check as check_signature, Checked};

use crate::state::State;
use fpnn::server::ServerBuilder;
use fpnn::{code, ErrorAnswer};
use handler::route;
use rtm_protocol::api::{
    AddDevice, GetDevices, GetToken, Kickout, Method, RemoveDevice, RemoveToken,
};
use std::sync::Arc;

/// Adds the server API's routes and connection counters to a server builder.
pub fn routes(builder: ServerBuilder, state: &Arc<State>) -> ServerBuilder {
    let (opened, closed) = (state.clone(), state.clone());
    let mut builder = builder
        .on_connect(move |_| opened.metrics().server_api_connection(true))
        .on_close(move |_, _| closed.metrics().server_api_connection(false));
    for method in Method::ALL {
        builder = match method {
            Method::GetToken => route::<GetToken>(builder, state),
            Method::RemoveToken => route::<RemoveToken>(builder, state),
            Method::AddDevice => route::<AddDevice>(builder, state),
            Method::RemoveDevice => route::<RemoveDevice>(builder, state),
            Method::Kickout => route::<Kickout>(builder, state),
            Method::GetDevices => route::<GetDevices>(builder, state),
        };
    }
    // Unknown methods are answered 20004 as the framework would, and counted.
    let state = state.clone();
    builder.fallback(move |_conn, method, _params| {
        state.metrics().unknown_method(code::CORE_UNKNOWN_METHOD);
        let error = ErrorAnswer::new(
            code::CORE_UNKNOWN_METHOD,
            format!("unknown method: {method}"),
        );
        async move { Err(error) }
    })
}
