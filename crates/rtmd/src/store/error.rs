//! The store's error type.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;

/// A shareable error source: one failed commit answers every operation it carried, so a
/// source has to be cloneable.
pub type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// No variant says that data was lost: an operation that returns an error may or may not have
/// taken effect (a commit can fail after reaching the disk), so callers retry idempotent
/// operations or report the error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened: the directory is not usable, another process holds
    /// the database, or the file is not a valid database (corrupt or from an other program).
    #[error("cannot open the store at {}: {source}; {hint}", path.display())]
    Open {
        /// The file or directory that failed.
        path: PathBuf,
        /// What went wrong.
        source: Source,
        /// What to do about it.
        hint: &'static str,
    },
    /// The database was opened but holds data this version does not understand.
    #[error("the store at {} holds unexpected data: {detail}", path.display())]
    Incompatible {
        /// The database file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record in the store: {0}")]
    Corrupt(String),
    /// The backend (disk, database engine, Redis) failed while serving an operation.
    #[error("the store failed to {action}: {source}")]
    Backend {
        /// What the store was doing, e.g. "commit a write".
        action: &'static str,
        /// The backend's error.
        source: Source,
    },
    /// The backend cannot be reached right now (a remote store that is down or slow).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store was closed (or its writer stopped); no further operation is served.
    #[error("the store is closed")]
    Closed,
    /// An argument the store cannot use, e.g. a Redis URL it cannot parse.
    #[error("invalid {what}: {detail}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// Why it is refused.
        detail: String,
    },
    /// The replay window holds as many requests as it may; the call is refused rather than
    /// forgetting one early (which would let a replay through).
    #[error("the replay window is full ({capacity} requests); raise limits.replay_capacity or lower the request rate")]
    ReplayWindowFull {
        /// The configured number of requests the window keeps.
        capacity: usize,
    },
    /// A revocation generation cannot grow any further.
    #[error("the revocation generation of pid {pid} uid {uid} is exhausted")]
    GenerationOverflow {
        /// Project id.
        pid: i32,
        /// User id.
        uid: i64,
    },
}

impl StoreError {
    /// A [`StoreError::Backend`] from any error.
    pub fn backend(action: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            action,
            source: Arc::new(source),
        }
    }
}

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
