//! What the replay window costs per call.
//!
//! * `store path`: `MemoryStore::check_and_record_request` (the embedded store runs the same
//!   window the same way) for a new request: the path of every signed call. On the real
//!   clock, so with a time to live of 2 s (a 300-second one would fill any window at these
//!   rates) in a window of 64 Mi requests: after the warm-up it holds the last 2–3 s of
//!   calls, tens of millions, and as many expire as arrive. One thread, then two threads
//!   calling at once (on two cores, the shards' locks and the shared count are contended
//!   for real).
//! * `steady state`: [`ReplayWindow::check_and_record_at`] on a simulated clock at 50,000
//!   calls a second with a 301-second time to live, after 301 s of such calls: the default
//!   window (16 Mi) holds 15 M requests and every call also frees the slots whose second has
//!   passed. Beside it, the same on a window small enough for the caches: the difference is
//!   the cost of the call's cache (and TLB) miss.
//!
//! Run with `cargo bench -p rtmd --bench replay_window`.

use criterion::{criterion_group, criterion_main, Criterion};
use rtmd::fingerprint::Fingerprint;
use rtmd::store::{MemoryStore, ReplayWindow, Store};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const CAPACITY: usize = 16 << 20;
const TTL: Duration = Duration::from_secs(301);

/// A fingerprint that looks random, from `n` (splitmix64).
fn fingerprint(n: u64) -> Fingerprint {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next().to_le_bytes());
    bytes[8..].copy_from_slice(&next().to_le_bytes());
    Fingerprint::from_bytes(bytes)
}

/// Polls a future that the memory store answers at once.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the memory store answers at once"),
    }
}

fn record(store: &MemoryStore, n: u64) -> bool {
    ready(store.check_and_record_request(1, &fingerprint(n), Duration::from_secs(2)))
        .expect("room: 64 Mi requests hold more than 3 s of calls at 20 M a second")
}

fn store_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay window, store path");
    group.warm_up_time(Duration::from_secs(3));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    let mut n = 0;
    let store = MemoryStore::with_replay_capacity(64 << 20);
    group.bench_function("new request, 1 thread", |b| {
        b.iter(|| {
            n += 1;
            black_box(record(&store, n))
        })
    });
    drop(store);
    let store = MemoryStore::with_replay_capacity(64 << 20);
    group.bench_function("new request, 2 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..2u64 {
                    let store = &store;
                    let from = n + t * iters;
                    scope.spawn(move || {
                        for i in 0..iters / 2 {
                            black_box(record(store, from + i));
                        }
                    });
                }
            });
            n += 2 * iters;
            // Per call: two threads made `iters` calls together.
            start.elapsed()
        })
    });
    group.finish();
}

fn steady_state(c: &mut Criterion) {
    let window = ReplayWindow::new(CAPACITY);
    let rate = 50; // calls a millisecond
    let call = |window: &ReplayWindow, n: &mut u64| {
        let now = *n / rate;
        *n += 1;
        window
            .check_and_record_at(1, &fingerprint(*n), TTL, now)
            .expect("room")
    };
    // 301 s of calls: from then on as many expire as arrive.
    let mut n = 0u64;
    while n < 301_000 * rate {
        call(&window, &mut n);
    }
    let mut group = c.benchmark_group("replay window, steady state at 50,000/s");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    group.bench_function("new request", |b| {
        b.iter(|| black_box(call(&window, &mut n)))
    });
    drop(window);
    // For scale: the same work on a window that fits in the caches (256 Ki requests, 1 s of
    // time to live at 50 calls a millisecond, 3 MiB): what a call costs without its cache miss.
    let small = ReplayWindow::new(256 << 10);
    let mut n = 0u64;
    let mut call_small = || {
        let now = n / rate;
        n += 1;
        small
            .check_and_record_at(1, &fingerprint(n), Duration::from_secs(1), now)
            .expect("room")
    };
    for _ in 0..100_000 {
        call_small();
    }
    group.bench_function("new request, a window in the caches (256 Ki)", |b| {
        b.iter(|| black_box(call_small()))
    });
    group.finish();
}

criterion_group!(benches, store_path, steady_state);
criterion_main!(benches);
