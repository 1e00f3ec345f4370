//! The RTM server API: `gettoken`, `removetoken`, `adddevice`, `removedevice`, `kickout`,
//! and the extension `getdevices`.
//!
//! Every quest is first authenticated ([`crate::signature`]), then its own keys are read
//! (missing 10009, mistyped 10010, bad uid 200001, bad device fields 200034), then it is
//! recorded in the replay window by its fingerprint, of the request or of the sign as the
//! project's `replay` mode says (200006 when seen before; [`crate::fingerprint`]), and only
//! then does it act.

use crate::params::{opt_str, want_str, want_uid};
use crate::sessions::normalize_ce;
use crate::signature;
use crate::state::{unix_ms, unix_secs, State};
use fpnn::server::{Connection, ServerBuilder};
use fpnn::{ErrorAnswer, HandlerResult, Value};
use rtm_server_sdk::code;
use std::sync::Arc;

/// The largest device token accepted, in bytes.
pub const MAX_DEVICE_TOKEN: usize = 4096;

/// Adds the server API routes to a server builder.
pub fn routes(builder: ServerBuilder, state: Arc<State>) -> ServerBuilder {
    let mut builder = builder;
    for method in crate::metrics::METHODS {
        let state = state.clone();
        builder = builder.route(method, move |_conn: Connection, params: Value| {
            let state = state.clone();
            async move {
                let result = handle(&state, method, &params).await;
                match &result {
                    Ok(_) => state.metrics.call_ok(method),
                    Err(e) => state.metrics.call_failed(method, e.code),
                }
                result
            }
        });
    }
    // Unknown methods are answered 20004 as the framework would, and counted.
    builder.fallback(move |_conn, method, _params| {
        state
            .metrics
            .call_failed(method, fpnn::code::CORE_UNKNOWN_METHOD);
        let error = ErrorAnswer::new(
            fpnn::code::CORE_UNKNOWN_METHOD,
            format!("unknown method: {method}"),
        );
        async move { Err(error) }
    })
}

/// What a method does once the envelope checked out, with its parameters read.
enum Call<'a> {
    GetToken,
    RemoveToken,
    AddDevice {
        apptype: &'static str,
        token: &'a str,
    },
    RemoveDevice {
        token: &'a str,
    },
    Kickout {
        ce: Option<String>,
    },
    GetDevices,
}

async fn handle(state: &State, method: &'static str, params: &Value) -> HandlerResult {
    // One reading of the clock serves the signature's `ts` check and the token's issue time.
    let now_secs = unix_secs();
    let signed = signature::check(&state.projects, method, params, now_secs)?;
    let project = signed.project;
    let uid = want_uid(params)?;
    let call = match method {
        "gettoken" => Call::GetToken,
        "removetoken" => Call::RemoveToken,
        "adddevice" => Call::AddDevice {
            apptype: apptype(want_str(params, "apptype")?)?,
            token: device_token(want_str(params, "devicetoken")?)?,
        },
        "removedevice" => Call::RemoveDevice {
            token: device_token(want_str(params, "devicetoken")?)?,
        },
        // Absent, nil and "" all mean every login of the user.
        "kickout" => Call::Kickout {
            ce: opt_str(params, "ce")?
                .filter(|ce| !ce.is_empty())
                .map(normalize_ce),
        },
        _ => Call::GetDevices,
    };
    if let Some(fingerprint) = project.replay.fingerprint(&signed.digest, method, params) {
        let fresh = state
            .store_op(state.store.check_and_record_request(
                project.pid,
                &fingerprint,
                signed.replay_ttl,
            ))
            .await?;
        if !fresh {
            return Err(signature::replayed(project.replay));
        }
    }
    let pid = project.pid;
    let store = &state.store;
    match call {
        Call::GetToken => {
            let generation = state.store_op(store.generation(pid, uid)).await?;
            let now = now_secs.max(0) as u64;
            let token = state
                .tokens
                .mint(pid, uid, generation, now, project.token_ttl.as_secs());
            Ok(Value::map().with("token", token))
        }
        Call::RemoveToken => {
            state.store_op(store.bump_generation(pid, uid)).await?;
            if project.removetoken_kicks {
                state.kickout(pid, uid, None).await?;
            }
            Ok(Value::map())
        }
        Call::AddDevice { apptype, token } => {
            state
                .store_op(store.add_device(
                    pid,
                    uid,
                    apptype,
                    token,
                    unix_ms(),
                    project.max_devices,
                ))
                .await?;
            Ok(Value::map())
        }
        Call::RemoveDevice { token } => {
            state.store_op(store.remove_device(pid, uid, token)).await?;
            Ok(Value::map())
        }
        Call::Kickout { ce } => {
            // `kicked` (an extension; official SDKs ignore answer keys they do not read):
            // the sessions closed here and dispatched to the other nodes of a cluster.
            let kicked = state.kickout(pid, uid, ce.as_deref()).await?;
            Ok(Value::map().with("kicked", kicked))
        }
        Call::GetDevices => {
            let devices = state.store_op(store.devices(pid, uid)).await?;
            let list = devices
                .into_iter()
                .map(|d| {
                    Value::map()
                        .with("apptype", d.apptype)
                        .with("devicetoken", d.device_token)
                        .with("time", d.time_ms)
                })
                .collect::<Vec<_>>();
            Ok(Value::map().with("devices", list))
        }
    }
}

fn invalid(message: String) -> ErrorAnswer {
    ErrorAnswer::new(code::INVALID_PARAMETER, message)
}

/// `apns`, or `fcm` (also under its older names `gcm` and `pcm`), in any case.
fn apptype(given: &str) -> Result<&'static str, ErrorAnswer> {
    match given.to_ascii_lowercase().as_str() {
        "apns" => Ok("apns"),
        "fcm" | "gcm" | "pcm" => Ok("fcm"),
        _ => Err(invalid(format!(
            "apptype '{}' is not supported: use \"apns\" or \"fcm\"",
            given.escape_default()
        ))),
    }
}

fn device_token(token: &str) -> Result<&str, ErrorAnswer> {
    if token.is_empty() {
        Err(invalid("devicetoken is empty".into()))
    } else if token.len() > MAX_DEVICE_TOKEN {
        Err(invalid(format!(
            "devicetoken is {} bytes long; the limit is {MAX_DEVICE_TOKEN}",
            token.len()
        )))
    } else {
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apptypes() {
        assert_eq!(apptype("apns").unwrap(), "apns");
        assert_eq!(apptype("APNs").unwrap(), "apns");
        assert_eq!(apptype("gcm").unwrap(), "fcm");
        assert_eq!(apptype("pcm").unwrap(), "fcm");
        let e = apptype("app type").unwrap_err();
        assert_eq!(e.code, 200034);
        assert!(e.ex.contains("apptype"));
    }

    #[test]
    fn device_tokens() {
        assert_eq!(device_token("").unwrap_err().code, 200034);
        assert!(device_token(&"x".repeat(4096)).is_ok());
        let e = device_token(&"x".repeat(4097)).unwrap_err();
        assert!(
            e.ex.contains("devicetoken") && e.ex.contains("4097"),
            "{}",
            e.ex
        );
    }
}
