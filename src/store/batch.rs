//! A group's [`Writes`] as one sled batch, which sled recovers all or nothing after a crash.
//!
//! A later write to a key replaces an earlier one (sled's batch is a map).

use crate::ports::store::Writes;

use super::{
    active_key, audit_key, job_key, message_key, ops_key, read_mark_key, CHAT_FREEZE, NEXT_ID,
};

/// Builds sled batches, serializing values into one buffer kept between writes, so a value
/// does not grow a new buffer by doubling each time (BENCHMARKS.md, allocations).
#[derive(Default)]
pub(super) struct BatchBuilder {
    batch: sled::Batch,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    /// Every write of `writes`: each job with its active-index entry (present until the job
    /// is final) and its new audit entries, so after a crash a final job is never still in
    /// the active index.
    pub fn add(&mut self, writes: &Writes) {
        for (id, written) in &writes.jobs {
            for (seq, entry) in &written.audit {
                self.insert_json(&audit_key(*id, *seq), entry);
            }
            self.insert_json(&job_key(*id), &written.job);
            if written.job.state.is_final() {
                self.batch.remove(&active_key(*id));
            } else {
                self.batch.insert(&active_key(*id), &[]);
            }
        }
        for (message_id, job) in &writes.messages {
            self.batch
                .insert(message_key(message_id.as_str()), &job.0.to_be_bytes());
        }
        if let Some(next) = writes.next_job_id {
            self.batch.insert(NEXT_ID, &next.0.to_be_bytes());
        }
        match &writes.chat_freeze {
            Some(Some(freeze)) => self.insert_json(CHAT_FREEZE, freeze),
            Some(None) => self.batch.remove(CHAT_FREEZE),
            None => {}
        }
        for (seq, entry) in &writes.ops_events {
            self.insert_json(&ops_key(*seq), entry);
        }
        for gone in &writes.forget {
            self.batch.remove(&job_key(gone.job));
            self.batch.remove(&active_key(gone.job));
            for seq in 0..gone.audit_len {
                self.batch.remove(&audit_key(gone.job, seq));
            }
            if let Some(message_id) = &gone.message_id {
                self.batch.remove(message_key(message_id.as_str()));
            }
        }
        for (channel, message) in &writes.read_marks {
            self.batch
                .insert(read_mark_key(channel.as_str()), message.as_bytes());
        }
    }

    /// The batch so far, leaving the builder empty.
    pub fn take(&mut self) -> sled::Batch {
        std::mem::take(&mut self.batch)
    }

    fn insert_json<T: serde::Serialize + ?Sized>(&mut self, key: &[u8], value: &T) {
        // Serializing our own types into a Vec cannot fail; if it ever did, the value is
        // empty and reading it back reports a corrupt record rather than losing the others.
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        if serde_json::to_writer(&mut bytes, value).is_err() {
            bytes.clear();
        }
        self.batch.insert(key, &bytes[..]);
        self.scratch = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::AuditEntry;

    fn applied(batch: &mut BatchBuilder) -> sled::Db {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.apply_batch(batch.take()).unwrap();
        db
    }

    #[test]
    fn a_later_write_to_a_key_replaces_the_earlier_one() {
        let mut batch = BatchBuilder::default();
        batch.insert_json(b"job", "awaiting");
        batch.insert_json(b"job", "submitting");
        let db = applied(&mut batch);
        assert_eq!(
            db.get(b"job").unwrap().as_deref(),
            Some(&b"\"submitting\""[..])
        );
    }

    #[test]
    fn json_values_are_stored_whole() {
        let mut batch = BatchBuilder::default();
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
