//! The server API signature.
//!
//! Every server quest carries `pid, sign, salt, ts`, where
//! `sign = UPPER_HEX(MD5("{pid}:{secret}:{salt}:{method}:{ts}"))` and `ts` is in Unix seconds.
//! The pre-2020 SDKs signed `"{pid}:{secret}:{salt}"` and sent no `ts` ([`sign_legacy`]).

use md5::{Digest, Md5};

/// The signature of a server quest: upper-case hex MD5 of `pid:secret:salt:method:ts`.
///
/// ```
/// let sign = rtm_server_sdk::sign::sign(11000001, "secret", 123, "gettoken", 1600000000);
/// assert_eq!(sign.len(), 32);
/// assert!(sign.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
/// ```
pub fn sign(pid: i32, secret: &str, salt: i64, method: &str, ts: i64) -> String {
    upper_hex_md5(format!("{pid}:{secret}:{salt}:{method}:{ts}").as_bytes())
}

/// The legacy signature (no method, no `ts`): upper-case hex MD5 of `pid:secret:salt`.
pub fn sign_legacy(pid: i32, secret: &str, salt: i64) -> String {
    upper_hex_md5(format!("{pid}:{secret}:{salt}").as_bytes())
}

/// Upper-case hex MD5 of `input`: the digest both signatures use.
pub fn upper_hex_md5(input: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Md5::digest(input);
    let mut out = String::with_capacity(32);
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(upper_hex_md5(b"abc"), "900150983CD24FB0D6963F7D28E17F72");
        assert_eq!(
            sign(11000001, "secret", 123, "gettoken", 1600000000),
            upper_hex_md5(b"11000001:secret:123:gettoken:1600000000")
        );
        assert_eq!(sign_legacy(1, "s", 2), upper_hex_md5(b"1:s:2"));
    }
}
