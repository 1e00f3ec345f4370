//! The tables of the embedded store's database, and what is loaded from them at open.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | name (`schema_version`) | `u64` |
//! | `generations` | `(pid, uid)` | generation (`u64`); absent means 0 |
//! | `user_devices` | `(pid, uid, device token)` | `(apptype, time_ms, seq)` |
//! | `token_keys` | key id | 32-byte secret |
//!
//! `user_devices` lists a user's devices with one range scan. `seq` orders a user's devices
//! added in the same millisecond: each new one gets one more than the largest of that user's
//! others. Who owns a token is indexed in memory ([`OwnerIndex`]), rebuilt from
//! `user_devices` here.

use std::collections::HashMap;
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
};

use super::owners::OwnerIndex;
use crate::store::{Result, StoreError, TokenKey};

/// Named counters.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `(pid, uid)` → revocation generation.
pub(super) const GENERATIONS: TableDefinition<(i32, i64), u64> =
    TableDefinition::new("generations");
/// `(pid, uid, device token)` → `(apptype, time_ms, seq)`.
pub(super) const USER_DEVICES: TableDefinition<(i32, i64, &str), (&str, i64, u64)> =
    TableDefinition::new("user_devices");
/// Key id → secret.
pub(super) const TOKEN_KEYS: TableDefinition<u8, [u8; 32]> = TableDefinition::new("token_keys");

/// `meta` key of the layout version.
const SCHEMA_VERSION_KEY: &str = "schema_version";
/// The layout this code reads and writes.
const SCHEMA_VERSION: u64 = 1;

/// A `user_devices` key: `(pid, uid, device token)`.
type DeviceRow = (i32, i64, String);

/// What the store keeps in memory, read at open.
pub(super) struct Loaded {
    pub(super) generations: HashMap<(i32, i64), u64>,
    pub(super) token_keys: Vec<TokenKey>,
    pub(super) owners: OwnerIndex,
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
    check("user_devices", txn.open_table(USER_DEVICES).map(drop))?;
    check("token_keys", txn.open_table(TOKEN_KEYS).map(drop))?;
    txn.commit()
        .map_err(|e| StoreError::backend("commit the schema", e))
}

/// Reads what the store serves from memory, and the owner index.
pub(super) fn load(db: &Database, path: &Path) -> Result<Loaded> {
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

    let (owners, stale) = index_owners(&txn)?;
    drop(txn);
    if !stale.is_empty() {
        tracing::warn!(
            path = %path.display(),
            rows = stale.len(),
            "device tokens listed under several users; keeping the newest of each"
        );
        remove_devices(db, &stale)?;
    }

    Ok(Loaded {
        generations,
        token_keys,
        owners,
    })
}

/// Builds the owner index from `user_devices`. A token listed under several users of a
/// project (which the writer never leaves) stays with the newest; the others are returned,
/// to be deleted.
fn index_owners(txn: &ReadTransaction) -> Result<(OwnerIndex, Vec<DeviceRow>)> {
    let read = |e: redb::StorageError| StoreError::backend("index the devices", e);
    let table = txn
        .open_table(USER_DEVICES)
        .map_err(|e| StoreError::backend("open a table", e))?;
    let age = |pid: i32, uid: i64, token: &str| -> Result<(i64, u64)> {
        let row = table.get((pid, uid, token)).map_err(read)?;
        Ok(row.map_or((i64::MIN, 0), |r| {
            let (_, time_ms, seq) = r.value();
            (time_ms, seq)
        }))
    };
    let mut owners = OwnerIndex::new();
    let mut stale = Vec::new();
    for entry in table.iter().map_err(read)? {
        let (key, _) = entry.map_err(read)?;
        let (pid, uid, token) = key.value();
        if let Some(other) = owners.set(pid, token, uid) {
            if age(pid, uid, token)? < age(pid, other, token)? {
                owners.set(pid, token, other);
                stale.push((pid, uid, token.to_owned()));
            } else {
                stale.push((pid, other, token.to_owned()));
            }
        }
    }
    owners.commit();
    Ok((owners, stale))
}

/// Deletes `rows` from `user_devices`, durably.
fn remove_devices(db: &Database, rows: &[DeviceRow]) -> Result<()> {
    let write = |e: redb::StorageError| StoreError::backend("remove duplicate devices", e);
    let txn = db
        .begin_write()
        .map_err(|e| StoreError::backend("begin a write transaction", e))?;
    {
        let mut table = txn
            .open_table(USER_DEVICES)
            .map_err(|e| StoreError::backend("open a table", e))?;
        for (pid, uid, token) in rows {
            table.remove((*pid, *uid, token.as_str())).map_err(write)?;
        }
    }
    txn.commit()
        .map_err(|e| StoreError::backend("commit the removal of duplicate devices", e))
}
