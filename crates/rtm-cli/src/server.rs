//! The server API commands: tokens, devices, kickout.

use crate::Global;
use clap::{Args, Subcommand};
use rtm_server_sdk::{Error, RtmServerClient};
use std::process::ExitCode;

/// `rtm token …`
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Print a new login token for the user.
    Get {
        /// The user id.
        #[arg(long)]
        uid: i64,
    },
    /// Revoke every token the user holds (their next login fails).
    Remove {
        /// The user id.
        #[arg(long)]
        uid: i64,
    },
}

/// `rtm device …`
#[derive(Subcommand, Debug)]
pub enum DeviceAction {
    /// Register a push device token for the user.
    Add {
        /// The user id.
        #[arg(long)]
        uid: i64,
        /// The push service: apns or fcm.
        #[arg(long)]
        apptype: String,
        /// The device token.
        #[arg(long)]
        token: String,
    },
    /// Remove a push device token of the user.
    Remove {
        /// The user id.
        #[arg(long)]
        uid: i64,
        /// The device token.
        #[arg(long)]
        token: String,
    },
    /// List the user's device tokens (an rtmd extension; the hosted service answers 20004).
    List {
        /// The user id.
        #[arg(long)]
        uid: i64,
    },
}

/// `rtm kickout …`
#[derive(Args, Debug)]
pub struct KickoutArgs {
    /// The user id.
    #[arg(long)]
    uid: i64,
    /// Kick only the login at this client endpoint (ip:port as the gate sees it).
    #[arg(long)]
    ce: Option<String>,
}

fn client(global: &Global) -> Result<RtmServerClient, String> {
    let pid = global
        .pid
        .ok_or("no project id: pass --pid or set RTM_PID (rtmd prints it when it starts)")?;
    let secret = global.secret.clone().ok_or(
        "no project secret: pass --secret or set RTM_SECRET (rtmd prints it when it starts)",
    )?;
    Ok(
        RtmServerClient::builder(pid, secret, global.endpoint.clone())
            .quest_timeout(global.timeout())
            .connect_timeout(global.timeout())
            .auto_reconnect(false)
            .build(),
    )
}

/// Describes a failed call with its code, its official name, and a hint when there is one.
fn failed(what: &str, endpoint: &str, e: Error) -> String {
    let hint = match e.code() {
        rtm_server_sdk::code::INVALID_PID_OR_SIGN => " (check --pid and --secret)",
        rtm_server_sdk::code::INVALID_SERVER_TIME => " (check this machine's clock)",
        rtm_server_sdk::code::CORE_INVALID_CONNECTION => {
            " (is the service running? check --endpoint)"
        }
        _ => "",
    };
    format!("{what} failed at {endpoint}: {e}{hint}")
}

/// `rtm token get|remove`
pub async fn token(global: &Global, action: TokenAction) -> Result<ExitCode, String> {
    let c = client(global)?;
    let ep = &global.endpoint;
    match action {
        TokenAction::Get { uid } => {
            let token = c
                .get_token(uid)
                .await
                .map_err(|e| failed("gettoken", ep, e))?;
            println!("{token}");
        }
        TokenAction::Remove { uid } => {
            c.remove_token(uid)
                .await
                .map_err(|e| failed("removetoken", ep, e))?;
            eprintln!("revoked the tokens of user {uid}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtm device add|remove|list`
pub async fn device(global: &Global, action: DeviceAction) -> Result<ExitCode, String> {
    let c = client(global)?;
    let ep = &global.endpoint;
    match action {
        DeviceAction::Add {
            uid,
            apptype,
            token,
        } => {
            c.add_device(uid, &apptype, &token)
                .await
                .map_err(|e| failed("adddevice", ep, e))?;
            eprintln!("added {apptype} device for user {uid}");
        }
        DeviceAction::Remove { uid, token } => {
            c.remove_device(uid, &token)
                .await
                .map_err(|e| failed("removedevice", ep, e))?;
            eprintln!("removed the device of user {uid} (if it was theirs)");
        }
        DeviceAction::List { uid } => {
            let devices = c
                .get_devices(uid)
                .await
                .map_err(|e| failed("getdevices", ep, e))?;
            if devices.is_empty() {
                eprintln!("user {uid} has no devices");
            }
            for d in devices {
                println!("{}\t{}\t{}", d.apptype, d.devicetoken, d.time);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtm kickout`
pub async fn kickout(global: &Global, args: KickoutArgs) -> Result<ExitCode, String> {
    let c = client(global)?;
    let ep = &global.endpoint;
    match &args.ce {
        Some(ce) => {
            c.kickout_endpoint(args.uid, ce)
                .await
                .map_err(|e| failed("kickout", ep, e))?;
            eprintln!(
                "kicked the login of user {} at {ce} (if it was online)",
                args.uid
            );
        }
        None => {
            c.kickout(args.uid)
                .await
                .map_err(|e| failed("kickout", ep, e))?;
            eprintln!("kicked every login of user {} (if online)", args.uid);
        }
    }
    Ok(ExitCode::SUCCESS)
}
