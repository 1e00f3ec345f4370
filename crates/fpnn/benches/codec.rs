//! What the codec costs per message, on the messages RTM sends most: a `gettoken` quest the
//! size of the official vector V1, and its answer `{token}`.
//!
//! Run with `cargo bench -p fpnn --bench codec`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fpnn::{from_value, to_value, Answer, Format, Frame, FrameDecoder, Quest, Value};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::Duration;

/// The `gettoken` parameters, as a server reads them.
#[derive(Debug, Serialize, Deserialize)]
struct GetToken {
    pid: i32,
    sign: String,
    salt: i64,
    ts: i64,
    uid: i64,
}

/// The parameters of vector V1 (38 bytes of msgpack).
fn v1_params() -> Value {
    Value::map()
        .with("pid", 11000001)
        .with("sign", "ABC")
        .with("salt", 123)
        .with("ts", 1600000000)
        .with("uid", 42)
}

/// A token of 60 characters, the size RTM hands out.
const TOKEN: &str = "6F3A9B2C41D07E58A1C9F2B3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5";

fn codec(c: &mut Criterion) {
    let params = v1_params();
    let v1 = Frame::from(Quest::twoway("gettoken", 7, &params).unwrap())
        .encode()
        .unwrap();
    assert_eq!(v1.len(), 62, "the size of vector V1");

    let mut group = c.benchmark_group("codec");

    group.bench_function("encode gettoken quest (Value -> Quest -> bytes)", |b| {
        b.iter(|| {
            let quest = Quest::twoway("gettoken", 7, black_box(&params)).unwrap();
            Frame::from(quest).encode().unwrap()
        })
    });

    group.bench_function(
        "encode gettoken quest (struct -> Value -> Quest -> bytes)",
        |b| {
            let typed = GetToken {
                pid: 11000001,
                sign: "ABC".into(),
                salt: 123,
                ts: 1600000000,
                uid: 42,
            };
            b.iter(|| {
                let value = to_value(black_box(&typed)).unwrap();
                let quest = Quest::twoway("gettoken", 7, &value).unwrap();
                Frame::from(quest).encode().unwrap()
            })
        },
    );

    group.bench_function("decode V1 frame (FrameDecoder) + payload to Value", |b| {
        let mut decoder = FrameDecoder::default();
        b.iter_batched(
            || BytesMut::from(&v1[..]),
            |mut buf| {
                let Some(Frame::Quest(quest)) = decoder.decode(&mut buf).unwrap() else {
                    unreachable!()
                };
                quest.params().unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    group.bench_function("decode payload Value into struct (from_value)", |b| {
        b.iter(|| from_value::<GetToken>(black_box(&params)).unwrap())
    });

    group.bench_function("decode V1 frame + payload + from_value", |b| {
        let mut decoder = FrameDecoder::default();
        b.iter_batched(
            || BytesMut::from(&v1[..]),
            |mut buf| {
                let Some(Frame::Quest(quest)) = decoder.decode(&mut buf).unwrap() else {
                    unreachable!()
                };
                let params = quest.params().unwrap();
                from_value::<GetToken>(&params).unwrap().uid
            },
            BatchSize::SmallInput,
        )
    });

    group.bench_function("encode answer {token} (Value -> Answer -> bytes)", |b| {
        b.iter(|| {
            let body = Value::map().with("token", black_box(TOKEN));
            let answer = Answer::ok(7, Format::MsgPack, &body).unwrap();
            Frame::from(answer).encode().unwrap()
        })
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
