//! `enable_encryptor` against an FPNN server that requires encryption: the async and the
//! blocking client, every mode and key size, a wrong key, and a reconnect.

use fpnn::encryption::PrivateKey;
use fpnn::server::{EncryptionPolicy, Server, ServerEncryption};
use fpnn::Value;
use rtm_server_sdk::encryption::{Bits, Curve, Mode, PublicKey};
use rtm_server_sdk::{ConnectError, Error, RtmServerClient};
use std::time::Duration;

const PID: i32 = 11000001;
const SECRET: &str = "b9a7e0c4-secret";

/// A token server that closes plain connections calling `gettoken`, and answers encrypted
/// ones with a token naming the uid.
async fn token_server(key: &PrivateKey) -> Server {
    Server::builder()
        .encryption(ServerEncryption::new(key.clone()).policy(EncryptionPolicy::Require))
        .route("gettoken", |conn, params: Value| async move {
            assert!(conn.is_encrypted());
            let uid = params.get("uid").and_then(Value::as_i64).unwrap_or(-1);
            Ok(Value::map().with("token", format!("token-{uid}")))
        })
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

fn builder(server: &Server) -> rtm_server_sdk::RtmServerClientBuilder {
    RtmServerClient::builder(PID, SECRET, server.local_addr().to_string())
        .quest_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_and_key_size_gets_a_token_and_a_plain_client_is_closed() {
    let key = PrivateKey::generate(Curve::Secp256k1).unwrap();
    let server = token_server(&key).await;
    for mode in [Mode::Package, Mode::Stream] {
        for bits in [Bits::Aes128, Bits::Aes256] {
            // The public key as the PEM file a client is given.
            let pem = key.public_key().to_pem();
            let server_key = PublicKey::decode(pem.as_bytes(), None).unwrap();
            let client = builder(&server)
                .enable_encryptor(server_key, mode, bits)
                .build();
            assert_eq!(client.get_token(42).await.unwrap(), "token-42");
            assert_eq!(client.get_token(7).await.unwrap(), "token-7");
        }
    }
    let plain = builder(&server).build();
    let err = plain.get_token(42).await.unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_connect_error_and_a_reconnect_exchanges_again() {
    let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let server = token_server(&key).await;
    let wrong = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let client = builder(&server)
        .enable_encryptor(wrong.public_key().clone(), Mode::Package, Bits::Aes128)
        .build();
    let err = client.get_token(1).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Connect {
                reason: ConnectError::KeyExchange(_),
                ..
            }
        ),
        "{err:?}"
    );

    let client = builder(&server)
        .enable_encryptor(key.public_key().clone(), Mode::Stream, Bits::Aes256)
        .build();
    for uid in 0..3 {
        assert_eq!(client.get_token(uid).await.unwrap(), format!("token-{uid}"));
        for conn in server.connections() {
            conn.close();
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while client.is_connected() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the client sees the close");
    }
    server.shutdown().await;
}

#[test]
fn the_blocking_client_encrypts_too() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let key = PrivateKey::generate(Curve::Secp224r1).unwrap();
    let server = runtime.block_on(token_server(&key));
    // Raw X‖Y, with its curve.
    let raw = key.public_key().as_bytes().to_vec();
    let server_key = PublicKey::decode(&raw, Some(Curve::Secp224r1)).unwrap();
    let client = builder(&server)
        .enable_encryptor(server_key, Mode::Package, Bits::Aes256)
        .build_blocking()
        .unwrap();
    assert_eq!(client.get_token(5).unwrap(), "token-5");
    drop(client);
    runtime.block_on(server.shutdown());
}
