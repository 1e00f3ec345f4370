//! What the replay window's request fingerprint costs per call, on the quests the official
//! SDKs send: the C++ `gettoken` (`{pid, sign, salt, ts, uid}`), the Python one (with
//! `version`), and an `adddevice` with a 64-byte device token. Beside it, for scale, the
//! MD5 of the signed text that every call already computes.
//!
//! Run with `cargo bench -p rtmd --bench fingerprint`.

use criterion::{criterion_group, criterion_main, Criterion};
use fpnn::Value;
use rtm_protocol::sign::Sign;
use rtmd::testing::{Fingerprint, ReplayMode};
use std::hint::black_box;
use std::time::Duration;

const SIGN: &str = "9F86D081884C7D659A2FEAA0C55AD015";
const DIGEST: [u8; 16] = *b"0123456789abcdef";

fn envelope() -> Value {
    Value::map()
        .with("pid", 11_000_001)
        .with("sign", SIGN)
        .with("salt", 27_852_800_002_698_305_i64)
        .with("ts", 1_700_000_000)
}

fn fingerprint(c: &mut Criterion) {
    let cpp = envelope().with("uid", 123_456_789);
    let python = envelope()
        .with("uid", 123_456_789)
        .with("version", "PYTHON-2.2.6");
    let adddevice = envelope()
        .with("uid", 123_456_789)
        .with("apptype", "fcm")
        .with("devicetoken", "d".repeat(64));
    let mut group = c.benchmark_group("fingerprint");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("gettoken (C++ SDK)", |b| {
        b.iter(|| Fingerprint::of_request(black_box(&DIGEST), "gettoken", black_box(&cpp)))
    });
    group.bench_function("gettoken (Python SDK, with version)", |b| {
        b.iter(|| Fingerprint::of_request(black_box(&DIGEST), "gettoken", black_box(&python)))
    });
    group.bench_function("adddevice, 64-byte token", |b| {
        b.iter(|| Fingerprint::of_request(black_box(&DIGEST), "adddevice", black_box(&adddevice)))
    });
    group.bench_function("sign mode (the digest itself)", |b| {
        b.iter(|| ReplayMode::Sign.fingerprint(black_box(&DIGEST), "gettoken", black_box(&cpp)))
    });
    group.bench_function("for scale: one sign (MD5 of the signed text)", |b| {
        b.iter(|| {
            Sign::new(
                11000001,
                black_box(SIGN),
                27852800002698305i64,
                "gettoken",
                1700000000i64,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, fingerprint);
criterion_main!(benches);
