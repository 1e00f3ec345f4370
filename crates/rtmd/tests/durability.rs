//! Durability: the real `rtmd` binary is killed with SIGKILL and restarted on the same data
//! directory; every acknowledged write is still there.

mod common;

use common::*;
use rtm_protocol::api::app_type;
use rtmd::config::DEV_PID;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Binary::start(&data);
    let secret = dev_secret(&data);
    let client = sdk(&first.api, DEV_PID, &secret);

    // Devices of several users, written concurrently (they share commits), some removed.
    let mut expected: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut writes = Vec::new();
    for uid in 1..=8i64 {
        for n in 0..6 {
            let device = format!("device-{uid}-{n}");
            let apptype = if n % 2 == 0 {
                app_type::APNS
            } else {
                app_type::FCM
            };
            let client = client.clone();
            expected.insert((uid, device.clone()));
            writes.push(tokio::spawn(async move {
                client.add_device(uid, apptype, &device).await
            }));
        }
    }
    for write in writes {
        within("adddevice", write)
            .await
            .unwrap()
            .expect("acknowledged");
    }
    for uid in 1..=8i64 {
        let device = format!("device-{uid}-0");
        within("removedevice", client.remove_device(uid, &device))
            .await
            .unwrap();
        expected.remove(&(uid, device));
    }
    // Moved from user 8 to user 9.
    within(
        "adddevice",
        client.add_device(9, app_type::FCM, "device-8-1"),
    )
    .await
    .unwrap();
    expected.remove(&(8, "device-8-1".into()));
    expected.insert((9, "device-8-1".into()));

    // A token revoked before the kill, and one minted before it that must keep working.
    let revoked = within("gettoken", client.get_token(100)).await.unwrap();
    within("removetoken", client.remove_token(100))
        .await
        .unwrap();
    let kept = within("gettoken", client.get_token(101)).await.unwrap();
    let gate = GateClient::connect(&first.gate).await;
    gate.refused(DEV_PID, 100, &revoked).await;
    gate.login(DEV_PID, 101, &kept).await;

    first.kill_9();
    let second = Binary::start(&data);
    assert_eq!(dev_secret(&data), secret, "the dev secret is reused");
    let client = sdk(&second.api, DEV_PID, &secret);
    let mut found = BTreeSet::new();
    for uid in 1..=9i64 {
        for device in within("getdevices", client.get_devices(uid)).await.unwrap() {
            found.insert((uid, device.devicetoken));
        }
    }
    assert_eq!(found, expected);

    let gate = GateClient::connect(&second.gate).await;
    gate.refused(DEV_PID, 100, &revoked).await;
    gate.login(DEV_PID, 101, &kept).await;
    // A new token for the revoked user works.
    let fresh = within("gettoken", client.get_token(100)).await.unwrap();
    let gate = GateClient::connect(&second.gate).await;
    gate.login(DEV_PID, 100, &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_at_kill_9_lose_nothing_acknowledged() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Binary::start(&data);
    let secret = dev_secret(&data);
    let client = sdk(&first.api, DEV_PID, &secret);

    // Writers adding devices and revoking tokens as fast as they are answered.
    let acked = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut writers = Vec::new();
    for w in 1..=6i64 {
        let (client, acked, enough) = (client.clone(), acked.clone(), enough.clone());
        writers.push(tokio::spawn(async move {
            let mut devices = Vec::new();
            let mut revoked = Vec::new();
            for n in 0.. {
                let uid = w * 1_000_000 + n;
                let result = if n % 3 == 2 {
                    // A token, then its revocation.
                    match client.get_token(uid).await {
                        Ok(token) => client
                            .remove_token(uid)
                            .await
                            .map(|()| revoked.push((uid, token))),
                        Err(e) => Err(e),
                    }
                } else {
                    let device = format!("d-{uid}");
                    client
                        .add_device(uid, app_type::APNS, &device)
                        .await
                        .map(|()| devices.push((uid, device)))
                };
                if result.is_err() {
                    return (devices, revoked);
                }
                if acked.fetch_add(1, Ordering::SeqCst) == 60 {
                    enough.notify_one();
                }
            }
            unreachable!()
        }));
    }
    within("writes to flow", enough.notified()).await;
    first.kill_9();
    let mut devices = Vec::new();
    let mut revoked = Vec::new();
    for writer in writers {
        let (d, r) = within("writer", writer).await.unwrap();
        devices.extend(d);
        revoked.extend(r);
    }

    let second = Binary::start(&data);
    let client = sdk(&second.api, DEV_PID, &secret);
    for (uid, device) in devices {
        let stored = within("getdevices", client.get_devices(uid)).await.unwrap();
        assert!(
            stored.iter().any(|d| d.devicetoken == device),
            "{device} was acknowledged before the kill but is gone"
        );
    }
    let gate = GateClient::connect(&second.gate).await;
    assert!(!revoked.is_empty());
    for (uid, token) in revoked {
        gate.refused(DEV_PID, uid, &token).await;
    }
}
