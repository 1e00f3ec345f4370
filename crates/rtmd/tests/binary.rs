//! The `rtmd` binary: graceful shutdown on SIGTERM, and configuration errors at start.

mod common;

use common::*;
use rtm_protocol::api::app_type;
use rtmd::config::DEV_PID;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_calls_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rtmd = Binary::start(&data);
    let secret = dev_secret(&data);
    let client = sdk(&rtmd.api, DEV_PID, &secret);
    let mut gate = {
        let token = within("gettoken", client.get_token(1)).await.unwrap();
        let gate = GateClient::connect(&rtmd.gate).await;
        gate.login(DEV_PID, 1, &token).await;
        gate
    };

    // Writers that keep several calls in flight until the service stops; each call adds
    // the one device of a new user.
    let done = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut writers = Vec::new();
    for w in 1..=8i64 {
        let (client, done, enough) = (client.clone(), done.clone(), enough.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                let uid = w * 1_000_000 + n;
                let device = format!("device-of-{uid}");
                match client.add_device(uid, app_type::FCM, &device).await {
                    Ok(()) => acknowledged.push((uid, device)),
                    Err(e) => return (acknowledged, e),
                }
                if done.fetch_add(1, Ordering::SeqCst) == 40 {
                    enough.notify_one();
                }
            }
            unreachable!()
        }));
    }
    within("calls to flow", enough.notified()).await;
    rtmd.terminate();
    let status = rtmd.wait_exit();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        rtmd.stderr()
    );
    let log = rtmd.stderr();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    gate.closed().await;

    // Every call ended: answered, refused as stopping, or failed with the connection; none
    // hung until its timeout.
    let mut acknowledged = Vec::new();
    for writer in writers {
        let (acked, error) = within("writer", writer).await.unwrap();
        assert!(
            matches!(error.code(), 20014 | 20002 | 20012),
            "a writer ended with {error}"
        );
        acknowledged.extend(acked);
    }
    assert!(acknowledged.len() > 40);

    // Everything acknowledged was flushed.
    let again = Binary::start(&data);
    let client = sdk(&again.api, DEV_PID, &secret);
    for (uid, device) in acknowledged {
        let stored = within("getdevices", client.get_devices(uid)).await.unwrap();
        assert!(
            stored.iter().any(|d| d.devicetoken == device),
            "{device} was acknowledged but is gone"
        );
    }
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[projects]]\npid = 1\nsecrets = []\n",
            "projects[0].secrets",
        ),
        (
            "[[projects]]\npid = 1\nsecrets = [\"a\"]\ntoken_ttl = \"0s\"\n",
            "projects[0].token_ttl",
        ),
        (
            "[[projects]]\npid = 1\nsecrets = [\"a\"]\nmulti_logn = false\n",
            "multi_logn",
        ),
        (
            "[listen]\ngate = \"nowhere\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n",
            "listen.gate",
        ),
        ("data_dir = 5\n", "data_dir"),
    ];
    for (i, (text, field)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = run_to_exit(&["--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text:?} was accepted");
        assert!(
            stderr.contains(field),
            "{text:?}: stderr does not name {field}:\n{stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("rtmd ready"),
            "{text:?}"
        );
    }
    // A file that does not exist.
    let missing = dir.path().join("missing.toml");
    let output = run_to_exit(&["--config", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}

#[test]
fn a_port_in_use_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = run_to_exit(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--server-api",
        "127.0.0.1:0",
        "--gate",
        &addr,
        "--admin",
        "",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("gate") && stderr.contains(&addr),
        "{stderr}"
    );
}

#[test]
fn a_second_rtmd_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _running = Binary::start(&data);
    let data_arg = data.to_str().unwrap();
    let output = run_to_exit(&[
        "--data-dir",
        data_arg,
        "--server-api",
        "127.0.0.1:0",
        "--gate",
        "127.0.0.1:0",
        "--admin",
        "",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("another rtmd"), "{stderr}");
}
