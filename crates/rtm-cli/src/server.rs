//! The server API commands: tokens, devices, kickout.

use crate::failure::{Cause, Failure, Port};
use crate::output::{json, printable, table, utc};
use crate::{Global, Problem, User};
use clap::{Args, Subcommand};
use rtm_server_sdk::RtmServerClient;
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;

/// `rtm token …`
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Print a new login token for the user (--json: {pid, uid, token}).
    Get {
        #[command(flatten)]
        user: User,
    },
    /// Revoke every token the user holds (their next login fails).
    Remove {
        #[command(flatten)]
        user: User,
    },
}

/// `rtm device …`
#[derive(Subcommand, Debug)]
pub enum DeviceAction {
    /// Register a push device token for the user.
    Add {
        #[command(flatten)]
        user: User,
        /// The push service: apns or fcm.
        #[arg(long)]
        apptype: String,
        /// The device token.
        #[arg(long)]
        token: String,
    },
    /// Remove a push device token of the user.
    Remove {
        #[command(flatten)]
        user: User,
        /// The device token.
        #[arg(long)]
        token: String,
    },
    /// List the user's device tokens, oldest first, added times in UTC (an rtmd extension;
    /// the hosted service answers 20004). --json: {uid, devices: [{apptype, devicetoken,
    /// time (Unix ms), added}]}.
    List {
        #[command(flatten)]
        user: User,
    },
}

/// `rtm kickout …`
#[derive(Args, Debug)]
pub struct KickoutArgs {
    #[command(flatten)]
    user: User,
    /// Kick only the login at this client endpoint (ip:port as the gate sees it; `rtm login`
    /// prints its own). Leave it out to kick every login of the user.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_ce)]
    ce: Option<SocketAddr>,
}

/// `--ce`: an `ip:port`. An empty one is refused rather than sent: the server reads `""` as
/// "every login", which is what leaving `--ce` out says.
fn parse_ce(text: &str) -> Result<SocketAddr, String> {
    if text.trim().is_empty() {
        return Err(
            "an empty endpoint names no login; to kick every login of the user, \
                    leave --ce out"
                .into(),
        );
    }
    text.trim().parse().map_err(|_| {
        format!(
            "'{}' is not an ip:port (e.g. 127.0.0.1:53124 or [::1]:53124, as `rtm login` prints it)",
            text.escape_default()
        )
    })
}

/// The SDK client for the server API, with the command line's project and timeout.
fn client(global: &Global) -> Result<RtmServerClient, Problem> {
    let mut builder =
        RtmServerClient::builder(global.pid()?, global.secret()?, global.endpoint.clone())
            .quest_timeout(global.timeout)
            .connect_timeout(global.timeout)
            .auto_reconnect(false);
    if let Some(encryption) = global.crypto.server_api()? {
        builder = builder.enable_encryptor(
            encryption.server_key().clone(),
            encryption.framing(),
            encryption.key_bits(),
        );
    }
    Ok(builder.build())
}

/// A failed server API call, in the one style.
fn failed<'a>(
    global: &'a Global,
    method: &'a str,
) -> impl FnOnce(rtm_server_sdk::Error) -> Failure + 'a {
    move |e| Failure::new(method, Port::ServerApi, &global.endpoint, Cause::from(e))
}

/// `rtm token get|remove`
pub async fn token(global: &Global, action: TokenAction) -> Result<ExitCode, Problem> {
    let c = client(global)?;
    match action {
        TokenAction::Get { user: User { uid } } => {
            let token = c.get_token(uid).await.map_err(failed(global, "gettoken"))?;
            if global.json {
                json(json!({ "pid": c.pid(), "uid": uid, "token": token }));
            } else {
                println!("{}", printable(&token));
            }
        }
        TokenAction::Remove { user: User { uid } } => {
            c.remove_token(uid)
                .await
                .map_err(failed(global, "removetoken"))?;
            if global.json {
                json(json!({ "uid": uid, "revoked": true }));
            } else {
                eprintln!("revoked the tokens of user {uid}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtm device add|remove|list`
pub async fn device(global: &Global, action: DeviceAction) -> Result<ExitCode, Problem> {
    let c = client(global)?;
    match action {
        DeviceAction::Add {
            user: User { uid },
            apptype,
            token,
        } => {
            c.add_device(uid, &apptype, &token)
                .await
                .map_err(failed(global, "adddevice"))?;
            if global.json {
                json(
                    json!({ "uid": uid, "apptype": apptype, "devicetoken": token, "added": true }),
                );
            } else {
                eprintln!("added {} device for user {uid}", printable(&apptype));
            }
        }
        DeviceAction::Remove {
            user: User { uid },
            token,
        } => {
            c.remove_device(uid, &token)
                .await
                .map_err(failed(global, "removedevice"))?;
            if global.json {
                json(json!({ "uid": uid, "devicetoken": token, "removed": true }));
            } else {
                eprintln!("removed the device of user {uid} (if it was theirs)");
            }
        }
        DeviceAction::List { user: User { uid } } => {
            let devices = c
                .get_devices(uid)
                .await
                .map_err(failed(global, "getdevices"))?;
            if global.json {
                let devices: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        json!({
                            "apptype": d.apptype,
                            "devicetoken": d.devicetoken,
                            "time": d.time,
                            "added": utc(d.time),
                        })
                    })
                    .collect();
                json(json!({ "uid": uid, "devices": devices }));
            } else if devices.is_empty() {
                eprintln!("user {uid} has no devices");
            } else {
                let rows: Vec<Vec<String>> = devices
                    .iter()
                    .map(|d| {
                        vec![
                            printable(&d.apptype).into_owned(),
                            utc(d.time),
                            printable(&d.devicetoken).into_owned(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["APPTYPE", "ADDED (UTC)", "DEVICE TOKEN"], &rows)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtm kickout`
pub async fn kickout(global: &Global, args: KickoutArgs) -> Result<ExitCode, Problem> {
    let c = client(global)?;
    let uid = args.user.uid;
    let kicked = match args.ce {
        Some(ce) => c.kickout_endpoint(uid, &ce.to_string()).await,
        None => c.kickout(uid).await,
    }
    .map_err(failed(global, "kickout"))?;
    if global.json {
        let ce = args.ce.map(|ce| ce.to_string());
        json(json!({ "uid": uid, "ce": ce, "kicked": kicked }));
        return Ok(ExitCode::SUCCESS);
    }
    let which = match args.ce {
        Some(ce) => format!("the login of user {uid} at {ce}"),
        None => format!("every login of user {uid}"),
    };
    match kicked {
        Some(0) => eprintln!("kicked out {which}: 0 sessions closed (none was online)"),
        Some(1) => eprintln!("kicked out {which}: 1 session closed"),
        Some(n) => eprintln!("kicked out {which}: {n} sessions closed"),
        // The hosted service does not count.
        None => eprintln!("kicked out {which} (the server does not say how many were online)"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_ce_is_accepted_exactly_when_it_is_a_socket_address(text in any::<String>()) {
            match parse_ce(&text) {
                Ok(addr) => prop_assert_eq!(Ok(addr), text.trim().parse::<SocketAddr>()),
                Err(message) => {
                    prop_assert!(text.trim().parse::<SocketAddr>().is_err());
                    prop_assert!(!message.chars().any(char::is_control));
                }
            }
        }

        #[test]
        fn a_printed_socket_address_is_accepted(mut addr in any::<SocketAddr>()) {
            // The flow label is not part of the text form.
            if let SocketAddr::V6(v6) = &mut addr {
                v6.set_flowinfo(0);
            }
            prop_assert_eq!(parse_ce(&addr.to_string()), Ok(addr));
        }
    }

    #[test]
    fn ce_is_an_ip_and_port() {
        assert_eq!(
            parse_ce("127.0.0.1:53124"),
            Ok("127.0.0.1:53124".parse().unwrap())
        );
        assert_eq!(parse_ce(" [::1]:9 "), Ok("[::1]:9".parse().unwrap()));
        assert!(parse_ce("").unwrap_err().contains("leave --ce out"));
        assert!(parse_ce("  ").unwrap_err().contains("leave --ce out"));
        for bad in [
            "garbage",
            "127.0.0.1",
            "localhost:1",
            "1.2.3.4:99999",
            "\u{1b}[2J",
        ] {
            let e = parse_ce(bad).unwrap_err();
            assert!(e.contains("is not an ip:port"), "{bad}: {e}");
            assert!(!e.contains('\u{1b}'), "escaped: {e}");
        }
    }
}
