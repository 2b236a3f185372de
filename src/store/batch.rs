//! A group's writes, encoded once: the same bytes are applied to sled and appended to the
//! journal, and replay decodes them the same way.
//!
//! Each write is `b'I' key_len:u16 key value_len:u32 value` or `b'R' key_len:u16 key`
//! (little-endian lengths).

use crate::command::JobId;
use crate::job::Job;

use super::{active_key, audit_key, job_key, message_key, AuditEntry, NEXT_ID};

const INSERT: u8 = b'I';
const REMOVE: u8 = b'R';

/// Writes gathered while handling a group of events. [`Store::commit`](super::Store::commit)
/// applies them and stages them in the journal; they are atomic across a crash because
/// replay applies a journal record whole. Reusable: a commit empties it and keeps its buffer.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<u8>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(super) fn ops(&self) -> &[u8] {
        &self.ops
    }

    pub(super) fn clear(&mut self) {
        self.ops.clear();
    }

    /// Stores the job, keeps the active index in step with its state, and appends `entry` to
    /// its audit log (bumping `job.audit_len`).
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

    pub fn set_next_id(&mut self, next: JobId) {
        self.insert(NEXT_ID, &next.to_be_bytes());
    }

    pub(super) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.key(INSERT, key);
        self.ops
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.ops.extend_from_slice(value);
    }

    fn remove(&mut self, key: &[u8]) {
        self.key(REMOVE, key);
    }

    fn key(&mut self, op: u8, key: &[u8]) {
        // Keys are ours: a prefix byte and an ID or a chat message ID, far below 64 KiB.
        let len = key.len().min(u16::MAX as usize);
        self.ops.push(op);
        self.ops.extend_from_slice(&(len as u16).to_le_bytes());
        self.ops.extend_from_slice(&key[..len]);
    }

    /// Serializes straight into the batch: the value's length is patched in afterwards.
    fn insert_json<T: serde::Serialize + ?Sized>(&mut self, key: &[u8], value: &T) {
        self.key(INSERT, key);
        let at = self.ops.len();
        self.ops.extend_from_slice(&[0; 4]);
        // Writing our own types into a Vec cannot fail; if it ever did, the value is empty
        // and reading it back reports a corrupt record rather than losing the others.
        if serde_json::to_writer(&mut self.ops, value).is_err() {
            self.ops.truncate(at + 4);
        }
        let len = (self.ops.len() - at - 4) as u32;
        self.ops[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// The encoded writes are malformed (only possible if the journal's checksum let damage by).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// One decoded write.
pub(super) enum Write<'a> {
    Insert(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
}

/// The encoded writes in `ops`, in order; a malformed one ends the iteration.
pub(super) fn writes(ops: &[u8]) -> impl Iterator<Item = Result<Write<'_>, Malformed>> {
    let mut rest = ops;
    std::iter::from_fn(move || {
        let (&op, tail) = rest.split_first()?;
        let decoded = take(tail, 2).and_then(|(key, tail)| match op {
            INSERT => take(tail, 4).map(|(value, tail)| (Write::Insert(key, value), tail)),
            REMOVE => Ok((Write::Remove(key), tail)),
            _ => Err(Malformed),
        });
        Some(match decoded {
            Ok((write, tail)) => {
                rest = tail;
                Ok(write)
            }
            Err(e) => {
                rest = &[];
                Err(e)
            }
        })
    })
}

/// Adds the encoded writes in `ops` to a sled batch.
pub(super) fn decode_into(ops: &[u8], batch: &mut sled::Batch) -> Result<(), Malformed> {
    for write in writes(ops) {
        match write? {
            Write::Insert(key, value) => batch.insert(key, value),
            Write::Remove(key) => batch.remove(key),
        }
    }
    Ok(())
}

/// Splits a length-prefixed field (`width` bytes of little-endian length) off `bytes`.
fn take(bytes: &[u8], width: usize) -> Result<(&[u8], &[u8]), Malformed> {
    let (len, rest) = bytes.split_at_checked(width).ok_or(Malformed)?;
    let mut le = [0u8; 4];
    le[..width].copy_from_slice(len);
    rest.split_at_checked(u32::from_le_bytes(le) as usize)
        .ok_or(Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(batch: &WriteBatch) -> sled::Db {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mut sled_batch = sled::Batch::default();
        decode_into(batch.ops(), &mut sled_batch).unwrap();
        db.apply_batch(sled_batch).unwrap();
        db
    }

    #[test]
    fn inserts_and_removes_round_trip_in_order() {
        let mut batch = WriteBatch::default();
        batch.insert(b"a", b"1");
        batch.insert(b"b", b"");
        batch.remove(b"a");
        batch.insert(b"c", &[9; 300]);
        let db = applied(&batch);
        assert_eq!(db.get(b"a").unwrap(), None);
        assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&[9u8; 300][..]));
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
        let db = applied(&batch);
        let back: AuditEntry = serde_json::from_slice(&db.get(b"k").unwrap().unwrap()).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn truncated_or_unknown_writes_are_malformed_not_a_panic() {
        let mut batch = WriteBatch::default();
        batch.insert(b"key", b"value");
        let ops = batch.ops();
        for cut in 1..ops.len() {
            let mut b = sled::Batch::default();
            assert_eq!(
                decode_into(&ops[..cut], &mut b),
                Err(Malformed),
                "cut at {cut}"
            );
        }
        let mut b = sled::Batch::default();
        assert_eq!(decode_into(b"Z\x00\x00", &mut b), Err(Malformed));
    }
}
