//! Login tokens: minted by `gettoken`, checked by the gate's `auth`.
//!
//! A token is self-contained and MAC'd, so minting one writes nothing:
//!
//! ```text
//! version(1) = 2 | key id(1) | pid(4) | uid(8) | generation(8) | issued(8) | expires(8)
//!     | nonce(6) | mac(16)
//! ```
//!
//! big-endian integers (times in Unix seconds), then the first 16 bytes of
//! HMAC-SHA256(key, everything before), all in URL-safe base64 without padding: 80
//! characters. It is bound to `(pid, uid)`, cannot be forged without the key (128-bit MAC),
//! expires, and is revoked when the user's *revocation generation* moves past the one it
//! carries (`removetoken` bumps it). Several tokens of one user are valid at once.
//!
//! The nonce makes every minted token a new one, even two minted for one user in the same
//! second (a second `gettoken` returns a new token: docs/design.md, "Tokens"). It is a counter that starts
//! at a random value, so it does not repeat within a process and is unlikely to repeat
//! across nodes; six bytes keep the token a whole number of base64 groups.

use crate::store::TokenKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const VERSION: u8 = 2;
const NONCE_LEN: usize = 6;
const BODY_LEN: usize = 1 + 1 + 4 + 8 + 8 + 8 + 8 + NONCE_LEN;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The project.
    pub pid: i32,
    /// The user.
    pub uid: i64,
    /// The user's revocation generation when the token was minted.
    pub generation: u64,
    /// When it was minted (Unix seconds).
    pub issued: u64,
    /// When it expires (Unix seconds).
    pub expires: u64,
}

/// Why a token was refused. The gate answers every one of them with `{ok: false}`; the
/// reason goes to the metrics and the log ([`crate::metrics::AuthResult`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of ours (bad base64, length or version).
    #[error("malformed token")]
    Malformed,
    /// Signed with a key this service does not have.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// The MAC does not match: forged or altered.
    #[error("token MAC does not match")]
    BadMac,
    /// Minted for another project.
    #[error("token belongs to another project")]
    WrongProject,
    /// Minted for another user.
    #[error("token belongs to another user")]
    WrongUser,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Revoked by `removetoken`.
    #[error("token revoked")]
    Revoked,
}

/// Mints and checks tokens with a key ring.
#[derive(Clone)]
pub struct Tokens {
    /// By id, ascending.
    keys: Vec<RingKey>,
    /// The next nonce (its low 48 bits are used); shared by clones.
    nonce: Arc<AtomicU64>,
}

/// A key of the ring, with HMAC-SHA256 already keyed by its secret: cloning that state for
/// each token costs less than keying it anew (two SHA-256 blocks).
#[derive(Clone)]
struct RingKey {
    id: u8,
    keyed: Hmac<Sha256>,
}

impl RingKey {
    fn new(key: &TokenKey) -> RingKey {
        RingKey {
            id: key.id,
            keyed: Hmac::<Sha256>::new_from_slice(&key.secret)
                .expect("HMAC takes keys of any length"),
        }
    }

    /// HMAC-SHA256 of `body` under this key, ready to be finished or verified.
    fn mac_of(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac
    }
}

impl Tokens {
    /// A token service over `keys`; new tokens use the key with the highest id.
    pub fn new(mut keys: Vec<TokenKey>) -> Option<Tokens> {
        keys.sort_by_key(|k| k.id);
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            // The nonce only has to differ between tokens, not be secret: the clock will do.
            seed = rtm_protocol::clock::unix_micros().to_be_bytes();
        }
        let nonce = Arc::new(AtomicU64::new(u64::from_be_bytes(seed)));
        let keys: Vec<RingKey> = keys.iter().map(RingKey::new).collect();
        (!keys.is_empty()).then_some(Tokens { keys, nonce })
    }

    /// A token for `(pid, uid)` at revocation generation `generation`, valid from `now` for
    /// `ttl_secs` seconds.
    pub fn mint(&self, pid: i32, uid: i64, generation: u64, now: u64, ttl_secs: u64) -> String {
        let key = self.keys.last().expect("a key ring is never empty");
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut token = [0u8; TOKEN_LEN];
        let mut body = ByteWriter::new(&mut token[..BODY_LEN]);
        body.put(&[VERSION, key.id]);
        body.put(&pid.to_be_bytes());
        body.put(&uid.to_be_bytes());
        body.put(&generation.to_be_bytes());
        body.put(&now.to_be_bytes());
        body.put(&now.saturating_add(ttl_secs).to_be_bytes());
        body.put(&nonce[8 - NONCE_LEN..]);
        let (body, mac) = token.split_at_mut(BODY_LEN);
        mac.copy_from_slice(&key.mac_of(body).finalize().into_bytes()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Checks a token's form, MAC, owner and expiry. The caller still has to compare
    /// [`Claims::generation`] with the user's current generation ([`Claims::check_generation`]).
    pub fn verify(&self, token: &str, pid: i32, uid: i64, now: u64) -> Result<Claims, TokenError> {
        // A valid token is exactly 80 characters; refuse anything else before decoding.
        if token.len() != (TOKEN_LEN * 4).div_ceil(3) {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let (body, mac) = bytes.split_at(BODY_LEN);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == body[1])
            .ok_or(TokenError::UnknownKey)?;
        // Constant-time comparison of the truncated MAC.
        key.mac_of(body)
            .verify_truncated_left(mac)
            .map_err(|_| TokenError::BadMac)?;
        let int = |at: usize, n: usize| {
            body[at..at + n]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        let claims = Claims {
            pid: int(2, 4) as u32 as i32,
            uid: int(6, 8) as i64,
            generation: int(14, 8),
            issued: int(22, 8),
            expires: int(30, 8),
        };
        if claims.pid != pid {
            return Err(TokenError::WrongProject);
        }
        if claims.uid != uid {
            return Err(TokenError::WrongUser);
        }
        if now >= claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Fills a byte slice from its start, one field after another.
struct ByteWriter<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> ByteWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        ByteWriter { out, at: 0 }
    }

    /// Writes `bytes` next. Panics past the end: the callers write fixed layouts.
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

impl Claims {
    /// Refuses a token minted before the user's tokens were last revoked.
    pub fn check_generation(&self, current: u64) -> Result<(), TokenError> {
        if self.generation == current {
            Ok(())
        } else {
            Err(TokenError::Revoked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u8, fill: u8) -> TokenKey {
        TokenKey {
            id,
            secret: [fill; 32],
        }
    }

    #[test]
    fn a_token_verifies_for_its_owner_only() {
        let t = Tokens::new(vec![ring(1, 7)]).unwrap();
        let token = t.mint(11000001, 42, 3, 1000, 60);
        assert_eq!(token.len(), 80);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let claims = t.verify(&token, 11000001, 42, 1000).unwrap();
        assert_eq!(claims.generation, 3);
        assert_eq!(claims.expires, 1060);
        assert_eq!(claims.check_generation(3), Ok(()));
        assert_eq!(claims.check_generation(4), Err(TokenError::Revoked));
        assert_eq!(
            t.verify(&token, 11000002, 42, 1000),
            Err(TokenError::WrongProject)
        );
        assert_eq!(
            t.verify(&token, 11000001, 43, 1000),
            Err(TokenError::WrongUser)
        );
        assert_eq!(
            t.verify(&token, 11000001, 42, 1060),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let t = Tokens::new(vec![ring(1, 7)]).unwrap();
        let token = t.mint(1, 2, 0, 1000, 60);
        // Flip each character in turn: every variant must fail.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert!(t.verify(&altered, 1, 2, 1000).is_err(), "altered at {i}");
        }
        let other = Tokens::new(vec![ring(1, 8)]).unwrap();
        assert_eq!(other.verify(&token, 1, 2, 1000), Err(TokenError::BadMac));
        let unknown = Tokens::new(vec![ring(2, 7)]).unwrap();
        assert_eq!(
            unknown.verify(&token, 1, 2, 1000),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(t.verify("", 1, 2, 1000), Err(TokenError::Malformed));
        assert_eq!(
            t.verify(&"A".repeat(80), 1, 2, 1000),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            t.verify(&"é".repeat(40), 1, 2, 1000),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_token_has_the_documented_layout() {
        let t = Tokens::new(vec![ring(3, 7)]).unwrap();
        let token = t.mint(11000001, 42, 5, 1000, 60);
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(bytes.len(), TOKEN_LEN);
        let (body, mac) = bytes.split_at(BODY_LEN);
        assert_eq!(body[..2], [VERSION, 3]);
        assert_eq!(body[2..6], 11000001i32.to_be_bytes());
        assert_eq!(body[6..14], 42i64.to_be_bytes());
        assert_eq!(body[14..22], 5u64.to_be_bytes());
        assert_eq!(body[22..30], 1000u64.to_be_bytes());
        assert_eq!(body[30..38], 1060u64.to_be_bytes());
        // The MAC of a freshly keyed HMAC, not only of the cloned keyed state.
        let mut fresh = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
        fresh.update(body);
        assert_eq!(mac, &fresh.finalize().into_bytes()[..MAC_LEN]);
    }

    #[test]
    fn tokens_minted_alike_differ() {
        let t = Tokens::new(vec![ring(1, 7)]).unwrap();
        let a = t.mint(1, 2, 0, 1000, 60);
        let b = t.clone().mint(1, 2, 0, 1000, 60);
        assert_ne!(a, b);
        assert!(t.verify(&a, 1, 2, 1000).is_ok());
        assert!(t.verify(&b, 1, 2, 1000).is_ok());
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let old = Tokens::new(vec![ring(1, 7)]).unwrap();
        let token = old.mint(1, 2, 0, 1000, 60);
        let rotated = Tokens::new(vec![ring(2, 9), ring(1, 7)]).unwrap();
        assert!(rotated.verify(&token, 1, 2, 1000).is_ok());
        let new_token = rotated.mint(1, 2, 0, 1000, 60);
        assert_eq!(
            old.verify(&new_token, 1, 2, 1000),
            Err(TokenError::UnknownKey)
        );
    }
}
