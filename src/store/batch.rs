//! A group's writes, gathered while the engine handles its events and applied to sled as one
//! sled batch, which sled recovers all or nothing after a crash.
//!
//! A later write to a key replaces an earlier one (sled's batch is a map), so a command whose
//! first group moves its job through three states writes it once.

use crate::command::JobId;
use crate::job::Job;

use super::{
    active_key, audit_key, job_key, message_key, ops_key, AuditEntry, CHAT_FREEZE, NEXT_ID,
};

/// Writes gathered while handling a group of events; [`Store::commit`](super::Store::commit)
/// applies them atomically and empties the batch.
#[derive(Default)]
pub struct WriteBatch {
    batch: sled::Batch,
    writes: usize,
    /// Where values are serialized before sled copies them: kept between writes, so a
    /// value does not grow a new buffer by doubling each time (BENCHMARKS.md, allocations).
    scratch: Vec<u8>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.writes == 0
    }

    /// The writes so far, leaving the batch empty.
    pub(super) fn take(&mut self) -> sled::Batch {
        self.writes = 0;
        std::mem::take(&mut self.batch)
    }

    /// Stores the job, keeps the active index in step with its state, and appends `entry` to
    /// its audit log (bumping `job.audit_len`). All in one batch, so after a crash a final job
    /// is never still in the active index.
    pub fn put_job(&mut self, job: &mut Job, entry: Option<AuditEntry>) {
        if let Some(entry) = entry {
            self.insert_json(&audit_key(job.id, job.audit_len), &entry);
            job.audit_len += 1;
        }
        self.insert_json(&job_key(job.id), &*job);
        if job.state.is_final() {
            self.remove(&active_key(job.id));
        } else {
            self.insert(&active_key(job.id), &[]);
        }
    }

    pub fn index_message(&mut self, message_id: &str, job: JobId) {
        self.insert(&message_key(message_id), &job.to_be_bytes());
    }

    /// Stores the freeze set with `!freeze`, or removes it (`None`).
    pub fn put_chat_freeze<T: serde::Serialize>(&mut self, freeze: Option<&T>) {
        match freeze {
            Some(f) => self.insert_json(CHAT_FREEZE, f),
            None => self.remove(CHAT_FREEZE),
        }
    }

    /// An event that belongs to no job (a freeze set or lifted), numbered `seq`.
    pub fn put_ops_event(&mut self, seq: u64, entry: &AuditEntry) {
        self.insert_json(&ops_key(seq), entry);
    }

    pub fn set_next_id(&mut self, next: JobId) {
        self.insert(NEXT_ID, &next.to_be_bytes());
    }

    pub(super) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.batch.insert(key, value);
        self.writes += 1;
    }

    pub(super) fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.writes += 1;
    }

    fn insert_json<T: serde::Serialize + ?Sized>(&mut self, key: &[u8], value: &T) {
        // Serializing our own types into a Vec cannot fail; if it ever did, the value is
        // empty and reading it back reports a corrupt record rather than losing the others.
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        if serde_json::to_writer(&mut bytes, value).is_err() {
            bytes.clear();
        }
        self.insert(key, &bytes);
        self.scratch = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(batch: &mut WriteBatch) -> sled::Db {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.apply_batch(batch.take()).unwrap();
        db
    }

    #[test]
    fn a_later_write_to_a_key_replaces_the_earlier_one() {
        let mut batch = WriteBatch::default();
        batch.insert(b"job", b"awaiting");
        batch.insert(b"active", b"");
        batch.insert(b"job", b"approved");
        batch.remove(b"active");
        batch.insert(b"job", b"submitting");
        let db = applied(&mut batch);
        assert_eq!(db.get(b"job").unwrap().as_deref(), Some(&b"submitting"[..]));
        assert_eq!(db.get(b"active").unwrap(), None);
        assert!(batch.is_empty(), "taking the writes empties the batch");
    }

    #[test]
    fn json_values_are_stored_whole() {
        let mut batch = WriteBatch::default();
        let entry = AuditEntry {
            at_ms: 5,
            actor: None,
            event: "requested".into(),
            detail: "ünïcode and \"quotes\"".into(),
        };
        batch.insert_json(b"k", &entry);
        let db = applied(&mut batch);
        let back: AuditEntry = serde_json::from_slice(&db.get(b"k").unwrap().unwrap()).unwrap();
        assert_eq!(back, entry);
    }
}
