//! What the web layers cost per message: reading a `gettoken` call over HTTP (POST with a
//! browser's headers) and rendering its answer; reading a client's masked WebSocket message
//! holding the `gettoken` quest, and wrapping the answer for the client.
//!
//! Run with `cargo bench -p fpnn --bench web`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fpnn::web::http::{HttpSession, Incoming as HttpIncoming, Limits, RequestDecoder};
use fpnn::web::ws::{Incoming, WebSocket};
use fpnn::{Answer, Format, Frame, Quest, Value, DEFAULT_MAX_FRAME};
use std::hint::black_box;
use std::time::{Duration, SystemTime};

/// The gettoken call as a browser would POST it (the headers Chromium sends for `fetch`).
const POST: &[u8] = b"POST /service/gettoken HTTP/1.1\r\n\
Host: 127.0.0.1:13315\r\n\
Connection: keep-alive\r\n\
Content-Length: 71\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Content-Type: text/plain;charset=UTF-8\r\n\
Accept: */*\r\n\
Origin: http://127.0.0.1:8080\r\n\
Referer: http://127.0.0.1:8080/\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
\r\n\
{\"pid\":11000001,\"sign\":\"ABC\",\"salt\":123,\"ts\":1600000000,\"uid\":42,\"x\":1}";

const TOKEN: &str = "6F3A9B2C41D07E58A1C9F2B3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5";

fn web(c: &mut Criterion) {
    // The whole request is read, and nothing is left.
    let mut whole = BytesMut::from(POST);
    assert!(RequestDecoder::new(Limits::default())
        .decode(&mut whole)
        .unwrap()
        .is_some());
    assert!(whole.is_empty());
    c.bench_function("http: read a POST gettoken (with JSON params)", |b| {
        b.iter_batched_ref(
            || BytesMut::from(POST),
            |buf| black_box(RequestDecoder::new(Limits::default()).decode(buf).unwrap()),
            BatchSize::SmallInput,
        )
    });
    let answer = Answer::ok(1, Format::Json, &Value::map().with("token", TOKEN)).unwrap();
    c.bench_function("http: request in, answer out (session)", |b| {
        let mut session = HttpSession::new(Limits::default());
        let mut out = BytesMut::with_capacity(1024);
        b.iter_batched_ref(
            || BytesMut::from(POST),
            |buf| {
                let Some(HttpIncoming::Quest(q)) = session.read(buf).unwrap() else {
                    unreachable!()
                };
                let mut answer = answer.clone();
                answer.seq = q.seq.unwrap_or(0);
                session.answer(&answer, SystemTime::UNIX_EPOCH).unwrap();
                out.clear();
                session.poll_transmit(&mut out);
                black_box(out.len())
            },
            BatchSize::SmallInput,
        )
    });

    let quest = Frame::from(
        Quest::twoway(
            "gettoken",
            7,
            &Value::map()
                .with("pid", 11000001)
                .with("sign", "ABC")
                .with("salt", 123)
                .with("ts", 1600000000)
                .with("uid", 42),
        )
        .unwrap(),
    )
    .encode()
    .unwrap();
    let mut masked = BytesMut::new();
    WebSocket::client(DEFAULT_MAX_FRAME).write_frame(&quest, &mut masked);
    c.bench_function("ws: read a masked gettoken message (62 bytes)", |b| {
        let mut ws = WebSocket::server(DEFAULT_MAX_FRAME);
        b.iter_batched_ref(
            || masked.clone(),
            |buf| {
                let Some(Incoming::Frame(frame)) = ws.read(buf).unwrap() else {
                    unreachable!()
                };
                black_box(frame)
            },
            BatchSize::SmallInput,
        )
    });
    let answer_frame = Frame::from(answer).encode().unwrap();
    c.bench_function("ws: wrap an answer for the client (server end)", |b| {
        let ws = WebSocket::server(DEFAULT_MAX_FRAME);
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| {
            out.clear();
            ws.write_frame(black_box(&answer_frame), &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("ws: mask a quest (client end)", |b| {
        let ws = WebSocket::client(DEFAULT_MAX_FRAME);
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| {
            out.clear();
            ws.write_frame(black_box(&quest), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = web
}
criterion_main!(benches);
