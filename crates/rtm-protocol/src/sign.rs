//! The server API signature: the one implementation, for the SDK that signs and the server
//! that checks.
//!
//! Every server quest carries `pid, sign, salt, ts`, where
//! `sign = UPPER_HEX(MD5("{pid}:{secret}:{salt}:{method}:{ts}"))` and `ts` is in Unix seconds.
//! The pre-2020 SDKs signed `"{pid}:{secret}:{salt}"` and sent no `ts` ([`Sign::legacy`]).
//!
//! The text is fed to MD5 piece by piece, the integers as decimal text written on the stack:
//! no string is formatted, which keeps the server's check (one digest per secret of the
//! project, on every call) short. Integers are taken by value ([`Int`]), so a salt sent as a
//! `uint64` above `i64::MAX` is hashed as its decimal text like any other.

use crate::hex;
use crate::int::Int;
use md5::{Digest, Md5};
use std::fmt;

/// The MD5 digest a sign spells: 16 bytes, on the wire as 32 upper-case hex digits.
///
/// It has no `PartialEq`: compare signs with [`Sign::matches`], which takes the same time
/// whatever the bytes.
#[derive(Clone, Copy, Hash)]
pub struct Sign([u8; 16]);

impl Sign {
    /// The sign of a server quest: MD5 of `pid:secret:salt:method:ts`.
    ///
    /// ```
    /// use rtm_protocol::sign::Sign;
    /// let sign = Sign::new(11000001, "secret", 123, "gettoken", 1600000000);
    /// assert_eq!(sign.to_hex(), rtm_protocol::sign::sign(11000001, "secret", 123, "gettoken", 1600000000));
    /// assert_eq!(sign.to_hex().len(), 32);
    /// ```
    pub fn new(
        pid: i32,
        secret: &str,
        salt: impl Into<Int>,
        method: &str,
        ts: impl Into<Int>,
    ) -> Sign {
        digest(pid, secret, salt.into(), Some((method, ts.into())))
    }

    /// The legacy sign (no method, no `ts`): MD5 of `pid:secret:salt`.
    pub fn legacy(pid: i32, secret: &str, salt: impl Into<Int>) -> Sign {
        digest(pid, secret, salt.into(), None)
    }

    /// The sign that 32 hex digits of either case spell; `None` for any other text (which
    /// matches no secret).
    pub fn from_hex(text: &str) -> Option<Sign> {
        hex::decode(text).map(Sign)
    }

    /// The sign as it goes on the wire: 32 upper-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::upper(&self.0)
    }

    /// The digest's bytes (what the replay window keys on).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// `true` when both are the same sign; takes the same time whatever the bytes.
    pub fn matches(&self, other: &Sign) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl fmt::Debug for Sign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sign({})", self.to_hex())
    }
}

/// MD5 of `pid:secret:salt[:method:ts]`, fed piece by piece.
fn digest(pid: i32, secret: &str, salt: Int, method_ts: Option<(&str, Int)>) -> Sign {
    let mut md5 = Md5::new();
    md5.update(Int::from(pid).decimal().as_bytes());
    md5.update(b":");
    md5.update(secret.as_bytes());
    md5.update(b":");
    md5.update(salt.decimal().as_bytes());
    if let Some((method, ts)) = method_ts {
        md5.update(b":");
        md5.update(method.as_bytes());
        md5.update(b":");
        md5.update(ts.decimal().as_bytes());
    }
    Sign(md5.finalize().into())
}

/// The signature of a server quest as it goes on the wire: upper-case hex MD5 of
/// `pid:secret:salt:method:ts`.
pub fn sign(pid: i32, secret: &str, salt: i64, method: &str, ts: i64) -> String {
    Sign::new(pid, secret, salt, method, ts).to_hex()
}

/// The legacy signature (no method, no `ts`): upper-case hex MD5 of `pid:secret:salt`.
pub fn sign_legacy(pid: i32, secret: &str, salt: i64) -> String {
    Sign::legacy(pid, secret, salt).to_hex()
}

/// Upper-case hex MD5 of any text: for signs over text that [`Sign::new`] cannot take (tests
/// of what other SDKs send).
pub fn upper_hex_md5(input: &[u8]) -> String {
    hex::upper(&Md5::digest(input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(upper_hex_md5(b"abc"), "900150983CD24FB0D6963F7D28E17F72");
        assert_eq!(
            sign(11000001, "secret", 123, "gettoken", 1600000000),
            upper_hex_md5(b"11000001:secret:123:gettoken:1600000000")
        );
        assert_eq!(sign_legacy(1, "s", 2), upper_hex_md5(b"1:s:2"));
        // A salt above i64::MAX, as Python's uint64 can carry one: its decimal text.
        assert_eq!(
            Sign::new(7, "s", u64::MAX, "kickout", 5).to_hex(),
            upper_hex_md5(format!("7:s:{}:kickout:5", u64::MAX).as_bytes())
        );
    }

    #[test]
    fn signs_read_in_either_case_and_match_in_constant_time() {
        let sign = Sign::new(1, "s", 2, "gettoken", 3);
        let upper = sign.to_hex();
        let lower = Sign::from_hex(&upper.to_lowercase()).unwrap();
        assert!(lower.matches(&sign));
        assert!(!Sign::new(1, "s", 2, "gettoken", 4).matches(&sign));
        assert!(Sign::from_hex("not a sign").is_none());
        assert_eq!(format!("{sign:?}"), format!("Sign({upper})"));
    }

    proptest! {
        #[test]
        fn the_piecewise_digest_is_the_digest_of_the_text(
            pid in any::<i32>(),
            secret in ".{0,12}",
            salt in prop_oneof![any::<i64>().prop_map(Int::from), any::<u64>().prop_map(Int::from)],
            method in "[a-z]{0,12}",
            ts in any::<i64>(),
        ) {
            prop_assert_eq!(
                Sign::new(pid, &secret, salt, &method, ts).to_hex(),
                upper_hex_md5(format!("{pid}:{secret}:{salt}:{method}:{ts}").as_bytes())
            );
            prop_assert_eq!(
                Sign::legacy(pid, &secret, salt).to_hex(),
                upper_hex_md5(format!("{pid}:{secret}:{salt}").as_bytes())
            );
        }
    }
}
