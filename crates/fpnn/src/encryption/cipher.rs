//! AES-128/256 in CFB mode with a 128-bit segment (CFB128), on raw bytes.
//!
//! This is OpenSSL's `AES_cfb128_encrypt`, which the official framework's
//! `rijndael_cfb_encrypt` reproduces: byte-oriented, no padding, the keystream position
//! carried from one call to the next. Two uses:
//!
//! * [`PackageCipher`]: every call starts again from the IV (package mode);
//! * [`StreamEncrypt`] / [`StreamDecrypt`]: one stream per direction (stream mode).
//!
//! The block cipher is the `aes` crate (AES-NI when the CPU has it, else a constant-time
//! bitsliced implementation); its key schedule is wiped from memory when dropped.

use super::derive::{AesKey, KeyMaterial};
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{AsyncStreamCipher, InnerIvInit, KeyInit};
use aes::{Aes128, Aes256};
use cfb_mode::{BufDecryptor, BufEncryptor, Decryptor, Encryptor};

/// An AES key schedule of either size.
///
/// The variants differ in size (about 700 and 960 bytes: the `aes` crate keeps the AES-NI and
/// the software schedules side by side); each connection direction holds one, so boxing would
/// only add an indirection.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Aes {
    Aes128(Aes128),
    Aes256(Aes256),
}

impl Aes {
    fn new(key: &AesKey) -> Aes {
        match key {
            AesKey::Aes128(k) => Aes::Aes128(Aes128::new(GenericArray::from_slice(&k[..]))),
            AesKey::Aes256(k) => Aes::Aes256(Aes256::new(GenericArray::from_slice(&k[..]))),
        }
    }
}

type Iv = GenericArray<u8, aes::cipher::consts::U16>;

/// CFB128 restarted from the IV for every message: the cipher of package mode.
#[derive(Clone)]
pub(crate) struct PackageCipher {
    aes: Aes,
    iv: Iv,
}

impl PackageCipher {
    pub(crate) fn new(keys: &KeyMaterial) -> PackageCipher {
        PackageCipher {
            aes: Aes::new(&keys.key),
            iv: *Iv::from_slice(&keys.iv[..]),
        }
    }

    /// Encrypts `data` in place, starting from the IV.
    pub(crate) fn encrypt(&self, data: &mut [u8]) {
        // The mode borrows the key schedule: nothing is expanded or copied per frame.
        match &self.aes {
            Aes::Aes128(aes) => Encryptor::<&Aes128>::inner_iv_init(aes, &self.iv).encrypt(data),
            Aes::Aes256(aes) => Encryptor::<&Aes256>::inner_iv_init(aes, &self.iv).encrypt(data),
        }
    }

    /// Decrypts `data` in place, starting from the IV.
    pub(crate) fn decrypt(&self, data: &mut [u8]) {
        match &self.aes {
            Aes::Aes128(aes) => Decryptor::<&Aes128>::inner_iv_init(aes, &self.iv).decrypt(data),
            Aes::Aes256(aes) => Decryptor::<&Aes256>::inner_iv_init(aes, &self.iv).decrypt(data),
        }
    }
}

/// One direction of stream mode, encrypting: a CFB128 stream that continues across calls.
#[allow(clippy::large_enum_variant)] // As for `Aes`.
pub(crate) enum StreamEncrypt {
    Aes128(BufEncryptor<Aes128>),
    Aes256(BufEncryptor<Aes256>),
}

impl StreamEncrypt {
    pub(crate) fn new(keys: &KeyMaterial) -> StreamEncrypt {
        let iv = Iv::from_slice(&keys.iv[..]);
        match Aes::new(&keys.key) {
            Aes::Aes128(aes) => StreamEncrypt::Aes128(BufEncryptor::inner_iv_init(aes, iv)),
            Aes::Aes256(aes) => StreamEncrypt::Aes256(BufEncryptor::inner_iv_init(aes, iv)),
        }
    }

    /// Encrypts the next `data.len()` bytes of the stream in place.
    pub(crate) fn encrypt(&mut self, data: &mut [u8]) {
        match self {
            StreamEncrypt::Aes128(c) => c.encrypt(data),
            StreamEncrypt::Aes256(c) => c.encrypt(data),
        }
    }
}

/// One direction of stream mode, decrypting.
#[allow(clippy::large_enum_variant)] // As for `Aes`.
pub(crate) enum StreamDecrypt {
    Aes128(BufDecryptor<Aes128>),
    Aes256(BufDecryptor<Aes256>),
}

impl StreamDecrypt {
    pub(crate) fn new(keys: &KeyMaterial) -> StreamDecrypt {
        let iv = Iv::from_slice(&keys.iv[..]);
        match Aes::new(&keys.key) {
            Aes::Aes128(aes) => StreamDecrypt::Aes128(BufDecryptor::inner_iv_init(aes, iv)),
            Aes::Aes256(aes) => StreamDecrypt::Aes256(BufDecryptor::inner_iv_init(aes, iv)),
        }
    }

    /// Decrypts the next `data.len()` bytes of the stream in place.
    pub(crate) fn decrypt(&mut self, data: &mut [u8]) {
        match self {
            StreamDecrypt::Aes128(c) => c.decrypt(data),
            StreamDecrypt::Aes256(c) => c.decrypt(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST SP 800-38A, F.3.13 (CFB128-AES128.Encrypt) and F.3.17 (CFB128-AES256.Encrypt):
    /// the first two blocks.
    #[test]
    fn nist_cfb128_vectors() {
        fn hex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let cases = [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b",
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "dc7e84bfda79164b7ecd8486985d386039ffed143b28b1c832113c6331e5407b",
            ),
        ];
        for (key, cipher) in cases {
            let key = hex(key);
            let keys = KeyMaterial {
                key: if key.len() == 16 {
                    AesKey::Aes128(zeroize::Zeroizing::new(key.clone().try_into().unwrap()))
                } else {
                    AesKey::Aes256(zeroize::Zeroizing::new(key.clone().try_into().unwrap()))
                },
                iv: zeroize::Zeroizing::new(iv.clone().try_into().unwrap()),
            };
            let package = PackageCipher::new(&keys);
            let mut data = plain.clone();
            package.encrypt(&mut data);
            assert_eq!(data, hex(cipher));
            package.decrypt(&mut data);
            assert_eq!(data, plain);

            // The stream, fed in uneven pieces, gives the same bytes.
            let mut stream = StreamEncrypt::new(&keys);
            let mut data = plain.clone();
            let (a, rest) = data.split_at_mut(5);
            let (b, c) = rest.split_at_mut(17);
            stream.encrypt(a);
            stream.encrypt(b);
            stream.encrypt(c);
            assert_eq!(data, hex(cipher));
            let mut stream = StreamDecrypt::new(&keys);
            for chunk in data.chunks_mut(3) {
                stream.decrypt(chunk);
            }
            assert_eq!(data, plain);
        }
    }
}
