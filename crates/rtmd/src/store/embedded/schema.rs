//! The tables of the embedded store's database, and what is loaded from them at open.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | name (`schema_version`, `device_seq`) | `u64` |
//! | `generations` | `(pid, uid)` | generation (`u64`); absent means 0 |
//! | `device_owners` | `(pid, device token)` | owner uid |
//! | `user_devices` | `(pid, uid, device token)` | `(apptype, time_ms, seq)` |
//! | `token_keys` | key id | 32-byte secret |
//!
//! `device_owners` answers "who owns this token" (for moves and removes); `user_devices`
//! lists a user's devices with one range scan. `seq` orders devices added in the same
//! millisecond; the next one to hand out is `device_seq`, written in the same transaction.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::store::{Result, StoreError, TokenKey};

/// Named counters.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `(pid, uid)` → revocation generation.
pub(super) const GENERATIONS: TableDefinition<(i32, i64), u64> =
    TableDefinition::new("generations");
/// `(pid, device token)` → owner uid.
pub(super) const DEVICE_OWNERS: TableDefinition<(i32, &str), i64> =
    TableDefinition::new("device_owners");
/// `(pid, uid, device token)` → `(apptype, time_ms, seq)`.
pub(super) const USER_DEVICES: TableDefinition<(i32, i64, &str), (&str, i64, u64)> =
    TableDefinition::new("user_devices");
/// Key id → secret.
pub(super) const TOKEN_KEYS: TableDefinition<u8, [u8; 32]> = TableDefinition::new("token_keys");

/// `meta` key of the layout version.
const SCHEMA_VERSION_KEY: &str = "schema_version";
/// `meta` key of the next device sequence number.
pub(super) const DEVICE_SEQ_KEY: &str = "device_seq";
/// The epoch of the commit log's records that the database does not hold yet (see `log`).
pub(super) const LOG_EPOCH_KEY: &str = "log_epoch";
/// The layout this code reads and writes.
const SCHEMA_VERSION: u64 = 1;

/// What the store keeps in memory, read at open.
pub(super) struct Loaded {
    pub(super) generations: HashMap<(i32, i64), u64>,
    pub(super) token_keys: Vec<TokenKey>,
    pub(super) next_device_seq: u64,
}

/// Creates the tables of a new database, or checks that an existing one is an rtmd store of
/// this layout.
pub(super) fn prepare(db: &Database, path: &Path) -> Result<()> {
    let incompatible = |detail: String| StoreError::Incompatible {
        path: path.to_owned(),
        detail,
    };
    let txn = db
        .begin_write()
        .map_err(|e| StoreError::backend("begin a write transaction", e))?;
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(|e| StoreError::backend("list tables", e))?
        .map(|t| t.name().to_owned())
        .collect();
    {
        let mut meta = txn
            .open_table(META)
            .map_err(|e| incompatible(format!("table `meta`: {e}")))?;
        let version = meta
            .get(SCHEMA_VERSION_KEY)
            .map_err(|e| StoreError::backend("read the schema version", e))?
            .map(|v| v.value());
        match version {
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(incompatible(format!(
                    "layout version {other}, this rtmd reads version {SCHEMA_VERSION}"
                )))
            }
            None if tables.is_empty() => {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                    .map_err(|e| StoreError::backend("write the schema version", e))?;
            }
            None => {
                return Err(incompatible(format!(
                    "a database without rtmd's version mark (tables: {})",
                    tables.join(", ")
                )))
            }
        }
    }
    // Open (so create) every table, checking their types.
    let check = |name: &str, r: std::result::Result<(), redb::TableError>| {
        r.map_err(|e| incompatible(format!("table `{name}`: {e}")))
    };
    check("generations", txn.open_table(GENERATIONS).map(drop))?;
    check("device_owners", txn.open_table(DEVICE_OWNERS).map(drop))?;
    check("user_devices", txn.open_table(USER_DEVICES).map(drop))?;
    check("token_keys", txn.open_table(TOKEN_KEYS).map(drop))?;
    txn.commit()
        .map_err(|e| StoreError::backend("commit the schema", e))
}

/// Reads what the store serves from memory.
pub(super) fn load(db: &Database) -> Result<Loaded> {
    let read = |e: redb::StorageError| StoreError::backend("load the store", e);
    let txn = db
        .begin_read()
        .map_err(|e| StoreError::backend("begin a read transaction", e))?;
    let open = |e: redb::TableError| StoreError::backend("open a table", e);

    let mut generations = HashMap::new();
    for entry in txn
        .open_table(GENERATIONS)
        .map_err(open)?
        .iter()
        .map_err(read)?
    {
        let (key, value) = entry.map_err(read)?;
        generations.insert(key.value(), value.value());
    }

    let mut token_keys = Vec::new();
    for entry in txn
        .open_table(TOKEN_KEYS)
        .map_err(open)?
        .iter()
        .map_err(read)?
    {
        let (id, secret) = entry.map_err(read)?;
        token_keys.push(TokenKey {
            id: id.value(),
            secret: secret.value(),
        });
    }

    let next_device_seq = txn
        .open_table(META)
        .map_err(open)?
        .get(DEVICE_SEQ_KEY)
        .map_err(read)?
        .map(|v| v.value())
        .unwrap_or(0);

    Ok(Loaded {
        generations,
        token_keys,
        next_device_seq,
    })
}

/// The commit log epoch recorded by the last checkpoint (0 in a new store).
pub(super) fn log_epoch(db: &Database) -> Result<u64> {
    let txn = db
        .begin_read()
        .map_err(|e| StoreError::backend("begin a read transaction", e))?;
    let meta = txn
        .open_table(META)
        .map_err(|e| StoreError::backend("open a table", e))?;
    Ok(meta
        .get(LOG_EPOCH_KEY)
        .map_err(|e| StoreError::backend("read the log epoch", e))?
        .map(|v| v.value())
        .unwrap_or(0))
}
