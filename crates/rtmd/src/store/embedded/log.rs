//! The commit log: what makes a batch of writes durable between two checkpoints of the
//! database.
//!
//! A durable redb commit writes every B-tree page the batch touched (some 90 scattered
//! pages for 64 device writes) and waits for all of them: on the virtual disks this runs on,
//! a few milliseconds a commit, which bounded the store to some 20,000 writes a second with
//! 64 callers. With the log, a batch is instead
//!
//! 1. applied in a redb transaction committed *without* durability (visible to readers,
//!    kept in memory),
//! 2. written as one record at the end of this log, in one sequential write, and made
//!    durable with one `fdatasync` of a file whose blocks already exist (no metadata to
//!    update: a fraction of a millisecond),
//!
//! and its callers are answered after step 2. Every second or so (and when the log is full,
//! and at close) a batch is committed durably instead: a *checkpoint*, which persists every
//! commit before it, records a new log epoch in the database, and starts the log afresh.
//!
//! After a crash, redb reverts to the last checkpoint, and opening the store replays the
//! records of the current epoch, in order, in one durable transaction. Records carry
//! everything their replay needs (the device's time and sequence number, the generation's
//! new value), so replaying one that the database already holds changes nothing.
//!
//! The file has a fixed size, written with zeros when created, so that writing a record
//! never grows it. A record:
//!
//! ```text
//! magic "RWAL" | epoch u64 | payload length u32 | checksum u64 | payload
//! ```
//!
//! little-endian, the checksum (FNV-1a, 64 bits) over epoch, length and payload. Reading
//! stops at the first record that is torn, of another epoch, or not a record at all.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::{Result, StoreError};

/// The log file inside the data directory.
pub const LOG_FILE: &str = "rtmd.log";

const MAGIC: [u8; 4] = *b"RWAL";
const HEADER: usize = 4 + 8 + 4 + 8;

/// One logged change, with what its replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LogOp {
    /// A device added (or refreshed, or moved) at `time_ms`, with tie-break `seq`.
    AddDevice {
        pid: i32,
        uid: i64,
        apptype: String,
        token: String,
        time_ms: i64,
        seq: u64,
        max_per_user: u64,
    },
    /// A device removed from its owner.
    RemoveDevice { pid: i32, uid: i64, token: String },
    /// A user's revocation generation set to `value`.
    Generation { pid: i32, uid: i64, value: u64 },
}

/// The open log.
pub(super) struct Log {
    file: File,
    path: PathBuf,
    size: u64,
    offset: u64,
    epoch: u64,
    buf: Vec<u8>,
}

fn io_error<'a>(path: &'a Path, what: &'static str) -> impl Fn(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Open {
        path: path.to_owned(),
        source: Arc::new(e),
        hint: what,
    }
}

/// FNV-1a over the parts, in order.
fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Log {
    /// Opens (creating it, `size` bytes of zeros, if needed) the log in `dir`, and reads the
    /// records of `epoch`: the batches committed since the last checkpoint.
    pub(super) fn open(dir: &Path, size: u64, epoch: u64) -> Result<(Log, Vec<Vec<LogOp>>)> {
        let path = dir.join(LOG_FILE);
        let fail = io_error(
            &path,
            "the commit log must be a file rtmd can read and write",
        );
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(&fail)?;
        let len = file.metadata().map_err(&fail)?.len();
        let mut records = Vec::new();
        if len > 0 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).map_err(&fail)?;
            records = read_records(&bytes, epoch);
        }
        let size = size.max(len).max(64 * 1024);
        if len < size {
            // Blocks written once now, so that records later overwrite existing blocks.
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at).map_err(&fail)?;
                at += n as u64;
            }
            file.sync_all().map_err(&fail)?;
        }
        let log = Log {
            file,
            path: path.clone(),
            size,
            offset: 0,
            epoch,
            buf: Vec::new(),
        };
        Ok((log, records))
    }

    /// The epoch records are written with.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes written since the last checkpoint.
    pub(super) fn used(&self) -> u64 {
        self.offset
    }

    /// Starts over at the beginning with `epoch` (after a checkpoint recorded it).
    pub(super) fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.offset = 0;
    }

    /// Writes `ops` as one record and makes it durable. `Ok(false)` when the log has no room
    /// for it (the caller checkpoints instead).
    pub(super) fn append(&mut self, ops: &[LogOp]) -> Result<bool> {
        self.buf.clear();
        self.buf.extend_from_slice(&MAGIC);
        self.buf.extend_from_slice(&self.epoch.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4 + 8]);
        for op in ops {
            encode(op, &mut self.buf);
        }
        let payload = self.buf.len() - HEADER;
        let Ok(payload_len) = u32::try_from(payload) else {
            return Ok(false);
        };
        self.buf[12..16].copy_from_slice(&payload_len.to_le_bytes());
        let sum = checksum(&[&self.buf[4..16], &self.buf[HEADER..]]);
        self.buf[16..24].copy_from_slice(&sum.to_le_bytes());
        let end = self.offset + self.buf.len() as u64;
        // Room is kept for a header of zeros after the last record, which ends the reading.
        if end + HEADER as u64 > self.size {
            return Ok(false);
        }
        let write = |e: std::io::Error| StoreError::backend("write the commit log", e);
        self.file
            .write_all_at(&self.buf, self.offset)
            .map_err(write)?;
        self.file.sync_data().map_err(write)?;
        self.offset = end;
        Ok(true)
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(op: &LogOp, out: &mut Vec<u8>) {
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
            out.push(1);
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(&time_ms.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&max_per_user.to_le_bytes());
            put_str(apptype, out);
            put_str(token, out);
        }
        LogOp::RemoveDevice { pid, uid, token } => {
            out.push(2);
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&uid.to_le_bytes());
            put_str(token, out);
        }
        LogOp::Generation { pid, uid, value } => {
            out.push(3);
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Reads a payload; `None` if it is not a well-formed list of ops.
fn decode(mut p: &[u8]) -> Option<Vec<LogOp>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (head, rest) = p.split_at(n);
        *p = rest;
        Some(head)
    }
    fn i32_(p: &mut &[u8]) -> Option<i32> {
        Some(i32::from_le_bytes(take(p, 4)?.try_into().ok()?))
    }
    fn u64_(p: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(p, 8)?.try_into().ok()?))
    }
    fn str_(p: &mut &[u8]) -> Option<String> {
        let n = u32::from_le_bytes(take(p, 4)?.try_into().ok()?) as usize;
        String::from_utf8(take(p, n)?.to_vec()).ok()
    }
    let mut ops = Vec::new();
    while let Some(tag) = take(&mut p, 1) {
        ops.push(match tag[0] {
            1 => {
                let pid = i32_(&mut p)?;
                let uid = u64_(&mut p)? as i64;
                let time_ms = u64_(&mut p)? as i64;
                let seq = u64_(&mut p)?;
                let max_per_user = u64_(&mut p)?;
                LogOp::AddDevice {
                    pid,
                    uid,
                    apptype: str_(&mut p)?,
                    token: str_(&mut p)?,
                    time_ms,
                    seq,
                    max_per_user,
                }
            }
            2 => LogOp::RemoveDevice {
                pid: i32_(&mut p)?,
                uid: u64_(&mut p)? as i64,
                token: str_(&mut p)?,
            },
            3 => LogOp::Generation {
                pid: i32_(&mut p)?,
                uid: u64_(&mut p)? as i64,
                value: u64_(&mut p)?,
            },
            _ => return None,
        });
    }
    Some(ops)
}

/// The records of `epoch` at the start of `bytes`, up to the first that is not one.
fn read_records(bytes: &[u8], epoch: u64) -> Vec<Vec<LogOp>> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        if header[..4] != MAGIC {
            break;
        }
        let rec_epoch = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default()) as usize;
        let sum = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if rec_epoch != epoch || checksum(&[&header[4..16], payload]) != sum {
            break;
        }
        let Some(ops) = decode(payload) else { break };
        records.push(ops);
        at += HEADER + len;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(n: u64) -> LogOp {
        LogOp::AddDevice {
            pid: 7,
            uid: -(n as i64),
            apptype: "fcm".into(),
            token: format!("tok-é-{n}"),
            time_ms: 1_700_000_000_000 + n as i64,
            seq: n,
            max_per_user: 32,
        }
    }

    #[test]
    fn records_of_the_current_epoch_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, old) = Log::open(dir.path(), 1 << 20, 3).unwrap();
        assert!(old.is_empty());
        let first = vec![
            add(1),
            LogOp::Generation {
                pid: 7,
                uid: 9,
                value: u64::MAX,
            },
        ];
        let second = vec![LogOp::RemoveDevice {
            pid: i32::MIN,
            uid: i64::MAX,
            token: String::new(),
        }];
        assert!(log.append(&first).unwrap());
        assert!(log.append(&second).unwrap());
        drop(log);
        let (_, records) = Log::open(dir.path(), 1 << 20, 3).unwrap();
        assert_eq!(records, vec![first, second]);
        // Another epoch: nothing of it is replayed.
        let (_, records) = Log::open(dir.path(), 1 << 20, 4).unwrap();
        assert!(records.is_empty());
    }

    #[test]
    fn a_new_epoch_overwrites_and_stale_records_end_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), 1 << 20, 1).unwrap();
        for n in 0..10 {
            assert!(log.append(&[add(n)]).unwrap());
        }
        log.reset(2);
        assert!(log.append(&[add(100)]).unwrap());
        drop(log);
        let (_, records) = Log::open(dir.path(), 1 << 20, 2).unwrap();
        assert_eq!(records, vec![vec![add(100)]]);
    }

    #[test]
    fn a_torn_record_ends_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), 1 << 20, 1).unwrap();
        assert!(log.append(&[add(1)]).unwrap());
        let torn_at = log.used();
        assert!(log.append(&[add(2)]).unwrap());
        assert!(log.append(&[add(3)]).unwrap());
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[torn_at as usize + HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = Log::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(records, vec![vec![add(1)]]);
    }

    #[test]
    fn a_full_log_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), 64 * 1024, 1).unwrap();
        let mut written = 0;
        while log.append(&[add(written)]).unwrap() {
            written += 1;
        }
        assert!(written > 100);
        assert!(log.used() <= 64 * 1024);
        log.reset(2);
        assert!(log.append(&[add(0)]).unwrap());
    }
}
