//! An acknowledged write survives `kill -9`.
//!
//! The test re-runs its own binary as a child that writes devices and generations to an
//! embedded store from many tasks, printing each acknowledgement as it gets it. The parent
//! reads them, kills the child with SIGKILL in mid-stream (commits in flight), reopens the
//! data directory and checks that every acknowledged write is there. It does so twice on the
//! same directory, so the second child also starts from a crashed (repaired) file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmd::store::{EmbeddedOptions, EmbeddedStore, Store};
use tokio::task::JoinSet;

/// Set (to the data directory) in the child.
const CHILD_DIR: &str = "RTMD_STORE_CRASH_CHILD_DIR";
/// Set in the child to run with quick-repair commits.
const CHILD_QUICK_REPAIR: &str = "RTMD_STORE_CRASH_QUICK_REPAIR";
/// Writer tasks in the child.
const WRITERS: u32 = 16;
/// Acknowledgements to see before the kill.
const ACKS_BEFORE_KILL: usize = 1500;
const PID: i32 = 7;

/// What the child acknowledged.
#[derive(Default)]
struct Acks {
    /// `(uid, device token)`.
    devices: Vec<(i64, String)>,
    /// uid → highest acknowledged generation.
    generations: HashMap<i64, u64>,
    count: usize,
}

impl Acks {
    fn record(&mut self, line: &str) {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("dev"), Some(uid), Some(token)) => {
                self.devices.push((uid.parse().unwrap(), token.to_owned()));
                self.count += 1;
            }
            (Some("gen"), Some(uid), Some(generation)) => {
                let generation: u64 = generation.parse().unwrap();
                let best = self.generations.entry(uid.parse().unwrap()).or_default();
                *best = (*best).max(generation);
                self.count += 1;
            }
            _ => {} // the test harness's own lines
        }
    }
}

/// The child's body; a no-op when the test runs normally.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let quick_repair = std::env::var_os(CHILD_QUICK_REPAIR).is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let options = EmbeddedOptions {
            quick_repair,
            ..EmbeddedOptions::default()
        };
        let store = Arc::new(EmbeddedStore::open_with(&dir, options).unwrap());
        // Tokens are new in every run of the child.
        let run = std::process::id();
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            let store = store.clone();
            writers.spawn(async move {
                let uid = i64::from(w);
                for n in 0u64.. {
                    let token = format!("r{run}-w{w}-n{n}");
                    let now = i64::try_from(n).unwrap();
                    store
                        .add_device(PID, uid, "apns", &token, now, 1 << 30)
                        .await
                        .unwrap();
                    println!("dev {uid} {token}");
                    if n % 4 == 0 {
                        let generation = store.bump_generation(PID, uid).await.unwrap();
                        println!("gen {uid} {generation}");
                    }
                }
            });
        }
        // The parent kills this process long before; stop by ourselves if it does not.
        tokio::time::sleep(Duration::from_secs(30)).await;
        std::process::exit(3);
    });
}

/// Runs the child on `dir` until it acknowledged enough, kills it, returns its acks.
fn run_and_kill(dir: &Path, quick_repair: bool, acks: &mut Acks) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if quick_repair {
        command.env(CHILD_QUICK_REPAIR, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();

    // Lines come through a thread so that a silent child cannot hang the test.
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let start = acks.count;
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.count - start < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => acks.record(&line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the child acknowledged {} writes in 20 s (status {:?})",
                    acks.count - start,
                    child.wait()
                );
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was to be killed: {status:?}");
    // What it printed before dying counts too.
    reader.join().unwrap();
    for line in received.try_iter() {
        acks.record(&line);
    }
}

async fn check(dir: &Path, acks: &Acks) {
    let store = EmbeddedStore::open(dir).expect("the store reopens after kill -9");
    let mut listed: HashMap<i64, Vec<String>> = HashMap::new();
    for uid in 0..i64::from(WRITERS) {
        let devices = store.devices(PID, uid).await.unwrap();
        listed.insert(uid, devices.into_iter().map(|d| d.device_token).collect());
    }
    let mut missing = Vec::new();
    for (uid, token) in &acks.devices {
        if !listed[uid].contains(token) {
            missing.push(format!("{uid}/{token}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged devices lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    for (&uid, &generation) in &acks.generations {
        let found = store.generation(PID, uid).await.unwrap();
        assert!(
            found >= generation,
            "uid {uid}: acknowledged generation {generation}, found {found}"
        );
    }
    store.close().await.unwrap();
}

fn crash_twice(quick_repair: bool) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut acks = Acks::default();
    for _ in 0..2 {
        run_and_kill(dir.path(), quick_repair, &mut acks);
        runtime.block_on(check(dir.path(), &acks));
    }
    assert!(
        acks.devices.len() >= ACKS_BEFORE_KILL,
        "{}",
        acks.devices.len()
    );
    assert!(!acks.generations.is_empty());
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    crash_twice(false);
}

#[test]
fn acknowledged_writes_survive_kill_9_with_quick_repair() {
    crash_twice(true);
}
