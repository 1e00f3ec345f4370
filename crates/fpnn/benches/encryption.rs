//! What encryption costs: per frame in each mode and key size (beside the plain decoder, for
//! scale), and the key exchange per connection on each curve.
//!
//! Run with `cargo bench -p fpnn --bench encryption`.

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use fpnn::encryption::{self, Bits, ClientEncryption, Curve, FrameReceiver, Mode, PrivateKey};
use fpnn::{Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};
use std::hint::black_box;
use std::time::Duration;

/// A `gettoken` quest the size of vector V1 (62 bytes), and a 4 KiB quest.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let gettoken = Value::map()
        .with("pid", 11000001)
        .with("sign", "ABC")
        .with("salt", 123)
        .with("ts", 1600000000)
        .with("uid", 42);
    let small = Frame::from(Quest::twoway("gettoken", 7, &gettoken).unwrap())
        .encode()
        .unwrap();
    assert_eq!(small.len(), 62);
    let big = Frame::from(
        Quest::twoway("upload", 8, &Value::map().with("blob", vec![7u8; 4070])).unwrap(),
    )
    .encode()
    .unwrap();
    vec![("62B", small.to_vec()), ("4KiB", big.to_vec())]
}

fn per_frame(c: &mut Criterion) {
    let server = PrivateKey::from_bytes(Curve::Secp256r1, &[0x22; 32]).unwrap();
    let mut group = c.benchmark_group("encryption per frame");
    for (size, frame) in frames() {
        group.throughput(Throughput::Bytes(frame.len() as u64));

        group.bench_function(BenchmarkId::new("plain: copy to the output", size), |b| {
            let mut out = BytesMut::with_capacity(8192);
            b.iter(|| {
                out.clear();
                out.put_slice(black_box(&frame));
            })
        });
        group.bench_function(BenchmarkId::new("plain: FrameDecoder", size), |b| {
            let mut decoder = FrameDecoder::default();
            b.iter_batched(
                || BytesMut::from(&frame[..]),
                |mut buf| decoder.decode(&mut buf).unwrap(),
                BatchSize::SmallInput,
            )
        });

        for mode in [Mode::Package, Mode::Stream] {
            for bits in [Bits::Aes128, Bits::Aes256] {
                let label = format!("{mode:?} {}", bits.bits());
                let session = ClientEncryption::new(server.public_key().clone())
                    .mode(mode)
                    .bits(bits)
                    .start()
                    .unwrap()
                    .into_session();

                group.bench_function(BenchmarkId::new(format!("{label}: seal"), size), |b| {
                    let mut encryptor = session.encryptor();
                    let mut out = BytesMut::with_capacity(8192);
                    b.iter(|| {
                        out.clear();
                        let start = encryptor.start_frame(&mut out);
                        out.put_slice(black_box(&frame));
                        encryptor.seal_frame(&mut out, start).unwrap();
                    })
                });

                let mut wire = BytesMut::new();
                session
                    .encryptor()
                    .encrypt_frame(&frame, &mut wire)
                    .unwrap();
                group.bench_function(BenchmarkId::new(format!("{label}: receive"), size), |b| {
                    // A fresh receiver per frame, made and dropped outside the timing, so
                    // that stream mode starts at the right place in the cipher stream.
                    b.iter_batched(
                        || (session.receiver(DEFAULT_MAX_FRAME), wire.clone()),
                        |(mut receiver, mut buf): (FrameReceiver, BytesMut)| {
                            let frame = receiver.decode(&mut buf).unwrap();
                            (receiver, frame)
                        },
                        BatchSize::SmallInput,
                    )
                });
            }
        }
    }
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("encryption handshake");
    for curve in Curve::ALL {
        let server = PrivateKey::generate(curve).unwrap();
        let config = ClientEncryption::new(server.public_key().clone());
        group.bench_function(
            BenchmarkId::new("client: key pair + ECDH + derive + *key quest", curve),
            |b| {
                b.iter(|| {
                    let handshake = config.start().unwrap();
                    handshake.quest(1).unwrap()
                })
            },
        );
        let quest = config.start().unwrap().quest(1).unwrap();
        group.bench_function(
            BenchmarkId::new("server: read *key + ECDH + derive + answer", curve),
            |b| b.iter(|| encryption::accept(&server, black_box(&quest)).unwrap()),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = per_frame, handshake
}
criterion_main!(benches);
