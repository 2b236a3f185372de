//! Durable state in sled: jobs, the active-job index, message -> job index, the append-only
//! audit log, and the job counter.
//!
//! Everything lives in one tree under key prefixes. A group of events gathers its writes in
//! one [`WriteBatch`] (jobs, index and audit entries together), and one `flush` makes the
//! whole group durable. The engine never lets an effect out before that flush.
//!
//! Durability comes from the journal (`journal.rs`), not from sled's flush: a group's writes
//! go to sled (visible at once) and into one journal record, and `flush` syncs that record.
//! sled is made durable by checkpoints, and on opening every record sled may lack is replayed
//! whole, which also makes each group atomic across a crash.

mod batch;
pub mod fixtures;
mod journal;
mod sled_files;

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use batch::WriteBatch;
use journal::Journal;

use serde::{Deserialize, Serialize};

use crate::command::JobId;
use crate::job::Job;

const JOB: u8 = b'j';
const ACTIVE: u8 = b'x';
const AUDIT: u8 = b'a';
const MESSAGE: u8 = b'm';
/// The tree that holds the two counters below, apart from the jobs: they change with every
/// group, and sled rewrites a whole node every ten changes to it, so in the main tree each of
/// their changes soon cost a rewrite of the newest jobs' records next to them.
const META_TREE: &[u8] = b"meta";
const NEXT_ID: &[u8] = b"meta:next_job_id";
/// The journal record that sled's latest writes belong to, written before them. sled keeps a
/// prefix of its writes across a crash (all trees share one log), so it holds every earlier
/// record whole and this one perhaps in part: replay starts here.
const APPLIED: &[u8] = b"meta:journal_record";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {0} is already in use by another opsgate process (only one may open it at a time)")]
    Locked(String),
    #[error("cannot open data directory {dir}: {source}")]
    Open { dir: String, source: sled::Error },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot make the data directory durable: {0}")]
    Sync(std::io::Error),
    #[error("cannot open the journal in {dir}: {source}")]
    Journal { dir: String, source: std::io::Error },
    #[error("the journal in {dir} is missing record {missing}: the data directory is damaged (restore it from a backup, or move journal.0 and journal.1 aside to start from what sled holds)")]
    JournalGap { dir: String, missing: u64 },
    #[error("journal record {0} is malformed")]
    Malformed(u64),
    #[error("corrupt record {key}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

/// One line of a job's history. Never holds a secret: what was sent is described, not copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// Who acted (a chat user's name and ID), or `None` for the bot and the cloud.
    pub actor: Option<String>,
    /// `requested`, `approved`, `denied`, `submitted`, `cloud`, `succeeded`, ...
    pub event: String,
    pub detail: String,
}

/// Cheap to clone: clones share one sled database and journal. Only the engine writes; clones
/// serve read-only queries (the HTTP API), so the journal's lock is never contended.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    journal: Arc<Mutex<Journal>>,
}

fn job_key(id: JobId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = JOB;
    k[1..].copy_from_slice(&id.to_be_bytes());
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
    k[1..9].copy_from_slice(&id.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn message_key(message_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + message_id.len());
    k.push(MESSAGE);
    k.extend_from_slice(message_id.as_bytes());
    k
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn id_from(bytes: &[u8]) -> Option<JobId> {
    Some(JobId::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn applied_lsn(meta: &sled::Tree) -> Result<u64, StoreError> {
    Ok(meta.get(APPLIED)?.and_then(|v| id_from(&v)).unwrap_or(0))
}

/// Data directories written before the meta tree kept its two counters in the main tree.
/// Copied before removed, so a crash in between leaves a copy to finish from.
fn move_counters_to_meta(db: &sled::Db, meta: &sled::Tree) -> Result<(), StoreError> {
    for key in [NEXT_ID, APPLIED] {
        if let Some(value) = db.get(key)? {
            if meta.get(key)?.is_none() {
                meta.insert(key, value)?;
            }
            db.remove(key)?;
        }
    }
    Ok(())
}

/// Applies journal record `lsn` to sled write by write, its number first (see [`APPLIED`]).
///
/// Not one sled batch: sled's `apply_batch` seals and writes out its IO buffer each time,
/// and those writes queue in front of the journal's sync on the disk. Atomicity comes from
/// the journal instead: sled keeps a prefix of its writes, so a record sled holds only in
/// part is replayed whole on opening.
fn apply_record(db: &sled::Db, meta: &sled::Tree, lsn: u64, ops: &[u8]) -> Result<(), StoreError> {
    meta.insert(APPLIED, &lsn.to_be_bytes())?;
    for write in batch::writes(ops) {
        match write.map_err(|_| StoreError::Malformed(lsn))? {
            batch::Write::Insert(key, value) if key == NEXT_ID => {
                meta.insert(key, value)?;
            }
            batch::Write::Insert(key, value) => {
                db.insert(key, value)?;
            }
            batch::Write::Remove(key) => {
                db.remove(key)?;
            }
        }
    }
    Ok(())
}

/// Applies every journal record from `applied` on to sled, as a commit does, then makes
/// sled durable. `dir` names the data directory in errors.
fn replay(
    db: &sled::Db,
    meta: &sled::Tree,
    journal: &mut Journal,
    recovered: &journal::Recovered,
    applied: u64,
    dir: &str,
) -> Result<(), StoreError> {
    let records = recovered
        .from(applied.max(1))
        .map_err(|missing| StoreError::JournalGap {
            dir: dir.to_string(),
            missing,
        })?;
    if records.is_empty() {
        return Ok(());
    }
    tracing::info!(records = records.len(), "replaying the journal into sled");
    for (lsn, ops) in &records {
        apply_record(db, meta, *lsn, ops)?;
    }
    journal.checkpoint_now().map_err(StoreError::Sync)
}

impl Store {
    /// Opens the data directory (sled and its journal), replaying into sled every journal
    /// record it may lack. Only one process may hold a data directory.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let shown = dir.display().to_string();
        let db = sled_files::open(dir, &shown)?;
        // sled 0.34 keeps everything in one log file, `db`, next to its `conf`.
        let log = File::open(dir.join("db")).map_err(|e| StoreError::Open {
            dir: shown.clone(),
            source: sled::Error::Io(e),
        })?;
        let journal_error = |source| StoreError::Journal {
            dir: shown.clone(),
            source,
        };
        let (mut journal, recovered) =
            Journal::open(dir, sled_files::checkpoint(db.clone(), dir, log))
                .map_err(journal_error)?;
        let meta = db.open_tree(META_TREE)?;
        move_counters_to_meta(&db, &meta)?;
        let applied = applied_lsn(&meta)?;
        replay(&db, &meta, &mut journal, &recovered, applied, &shown)?;
        // A record sled has (part of) but the journal never got was never acknowledged; its
        // number is reused, so that the journal continues from what sled holds.
        let next = (recovered.last_lsn() + 1).max(applied);
        drop(recovered);
        journal.start(next).map_err(journal_error)?;
        Ok(Store {
            db,
            meta,
            journal: Arc::new(Mutex::new(journal)),
        })
    }

    pub fn next_job_id(&self) -> Result<JobId, StoreError> {
        Ok(self
            .meta
            .get(NEXT_ID)?
            .and_then(|v| id_from(&v))
            .unwrap_or(1))
    }

    /// Applies the batch to sled (readers see it at once) and stages it for the next `flush`,
    /// which makes it durable. Empties the batch, keeping its buffer for the next group.
    pub fn commit(&self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut journal = self.journal();
        apply_record(&self.db, &self.meta, journal.next_lsn(), batch.ops())?;
        journal.stage(batch.ops());
        batch.clear();
        Ok(())
    }

    /// Makes everything committed so far durable: one journal record and one `fdatasync` of a
    /// preallocated file for the whole group.
    ///
    /// (sled's own flush would not do: on Linux it ends in `sync_file_range`, which neither
    /// flushes the disk's volatile write cache nor commits the file's size, spacejam/sled#1452.
    /// Checkpoints therefore follow it with an `fdatasync`; see [`checkpoint`].)
    pub fn flush(&self) -> Result<(), StoreError> {
        self.journal().commit().map_err(StoreError::Sync)
    }

    /// Makes sled itself durable, so the next start has nothing to replay (clean shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut journal = self.journal();
        journal.commit().map_err(StoreError::Sync)?;
        journal.checkpoint_now().map_err(StoreError::Sync)
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock cannot leave the journal half-written in a way that
        // matters: records are checksummed and the file is only read on opening.
        self.journal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let key = job_key(id);
        match self.db.get(key)? {
            Some(bytes) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Jobs that are not final: what a restart must pick up.
    pub fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::new();
        for item in self.db.scan_prefix([ACTIVE]) {
            let (key, _) = item?;
            if let Some(id) = id_from(&key[1..]) {
                if let Some(job) = self.job(id)? {
                    jobs.push(job);
                }
            }
        }
        Ok(jobs)
    }

    /// Newest jobs first, at most `limit` of those matching `keep`, looking at most at `scan`.
    pub fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: impl Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([JOB]).rev().take(scan) {
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

    pub fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut prefix = [0u8; 9];
        prefix[0] = AUDIT;
        prefix[1..].copy_from_slice(&id.to_be_bytes());
        self.db
            .scan_prefix(prefix)
            .map(|item| {
                let (key, bytes) = item?;
                decode(&key, &bytes)
            })
            .collect()
    }

    pub fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StoreError> {
        Ok(self
            .db
            .get(message_key(message_id))?
            .and_then(|v| id_from(&v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies what a crash at this moment would leave of sled (`journal: false`) or of the
    /// journal (`journal: true`) from one data directory into another.
    fn copy_files(from: &Path, to: &Path, journal: bool) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("journal.") != journal || entry.file_type().unwrap().is_dir() {
                continue;
            }
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }

    /// A live store whose next job ID 5 is checkpointed, and a second directory holding sled
    /// as a crash would leave it from then on: durable up to that checkpoint, nothing after.
    fn crashed_sled_at_next_id_5() -> (tempfile::TempDir, tempfile::TempDir, Store) {
        let live = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let store = Store::open(live.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.set_next_id(5);
        store.commit(&mut batch).unwrap();
        store.checkpoint().unwrap();
        copy_files(live.path(), crashed.path(), false);
        (live, crashed, store)
    }

    #[test]
    fn counters_in_the_main_tree_move_to_the_meta_tree_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.set_next_id(7);
        batch.index_message("m-1", 6);
        store.commit(&mut batch).unwrap();
        store.checkpoint().unwrap();
        let applied = applied_lsn(&store.meta).unwrap();
        assert!(applied > 0);
        // Lay the directory out as opsgate did before the meta tree.
        for key in [NEXT_ID, APPLIED] {
            let value = store.meta.remove(key).unwrap().unwrap();
            store.db.insert(key, value).unwrap();
        }
        store.db.flush().unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_job_id().unwrap(), 7);
        assert_eq!(applied_lsn(&store.meta).unwrap(), applied);
        assert_eq!(store.db.get(NEXT_ID).unwrap(), None);
        assert_eq!(store.db.get(APPLIED).unwrap(), None);
        assert_eq!(store.job_for_message("m-1").unwrap(), Some(6));
    }

    #[test]
    fn writes_only_the_journal_holds_are_replayed_on_opening() {
        let (live, crashed, store) = crashed_sled_at_next_id_5();
        let mut batch = WriteBatch::default();
        batch.set_next_id(9);
        batch.index_message("m-1", 3);
        store.commit(&mut batch).unwrap();
        store.flush().unwrap();
        copy_files(live.path(), crashed.path(), true);
        drop(store);

        for _ in 0..2 {
            // The second opening finds sled holding it all, and replays nothing wrongly.
            let store = Store::open(crashed.path()).unwrap();
            assert_eq!(store.next_job_id().unwrap(), 9);
            assert_eq!(store.job_for_message("m-1").unwrap(), Some(3));
        }
    }

    #[test]
    fn committed_but_not_flushed_writes_are_not_claimed_durable() {
        let (live, crashed, store) = crashed_sled_at_next_id_5();
        let mut batch = WriteBatch::default();
        batch.set_next_id(9);
        store.commit(&mut batch).unwrap();
        // Readers see it at once; a crash before the flush loses it.
        assert_eq!(store.next_job_id().unwrap(), 9);
        copy_files(live.path(), crashed.path(), true);
        drop(store);
        let store = Store::open(crashed.path()).unwrap();
        assert_eq!(store.next_job_id().unwrap(), 5);
        // And the journal goes on from there.
        let mut batch = WriteBatch::default();
        batch.set_next_id(7);
        store.commit(&mut batch).unwrap();
        store.flush().unwrap();
        drop(store);
        assert_eq!(
            Store::open(crashed.path()).unwrap().next_job_id().unwrap(),
            7
        );
    }

    #[test]
    fn a_journal_that_does_not_continue_from_sled_is_refused_with_a_way_out() {
        let live = tempfile::tempdir().unwrap();
        let mut batch = WriteBatch::default();
        for next in [5, 6] {
            // Each opening starts the journal over, after what sled holds.
            let store = Store::open(live.path()).unwrap();
            batch.set_next_id(next);
            store.commit(&mut batch).unwrap();
            store.flush().unwrap();
        }
        // sled lost entirely, the journal kept: record 1 is gone, record 2 remains.
        let other = tempfile::tempdir().unwrap();
        copy_files(live.path(), other.path(), true);
        let error = Store::open(other.path()).err().expect("a gap is refused");
        assert!(
            matches!(error, StoreError::JournalGap { missing: 1, .. }),
            "{error}"
        );
        assert!(error
            .to_string()
            .contains("move journal.0 and journal.1 aside"));
    }

    #[test]
    fn many_groups_across_both_segments_all_survive_losing_sled() {
        let live = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let store = Store::open(live.path()).unwrap();
        store.checkpoint().unwrap();
        copy_files(live.path(), crashed.path(), false);
        // ~1.4 segments of groups; the checkpoint that the segment switch starts may or may
        // not have finished, and replay must not care.
        let value = vec![b'v'; 1000];
        let groups = (journal::SEGMENT_SIZE as usize * 7 / 5) / 1100;
        let mut batch = WriteBatch::default();
        for i in 0..groups {
            batch.insert(format!("k{i}").as_bytes(), &value);
            store.commit(&mut batch).unwrap();
            store.flush().unwrap();
        }
        copy_files(live.path(), crashed.path(), true);
        drop(store);
        let store = Store::open(crashed.path()).unwrap();
        for i in 0..groups {
            assert!(
                store.db.get(format!("k{i}")).unwrap().is_some(),
                "group {i} lost"
            );
        }
    }
}
