//! From the ECDH shared secret to the AES key and IV, as the official framework derives them
//! (`ECCKeyExchange::calcKey`): no KDF, only MD5 and, for a 256-bit key on a short curve,
//! SHA-256.
//!
//! ```text
//! secret = X coordinate of the shared point, L bytes (L = 24, 28 or 32)
//! IV     = MD5(secret)                                  16 bytes
//! key    = secret[0..16]                                bits = 128
//!          secret                   if L = 32           bits = 256
//!          SHA-256(secret)          if L = 24 or 28     bits = 256
//! ```
//!
//! The same key and IV serve both directions, each with its own cipher state.

use md5::{Digest, Md5};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// The AES key size: the `bits` parameter of the `*key` quest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Bits {
    /// AES-128, the default of the C++ and Python clients (`reinforce = false`).
    #[default]
    Aes128,
    /// AES-256, "reinforced"; the Go client's default.
    Aes256,
}

impl Bits {
    /// 128 or 256.
    pub const fn bits(self) -> u32 {
        match self {
            Bits::Aes128 => 128,
            Bits::Aes256 => 256,
        }
    }

    /// The `bits` value as the server reads it: 128 and 256 only.
    pub const fn from_bits(bits: i64) -> Option<Bits> {
        match bits {
            128 => Some(Bits::Aes128),
            256 => Some(Bits::Aes256),
            _ => None,
        }
    }
}

/// The AES key of a session, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) enum AesKey {
    Aes128(Zeroizing<[u8; 16]>),
    Aes256(Zeroizing<[u8; 32]>),
}

impl AesKey {
    fn as_bytes(&self) -> &[u8] {
        match self {
            AesKey::Aes128(k) => &k[..],
            AesKey::Aes256(k) => &k[..],
        }
    }
}

/// The AES key and IV of an encrypted connection.
///
/// Both are wiped from memory when dropped; `Debug` shows neither.
#[derive(Clone)]
pub struct KeyMaterial {
    pub(crate) key: AesKey,
    pub(crate) iv: Zeroizing<[u8; 16]>,
}

impl KeyMaterial {
    /// Derives the key and IV from an ECDH shared secret (the X coordinate, all of its L
    /// bytes: 24, 28 or 32 for the supported curves).
    ///
    /// `None` for a secret shorter than 16 bytes, which no supported curve produces. Nothing
    /// here branches on the secret's bytes, only on its length.
    pub fn derive(secret: &[u8], bits: Bits) -> Option<KeyMaterial> {
        let first16 = secret.get(..16)?;
        let mut iv = Zeroizing::new([0u8; 16]);
        iv.copy_from_slice(&Md5::digest(secret));
        let key = match bits {
            Bits::Aes128 => {
                let mut key = Zeroizing::new([0u8; 16]);
                key.copy_from_slice(first16);
                AesKey::Aes128(key)
            }
            Bits::Aes256 => {
                let mut key = Zeroizing::new([0u8; 32]);
                if secret.len() == 32 {
                    key.copy_from_slice(secret);
                } else {
                    key.copy_from_slice(&Sha256::digest(secret));
                }
                AesKey::Aes256(key)
            }
        };
        Some(KeyMaterial { key, iv })
    }

    /// The key size.
    pub fn bits(&self) -> Bits {
        match self.key {
            AesKey::Aes128(_) => Bits::Aes128,
            AesKey::Aes256(_) => Bits::Aes256,
        }
    }

    /// The AES key (16 or 32 bytes). Handle with care.
    pub fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// The IV (16 bytes), MD5 of the shared secret.
    pub fn iv(&self) -> &[u8; 16] {
        &self.iv
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("bits", &self.bits().bits())
            .field("key", &"<redacted>")
            .field("iv", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_128_or_256_only() {
        assert_eq!(Bits::from_bits(128), Some(Bits::Aes128));
        assert_eq!(Bits::from_bits(256), Some(Bits::Aes256));
        for other in [0, 1, 64, 192, 255, 512, -128] {
            assert_eq!(Bits::from_bits(other), None, "{other}");
        }
        assert_eq!(Bits::default(), Bits::Aes128);
    }

    #[test]
    fn a_secret_under_16_bytes_derives_nothing() {
        assert!(KeyMaterial::derive(&[1; 15], Bits::Aes128).is_none());
        assert!(KeyMaterial::derive(&[1; 16], Bits::Aes128).is_some());
    }

    #[test]
    fn debug_hides_the_key() {
        let keys = KeyMaterial::derive(&[0xab; 32], Bits::Aes256).unwrap();
        let text = format!("{keys:?}");
        assert!(!text.contains("171") && !text.contains("ab"), "{text}");
        assert!(text.contains("256"), "{text}");
    }
}
