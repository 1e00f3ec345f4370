//! The server API's signature check (`rtmd`), the first thing every quest on the server API
//! passes, before anything is known of its sender.
//!
//! The first byte picks what the rest is:
//! * even: a msgpack payload, read as the envelope and checked for a project with two
//!   secrets and the legacy form on. It must not panic, a refusal carries one of the codes
//!   the check answers, and an accepted quest's sign is the one its secret makes.
//! * odd: a quest signed right, from salt, `ts` offset, method and secret taken from the
//!   bytes. It is accepted exactly when `ts` is within the window, and refused (200002) once
//!   any one character of its sign is changed to another hex digit or to anything else.
#![no_main]

use fpnn::{msgpack, Value};
use libfuzzer_sys::fuzz_target;
use rtm_protocol::api::Envelope;
use rtm_protocol::sign::Sign;
use rtmd::config::Project;
use rtmd::testing::check_signature;
use std::collections::HashMap;
use std::sync::OnceLock;

const PID: i32 = 11000001;
const NOW: i64 = 1_700_000_000;
const SECRETS: [&str; 2] = ["current-secret", "previous-secret"];
const METHODS: [&str; 4] = ["gettoken", "kickout", "adddevice", "getdevices"];

fn projects() -> &'static HashMap<i32, Project> {
    static PROJECTS: OnceLock<HashMap<i32, Project>> = OnceLock::new();
    PROJECTS.get_or_init(|| {
        let mut p = Project::new(PID, SECRETS[0]);
        p.secrets.push(SECRETS[1].into());
        p.legacy_sign = true;
        HashMap::from([(PID, p)])
    })
}

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Ok(payload) = msgpack::decode(rest) else {
            return;
        };
        let Ok(envelope) = Envelope::parse(&payload) else {
            return;
        };
        for method in METHODS {
            match check_signature(projects(), method, &envelope, NOW) {
                Ok(checked) => {
                    let matched = SECRETS.iter().any(|secret| {
                        let expected = match envelope.ts {
                            Some(ts) => Sign::new(PID, secret, envelope.salt, method, ts),
                            None => Sign::legacy(PID, secret, envelope.salt),
                        };
                        expected.matches(&checked.sign)
                    });
                    assert!(matched, "accepted a sign no secret makes");
                }
                Err(e) => assert!([200002, 200008].contains(&e.code()), "{e}"),
            }
        }
        return;
    }
    let salt = i64::from_le_bytes(take(&mut rest));
    // Up to ±10 minutes away from the server clock.
    let offset = i64::from(i16::from_le_bytes(take(&mut rest))) % 600;
    let [which, at, to] = take(&mut rest);
    let method = METHODS[usize::from(which) % METHODS.len()];
    let secret = SECRETS[usize::from(which >> 4) % SECRETS.len()];
    let ts = NOW + offset;
    let sign = Sign::new(PID, secret, salt, method, ts).to_hex();
    let payload = |sign: &str| {
        Value::map()
            .with("pid", PID)
            .with("sign", sign)
            .with("salt", salt)
            .with("ts", ts)
    };
    let signed = payload(&sign);
    let envelope = Envelope::parse(&signed).expect("our own envelope");
    let result = check_signature(projects(), method, &envelope, NOW);
    if offset.abs() <= 300 {
        let checked = result.expect("a right sign within the window");
        assert_eq!(checked.sign.to_hex(), sign);
    } else {
        assert_eq!(result.expect_err("outside the window").code(), 200008);
    }
    // Any one character changed: refused, whatever the case of the rest.
    let i = usize::from(at) % sign.len();
    let mut changed = sign.to_lowercase().into_bytes();
    let replacement = b"0123456789abcdefXYZ: "[usize::from(to) % 21];
    if changed[i].to_ascii_lowercase() == replacement.to_ascii_lowercase() {
        return;
    }
    changed[i] = replacement;
    let changed = String::from_utf8(changed).expect("ASCII");
    let forged = payload(&changed);
    let envelope = Envelope::parse(&forged).expect("an envelope");
    let e = check_signature(projects(), method, &envelope, NOW).expect_err("a changed sign");
    assert_eq!(e.code(), 200002, "{e}");
});
