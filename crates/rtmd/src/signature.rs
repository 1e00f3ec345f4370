//! Checking the signature of server API quests.
//!
//! `sign = UPPER_HEX(MD5("{pid}:{secret}:{salt}:{method}:{ts}"))`, compared without regard to
//! case and in constant time, against every secret of the project (rotation). Then `ts` must
//! be within the project's window of the server clock. The request must then not have been
//! seen while that `ts` is inside the window (the replay window, [`crate::fingerprint`]; once
//! `ts` is outside, the `ts` check refuses the quest anyway, so it need not be kept longer).
//! The legacy form, without `ts`, has no such bound: its requests are kept for twice the
//! window. It signs `"{pid}:{secret}:{salt}"` (neither the method nor `ts`) and is accepted
//! only when the project enables it.

use crate::config::Project;
use crate::fingerprint::ReplayMode;
use crate::hex::digest_from_hex;
use crate::params::{opt_int, want_int, want_str};
use fpnn::{ErrorAnswer, Value};
use md5::{Digest, Md5};
use rtm_server_sdk::code;
use std::collections::HashMap;
use std::time::Duration;

/// A quest whose signature checked out, but which the replay window has not seen yet.
#[derive(Debug)]
pub struct Signed<'a> {
    /// The project.
    pub project: &'a Project,
    /// The sign's MD5 digest (the 16 bytes its hex spells, in either case).
    pub digest: [u8; 16],
    /// How long the replay window remembers the request.
    pub replay_ttl: Duration,
}

/// Checks pid, sign and ts of a server quest (not the replay window, which needs the store).
pub fn check<'a>(
    projects: &'a HashMap<i32, Project>,
    method: &str,
    params: &'a Value,
    now_secs: i64,
) -> Result<Signed<'a>, ErrorAnswer> {
    let pid = want_int(params, "pid")?;
    let given = want_str(params, "sign")?;
    let salt = want_int(params, "salt")?;
    let ts = opt_int(params, "ts")?;
    let project = i32::try_from(pid)
        .ok()
        .and_then(|pid| projects.get(&pid))
        .ok_or_else(|| {
            ErrorAnswer::new(code::INVALID_PID_OR_SIGN, format!("unknown project {pid}"))
        })?;
    // The sign is the digest in hex, of either case; anything else matches no secret.
    let Some(digest) = digest_from_hex(given) else {
        return Err(bad_sign(project.pid));
    };
    let matches = |expected: [u8; 16]| constant_time_eq(&expected, &digest);
    let salt64 = i64::try_from(salt);
    let window = project.sign_window;
    let replay_ttl = match ts {
        Some(ts) => {
            let signed_ok =
                project
                    .secrets
                    .iter()
                    .any(|secret| match (salt64, i64::try_from(ts)) {
                        (Ok(salt), Ok(ts)) => {
                            matches(sign_digest(project.pid, secret, salt, Some((method, ts))))
                        }
                        // Out-of-range integers: sign over their decimal text all the same.
                        _ => matches(md5_of(&format!(
                            "{}:{secret}:{salt}:{method}:{ts}",
                            project.pid
                        ))),
                    });
            if !signed_ok {
                return Err(bad_sign(project.pid));
            }
            let skew = (i128::from(now_secs) - ts).unsigned_abs();
            if skew > u128::from(window.as_secs()) {
                return Err(ErrorAnswer::new(
                    code::INVALID_SERVER_TIME,
                    format!(
                        "ts {ts} is {skew} s away from the server clock ({now_secs}); the window is {} s: check the clock",
                        window.as_secs()
                    ),
                ));
            }
            // Until `ts` leaves the window, plus a second for the clock's granularity: the
            // ts check passes while `now_secs <= ts + window`, which lasts until the Unix
            // second `ts + window + 1` begins. At most `2 × window + 1` (a ts at the
            // window's future edge): no less, or the last second of it would be forgotten.
            let left = ts + i128::from(window.as_secs()) - i128::from(now_secs) + 1;
            Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1))
                .min(window * 2 + Duration::from_secs(1))
        }
        None => {
            if !project.legacy_sign {
                return Err(ErrorAnswer::new(
                    code::INVALID_PID_OR_SIGN,
                    format!(
                        "missing 'ts': project {} does not accept the legacy signature",
                        project.pid
                    ),
                ));
            }
            let signed_ok = project.secrets.iter().any(|secret| match salt64 {
                Ok(salt) => matches(sign_digest(project.pid, secret, salt, None)),
                Err(_) => matches(md5_of(&format!("{}:{secret}:{salt}", project.pid))),
            });
            if !signed_ok {
                return Err(bad_sign(project.pid));
            }
            window * 2
        }
    };
    Ok(Signed {
        project,
        digest,
        replay_ttl,
    })
}

/// The MD5 digest of the signed text, `pid:secret:salt:method:ts` (or, for the legacy form
/// without `method_ts`, `pid:secret:salt`), fed to the hasher piece by piece instead of
/// formatted into a string first: the digest of [`rtm_server_sdk::sign::sign`].
fn sign_digest(pid: i32, secret: &str, salt: i64, method_ts: Option<(&str, i64)>) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(Decimal::new(pid.into()).as_bytes());
    md5.update(b":");
    md5.update(secret.as_bytes());
    md5.update(b":");
    md5.update(Decimal::new(salt).as_bytes());
    if let Some((method, ts)) = method_ts {
        md5.update(b":");
        md5.update(method.as_bytes());
        md5.update(b":");
        md5.update(Decimal::new(ts).as_bytes());
    }
    md5.finalize().into()
}

/// The MD5 digest of a text built from integers the typed [`sign_digest`] cannot take (an
/// unsigned salt above `i64::MAX`, say).
fn md5_of(text: &str) -> [u8; 16] {
    Md5::digest(text.as_bytes()).into()
}

/// An integer's decimal text, written into a stack buffer.
struct Decimal {
    /// The text is `digits[start..]`; 20 digits and a sign hold every `i64`.
    digits: [u8; 21],
    start: usize,
}

impl Decimal {
    fn new(n: i64) -> Decimal {
        let mut digits = [0u8; 21];
        let mut start = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            start -= 1;
            digits[start] = b'-';
        }
        Decimal { digits, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

fn bad_sign(pid: i32) -> ErrorAnswer {
    ErrorAnswer::new(
        code::INVALID_PID_OR_SIGN,
        format!("invalid sign for project {pid}"),
    )
}

/// The replay answer (200006), for a project in `mode`.
pub fn replayed(mode: ReplayMode) -> ErrorAnswer {
    let ex = match mode {
        ReplayMode::Sign => {
            "replayed: this sign was already used (the project refuses any reuse of a sign): sign every quest with a new salt"
        }
        _ => "replayed: this request, with this sign, was already answered: sign a resend anew",
    };
    ErrorAnswer::new(code::SAME_SIGN, ex)
}

/// Compares two byte strings in time that depends only on their length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtm_server_sdk::sign::{sign, sign_legacy, upper_hex_md5};

    fn projects(legacy: bool) -> HashMap<i32, Project> {
        let mut p = Project::new(7, "new-secret");
        p.secrets.push("old-secret".into());
        p.legacy_sign = legacy;
        HashMap::from([(7, p)])
    }

    fn quest(pid: i64, secret: &str, salt: i64, method: &str, ts: i64) -> Value {
        Value::map()
            .with("pid", pid)
            .with("sign", sign(pid as i32, secret, salt, method, ts))
            .with("salt", salt)
            .with("ts", ts)
            .with("uid", 1)
    }

    const NOW: i64 = 1_700_000_000;

    /// The upper-case hex of a digest, as the SDK spells signs.
    fn hex(digest: [u8; 16]) -> String {
        digest.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn piecewise_digests_are_the_sdk_signs() {
        let ints = [
            0,
            1,
            -1,
            9,
            10,
            123,
            -45_678,
            1_700_000_000,
            i64::MAX,
            i64::MIN,
        ];
        for &a in &ints {
            for &b in &ints {
                for secret in ["", "secret", "a:b"] {
                    let pid = a as i32;
                    assert_eq!(
                        hex(sign_digest(pid, secret, a, Some(("gettoken", b)))),
                        sign(pid, secret, a, "gettoken", b),
                        "{pid} {secret} {a} {b}"
                    );
                    assert_eq!(
                        hex(sign_digest(pid, secret, b, None)),
                        sign_legacy(pid, secret, b)
                    );
                }
            }
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, -7, 10, 99, 100, -100, i64::MAX, i64::MIN] {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn good_signs_with_any_secret_and_any_case() {
        let ps = projects(false);
        assert!(check(
            &ps,
            "gettoken",
            &quest(7, "new-secret", 1, "gettoken", NOW),
            NOW
        )
        .is_ok());
        assert!(check(
            &ps,
            "gettoken",
            &quest(7, "old-secret", 2, "gettoken", NOW),
            NOW
        )
        .is_ok());
        let mut q = quest(7, "new-secret", 3, "gettoken", NOW);
        let lower = q.get("sign").unwrap().as_str().unwrap().to_lowercase();
        if let Value::Map(entries) = &mut q {
            entries[1].1 = Value::from(lower);
        }
        assert!(check(&ps, "gettoken", &q, NOW).is_ok());
    }

    #[test]
    fn signs_are_remembered_while_their_ts_is_in_the_window() {
        let ps = projects(true);
        let ttl = |ts: i64| {
            check(
                &ps,
                "gettoken",
                &quest(7, "new-secret", 9, "gettoken", ts),
                NOW,
            )
            .unwrap()
            .replay_ttl
        };
        // The default window is 300 s.
        assert_eq!(ttl(NOW), Duration::from_secs(301));
        assert_eq!(ttl(NOW - 300), Duration::from_secs(1));
        // The future edge: the ts passes the check until NOW + 600 has passed.
        assert_eq!(ttl(NOW + 300), Duration::from_secs(601));
        let legacy = Value::map()
            .with("pid", 7)
            .with("sign", sign_legacy(7, "new-secret", 5))
            .with("salt", 5)
            .with("uid", 1);
        let signed = check(&ps, "gettoken", &legacy, NOW).unwrap();
        assert_eq!(signed.replay_ttl, Duration::from_secs(600));
    }

    #[test]
    fn each_failure_has_its_code() {
        let ps = projects(false);
        let code_of = |q: &Value, method: &str| check(&ps, method, q, NOW).unwrap_err().code;
        assert_eq!(
            code_of(&quest(8, "new-secret", 1, "gettoken", NOW), "gettoken"),
            200002
        );
        assert_eq!(
            code_of(&quest(7, "wrong", 1, "gettoken", NOW), "gettoken"),
            200002
        );
        // Signed for another method.
        assert_eq!(
            code_of(&quest(7, "new-secret", 1, "kickout", NOW), "gettoken"),
            200002
        );
        assert_eq!(
            code_of(
                &quest(7, "new-secret", 1, "gettoken", NOW - 301),
                "gettoken"
            ),
            200008
        );
        assert_eq!(
            code_of(
                &quest(7, "new-secret", 1, "gettoken", NOW + 301),
                "gettoken"
            ),
            200008
        );
        assert!(check(
            &ps,
            "gettoken",
            &quest(7, "new-secret", 1, "gettoken", NOW + 300),
            NOW
        )
        .is_ok());
        assert_eq!(code_of(&Value::map().with("pid", 7), "gettoken"), 10009);
        assert_eq!(
            code_of(
                &Value::map()
                    .with("pid", "7")
                    .with("sign", "x")
                    .with("salt", 1),
                "gettoken"
            ),
            10010
        );
    }

    #[test]
    fn legacy_signs_only_when_enabled() {
        let legacy = Value::map()
            .with("pid", 7)
            .with("sign", sign_legacy(7, "new-secret", 99))
            .with("salt", 99)
            .with("uid", 1);
        assert_eq!(
            check(&projects(false), "gettoken", &legacy, NOW)
                .unwrap_err()
                .code,
            200002
        );
        assert!(check(&projects(true), "gettoken", &legacy, NOW).is_ok());
    }

    #[test]
    fn unsigned_64_bit_salts_sign_by_their_decimal_text() {
        let salt = u64::MAX;
        let text = format!("7:new-secret:{salt}:gettoken:{NOW}");
        let q = Value::map()
            .with("pid", 7)
            .with("sign", upper_hex_md5(text.as_bytes()))
            .with("salt", salt)
            .with("ts", NOW)
            .with("uid", 1);
        assert!(check(&projects(false), "gettoken", &q, NOW).is_ok());
    }
}
