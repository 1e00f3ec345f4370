//! The server's encryption settings: its static key and whether plain connections may call
//! user methods.

use crate::encryption::PrivateKey;
use std::sync::Arc;

/// Whether plain (unencrypted) connections may call user methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EncryptionPolicy {
    /// Encryption is offered: clients may run the `*key` exchange, or not.
    #[default]
    Allow,
    /// Encryption is required: a plain connection that calls a user method is closed without
    /// an answer (the C++ framework's `FPNN.server.security.forceEncrypt.userMethods`).
    /// Built-in methods (`*ping`, `*key`) stay open to plain connections.
    Require,
}

impl std::str::FromStr for EncryptionPolicy {
    type Err = String;

    /// `allow` or `require`.
    fn from_str(s: &str) -> Result<EncryptionPolicy, String> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(EncryptionPolicy::Allow),
            "require" => Ok(EncryptionPolicy::Require),
            other => Err(format!(
                "unknown encryption policy {other:?}: expected allow or require"
            )),
        }
    }
}

impl std::fmt::Display for EncryptionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncryptionPolicy::Allow => "allow",
            EncryptionPolicy::Require => "require",
        })
    }
}

/// A server's encryption: the static private key clients encrypt to (on one of the four
/// curves) and the [`EncryptionPolicy`].
///
/// With it, a connection whose first frame is `*key` is switched to AES-CFB (package or
/// stream mode, 128 or 256 bits, as the client asks) and the answer is the first encrypted
/// output; a `*key` that fails (not the first frame, a bad public key, `bits` other than 128
/// or 256) closes the connection without an answer.
///
/// ```no_run
/// use fpnn::encryption::{Curve, PrivateKey};
/// use fpnn::server::{EncryptionPolicy, Server, ServerEncryption};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // The raw private key written by `rtmd keygen` (or the official eccKeyMaker).
/// let key = PrivateKey::from_file(Curve::Secp256r1, "server-secp256r1-private.key")?;
/// let server = Server::builder()
///     .encryption(ServerEncryption::new(key).policy(EncryptionPolicy::Require))
///     .route("echo", |_conn, params| async move { Ok(params) })
///     .bind("127.0.0.1:13315")
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServerEncryption {
    pub(crate) key: Arc<PrivateKey>,
    pub(crate) policy: EncryptionPolicy,
}

impl ServerEncryption {
    /// Encryption with this static key, allowing plain connections too.
    pub fn new(key: PrivateKey) -> ServerEncryption {
        ServerEncryption {
            key: Arc::new(key),
            policy: EncryptionPolicy::Allow,
        }
    }

    /// Sets the policy for plain connections.
    pub fn policy(mut self, policy: EncryptionPolicy) -> ServerEncryption {
        self.policy = policy;
        self
    }

    /// The static key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The policy for plain connections.
    pub fn get_policy(&self) -> EncryptionPolicy {
        self.policy
    }
}
