//! The embedded store's writer: one thread that owns every write transaction.
//!
//! Callers send [`Op`]s over a channel. The writer takes the first one, then everything
//! else already queued (up to a batch limit), applies them in order in **one** write
//! transaction, commits it durably (one fsync for the whole batch: group commit), updates the
//! in-memory copies, and only then answers each caller. While a commit is on the disk, new
//! operations queue up and make the next batch, so the more callers there are, the more each
//! fsync carries.
//!
//! A storage failure fails the whole batch (every caller gets the error, nothing of it is
//! visible); an error of one operation alone (a generation overflow) fails only that one.

use std::sync::Arc;

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::owners::OwnerIndex;
use super::schema::{GENERATIONS, TOKEN_KEYS, USER_DEVICES};
use super::shared::Shared;
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
    pub(super) owners: OwnerIndex,
    pub(super) max_batch: usize,
    pub(super) quick_repair: bool,
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
        // Stop: refuse what is still queued, let go of the database, then answer the
        // shutdown requests (so that `close` returns after the file is released).
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
        match self.apply(batch) {
            Ok((answers, effects)) => {
                self.owners.commit();
                self.shared.apply(effects.generations, effects.token_keys);
                for (op, answer) in batch.drain(..).zip(answers) {
                    // A caller that gave up no longer listens; nothing to do then.
                    let _ = op.reply.send(answer);
                }
            }
            Err(error) => {
                tracing::error!(%error, ops = batch.len(), "store batch failed");
                self.owners.rollback();
                for op in batch.drain(..) {
                    let _ = op.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Runs `batch` in one write transaction, committed durably if it changed anything.
    /// The outer error fails the whole batch; the inner results are per operation.
    fn apply(&mut self, batch: &[Op]) -> Result<(Vec<Result<Answer>>, Effects)> {
        let write = |e: redb::StorageError| StoreError::backend("write to the database", e);
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| StoreError::backend("begin a write transaction", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::backend("set the durability", e))?;
        txn.set_quick_repair(self.quick_repair);

        let mut answers = Vec::with_capacity(batch.len());
        let mut effects = Effects::default();
        let mut dirty = false;
        {
            let mut tables = Tables::open(&txn)?;
            for op in batch {
                let answer = tables
                    .apply(&op.request, &mut self.owners, &mut effects, &mut dirty)
                    .map_err(write)?;
                answers.push(answer);
            }
        }
        if dirty {
            txn.commit()
                .map_err(|e| StoreError::backend("commit a write", e))?;
            self.shared.count_commit(batch.len(), self.owners.len());
        } else {
            txn.abort()
                .map_err(|e| StoreError::backend("end a read-only batch", e))?;
        }
        Ok((answers, effects))
    }
}

/// The tables, open in one write transaction.
struct Tables<'t> {
    generations: Table<'t, (i32, i64), u64>,
    users: Table<'t, (i32, i64, &'static str), (&'static str, i64, u64)>,
    keys: Table<'t, u8, [u8; 32]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        let open = |e: redb::TableError| StoreError::backend("open a table", e);
        Ok(Tables {
            generations: txn.open_table(GENERATIONS).map_err(open)?,
            users: txn.open_table(USER_DEVICES).map_err(open)?,
            keys: txn.open_table(TOKEN_KEYS).map_err(open)?,
        })
    }

    /// Applies one request. `Err` is a storage failure (the batch fails); `Ok(Err)` a
    /// failure of this request alone.
    fn apply(
        &mut self,
        request: &Request,
        owners: &mut OwnerIndex,
        effects: &mut Effects,
        dirty: &mut bool,
    ) -> redb::Result<Result<Answer>> {
        Ok(match *request {
            Request::Bump { pid, uid } => {
                let current = self.generations.get((pid, uid))?.map_or(0, |g| g.value());
                match current.checked_add(1) {
                    Some(next) => {
                        self.generations.insert((pid, uid), next)?;
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
                self.add_device(owners, pid, uid, apptype, token, now_ms, max_per_user)?;
                *dirty = true;
                Ok(Answer::Done)
            }
            Request::RemoveDevice {
                pid,
                uid,
                ref token,
            } => {
                let removed = self.remove_device(owners, pid, uid, token)?;
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

    /// Adds (moves, refreshes) a device, then drops the user's oldest beyond the cap.
    ///
    /// A device's `seq` is one more than the largest of its user's other devices: it orders
    /// devices added in the same millisecond, and needs no counter of its own.
    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &mut self,
        owners: &mut OwnerIndex,
        pid: i32,
        uid: i64,
        apptype: &str,
        token: &str,
        now_ms: i64,
        max_per_user: usize,
    ) -> redb::Result<()> {
        if let Some(owner) = owners.set(pid, token, uid).filter(|&owner| owner != uid) {
            self.users.remove((pid, owner, token))?;
        }

        // The user's other devices: how many, and the newest seq.
        let mut others = 0usize;
        let mut last_seq = 0u64;
        for entry in self.users.range((pid, uid, "")..)? {
            let (key, value) = entry?;
            let (p, u, listed) = key.value();
            if (p, u) != (pid, uid) {
                break;
            }
            if listed != token {
                others += 1;
                last_seq = last_seq.max(value.value().2);
            }
        }
        self.users
            .insert((pid, uid, token), (apptype, now_ms, last_seq + 1))?;

        let cap = max_per_user.max(1);
        let count = others + 1;
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
            owners.remove(pid, &oldest);
        }
        Ok(())
    }

    /// Deletes `(pid, uid, token)` if it is there: the row itself says whether `uid` owns it.
    fn remove_device(
        &mut self,
        owners: &mut OwnerIndex,
        pid: i32,
        uid: i64,
        token: &str,
    ) -> redb::Result<bool> {
        let removed = self.users.remove((pid, uid, token))?.is_some();
        if removed {
            owners.remove(pid, token);
        }
        Ok(removed)
    }
}
