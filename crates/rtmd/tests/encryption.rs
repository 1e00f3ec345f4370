//! FPNN encryption on both ports of rtmd: `require` on the server API (the SDK's
//! `enable_encryptor` gets tokens, a plain SDK is closed), `allow` on the gate (an encrypted
//! and a plain login side by side), the metrics that count them, and the configuration's
//! errors.

mod common;

use common::*;
use fpnn::client::Client;
use fpnn::encryption::{
    write_key_files, Bits, ClientEncryption, Curve, Mode, PrivateKey, PublicKey,
};
use fpnn::Value;
use rtmd::config::{Config, PortEncryption};
use std::path::Path;

/// Writes a key on `curve` as `dir/name-*` and returns the port's configuration.
fn port_encryption(
    dir: &Path,
    name: &str,
    curve: Curve,
    policy: &str,
) -> (PortEncryption, PublicKey) {
    let key = PrivateKey::generate(curve).unwrap();
    let files = write_key_files(&key, dir.join(name), false).unwrap();
    let public = PublicKey::from_file(&files.public_pem, None).unwrap();
    let config = PortEncryption {
        curve: curve.to_string(),
        private_key: files.private_key,
        policy: policy.into(),
    };
    (config, public)
}

fn metric(scrape: &str, line_start: &str) -> i64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in:\n{scrape}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_requires_and_the_gate_allows_encryption() {
    let keys = tempfile::tempdir().unwrap();
    let (api_enc, api_key) = port_encryption(keys.path(), "api", Curve::Secp256r1, "require");
    let (gate_enc, gate_key) = port_encryption(keys.path(), "gate", Curve::Secp256k1, "allow");
    let mut server = TestServer::start_with(vec![project(PID, SECRET)], |config| {
        config.encryption.server_api = Some(api_enc);
        config.encryption.gate = Some(gate_enc);
    })
    .await;

    // Server API: encrypted tokens; a plain SDK is closed without an answer.
    let encrypted = rtm_server_sdk::RtmServerClient::builder(PID, SECRET, server.api())
        .quest_timeout(WAIT)
        .enable_encryptor(api_key, Mode::Package, Bits::Aes128)
        .build();
    let token = within("encrypted gettoken", encrypted.get_token(7))
        .await
        .unwrap();
    let plain = server.sdk();
    let err = within("plain gettoken", plain.get_token(7))
        .await
        .unwrap_err();
    assert!(matches!(err, rtm_server_sdk::Error::Closed(_)), "{err:?}");

    // Gate: an encrypted login (stream, 256 bits, as the Go client) and a plain one.
    let gate_encrypted = Client::builder(server.gate())
        .quest_timeout(WAIT)
        .encryption(
            ClientEncryption::new(gate_key)
                .mode(Mode::Stream)
                .bits(Bits::Aes256),
        )
        .build();
    let gate_plain = Client::builder(server.gate()).quest_timeout(WAIT).build();
    let token2 = within("gettoken", encrypted.get_token(7)).await.unwrap();
    for (what, gate, token) in [
        ("encrypted auth", &gate_encrypted, &token),
        ("plain auth", &gate_plain, &token2),
    ] {
        let auth = Value::map()
            .with("pid", PID)
            .with("uid", 7)
            .with("token", token.as_str())
            .with("version", "test");
        let answer = within(what, gate.quest("auth", &auth)).await.unwrap();
        assert_eq!(
            answer.get("ok").and_then(Value::as_bool),
            Some(true),
            "{what}: {answer:?}"
        );
    }

    let (_, scrape) = http_get(server.admin(), "/metrics").await;
    let gate = "rtmd_connections_by_encryption{port=\"gate\",encryption=";
    assert_eq!(metric(&scrape, &format!("{gate}\"encrypted\"}}")), 1);
    assert_eq!(metric(&scrape, &format!("{gate}\"plain\"}}")), 1);
    assert_eq!(
        metric(
            &scrape,
            "rtmd_connections_by_encryption{port=\"server_api\",encryption=\"encrypted\"}"
        ),
        1
    );
    assert_eq!(
        metric(&scrape, "rtmd_key_exchanges_total{port=\"server_api\"}"),
        1
    );
    assert_eq!(
        metric(&scrape, "rtmd_key_exchanges_total{port=\"gate\"}"),
        1
    );

    // An encrypted connection that closes leaves the gauge.
    gate_encrypted.close().await;
    within("the gauge to drop", async {
        loop {
            let (_, scrape) = http_get(server.admin(), "/metrics").await;
            if metric(&scrape, &format!("{gate}\"encrypted\"}}")) == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.shutdown().await;
}

#[test]
fn the_encryption_configuration_is_checked() {
    let keys = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let files = write_key_files(&key, keys.path().join("server"), false).unwrap();
    let path = files.private_key.display().to_string();
    let config = |table: &str| {
        format!("[[projects]]\npid = 1\nsecrets = [\"s\"]\n\n[encryption.gate]\n{table}\n")
    };
    let good = format!("curve = \"secp256r1\"\nprivate_key = \"{path}\"\npolicy = \"require\"");
    let parsed = Config::from_toml(&config(&good)).unwrap();
    assert!(parsed.encryption.gate.is_some() && parsed.encryption.server_api.is_none());

    for (table, field) in [
        (
            format!("curve = \"secp999\"\nprivate_key = \"{path}\""),
            "encryption.gate.curve",
        ),
        (
            format!("curve = \"secp256r1\"\nprivate_key = \"{path}\"\npolicy = \"maybe\""),
            "encryption.gate.policy",
        ),
        (
            "curve = \"secp256r1\"\nprivate_key = \"/no/such/key\"".to_string(),
            "encryption.gate.private_key",
        ),
        // A 32-byte key is not a secp224r1 key.
        (
            format!("curve = \"secp224r1\"\nprivate_key = \"{path}\""),
            "encryption.gate.private_key",
        ),
    ] {
        let err = Config::from_toml(&config(&table)).unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let unknown = format!("{good}\nextra = 1");
    assert!(Config::from_toml(&config(&unknown)).is_err());
}
