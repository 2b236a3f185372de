//! The stores behind `ports::store`: sled here (the default: one process, one directory),
//! PostgreSQL in `postgres/` (shared by replicas, one of which leads).
//!
//! sled holds jobs, the active-job index, message -> job index, the append-only audit log,
//! the job counter and the read marks under key prefixes in sled's main tree.
//!
//! A group of events gathers its [`Writes`]; [`SledStore::commit`] applies them
//! as one sled batch (visible to readers at once, and recovered all or nothing after a
//! crash), and [`SledStore::flush`] makes everything committed durable: sled's flush, then the
//! syncs sled leaves out (`sled_files.rs`), then the commit's number is written to
//! `commit.seq` (`seal.rs`), against which opening checks that sled lost nothing. The engine lets no
//! effect out before that flush has returned.
//!
//! Any write or sync error poisons the store: every later call fails with the first error,
//! and nothing is retried (a failed `fsync` may already have dropped the dirty pages it was
//! meant to write, so a retry that succeeds proves nothing).

mod backup;
mod batch;
pub mod postgres;
mod read_only;
mod seal;
mod sled_files;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use backup::{restore, BackupSummary};
pub use read_only::ReadOnly;

use batch::BatchBuilder;
use seal::{Seal, Sealed};
use sled_files::Durability;

use serde::Deserialize;

use crate::domain::JobId;
use crate::freeze::ChatFreeze;
use crate::job::{AuditEntry, Job};
use crate::ports::store::{History, ReadMarks, StorageError, Stored, Writes};

const JOB: u8 = b'j';
const ACTIVE: u8 = b'x';
const AUDIT: u8 = b'a';
const MESSAGE: u8 = b'm';
const NEXT_ID: &[u8] = b"meta:next_job_id";
/// The freeze set with `!freeze`, while one is set (JSON).
const CHAT_FREEZE: &[u8] = b"meta:chat_freeze";
/// Events that belong to no job (freezes set and lifted), as audit entries by number.
const OPS: u8 = b'o';
/// The number of the last commit applied to sled, written with each commit's batch.
const SEQ: &[u8] = b"meta:commit_seq";
/// Channel -> the newest chat message handled there (`Writes::read_marks`).
const READ_MARK: u8 = b'r';

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {0} is already in use by another opsgate process (only one may open it at a time)")]
    Locked(String),
    #[error("cannot open data directory {dir}: {source}")]
    Open { dir: String, source: std::io::Error },
    /// A file of the data directory that cannot be read for another reason than damage
    /// (permissions, an I/O error); `file` is relative to `dir`.
    #[error("cannot open data directory {dir}: cannot read `{file}`: {source}")]
    File {
        dir: String,
        file: String,
        source: std::io::Error,
    },
    #[error("there is no data directory at {0}")]
    NoDirectory(String),
    #[error("{0} is not an opsgate data directory (it has no sled log `db`)")]
    NotADataDirectory(String),
    #[error("the data directory {dir} is damaged: {detail}. opsgate will not start on it, so that no acknowledged job is silently dropped: restore the latest backup into a new directory (`opsgate restore FILE --data NEWDIR`) and keep this one for analysis (README: Backup and restore)")]
    Damaged { dir: String, detail: String },
    #[error("the data directory {dir} holds `{file}`, the write-ahead journal of an unreleased build of opsgate (2026-11-23 to 2026-12-01), which this version does not read. Open it once with opsgate 7e9b843, which moves the journal into sled and removes it, then start this version")]
    OldJournal { dir: String, file: String },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot make the data directory durable: {0}")]
    Sync(std::io::Error),
    #[error("storage failed earlier ({0}); nothing more is written")]
    Failed(String),
    #[error("corrupt record {key}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

/// Cheap to clone: clones share one sled database. Only the driver writes; clones serve
/// read-only queries (the HTTP API), so the writer's lock is never contended.
#[derive(Clone)]
pub struct SledStore {
    sled: Arc<Sled>,
}

/// sled and what makes its commits durable.
struct Sled {
    db: sled::Db,
    writer: Mutex<Writer>,
}

/// The write side: what makes commits durable, and how far they are.
struct Writer {
    durability: Durability,
    seal: Seal,
    /// The last commit applied to sled, and the last one made durable.
    applied: u64,
    sealed: u64,
    /// The first storage error; once set, nothing more is written.
    failed: Option<String>,
    batch: BatchBuilder,
}

impl Writer {
    fn check(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(first) => Err(StoreError::Failed(first.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: StoreError) -> StoreError {
        self.failed.get_or_insert_with(|| error.to_string());
        error
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.check()?;
        if self.applied == self.sealed {
            return Ok(());
        }
        let synced = self
            .durability
            .sync()
            .and_then(|()| self.seal.write(self.applied));
        match synced {
            Ok(()) => {
                self.sealed = self.applied;
                Ok(())
            }
            Err(e) => Err(self.fail(StoreError::Sync(e))),
        }
    }
}

fn job_key(id: JobId) -> [u8; 9] {
    numbered(JOB, id.0)
}

fn numbered(prefix: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

fn active_key(id: JobId) -> [u8; 9] {
    let mut k = job_key(id);
    k[0] = ACTIVE;
    k
}

fn audit_key(id: JobId, seq: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = AUDIT;
    k[1..9].copy_from_slice(&id.0.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn ops_key(seq: u64) -> [u8; 9] {
    numbered(OPS, seq)
}

fn message_key(message_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + message_id.len());
    k.push(MESSAGE);
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// The first `limit` jobs of `records` matching `keep`, looking at most at `scan`.
fn first_jobs(
    records: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    limit: usize,
    scan: usize,
    keep: impl Fn(&Job) -> bool,
) -> Result<Vec<Job>, StoreError> {
    let mut out = Vec::new();
    for item in records.take(scan) {
        let (key, bytes) = item?;
        let job: Job = decode(&key, &bytes)?;
        if keep(&job) {
            out.push(job);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

fn read_mark_key(channel: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + channel.len());
    k.push(READ_MARK);
    k.extend_from_slice(channel.as_bytes());
    k
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// The number at the start of `bytes` (a key's after its prefix, or a counter's value).
fn number_from(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn id_from(bytes: &[u8]) -> Option<JobId> {
    number_from(bytes).map(JobId)
}

fn counter(db: &sled::Db, key: &[u8]) -> Result<u64, StoreError> {
    Ok(db.get(key)?.and_then(|v| number_from(&v)).unwrap_or(0))
}

fn damaged(dir: &str, detail: String) -> StoreError {
    StoreError::Damaged {
        dir: dir.to_string(),
        detail,
    }
}

impl Sled {
    fn open(dir: &Path) -> Result<Sled, StoreError> {
        let shown = dir.display().to_string();
        let open_error = |source| StoreError::Open {
            dir: shown.clone(),
            source,
        };
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(open_error)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)
                    .and_then(|p| p.sync_all())
                    .map_err(StoreError::Sync)?;
            }
        }
        let sealed = sled_files::inspect(dir, &shown)?;
        // Dropped last if anything below fails (see `QuietDrop`).
        let db = sled_files::QuietDrop::new(sled_files::open(dir, &shown)?);
        let durability = Durability::new(db.clone(), dir).map_err(StoreError::Sync)?;
        let seal = Seal::open(dir, durability.dir(), &sealed).map_err(StoreError::Sync)?;
        let mut writer = Writer {
            durability,
            seal,
            applied: 0,
            sealed: 0,
            failed: None,
            batch: BatchBuilder::default(),
        };
        let applied = counter(&db, SEQ)?;
        match sealed {
            Sealed::Seq(sealed) if applied < sealed => {
                return Err(damaged(
                    &shown,
                    format!("sled's log ends at commit {applied}, but commit {sealed} was made durable and acknowledged"),
                ))
            }
            Sealed::Missing if applied > 0 => {
                tracing::warn!(dir = %shown, "{} was missing; it is written anew from what sled holds", seal::FILE)
            }
            Sealed::NeverWritten => {
                tracing::warn!(dir = %shown, "{} held no commit number (an earlier version was cut short while creating it); it is written anew from what sled holds", seal::FILE)
            }
            _ => {}
        }
        writer.applied = applied;
        // sled holds at least what was sealed; what it holds beyond was synced by sled's own
        // recovery or is now, so seal that.
        (writer.seal.write(applied))
            .and_then(|()| writer.seal.sync())
            .map_err(StoreError::Sync)?;
        writer.sealed = applied;
        Ok(Sled {
            db: sled::Db::clone(&db),
            writer: Mutex::new(writer),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves at worst a commit applied but not sealed,
        // which the next flush seals.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A flush that also syncs `commit.seq`: for a clean stop.
    fn close(&self) -> Result<(), StoreError> {
        let mut writer = self.writer();
        writer.sync()?;
        let synced = writer.seal.sync();
        synced.map_err(|e| writer.fail(StoreError::Sync(e)))
    }
}

impl SledStore {
    /// Opens the data directory, creating it if it does not exist. Refuses, as
    /// [`StoreError::Damaged`], a directory whose sled log lacks commits that were made
    /// durable, or that sled cannot read. Only one process may hold a data directory.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        refuse_old_journal(dir)?;
        Ok(SledStore {
            sled: Arc::new(Sled::open(dir)?),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&sled::Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&self.sled.db)
    }

    pub fn next_job_id(&self) -> Result<JobId, StoreError> {
        self.read(next_job_id_in)
    }

    /// Applies `writes` as one sled batch: readers see it at once, a crash keeps all of it
    /// or none, and the next [`flush`](Self::flush) makes it durable.
    pub fn commit(&self, writes: &Writes) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let batch = {
            let mut writer = self.sled.writer();
            writer.batch.add(writes);
            writer.batch.take()
        };
        self.apply(batch)
    }

    /// Applies a sled batch as the next commit, numbered in it (see `seal.rs`).
    fn apply(&self, mut batch: sled::Batch) -> Result<(), StoreError> {
        let mut writer = self.sled.writer();
        writer.check()?;
        let seq = writer.applied + 1;
        batch.insert(SEQ, &seq.to_be_bytes());
        match self.sled.db.apply_batch(batch) {
            Ok(()) => {
                writer.applied = seq;
                Ok(())
            }
            Err(e) => Err(writer.fail(e.into())),
        }
    }

    /// Makes every commit so far durable. Costs nothing when there is nothing new.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.sled.writer().sync()
    }

    /// A flush that also syncs `commit.seq`: for a clean stop.
    pub fn close(&self) -> Result<(), StoreError> {
        self.sled.close()
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.read(|db| job_in(db, id))
    }

    /// Jobs that are not final: what a restart must pick up.
    pub fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.read(|db| {
            let mut jobs = Vec::new();
            for item in db.scan_prefix([ACTIVE]) {
                let (key, _) = item?;
                let Some(id) = id_from(&key[1..]) else {
                    continue;
                };
                match job_in(db, id)? {
                    Some(job) => jobs.push(job),
                    // Written in one batch with its index entry: only damage separates them.
                    None => {
                        return Err(StoreError::Corrupt {
                            key: format!("job {id}"),
                            source: serde::de::Error::custom(
                                "in the active index, but its record is missing",
                            ),
                        })
                    }
                }
            }
            Ok(jobs)
        })
    }

    /// Newest jobs first, at most `limit` of those matching `keep`, looking at most at `scan`.
    pub fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: impl Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StoreError> {
        self.read(|db| first_jobs(db.scan_prefix([JOB]).rev(), limit, scan, keep))
    }

    /// Oldest first, at most `limit` of those matching `keep`, looking at most at `scan`.
    pub fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: impl Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StoreError> {
        self.read(|db| first_jobs(db.scan_prefix([JOB]), limit, scan, keep))
    }

    /// Every audit entry at or after `since_ms`, with its job (`None` for an event that
    /// belongs to no job, such as a freeze), oldest first.
    pub fn audit_since(
        &self,
        since_ms: u64,
    ) -> Result<Vec<(Option<JobId>, AuditEntry)>, StoreError> {
        self.read(|db| {
            let mut out = Vec::new();
            for item in db.scan_prefix([AUDIT]) {
                let (key, bytes) = item?;
                let entry: AuditEntry = decode(&key, &bytes)?;
                if entry.at_ms >= since_ms {
                    out.push((id_from(&key[1..]), entry));
                }
            }
            for item in db.scan_prefix([OPS]) {
                let (key, bytes) = item?;
                let entry: AuditEntry = decode(&key, &bytes)?;
                if entry.at_ms >= since_ms {
                    out.push((None, entry));
                }
            }
            out.sort_by_key(|(job, e)| (e.at_ms, *job));
            Ok(out)
        })
    }

    pub fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut prefix = [0u8; 9];
        prefix[0] = AUDIT;
        prefix[1..].copy_from_slice(&id.0.to_be_bytes());
        self.read(|db| {
            db.scan_prefix(prefix)
                .map(|item| {
                    let (key, bytes) = item?;
                    decode(&key, &bytes)
                })
                .collect()
        })
    }

    /// The freeze set with `!freeze`, if one is stored.
    pub fn chat_freeze(&self) -> Result<Option<ChatFreeze>, StoreError> {
        self.read(|db| match db.get(CHAT_FREEZE)? {
            Some(bytes) => decode(CHAT_FREEZE, &bytes).map(Some),
            None => Ok(None),
        })
    }

    /// The newest `limit` events that belong to no job, newest first.
    pub fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|db| {
            db.scan_prefix([OPS])
                .rev()
                .take(limit)
                .map(|item| {
                    let (key, bytes) = item?;
                    decode(&key, &bytes)
                })
                .collect()
        })
    }

    /// The number the next event that belongs to no job gets.
    pub fn next_ops_seq(&self) -> Result<u64, StoreError> {
        self.read(|db| {
            Ok(match db.scan_prefix([OPS]).next_back() {
                Some(item) => number_from(&item?.0[1..]).map_or(0, |n| n + 1),
                None => 0,
            })
        })
    }

    pub fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StoreError> {
        self.read(|db| Ok(db.get(message_key(message_id))?.and_then(|v| id_from(&v))))
    }

    /// The newest chat message handled in each channel.
    pub fn read_marks(&self) -> Result<ReadMarks, StoreError> {
        self.read(|db| {
            let mut marks = ReadMarks::new();
            for item in db.scan_prefix([READ_MARK]) {
                let (key, value) = item?;
                let channel = String::from_utf8_lossy(&key[1..]).into_owned();
                let message = String::from_utf8_lossy(&value).into_owned();
                marks.insert(channel.into(), message.into());
            }
            Ok(marks)
        })
    }
}

/// What the job API and the tools read from a store, whichever it is.
pub trait Archive: History {
    /// Every audit entry at or after `since_ms`, with its job (`None` for an event of no
    /// job, such as a freeze), oldest first.
    fn audit_since(&self, since_ms: u64) -> Result<Vec<(Option<JobId>, AuditEntry)>, String>;
    /// A consistent backup, in the format `opsgate restore` reads.
    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, String>;
}

impl Archive for SledStore {
    fn audit_since(&self, since_ms: u64) -> Result<Vec<(Option<JobId>, AuditEntry)>, String> {
        SledStore::audit_since(self, since_ms).map_err(|e| e.to_string())
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, String> {
        SledStore::backup(self, out).map_err(|e| e.to_string())
    }
}

impl Archive for postgres::PgReader {
    fn audit_since(&self, since_ms: u64) -> Result<Vec<(Option<JobId>, AuditEntry)>, String> {
        postgres::PgReader::audit_since(self, since_ms)
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, String> {
        postgres::PgReader::backup(self, out)
    }
}

fn failure(e: StoreError) -> StorageError {
    StorageError::new(e.to_string())
}

impl History for SledStore {
    fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        SledStore::job(self, id).map_err(failure)
    }

    fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StorageError> {
        SledStore::job_for_message(self, message_id).map_err(failure)
    }

    fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        SledStore::recent_jobs(self, limit, scan, keep).map_err(failure)
    }

    fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StorageError> {
        SledStore::audit(self, id).map_err(failure)
    }

    fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        SledStore::ops_events(self, limit).map_err(failure)
    }

    fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        SledStore::oldest_jobs(self, limit, scan, keep).map_err(failure)
    }
}

impl crate::ports::store::Store for SledStore {
    fn load(&self) -> Result<Stored, StorageError> {
        Ok(Stored {
            next_job_id: self.next_job_id().map_err(failure)?,
            chat_freeze: self.chat_freeze().map_err(failure)?,
            next_ops_seq: self.next_ops_seq().map_err(failure)?,
            active: self.active_jobs().map_err(failure)?,
        })
    }

    fn read_marks(&self) -> Result<ReadMarks, StorageError> {
        SledStore::read_marks(self).map_err(failure)
    }

    fn commit(&self, writes: Writes) -> Result<(), StorageError> {
        SledStore::commit(self, &writes).map_err(failure)
    }

    fn flush(&self) -> Result<(), StorageError> {
        SledStore::flush(self).map_err(failure)
    }

    fn close(&self) -> Result<(), StorageError> {
        SledStore::close(self).map_err(failure)
    }
}

/// The next job ID: job IDs start at 1.
fn next_job_id_in(db: &sled::Db) -> Result<JobId, StoreError> {
    Ok(JobId(counter(db, NEXT_ID)?.max(1)))
}

fn job_in(db: &sled::Db, id: JobId) -> Result<Option<Job>, StoreError> {
    let key = job_key(id);
    match db.get(key)? {
        Some(bytes) => decode(&key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Versions built between 2026-11-23 and 2026-12-01, never released, kept a write-ahead
/// journal (`journal.0`, `journal.1`) in front of sled. This version does not read it: a
/// directory that still holds one is refused rather than opened without it.
fn refuse_old_journal(dir: &Path) -> Result<(), StoreError> {
    let journal = ["journal.0", "journal.1"]
        .into_iter()
        .find(|name| dir.join(name).exists());
    match journal {
        None => Ok(()),
        Some(name) => Err(StoreError::OldJournal {
            dir: dir.display().to_string(),
            file: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of `from`, as a crash at this moment would leave them, into `to`.
    fn copy_files(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    fn set_next(store: &SledStore, next: u64) {
        let mut writes = Writes::default();
        writes.set_next_id(JobId(next));
        store.commit(&writes).unwrap();
        store.flush().unwrap();
    }

    #[test]
    fn flushed_commits_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut writes = Writes::default();
        writes.set_next_id(JobId(9));
        writes.index_message("m-1", JobId(3));
        store.commit(&writes).unwrap();
        assert_eq!(
            store.next_job_id().unwrap(),
            JobId(9),
            "readers see a commit at once"
        );
        store.flush().unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.next_job_id().unwrap(), JobId(9));
        assert_eq!(store.job_for_message("m-1").unwrap(), Some(JobId(3)));
    }

    #[test]
    fn a_forgotten_job_goes_with_its_audit_entries_and_its_card_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let entry = |event: &str| AuditEntry {
            at_ms: 1,
            actor: None,
            event: event.into(),
            detail: String::new(),
        };
        let mut jobs = Vec::new();
        let mut writes = Writes::default();
        for id in 1..=2 {
            let mut job: Job = serde_json::from_value(serde_json::json!({
                "id": id, "spec": {"operation": "ddm.restart", "account": "a", "target": "t",
                "params": {}}, "requester": {"id": "u", "name": "u"}, "channel": "ops",
                "requirement": {"rule": "r", "approvals": 0, "approver_roles": []},
                "state": "succeeded", "approvals": [], "created_ms": 0, "expires_ms": 0,
                "updated_ms": 0, "message_id": format!("m-{id}"), "cloud_ref": null,
                "handle": null, "progress": null, "outcome": null, "started_ms": null,
                "finished_ms": 0, "audit_len": 0
            }))
            .unwrap();
            writes.put_job(&mut job, Some(entry("requested")));
            writes.put_job(&mut job, Some(entry("succeeded")));
            writes.index_message(&format!("m-{id}"), JobId(id));
            jobs.push(job);
        }
        store.commit(&writes).unwrap();
        let mut writes = Writes::default();
        writes.forget(&jobs[0]);
        store.commit(&writes).unwrap();
        store.flush().unwrap();
        assert_eq!(store.job(JobId(1)).unwrap(), None);
        assert!(store.audit(JobId(1)).unwrap().is_empty());
        assert_eq!(store.job_for_message("m-1").unwrap(), None);
        assert_eq!(store.job(JobId(2)).unwrap().map(|j| j.id), Some(JobId(2)));
        assert_eq!(store.audit(JobId(2)).unwrap().len(), 2);
        assert_eq!(store.job_for_message("m-2").unwrap(), Some(JobId(2)));
    }

    #[test]
    fn a_directory_with_the_old_journal_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        set_next(&SledStore::open(dir.path()).unwrap(), 5);
        std::fs::write(dir.path().join("journal.1"), b"records").unwrap();
        let error = SledStore::open(dir.path()).err().expect("refused");
        assert!(matches!(error, StoreError::OldJournal { .. }), "{error}");
        assert!(error.to_string().contains("journal.1"), "{error}");
        assert_eq!(
            std::fs::read(dir.path().join("journal.1")).unwrap(),
            b"records"
        );
    }

    #[test]
    fn a_log_that_lost_acknowledged_commits_is_refused_as_damaged() {
        let live = tempfile::tempdir().unwrap();
        let old = tempfile::tempdir().unwrap();
        let store = SledStore::open(live.path()).unwrap();
        set_next(&store, 5);
        copy_files(live.path(), old.path());
        set_next(&store, 6);
        set_next(&store, 7);
        drop(store);
        // sled as it was two commits ago, beside the newest commit.seq.
        std::fs::copy(live.path().join(seal::FILE), old.path().join(seal::FILE)).unwrap();
        let error = SledStore::open(old.path()).err().expect("refused");
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
        assert!(
            error.to_string().contains("ends at commit 1, but commit 3"),
            "{error}"
        );
        assert!(error.to_string().contains("opsgate restore"), "{error}");
    }

    #[test]
    fn a_missing_log_beside_a_seal_is_damage_and_is_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        set_next(&SledStore::open(dir.path()).unwrap(), 5);
        std::fs::remove_file(dir.path().join("db")).unwrap();
        let error = SledStore::open(dir.path()).err().expect("refused");
        assert!(error.to_string().contains("`db` is missing"), "{error}");
        assert!(!dir.path().join("db").exists());
    }

    #[test]
    fn an_active_index_entry_without_its_job_is_an_error_not_a_silent_skip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut batch = sled::Batch::default();
        batch.insert(&active_key(JobId(4)), &[]);
        store.apply(batch).unwrap();
        let error = store.active_jobs().unwrap_err();
        assert!(error.to_string().contains("job 4"), "{error}");
    }

    #[test]
    fn reading_without_the_bot_changes_nothing_and_creates_nothing() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("typo-dir");
        let error = ReadOnly::open(&missing).err().expect("refused");
        assert!(matches!(error, StoreError::NoDirectory(_)), "{error}");
        assert!(!missing.exists());

        let dir = root.path().join("data");
        set_next(&SledStore::open(&dir).unwrap(), 5);
        let before: Vec<(String, Vec<u8>)> = snapshot(&dir);
        let copy = ReadOnly::open(&dir).unwrap();
        assert_eq!(copy.store.next_job_id().unwrap(), JobId(5));
        drop(copy);
        assert_eq!(snapshot(&dir), before);

        let _running = SledStore::open(&dir).unwrap();
        let error = ReadOnly::open(&dir).err().expect("held");
        assert!(matches!(error, StoreError::Locked(_)), "{error}");
    }

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }
}
