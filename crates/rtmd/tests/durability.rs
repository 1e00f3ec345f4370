//! Durability: the real `rtmd` binary is killed with SIGKILL and restarted on the same data
//! directory; every acknowledged write is still there.

mod common;

use common::*;
use rtm_server_sdk::app_type;
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
