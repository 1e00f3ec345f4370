//! [`EmbeddedStore`]: the default store, a redb database in one data directory.

mod owners;
mod schema;
mod writer;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase};
use tokio::sync::{mpsc, oneshot};

use self::writer::{Answer, Op, Request, Writer};
use super::replay::{ReplayWindow, ReplayWindowStats, DEFAULT_REPLAY_CAPACITY};
use super::{DeviceRecord, Result, Store, StoreError, TokenKey, FIRST_TOKEN_KEY_ID};
use crate::fingerprint::Fingerprint;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "rtmd.redb";

/// How an [`EmbeddedStore`] is opened.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How many server API requests the replay window keeps at most, exactly (about 12.2
    /// bytes each, allocated at open and resident as they are first written).
    pub replay_capacity: usize,
    /// The most operations one commit carries. Larger batches amortise the fsync further but
    /// make the first operation of a batch wait longer.
    pub max_batch: usize,
    /// How many operations may wait for the writer before callers wait to enqueue.
    pub queue_capacity: usize,
    /// Save the allocator state with every commit, so that opening after a crash is
    /// immediate instead of a walk over the whole file; costs a second fsync per commit.
    pub quick_repair: bool,
    /// Memory redb may use to cache the file's pages.
    pub cache_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            max_batch: 1024,
            queue_capacity: 16 * 1024,
            quick_repair: false,
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Counters of an [`EmbeddedStore`]'s writer, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddedStats {
    /// Durable commits (fsyncs of a batch) since open.
    pub commits: u64,
    /// Operations those commits carried; `committed_ops / commits` is the mean batch size.
    pub committed_ops: u64,
    /// Device tokens stored, all users and projects together.
    pub devices: u64,
}

/// The durable, single-directory [`Store`], a [redb](https://docs.rs/redb) database.
///
/// * **Writes** go to one writer thread that batches whatever is queued into one
///   transaction and one fsync (group commit), and answers each caller only after that
///   commit: an acknowledged write survives `kill -9`, and power loss as far as the disk
///   honours fsync.
/// * **Generations and the key ring** are read from memory: loaded at open, updated by the
///   writer after each commit (write-through). Logins never touch the disk.
/// * **Devices** are read in a read transaction on tokio's blocking pool. Who owns each
///   token (needed to move one) is indexed in memory by the writer, about 40 bytes a device,
///   rebuilt at open: an add then writes one table instead of two, which halves the bytes
///   each durable add writes.
/// * **The replay window** is memory only: a restart forgets it, so a request signed before
///   the restart can be replayed once after it, as long as its `ts` is still inside the
///   service's time window.
///
/// The file is locked while open: a second `open` of the same directory fails, in this
/// process or another. Opening after a crash repairs the file first (a walk over all of
/// it, unless [`EmbeddedOptions::quick_repair`] was on).
///
/// Dropping it stops the writer (after the writes already queued) and waits for it, which
/// may block for one commit; [`Store::close`] does the same without blocking.
pub struct EmbeddedStore {
    path: PathBuf,
    shared: Arc<Shared>,
    replay: ReplayWindow,
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

/// What the store's handle and its writer share.
pub(super) struct Shared {
    /// `None` once the store is closed.
    db: RwLock<Option<Arc<Database>>>,
    closed: AtomicBool,
    commits: AtomicU64,
    committed_ops: AtomicU64,
    devices: AtomicU64,
    generations: RwLock<HashMap<(i32, i64), u64>>,
    token_keys: RwLock<Vec<TokenKey>>,
}

impl Shared {
    fn database(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Called by the writer once the batch that produced these values is durable.
    fn apply(&self, generations: Vec<((i32, i64), u64)>, token_keys: Option<Vec<TokenKey>>) {
        if !generations.is_empty() {
            let mut map = self
                .generations
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            map.extend(generations);
        }
        if let Some(ring) = token_keys {
            *self
                .token_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner) = ring;
        }
    }

    /// Counts a durable commit of `ops` operations, after which `devices` are stored.
    fn count_commit(&self, ops: usize, devices: usize) {
        self.devices.store(devices as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_ops
            .fetch_add(u64::try_from(ops).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in directory `dir`, with default options.
    ///
    /// This blocks: it may create the directory, repair the file after a crash, and loads the
    /// generations. Call it before serving, or on a blocking thread.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// [`open`](Self::open) with `options`.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_owned(),
            source: Arc::new(e),
            hint: "the data directory must be a directory rtmd can create and write",
        })?;
        let path = dir.join(DATABASE_FILE);
        let open_error = |e: redb::DatabaseError| StoreError::Open {
            path: path.clone(),
            hint: open_hint(&e),
            source: Arc::new(e),
        };

        let repair_logged = Cell::new(false);
        let repair_path = path.clone();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .set_repair_callback(move |session| {
                if !repair_logged.replace(true) {
                    tracing::warn!(
                        path = %repair_path.display(),
                        "the store was not closed cleanly; repairing it"
                    );
                }
                tracing::debug!(progress = session.progress(), "store repair");
            })
            .create(&path)
            .map_err(open_error)?;

        schema::prepare(&db, &path)?;
        let loaded = schema::load(&db, &path)?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db.clone())),
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            committed_ops: AtomicU64::new(0),
            devices: AtomicU64::new(loaded.owners.len() as u64),
            generations: RwLock::new(loaded.generations),
            token_keys: RwLock::new(loaded.token_keys),
        });

        let (ops, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let writer = Writer {
            db,
            shared: shared.clone(),
            ops: receiver,
            owners: loaded.owners,
            max_batch: options.max_batch.max(1),
            quick_repair: options.quick_repair,
        };
        let writer = std::thread::Builder::new()
            .name("rtmd-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                source: Arc::new(e),
                hint: "the system refused a new thread",
            })?;

        let replay = ReplayWindow::new(options.replay_capacity);
        tracing::info!(
            capacity = replay.capacity(),
            table_mib = ReplayWindow::memory_for(replay.capacity()) >> 20,
            sustained_per_second_at_300s = replay.capacity() / 302,
            "replay window: at most this many signed requests remembered (limits.replay_capacity)"
        );
        Ok(EmbeddedStore {
            path,
            shared,
            replay,
            ops: Some(ops),
            writer: Some(writer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters.
    pub fn stats(&self) -> EmbeddedStats {
        EmbeddedStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            committed_ops: self.shared.committed_ops.load(Ordering::Relaxed),
            devices: self.shared.devices.load(Ordering::Relaxed),
        }
    }

    /// Sends `request` to the writer and waits for its answer.
    async fn call(&self, request: Request) -> Result<Answer> {
        let ops = self.ops.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        ops.send(Op { request, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer stopped (it answers everything it takes).
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel makes the writer finish what is queued and stop.
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "the store writer panicked");
            }
        }
    }
}

/// What an operator can do about a failed open.
fn open_hint(error: &redb::DatabaseError) -> &'static str {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            "another rtmd (or another program) has it open; stop it or use another data directory"
        }
        redb::DatabaseError::UpgradeRequired(_) => {
            "the file was written by an older storage format; upgrade it or start afresh"
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if e.kind() != std::io::ErrorKind::InvalidData =>
        {
            "check the file's permissions and the disk"
        }
        _ => {
            "the file is damaged or not an rtmd store: move it aside (rtmd then starts empty) or \
             restore a backup"
        }
    }
}

fn unexpected(answer: &Answer) -> StoreError {
    let kind = match answer {
        Answer::Generation(_) => "a generation",
        Answer::Removed(_) => "a removal flag",
        Answer::TokenKeys(_) => "a key ring",
        Answer::Done => "a bare acknowledgement",
    };
    StoreError::Corrupt(format!("the store writer answered {kind} out of turn"))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn generation(&self, pid: i32, uid: i64) -> Result<u64> {
        self.shared.check_open()?;
        let map = self
            .shared
            .generations
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&(pid, uid)).copied().unwrap_or(0))
    }

    async fn bump_generation(&self, pid: i32, uid: i64) -> Result<u64> {
        match self.call(Request::Bump { pid, uid }).await? {
            Answer::Generation(g) => Ok(g),
            other => Err(unexpected(&other)),
        }
    }

    async fn add_device(
        &self,
        pid: i32,
        uid: i64,
        apptype: &str,
        device_token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> Result<()> {
        let request = Request::AddDevice {
            pid,
            uid,
            apptype: apptype.to_owned(),
            token: device_token.to_owned(),
            now_ms,
            max_per_user,
        };
        match self.call(request).await? {
            Answer::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn remove_device(&self, pid: i32, uid: i64, device_token: &str) -> Result<bool> {
        let request = Request::RemoveDevice {
            pid,
            uid,
            token: device_token.to_owned(),
        };
        match self.call(request).await? {
            Answer::Removed(removed) => Ok(removed),
            other => Err(unexpected(&other)),
        }
    }

    async fn devices(&self, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>> {
        let db = self.shared.database()?;
        tokio::task::spawn_blocking(move || read_devices(&db, pid, uid))
            .await
            .map_err(|e| StoreError::backend("run a read", e))?
    }

    async fn check_and_record_request(
        &self,
        pid: i32,
        fingerprint: &Fingerprint,
        ttl: Duration,
    ) -> Result<bool> {
        self.shared.check_open()?;
        self.replay.check_and_record(pid, fingerprint, ttl)
    }

    fn replay_window(&self) -> Option<ReplayWindowStats> {
        Some(self.replay.stats())
    }

    async fn token_keys(&self) -> Result<Vec<TokenKey>> {
        self.shared.check_open()?;
        {
            let ring = self
                .shared
                .token_keys
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if !ring.is_empty() {
                return Ok(ring.clone());
            }
        }
        let candidate = TokenKey::generate(FIRST_TOKEN_KEY_ID)?;
        match self.call(Request::EnsureTokenKey { candidate }).await? {
            Answer::TokenKeys(ring) => Ok(ring),
            other => Err(unexpected(&other)),
        }
    }

    async fn ping(&self) -> Result<()> {
        match self.call(Request::Ping).await? {
            Answer::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn close(&self) -> Result<()> {
        match self.call(Request::Shutdown).await {
            Ok(_) | Err(StoreError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A user's devices, oldest first, from the last committed state.
fn read_devices(db: &Database, pid: i32, uid: i64) -> Result<Vec<DeviceRecord>> {
    let read = |e: redb::StorageError| StoreError::backend("read devices", e);
    let txn = db
        .begin_read()
        .map_err(|e| StoreError::backend("begin a read transaction", e))?;
    let table = txn
        .open_table(schema::USER_DEVICES)
        .map_err(|e| StoreError::backend("open a table", e))?;
    let mut listed = Vec::new();
    for entry in table.range((pid, uid, "")..).map_err(read)? {
        let (key, value) = entry.map_err(read)?;
        let (p, u, token) = key.value();
        if (p, u) != (pid, uid) {
            break;
        }
        let (apptype, time_ms, seq) = value.value();
        listed.push((
            (time_ms, seq),
            DeviceRecord {
                apptype: apptype.to_owned(),
                device_token: token.to_owned(),
                time_ms,
            },
        ));
    }
    listed.sort_unstable_by_key(|(age, _)| *age);
    Ok(listed.into_iter().map(|(_, record)| record).collect())
}
