//! Checking the signature of server API quests.
//!
//! `sign = UPPER_HEX(MD5("{pid}:{secret}:{salt}:{method}:{ts}"))` ([`rtm_protocol::sign`]),
//! compared without regard to case and in constant time, against every secret of the project
//! (rotation). Then `ts` must be within the project's window of the server clock. The request
//! must then not have been seen while that `ts` is inside the window (the replay window,
//! [`crate::fingerprint`]; once `ts` is outside, the `ts` check refuses the quest anyway, so
//! it need not be kept longer). The legacy form, without `ts`, has no such bound: its
//! requests are kept for twice the window. It signs `"{pid}:{secret}:{salt}"` (neither the
//! method nor `ts`) and is accepted only when the project enables it.

use super::error::ApiError;
use crate::config::Project;
use rtm_protocol::api::Envelope;
use rtm_protocol::sign::Sign;
use std::collections::HashMap;
use std::time::Duration;

/// A quest whose signature and `ts` checked out, which the replay window has not seen yet.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The project.
    pub project: &'a Project,
    /// The sign (the 16 bytes its hex spells, in either case).
    pub sign: Sign,
    /// How long the replay window remembers the request.
    pub replay_ttl: Duration,
}

/// Checks pid, sign and `ts` of a server quest of `method` at `now_secs` (not the replay
/// window, which needs the store).
pub fn check<'a>(
    projects: &'a HashMap<i32, Project>,
    method: &str,
    envelope: &Envelope<'_>,
    now_secs: i64,
) -> Result<Checked<'a>, ApiError> {
    let project = envelope
        .pid
        .to_i32()
        .and_then(|pid| projects.get(&pid))
        .ok_or(ApiError::UnknownProject(envelope.pid))?;
    // The sign is the digest in hex, of either case; anything else matches no secret.
    let given = Sign::from_hex(envelope.sign).ok_or(ApiError::BadSign(project.pid))?;
    let (pid, salt, window) = (project.pid, envelope.salt, project.sign_window);
    let replay_ttl = match envelope.ts {
        Some(ts) => {
            let signed = project
                .secrets
                .iter()
                .any(|secret| Sign::new(pid, secret, salt, method, ts).matches(&given));
            if !signed {
                return Err(ApiError::BadSign(pid));
            }
            let skew = (i128::from(now_secs) - ts.get()).unsigned_abs();
            if skew > u128::from(window.as_secs()) {
                return Err(ApiError::Clock {
                    ts,
                    skew,
                    now: now_secs,
                    window: window.as_secs(),
                });
            }
            // Until `ts` leaves the window, plus a second for the clock's granularity: the
            // ts check passes while `now_secs <= ts + window`, which lasts until the Unix
            // second `ts + window + 1` begins. At most `2 × window + 1` (a ts at the
            // window's future edge): no less, or the last second of it would be forgotten.
            let left = ts.get() + i128::from(window.as_secs()) - i128::from(now_secs) + 1;
            Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1))
                .min(window * 2 + Duration::from_secs(1))
        }
        None => {
            if !project.legacy_sign {
                return Err(ApiError::LegacySignRefused(pid));
            }
            let signed = project
                .secrets
                .iter()
                .any(|secret| Sign::legacy(pid, secret, salt).matches(&given));
            if !signed {
                return Err(ApiError::BadSign(pid));
            }
            window * 2
        }
    };
    Ok(Checked {
        project,
        sign: given,
        replay_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpnn::Value;
    use rtm_protocol::sign::{sign, sign_legacy, upper_hex_md5};

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

    /// Reads the envelope and checks it, as the server API does.
    fn check_quest<'a>(
        projects: &'a HashMap<i32, Project>,
        method: &str,
        quest: &Value,
        now: i64,
    ) -> Result<Checked<'a>, ApiError> {
        check(projects, method, &Envelope::parse(quest)?, now)
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn good_signs_with_any_secret_and_any_case() {
        let ps = projects(false);
        let q = quest(7, "new-secret", 1, "gettoken", NOW);
        assert!(check_quest(&ps, "gettoken", &q, NOW).is_ok());
        let q = quest(7, "old-secret", 2, "gettoken", NOW);
        assert!(check_quest(&ps, "gettoken", &q, NOW).is_ok());
        let mut q = quest(7, "new-secret", 3, "gettoken", NOW);
        let lower = q.get("sign").unwrap().as_str().unwrap().to_lowercase();
        if let Value::Map(entries) = &mut q {
            entries[1].1 = Value::from(lower);
        }
        let checked = check_quest(&ps, "gettoken", &q, NOW).unwrap();
        assert_eq!(
            checked.sign.to_hex(),
            sign(7, "new-secret", 3, "gettoken", NOW)
        );
    }

    #[test]
    fn signs_are_remembered_while_their_ts_is_in_the_window() {
        let ps = projects(true);
        let ttl = |ts: i64| {
            let q = quest(7, "new-secret", 9, "gettoken", ts);
            check_quest(&ps, "gettoken", &q, NOW).unwrap().replay_ttl
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
        let checked = check_quest(&ps, "gettoken", &legacy, NOW).unwrap();
        assert_eq!(checked.replay_ttl, Duration::from_secs(600));
    }

    #[test]
    fn each_failure_has_its_code() {
        let ps = projects(false);
        let code_of =
            |q: &Value, method: &str| check_quest(&ps, method, q, NOW).unwrap_err().code();
        let q = |pid, secret, method, ts| quest(pid, secret, 1, method, ts);
        assert_eq!(
            code_of(&q(8, "new-secret", "gettoken", NOW), "gettoken"),
            200002
        );
        assert_eq!(code_of(&q(7, "wrong", "gettoken", NOW), "gettoken"), 200002);
        // Signed for another method.
        assert_eq!(
            code_of(&q(7, "new-secret", "kickout", NOW), "gettoken"),
            200002
        );
        let late = q(7, "new-secret", "gettoken", NOW - 301);
        assert_eq!(code_of(&late, "gettoken"), 200008);
        let early = q(7, "new-secret", "gettoken", NOW + 301);
        assert_eq!(code_of(&early, "gettoken"), 200008);
        let edge = q(7, "new-secret", "gettoken", NOW + 300);
        assert!(check_quest(&ps, "gettoken", &edge, NOW).is_ok());
        assert_eq!(code_of(&Value::map().with("pid", 7), "gettoken"), 10009);
        let mistyped = Value::map()
            .with("pid", "7")
            .with("sign", "x")
            .with("salt", 1);
        assert_eq!(code_of(&mistyped, "gettoken"), 10010);
        // A pid out of the i32 range names no project.
        let huge = quest(i64::from(i32::MAX) + 1, "new-secret", 1, "gettoken", NOW);
        assert_eq!(code_of(&huge, "gettoken"), 200002);
    }

    #[test]
    fn legacy_signs_only_when_enabled() {
        let legacy = Value::map()
            .with("pid", 7)
            .with("sign", sign_legacy(7, "new-secret", 99))
            .with("salt", 99)
            .with("uid", 1);
        let e = check_quest(&projects(false), "gettoken", &legacy, NOW).unwrap_err();
        assert_eq!(e.code(), 200002);
        assert!(e.to_string().contains("legacy"), "{e}");
        assert!(check_quest(&projects(true), "gettoken", &legacy, NOW).is_ok());
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
        assert!(check_quest(&projects(false), "gettoken", &q, NOW).is_ok());
    }
}
