//! The embedded store's writer: one thread that owns every write transaction.
//!
//! Callers send [`Op`]s over a channel. The writer takes the first one, then everything
//! else already queued (up to a batch limit), applies them in order in **one** write
//! transaction, commits it durably (one fsync for the whole batch: group commit), updates the
//! in-memory copies, and only then answers each caller. While a commit is on the disk, new
//! operations queue up and make the next batch, so the more callers there are, the more each
//! fsync carries.
//!
//! Most batches are made durable by the commit log ([`super::log`]): one sequential
//! record and one `fdatasync`, the redb transaction itself committed without durability.
//! Every `checkpoint_interval` (and when the log is full, when the key ring changes, and at
//! shutdown) a batch is committed durably instead, which persists everything before it and
//! starts a new log epoch.
//!
//! A storage failure fails the whole batch (every caller gets the error, nothing of it is
//! visible); an error of one operation alone (a generation overflow) fails only that one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::log::{Log, LogOp};
use super::schema::{
    DEVICE_OWNERS, DEVICE_SEQ_KEY, GENERATIONS, LOG_EPOCH_KEY, META, TOKEN_KEYS, USER_DEVICES,
};
use super::Shared;
use crate::store::{Result, StoreError, TokenKey};

/// One operation for the writer, with where to send its answer.
pub(super) struct Op {
    pub(super) request: Request,
    pub(super) reply: oneshot::Sender<Result<Answer>>,
}

/// What to do.
pub(super) enum Request {
    Bump {
        pid: i32,
        uid: i64,
    },
    AddDevice {
        pid: i32,
        uid: i64,
        apptype: String,
        token: String,
        now_ms: i64,
        max_per_user: usize,
    },
    RemoveDevice {
        pid: i32,
        uid: i64,
        token: String,
    },
    /// Store `candidate` if the key ring is empty; answer the ring.
    EnsureTokenKey {
        candidate: TokenKey,
    },
    /// Check that a write transaction can begin.
    Ping,
    /// Finish what is queued before this, then stop.
    Shutdown,
}

/// What an operation answers.
pub(super) enum Answer {
    Generation(u64),
    Removed(bool),
    TokenKeys(Vec<TokenKey>),
    Done,
}

/// In-memory state to update once a batch is durable.
#[derive(Default)]
struct Effects {
    generations: Vec<((i32, i64), u64)>,
    token_keys: Option<Vec<TokenKey>>,
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) shared: Arc<Shared>,
    pub(super) ops: mpsc::Receiver<Op>,
    pub(super) next_device_seq: u64,
    pub(super) max_batch: usize,
    pub(super) quick_repair: bool,
    pub(super) log: Log,
    pub(super) checkpoint_interval: Duration,
    pub(super) last_checkpoint: Instant,
}

impl Writer {
    /// Serves batches until [`Request::Shutdown`] or until every sender is gone.
    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut shutdown = Vec::new();
        while let Some(first) = self.ops.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            // Everything after a shutdown request is refused.
            if let Some(at) = batch
                .iter()
                .position(|op| matches!(op.request, Request::Shutdown))
            {
                shutdown.extend(batch.drain(at..));
            }
            if !batch.is_empty() {
                self.run_batch(&mut batch);
            }
            if !shutdown.is_empty() {
                break;
            }
        }
        // Stop: persist what only the log holds, refuse what is still queued, let go of the
        // database, then answer the shutdown requests (so that `close` returns after the
        // file is released).
        if self.log.used() > 0 {
            if let Err(error) = self.checkpoint() {
                tracing::error!(%error, "the last checkpoint failed; the commit log keeps the writes");
            }
        }
        self.ops.close();
        while let Ok(op) = self.ops.try_recv() {
            shutdown.push(op);
        }
        self.shared.mark_closed();
        drop(self.db);
        for op in shutdown {
            let answer = match op.request {
                Request::Shutdown => Ok(Answer::Done),
                _ => Err(StoreError::Closed),
            };
            let _ = op.reply.send(answer);
        }
    }

    /// Applies `batch` in one transaction and answers every operation in it.
    fn run_batch(&mut self, batch: &mut Vec<Op>) {
        let first_seq = self.next_device_seq;
        match self.apply(batch) {
            Ok((answers, effects)) => {
                self.shared.apply(effects.generations, effects.token_keys);
                for (op, answer) in batch.drain(..).zip(answers) {
                    // A caller that gave up no longer listens; nothing to do then.
                    let _ = op.reply.send(answer);
                }
            }
            Err(error) => {
                tracing::error!(%error, ops = batch.len(), "store batch failed");
                self.next_device_seq = first_seq;
                for op in batch.drain(..) {
                    let _ = op.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Runs `batch` in one write transaction and, if it changed anything, makes it durable:
    /// by a commit log record, or by a durable commit (a checkpoint). The outer error fails
    /// the whole batch; the inner results are per operation.
    fn apply(&mut self, batch: &[Op]) -> Result<(Vec<Result<Answer>>, Effects)> {
        let write = |e: redb::StorageError| StoreError::backend("write to the database", e);
        let mut txn = self.begin()?;
        let mut checkpoint = self.last_checkpoint.elapsed() >= self.checkpoint_interval
            || batch
                .iter()
                .any(|op| matches!(op.request, Request::EnsureTokenKey { .. }));

        let first_seq = self.next_device_seq;
        let mut answers = Vec::with_capacity(batch.len());
        let mut effects = Effects::default();
        let mut logged = Vec::new();
        let mut dirty = false;
        {
            let mut tables = Tables::open(&txn)?;
            for op in batch {
                let answer = tables
                    .apply(
                        &op.request,
                        &mut self.next_device_seq,
                        &mut effects,
                        &mut logged,
                        &mut dirty,
                    )
                    .map_err(write)?;
                answers.push(answer);
            }
            if self.next_device_seq != first_seq {
                tables
                    .meta
                    .insert(DEVICE_SEQ_KEY, self.next_device_seq)
                    .map_err(write)?;
            }
            // Durable in the log before the transaction becomes visible.
            if dirty && !checkpoint && !self.log.append(&logged)? {
                checkpoint = true;
            }
            if dirty && checkpoint {
                tables
                    .meta
                    .insert(LOG_EPOCH_KEY, self.log.epoch() + 1)
                    .map_err(write)?;
            }
        }
        if dirty {
            let durability = if checkpoint {
                Durability::Immediate
            } else {
                Durability::None
            };
            txn.set_durability(durability)
                .map_err(|e| StoreError::backend("set the durability", e))?;
            txn.commit()
                .map_err(|e| StoreError::backend("commit a write", e))?;
            if checkpoint {
                self.checkpointed();
            }
            self.shared.count_commit(batch.len());
        } else {
            txn.abort()
                .map_err(|e| StoreError::backend("end a read-only batch", e))?;
        }
        Ok((answers, effects))
    }

    fn begin(&self) -> Result<WriteTransaction> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| StoreError::backend("begin a write transaction", e))?;
        txn.set_quick_repair(self.quick_repair);
        Ok(txn)
    }

    /// A durable commit of nothing but a new log epoch: persists every commit before it.
    fn checkpoint(&mut self) -> Result<()> {
        let mut txn = self.begin()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::backend("set the durability", e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::backend("open a table", e))?;
            meta.insert(LOG_EPOCH_KEY, self.log.epoch() + 1)
                .map_err(|e| StoreError::backend("write to the database", e))?;
        }
        txn.commit()
            .map_err(|e| StoreError::backend("commit a checkpoint", e))?;
        self.checkpointed();
        Ok(())
    }

    /// After a durable commit that recorded the next epoch: the log starts afresh.
    fn checkpointed(&mut self) {
        self.log.reset(self.log.epoch() + 1);
        self.last_checkpoint = Instant::now();
    }
}

/// Replays the commit log's records (oldest first) in one durable transaction, which also
/// records `next_epoch`; returns how many operations were replayed.
pub(super) fn replay(db: &Database, records: &[Vec<LogOp>], next_epoch: u64) -> Result<usize> {
    let write = |e: redb::StorageError| StoreError::backend("replay the commit log", e);
    let mut txn = db
        .begin_write()
        .map_err(|e| StoreError::backend("begin a write transaction", e))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::backend("set the durability", e))?;
    let mut replayed = 0;
    {
        let mut tables = Tables::open(&txn)?;
        let mut next_seq = tables
            .meta
            .get(DEVICE_SEQ_KEY)
            .map_err(write)?
            .map_or(0, |v| v.value());
        for op in records.iter().flatten() {
            match op {
                LogOp::AddDevice {
                    pid,
                    uid,
                    apptype,
                    token,
                    time_ms,
                    seq,
                    max_per_user,
                } => {
                    let cap = usize::try_from(*max_per_user).unwrap_or(usize::MAX);
                    tables
                        .add_device(*pid, *uid, apptype, token, *time_ms, *seq, cap)
                        .map_err(write)?;
                    next_seq = next_seq.max(seq.saturating_add(1));
                }
                LogOp::RemoveDevice { pid, uid, token } => {
                    tables.remove_device(*pid, *uid, token).map_err(write)?;
                }
                LogOp::Generation { pid, uid, value } => {
                    tables
                        .generations
                        .insert((*pid, *uid), *value)
                        .map_err(write)?;
                }
            }
            replayed += 1;
        }
        tables
            .meta
            .insert(DEVICE_SEQ_KEY, next_seq)
            .map_err(write)?;
        tables
            .meta
            .insert(LOG_EPOCH_KEY, next_epoch)
            .map_err(write)?;
    }
    txn.commit()
        .map_err(|e| StoreError::backend("commit the replayed log", e))?;
    Ok(replayed)
}

/// The tables, open in one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    generations: Table<'t, (i32, i64), u64>,
    owners: Table<'t, (i32, &'static str), i64>,
    users: Table<'t, (i32, i64, &'static str), (&'static str, i64, u64)>,
    keys: Table<'t, u8, [u8; 32]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        let open = |e: redb::TableError| StoreError::backend("open a table", e);
        Ok(Tables {
            meta: txn.open_table(META).map_err(open)?,
            generations: txn.open_table(GENERATIONS).map_err(open)?,
            owners: txn.open_table(DEVICE_OWNERS).map_err(open)?,
            users: txn.open_table(USER_DEVICES).map_err(open)?,
            keys: txn.open_table(TOKEN_KEYS).map_err(open)?,
        })
    }

    /// Applies one request. `Err` is a storage failure (the batch fails); `Ok(Err)` a
    /// failure of this request alone.
    fn apply(
        &mut self,
        request: &Request,
        next_seq: &mut u64,
        effects: &mut Effects,
        logged: &mut Vec<LogOp>,
        dirty: &mut bool,
    ) -> redb::Result<Result<Answer>> {
        Ok(match *request {
            Request::Bump { pid, uid } => {
                let current = self.generations.get((pid, uid))?.map_or(0, |g| g.value());
                match current.checked_add(1) {
                    Some(next) => {
                        self.generations.insert((pid, uid), next)?;
                        logged.push(LogOp::Generation {
                            pid,
                            uid,
                            value: next,
                        });
                        effects.generations.push(((pid, uid), next));
                        *dirty = true;
                        Ok(Answer::Generation(next))
                    }
                    None => Err(StoreError::GenerationOverflow { pid, uid }),
                }
            }
            Request::AddDevice {
                pid,
                uid,
                ref apptype,
                ref token,
                now_ms,
                max_per_user,
            } => {
                let seq = *next_seq;
                *next_seq += 1;
                self.add_device(pid, uid, apptype, token, now_ms, seq, max_per_user)?;
                logged.push(LogOp::AddDevice {
                    pid,
                    uid,
                    apptype: apptype.clone(),
                    token: token.clone(),
                    time_ms: now_ms,
                    seq,
                    max_per_user: max_per_user as u64,
                });
                *dirty = true;
                Ok(Answer::Done)
            }
            Request::RemoveDevice {
                pid,
                uid,
                ref token,
            } => {
                let removed = self.remove_device(pid, uid, token)?;
                if removed {
                    logged.push(LogOp::RemoveDevice {
                        pid,
                        uid,
                        token: token.clone(),
                    });
                }
                *dirty |= removed;
                Ok(Answer::Removed(removed))
            }
            Request::EnsureTokenKey { ref candidate } => {
                if self.keys.is_empty()? {
                    self.keys.insert(candidate.id, candidate.secret)?;
                    *dirty = true;
                }
                let mut ring = Vec::new();
                for entry in self.keys.iter()? {
                    let (id, secret) = entry?;
                    ring.push(TokenKey {
                        id: id.value(),
                        secret: secret.value(),
                    });
                }
                effects.token_keys = Some(ring.clone());
                Ok(Answer::TokenKeys(ring))
            }
            Request::Ping => Ok(Answer::Done),
            // Split off before a batch is applied.
            Request::Shutdown => Err(StoreError::Closed),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &mut self,
        pid: i32,
        uid: i64,
        apptype: &str,
        token: &str,
        now_ms: i64,
        seq: u64,
        max_per_user: usize,
    ) -> redb::Result<()> {
        let previous = self.owners.insert((pid, token), uid)?.map(|o| o.value());
        if let Some(owner) = previous.filter(|&owner| owner != uid) {
            self.users.remove((pid, owner, token))?;
        }
        self.users
            .insert((pid, uid, token), (apptype, now_ms, seq))?;

        // Most users are under the cap: count first, collect only when over it.
        let cap = max_per_user.max(1);
        let mut count = 0usize;
        for entry in self.users.range((pid, uid, "")..)? {
            let (key, _) = entry?;
            let (p, u, _) = key.value();
            if (p, u) != (pid, uid) {
                break;
            }
            count += 1;
        }
        if count <= cap {
            return Ok(());
        }
        let mut listed: Vec<(i64, u64, String)> = Vec::with_capacity(count);
        for entry in self.users.range((pid, uid, "")..)? {
            let (key, value) = entry?;
            let (p, u, token) = key.value();
            if (p, u) != (pid, uid) {
                break;
            }
            let (_, time_ms, seq) = value.value();
            listed.push((time_ms, seq, token.to_owned()));
        }
        listed.sort_unstable();
        for (_, _, oldest) in listed.drain(..count - cap) {
            self.users.remove((pid, uid, oldest.as_str()))?;
            self.owners.remove((pid, oldest.as_str()))?;
        }
        Ok(())
    }

    fn remove_device(&mut self, pid: i32, uid: i64, token: &str) -> redb::Result<bool> {
        let owner = self.owners.get((pid, token))?.map(|o| o.value());
        if owner != Some(uid) {
            return Ok(false);
        }
        self.owners.remove((pid, token))?;
        self.users.remove((pid, uid, token))?;
        Ok(true)
    }
}
