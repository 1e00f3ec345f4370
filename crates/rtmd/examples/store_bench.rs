//! Measures the embedded store: the disk's fsync cost, durable `add_device` writes per second
//! with 1, 8 and 64 concurrent callers, generation reads per second (from memory) and device
//! reads per second (read transactions on the blocking pool).
//!
//! Writes pick a user among 1,000,000 and a new random 64-character token, as a real
//! workload would; "KiB written per commit" is what the process wrote to storage.
//!
//! ```text
//! cargo run --release -p rtmd --example store_bench -- [--seconds 3] [--dir PATH] [--quick-repair] [--preload N]
//! ```
//!
//! `--dir` puts the data on the disk to measure (default: the system's temporary directory);
//! each phase runs for `--seconds`. `--preload N` first adds N devices (with
//! 1024 callers, so in large commits) to measure on a larger file. `--open DIR` only times
//! opening an existing data directory (e.g. one left by a killed run: that includes the
//! repair).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmd::store::{EmbeddedOptions, EmbeddedStore, Store};
use tokio::task::JoinSet;

struct Args {
    seconds: f64,
    dir: Option<PathBuf>,
    quick_repair: bool,
    preload: u64,
    open: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 3.0,
        dir: None,
        quick_repair: false,
        preload: 0,
        open: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a value")?;
                args.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--dir" => args.dir = Some(it.next().ok_or("--dir needs a path")?.into()),
            "--quick-repair" => args.quick_repair = true,
            "--open" => args.open = Some(it.next().ok_or("--open needs a path")?.into()),
            "--preload" => {
                let value = it.next().ok_or("--preload needs a count")?;
                args.preload = value.parse().map_err(|e| format!("--preload: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// A cheap deterministic generator, so that runs are comparable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fsync_cost(dir: &Path) -> std::io::Result<()> {
    let path = dir.join("fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let page = [0x5au8; 4096];
    let n = 500;
    let start = Instant::now();
    for _ in 0..n {
        file.write_all(&page)?;
        file.sync_data()?;
    }
    let each = start.elapsed() / n;
    println!(
        "fsync (4 KiB append + fdatasync): {:>7.1} us each, {:>8.0} /s",
        each.as_secs_f64() * 1e6,
        1.0 / each.as_secs_f64()
    );
    drop(file);
    std::fs::remove_file(path)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

/// Bytes this process caused to be written to storage (Linux); 0 where unknown.
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn bench_adds(
    store: &Arc<EmbeddedStore>,
    callers: u32,
    seconds: f64,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let before = store.stats();
    let written_before = written_bytes();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..callers {
        let store = store.clone();
        tasks.spawn(async move {
            let mut rng = XorShift(seed ^ (u64::from(c) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let uid = (rng.next() % 1_000_000) as i64;
                let token = format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    rng.next(),
                    rng.next(),
                    rng.next(),
                    rng.next()
                );
                let now_ms = start.elapsed().as_millis() as i64;
                let t = Instant::now();
                store.add_device(1, uid, "apns", &token, now_ms, 32).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, rtmd::store::StoreError>(latencies)
        });
    }
    let mut latencies = Vec::new();
    for result in tasks.join_all().await {
        latencies.extend(result?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = store.stats();
    let commits = after.commits - before.commits;
    let ops = after.committed_ops - before.committed_ops;
    let written = written_bytes() - written_before;
    latencies.sort_unstable();
    println!(
        "add_device, {callers:>2} callers: {:>8.0} durable writes/s  ({} writes, {} commits, {:.1} per commit, {:.0} KiB written per commit; latency p50 {:.2} ms, p99 {:.2} ms)",
        latencies.len() as f64 / elapsed,
        latencies.len(),
        commits,
        ops as f64 / commits.max(1) as f64,
        written as f64 / 1024.0 / commits.max(1) as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

async fn bench_generation_reads(
    store: Arc<dyn Store>,
    tasks_n: u32,
    seconds: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..tasks_n {
        let store = store.clone();
        tasks.spawn(async move {
            let mut rng = XorShift(0x1234_5678 + u64::from(t));
            let mut reads = 0u64;
            let mut sum = 0u64;
            while Instant::now() < deadline {
                // Batches of reads between clock checks; a yield lets the other tasks in.
                for _ in 0..256 {
                    let uid = (rng.next() % 200_000) as i64;
                    sum = sum.wrapping_add(store.generation(1, uid).await?);
                    reads += 1;
                }
                tokio::task::yield_now().await;
            }
            Ok::<_, rtmd::store::StoreError>((reads, sum))
        });
    }
    let mut reads = 0;
    for result in tasks.join_all().await {
        reads += result?.0;
    }
    println!(
        "generation, {tasks_n:>2} tasks:      {:>10.0} reads/s",
        reads as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn bench_device_reads(
    store: Arc<dyn Store>,
    tasks_n: u32,
    seconds: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..tasks_n {
        let store = store.clone();
        tasks.spawn(async move {
            let mut rng = XorShift(0x9abc_def0 + u64::from(t));
            let (mut reads, mut found) = (0u64, 0usize);
            while Instant::now() < deadline {
                let uid = (rng.next() % 1_000_000) as i64;
                found += store.devices(1, uid).await?.len();
                reads += 1;
            }
            Ok::<_, rtmd::store::StoreError>((reads, found))
        });
    }
    let (mut reads, mut found) = (0, 0);
    for result in tasks.join_all().await {
        let (r, f) = result?;
        reads += r;
        found += f;
    }
    println!(
        "devices,    {tasks_n:>2} tasks:      {:>10.0} reads/s ({:.2} devices per user read)",
        reads as f64 / start.elapsed().as_secs_f64(),
        found as f64 / reads.max(1) as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if let Some(dir) = &args.open {
        let start = Instant::now();
        let store = EmbeddedStore::open(dir)?;
        println!(
            "open: {:.0} ms, {} devices ({:.1} MiB file)",
            start.elapsed().as_secs_f64() * 1e3,
            store.stats().devices,
            std::fs::metadata(store.path())?.len() as f64 / (1024.0 * 1024.0)
        );
        return Ok(());
    }
    let parent = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => std::env::temp_dir(),
    };
    let temp = tempfile::Builder::new()
        .prefix("rtmd-store-bench-")
        .tempdir_in(&parent)?;
    println!(
        "data in {}, {} s per phase, quick-repair {}",
        temp.path().display(),
        args.seconds,
        args.quick_repair
    );
    fsync_cost(temp.path())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = EmbeddedOptions {
            quick_repair: args.quick_repair,
            ..EmbeddedOptions::default()
        };
        let store = Arc::new(EmbeddedStore::open_with(temp.path(), options)?);
        if args.preload > 0 {
            let start = Instant::now();
            let mut loaders = JoinSet::new();
            for c in 0..1024u64 {
                let store = store.clone();
                let count = args.preload / 1024 + u64::from(c < args.preload % 1024);
                loaders.spawn(async move {
                    let mut rng = XorShift(0xfeed ^ (c + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    for _ in 0..count {
                        let uid = (rng.next() % 1_000_000) as i64;
                        let token = format!(
                            "{:016x}{:016x}{:016x}{:016x}",
                            rng.next(),
                            rng.next(),
                            rng.next(),
                            rng.next()
                        );
                        store.add_device(1, uid, "fcm", &token, 0, 32).await?;
                    }
                    Ok::<_, rtmd::store::StoreError>(())
                });
            }
            for result in loaders.join_all().await {
                result?;
            }
            println!(
                "preload: {} devices in {:.1} s",
                store.stats().devices,
                start.elapsed().as_secs_f64()
            );
        }
        for (i, callers) in [1, 8, 64].into_iter().enumerate() {
            bench_adds(&store, callers, args.seconds, i as u64 + 1).await?;
        }

        // 100,000 revoked users among the 200,000 the reads pick from.
        let mut bumps = JoinSet::new();
        for c in 0..64i64 {
            let store = store.clone();
            bumps.spawn(async move {
                for uid in (c..100_000).step_by(64) {
                    store.bump_generation(1, uid * 2).await?;
                }
                Ok::<_, rtmd::store::StoreError>(())
            });
        }
        for result in bumps.join_all().await {
            result?;
        }
        let as_dyn: Arc<dyn Store> = store.clone();
        for tasks in [1, 2, 64] {
            bench_generation_reads(as_dyn.clone(), tasks, args.seconds).await?;
        }
        // Even uids below 200,000 were revoked once, odd ones never.
        assert_eq!(store.generation(1, 0).await?, 1);
        assert_eq!(store.generation(1, 1).await?, 0);
        bench_device_reads(as_dyn.clone(), 64, args.seconds).await?;
        store.close().await?;
        drop(as_dyn);
        drop(store);

        // Opening loads the generations and indexes every device's owner.
        let start = Instant::now();
        let store = EmbeddedStore::open(temp.path())?;
        let stats = store.stats();
        println!(
            "reopen: {:.0} ms for {} devices and 100,000 generations ({:.1} MiB file)",
            start.elapsed().as_secs_f64() * 1e3,
            stats.devices,
            std::fs::metadata(store.path())?.len() as f64 / (1024.0 * 1024.0)
        );
        store.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
