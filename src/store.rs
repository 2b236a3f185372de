//! Durable state in sled: jobs, the active-job index, message -> job index, the append-only
//! audit log, and the job counter.
//!
//! Everything lives in one tree under key prefixes, so that one [`WriteBatch`] (jobs, index
//! and audit entries of many events together) is applied atomically, and one `flush` makes a
//! whole group of events durable. The engine never lets an effect out before that flush.

pub mod fixtures;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::command::JobId;
use crate::job::Job;

const JOB: u8 = b'j';
const ACTIVE: u8 = b'x';
const AUDIT: u8 = b'a';
const MESSAGE: u8 = b'm';
const NEXT_ID: &[u8] = b"meta:next_job_id";

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

/// Cheap to clone: clones share one sled database. Only the engine writes; clones serve
/// read-only queries (the HTTP API).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's log file, opened again so that `flush` can end with a real `fdatasync`.
    log: Arc<File>,
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

/// Writes gathered while handling a group of events, applied atomically by [`Store::commit`].
#[derive(Default)]
pub struct WriteBatch {
    batch: sled::Batch,
    writes: usize,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.writes == 0
    }

    /// Stores the job, keeps the active index in step with its state, and appends `entry` to
    /// its audit log (bumping `job.audit_len`).
    pub fn put_job(&mut self, job: &mut Job, entry: Option<AuditEntry>) {
        if let Some(entry) = entry {
            let bytes = serde_json::to_vec(&entry).unwrap_or_default();
            self.batch.insert(&audit_key(job.id, job.audit_len), bytes);
            job.audit_len += 1;
        }
        let bytes = serde_json::to_vec(&*job).unwrap_or_default();
        self.batch.insert(&job_key(job.id), bytes);
        if job.state.is_final() {
            self.batch.remove(&active_key(job.id));
        } else {
            self.batch.insert(&active_key(job.id), &[]);
        }
        self.writes += 1;
    }

    pub fn index_message(&mut self, message_id: &str, job: JobId) {
        self.batch
            .insert(message_key(message_id), &job.to_be_bytes());
        self.writes += 1;
    }

    pub fn set_next_id(&mut self, next: JobId) {
        self.batch.insert(NEXT_ID, &next.to_be_bytes());
        self.writes += 1;
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let shown = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir)
            // The bot keeps its working set in memory; sled's cache only serves history reads.
            .cache_capacity(4 * 1024 * 1024)
            // We flush explicitly after each group of events; a timer would only add wakeups.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match &e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked(shown.clone())
                }
                _ => StoreError::Open {
                    dir: shown.clone(),
                    source: e,
                },
            })?;
        // sled 0.34 keeps everything in one log file, `db`, next to its `conf`.
        let log = File::open(dir.join("db")).map_err(|e| StoreError::Open {
            dir: shown.clone(),
            source: sled::Error::Io(e),
        })?;
        Ok(Store {
            db,
            log: Arc::new(log),
        })
    }

    pub fn next_job_id(&self) -> Result<JobId, StoreError> {
        Ok(self.db.get(NEXT_ID)?.and_then(|v| id_from(&v)).unwrap_or(1))
    }

    pub fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.writes > 0 {
            self.db.apply_batch(batch.batch)?;
        }
        Ok(())
    }

    /// Makes everything committed so far durable (one fsync for the whole group).
    ///
    /// sled's own flush ends in `sync_file_range` on Linux, which writes the pages out but
    /// neither flushes the disk's volatile write cache nor commits the file's size, so a power
    /// cut could still lose a job we had answered for (spacejam/sled#1452). The `fdatasync`
    /// after it does both; it costs about 0.2 ms more here and is not optional.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data().map_err(StoreError::Sync)?;
        Ok(())
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
