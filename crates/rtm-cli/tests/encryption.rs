//! `rtm keygen`, `--server-key` and `rtm login --gate-key` against an rtmd whose ports
//! require encryption.

mod common;

use common::*;
use rtmd::config::PortEncryption;
use rtmd::store::MemoryStore;
use rtmd::Rtmd;
use std::path::Path;
use std::sync::Arc;

/// Runs `rtm keygen` for `name` on `curve` and returns the files' prefix.
async fn keygen(dir: &Path, name: &str, curve: &str) -> String {
    let prefix = dir.join(name).display().to_string();
    let out = run(bare_rtm(), &["keygen", "--curve", curve, &prefix]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains(&format!("{prefix}-private.key")),
        "{out:?}"
    );
    prefix
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_files_encrypt_the_server_api_and_the_gate() {
    let keys = tempfile::tempdir().unwrap();
    let api = keygen(keys.path(), "api", "secp256r1").await;
    let gate = keygen(keys.path(), "gate", "secp224r1").await;
    // A second keygen to the same name writes nothing.
    let out = run(bare_rtm(), &["keygen", "--curve", "secp256r1", &api]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config(dir.path());
    config.encryption.server_api = Some(PortEncryption {
        curve: "secp256r1".into(),
        private_key: format!("{api}-private.key").into(),
        policy: "require".into(),
    });
    config.encryption.gate = Some(PortEncryption {
        curve: "secp224r1".into(),
        private_key: format!("{gate}-private.key").into(),
        policy: "require".into(),
    });
    let rtmd = Rtmd::start_with_store(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();

    // Plain: the server API closes the connection.
    let out = run(rtm(&rtmd, SECRET), &["token", "get", "--uid", "42"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // PEM, stream mode, 256 bits.
    let pem = format!("{api}-public.pem");
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "--server-key",
            &pem,
            "--encrypt-mode",
            "stream",
            "--key-bits",
            "256",
            "token",
            "get",
            "--uid",
            "42",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let token = stdout(&out);
    assert!(token.len() >= 64, "{token:?}");

    // The raw gate key with its curve; the login is encrypted, then kicked out.
    let raw = format!("{gate}-public.key");
    let login = Login::start(
        &rtmd,
        42,
        &token,
        &["--gate-key", &raw, "--curve", "secp224r1"],
    )
    .await;
    assert!(
        login.first.starts_with("logged in as user 42"),
        "{}",
        login.first
    );
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "--server-key",
            &format!("{api}-public.der"),
            "kickout",
            "--uid",
            "42",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let (_, status) = login.finish().await;
    assert!(status.success());

    // A wrong key: a clear connection error, not a hang.
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "--server-key",
            &format!("{gate}-public.pem"),
            "token",
            "get",
            "--uid",
            "42",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("key exchange failed"),
        "{}",
        stderr(&out)
    );
    let out = run(
        rtm(&rtmd, SECRET),
        &[
            "login",
            "--uid",
            "42",
            "--token",
            &token,
            "--gate-key",
            &pem,
        ],
    )
    .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stderr(&out).contains("key exchange with"),
        "{}",
        stderr(&out)
    );

    // A raw key without --curve is a usage error.
    let out = run(
        rtm(&rtmd, SECRET),
        &["--server-key", &raw, "token", "get", "--uid", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    rtmd.shutdown().await;
}
