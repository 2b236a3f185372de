//! A group's writes, encoded once: the same bytes are applied to sled and appended to the
//! journal, and replay decodes them the same way.
//!
//! Each write is `b'I' key_len:u16 key value_len:u32 value` or `b'R' key_len:u16 key`
//! (little-endian lengths).
//!
//! A later write to a key replaces an earlier one in the same batch. A command's first group
//! moves its job through three states, and sled turns every write into a log entry (and,
//! every ten entries to a node, a rewrite of the whole node), so writing the job once instead
//! of three times is most of what a command costs the disk.

use std::ops::Range;

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
    /// Where each write sits in `ops`, in the order written.
    spans: Vec<Range<usize>>,
    /// Whether `ops` may still hold a write that a later one to the same key replaces.
    unsettled: bool,
    /// Reused by [`settle`](Self::settle): span indices sorted by key, and the rebuilt `ops`.
    order: Vec<usize>,
    scratch: Vec<u8>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The encoded writes, each key's last write only.
    pub(super) fn ops(&mut self) -> &[u8] {
        self.settle();
        &self.ops
    }

    pub(super) fn clear(&mut self) {
        self.ops.clear();
        self.spans.clear();
        self.unsettled = false;
    }

    /// Drops every write that a later write to the same key replaces, keeping the others in
    /// order. Sorting the writes by key keeps this O(n log n) for the bulk groups the
    /// fixtures write; a command's group holds a dozen writes.
    fn settle(&mut self) {
        if !std::mem::take(&mut self.unsettled) {
            return;
        }
        let ops = &self.ops;
        self.order.clear();
        self.order.extend(0..self.spans.len());
        let spans = &self.spans;
        // Stable: among writes to one key, the last written stays last.
        self.order
            .sort_by(|&a, &b| key_at(ops, spans[a].start).cmp(key_at(ops, spans[b].start)));
        let mut replaced = false;
        for pair in self.order.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if key_at(ops, self.spans[earlier].start) == key_at(ops, self.spans[later].start) {
                // Emptied: the copy below leaves it out.
                self.spans[earlier].end = self.spans[earlier].start;
                replaced = true;
            }
        }
        if !replaced {
            return;
        }
        self.scratch.clear();
        for span in &mut self.spans {
            let start = self.scratch.len();
            self.scratch.extend_from_slice(&ops[span.clone()]);
            *span = start..self.scratch.len();
        }
        self.spans.retain(|span| !span.is_empty());
        std::mem::swap(&mut self.ops, &mut self.scratch);
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
        let start = self.begin(INSERT, key);
        self.ops
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.ops.extend_from_slice(value);
        self.end(start);
    }

    fn remove(&mut self, key: &[u8]) {
        let start = self.begin(REMOVE, key);
        self.end(start);
    }

    /// Starts a write with its op and key; returns where it starts.
    fn begin(&mut self, op: u8, key: &[u8]) -> usize {
        // Keys are ours: a prefix byte and an ID or a chat message ID, far below 64 KiB.
        let len = key.len().min(u16::MAX as usize);
        let start = self.ops.len();
        self.ops.push(op);
        self.ops.extend_from_slice(&(len as u16).to_le_bytes());
        self.ops.extend_from_slice(&key[..len]);
        start
    }

    fn end(&mut self, start: usize) {
        self.spans.push(start..self.ops.len());
        self.unsettled = true;
    }

    /// Serializes straight into the batch: the value's length is patched in afterwards.
    fn insert_json<T: serde::Serialize + ?Sized>(&mut self, key: &[u8], value: &T) {
        let start = self.begin(INSERT, key);
        let at = self.ops.len();
        self.ops.extend_from_slice(&[0; 4]);
        // Writing our own types into a Vec cannot fail; if it ever did, the value is empty
        // and reading it back reports a corrupt record rather than losing the others.
        if serde_json::to_writer(&mut self.ops, value).is_err() {
            self.ops.truncate(at + 4);
        }
        let len = (self.ops.len() - at - 4) as u32;
        self.ops[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.end(start);
    }
}

/// The key of the write that starts at `start` (written by [`WriteBatch::begin`]).
fn key_at(ops: &[u8], start: usize) -> &[u8] {
    let len = u16::from_le_bytes([ops[start + 1], ops[start + 2]]) as usize;
    &ops[start + 3..start + 3 + len]
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

    fn applied(batch: &mut WriteBatch) -> sled::Db {
        let db = sled::Config::new().temporary(true).open().unwrap();
        for write in writes(batch.ops()) {
            match write.unwrap() {
                Write::Insert(key, value) => db.insert(key, value).unwrap(),
                Write::Remove(key) => db.remove(key).unwrap(),
            };
        }
        db
    }

    #[test]
    fn inserts_and_removes_round_trip_in_order() {
        let mut batch = WriteBatch::default();
        batch.insert(b"a", b"1");
        batch.insert(b"b", b"");
        batch.remove(b"a");
        batch.insert(b"c", &[9; 300]);
        let db = applied(&mut batch);
        assert_eq!(db.get(b"a").unwrap(), None);
        assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&[9u8; 300][..]));
    }

    #[test]
    fn a_later_write_to_a_key_replaces_the_earlier_one() {
        let mut batch = WriteBatch::default();
        batch.insert(b"job", b"awaiting");
        batch.insert(b"audit-1", b"requested");
        batch.insert(b"job", b"approved");
        batch.remove(b"active");
        batch.insert(b"audit-2", b"approved");
        batch.insert(b"active", b"");
        batch.insert(b"job", b"submitting");

        let kept: Vec<(Vec<u8>, Option<Vec<u8>>)> = writes(batch.ops())
            .map(|w| match w.unwrap() {
                Write::Insert(k, v) => (k.to_vec(), Some(v.to_vec())),
                Write::Remove(k) => (k.to_vec(), None),
            })
            .collect();
        let expected: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (b"audit-1".to_vec(), Some(b"requested".to_vec())),
            (b"audit-2".to_vec(), Some(b"approved".to_vec())),
            (b"active".to_vec(), Some(b"".to_vec())),
            (b"job".to_vec(), Some(b"submitting".to_vec())),
        ];
        assert_eq!(kept, expected);

        // And after a commit empties it, nothing of the old writes is remembered.
        batch.clear();
        batch.insert(b"job", b"running");
        assert_eq!(writes(batch.ops()).count(), 1);
    }

    #[test]
    fn a_write_after_the_batch_was_read_still_replaces_an_earlier_one() {
        let mut batch = WriteBatch::default();
        batch.insert(b"job", b"awaiting");
        batch.insert(b"job", b"approved");
        batch.insert(b"audit-1", b"requested");
        assert_eq!(writes(batch.ops()).count(), 2);
        batch.insert(b"job", b"submitting");
        let db = applied(&mut batch);
        assert_eq!(writes(batch.ops()).count(), 2);
        assert_eq!(db.get(b"job").unwrap().as_deref(), Some(&b"submitting"[..]));
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

    #[test]
    fn truncated_or_unknown_writes_are_malformed_not_a_panic() {
        let mut batch = WriteBatch::default();
        batch.insert(b"key", b"value");
        let ops = batch.ops();
        let decoded = |ops| writes(ops).collect::<Result<Vec<_>, _>>().map(|w| w.len());
        for cut in 1..ops.len() {
            assert_eq!(decoded(&ops[..cut]), Err(Malformed), "cut at {cut}");
        }
        assert_eq!(decoded(b"Z\x00\x00"), Err(Malformed));
        assert_eq!(decoded(ops), Ok(1));
    }
}
