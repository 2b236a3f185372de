//! The store seam: what the engine's decisions write ([`Writes`]), what it may read back
//! ([`History`]), and what the driver asks of a store ([`Store`]): apply a group's writes as
//! one unit, make them durable, and hand back what a restart needs.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

use crate::domain::{ChannelId, JobId, MessageId};
use crate::freeze::ChatFreeze;
use crate::job::{AuditEntry, Job};

/// What a group of events changes, applied by [`Store::commit`] all or nothing.
#[derive(Default)]
pub struct Writes {
    /// Jobs in their latest state, each with the audit entries added since it was stored.
    /// A job, its place in the active index (it is active until final) and its audit
    /// entries are always written together.
    pub jobs: BTreeMap<JobId, JobWrite>,
    /// Message -> job, so a reaction on a card finds its job.
    pub messages: Vec<(MessageId, JobId)>,
    pub next_job_id: Option<JobId>,
    /// `Some(None)` lifts the freeze set with `!freeze`.
    pub chat_freeze: Option<Option<ChatFreeze>>,
    /// Events that belong to no job (freezes set and lifted), by number.
    pub ops_events: Vec<(u64, AuditEntry)>,
    /// Finished jobs past the retention time: each goes with its audit entries and its
    /// card's message index entry.
    pub forget: Vec<Forget>,
    /// The newest chat message handled in each channel (see [`ReadMarks`]).
    pub read_marks: ReadMarks,
}

/// Channel -> the newest chat message handled there, written with the group that handled
/// it. Whoever starts next (a restart, a new leader) reads the channel back from there and
/// answers what came in between, without running it.
pub type ReadMarks = BTreeMap<ChannelId, MessageId>;

/// A finished job to remove, and what its record points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forget {
    pub job: JobId,
    /// Its audit entries are numbered from 0 to this.
    pub audit_len: u32,
    pub message_id: Option<MessageId>,
}

/// A job as it now is, and the audit entries to append to its log (numbered from where its
/// log stood).
pub struct JobWrite {
    pub job: Job,
    pub audit: Vec<(u32, AuditEntry)>,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.messages.is_empty()
            && self.next_job_id.is_none()
            && self.chat_freeze.is_none()
            && self.ops_events.is_empty()
            && self.forget.is_empty()
            && self.read_marks.is_empty()
    }

    /// Removes a finished job with its audit entries and its card's index entry.
    pub fn forget(&mut self, job: &Job) {
        self.forget.push(Forget {
            job: job.id,
            audit_len: job.audit_len,
            message_id: job.message_id.clone(),
        });
    }

    /// Stores `job` and appends `entry` to its audit log (bumping `job.audit_len`). A later
    /// write of the same job in this group replaces the record and keeps every entry.
    pub fn put_job(&mut self, job: &mut Job, entry: Option<AuditEntry>) {
        let entry = entry.map(|entry| {
            job.audit_len += 1;
            (job.audit_len - 1, entry)
        });
        match self.jobs.entry(job.id) {
            Entry::Occupied(mut written) => {
                let written = written.get_mut();
                written.job.clone_from(job);
                written.audit.extend(entry);
            }
            Entry::Vacant(new) => {
                new.insert(JobWrite {
                    job: job.clone(),
                    audit: entry.into_iter().collect(),
                });
            }
        }
    }

    pub fn index_message(&mut self, message_id: &str, job: JobId) {
        self.messages.push((message_id.into(), job));
    }

    /// Stores the freeze set with `!freeze`, or lifts it (`None`).
    pub fn put_chat_freeze(&mut self, freeze: Option<ChatFreeze>) {
        self.chat_freeze = Some(freeze);
    }

    pub fn put_ops_event(&mut self, seq: u64, entry: AuditEntry) {
        self.ops_events.push((seq, entry));
    }

    pub fn set_next_id(&mut self, next: JobId) {
        self.next_job_id = Some(next);
    }

    /// Records `message` as handled in `channel`, unless a newer one already is.
    pub fn mark_read(&mut self, channel: ChannelId, message: MessageId) {
        match self.read_marks.entry(channel) {
            Entry::Occupied(mut marked) => {
                if is_newer(&message, marked.get()) {
                    marked.insert(message);
                }
            }
            Entry::Vacant(new) => {
                new.insert(message);
            }
        }
    }
}

/// Whether chat message `a` came after `b` in their channel. Discord's IDs are numbers that
/// grow with time; they compare as numbers (a longer ID is a larger one).
pub fn is_newer(a: &MessageId, b: &MessageId) -> bool {
    (a.len(), a.as_str()) > (b.len(), b.as_str())
}

/// A storage failure, as the store describes it. Fail-stop: nothing is retried after one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError {
    message: String,
    lost_lead: bool,
}

impl StorageError {
    pub fn new(message: impl Into<String>) -> StorageError {
        StorageError {
            message: message.into(),
            lost_lead: false,
        }
    }

    /// This replica no longer leads (its lease ended, or another replica took over): the
    /// group was not committed, and since another replica now serves chat, nothing may be
    /// said there either.
    pub fn lost_lead(message: impl Into<String>) -> StorageError {
        StorageError {
            message: message.into(),
            lost_lead: true,
        }
    }

    pub fn is_lost_lead(&self) -> bool {
        self.lost_lead
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {}

/// What was stored, read back for reads the engine makes while it decides. Reads see every
/// committed group; the engine itself overlays the group it is deciding.
pub trait History: Send + Sync {
    fn job(&self, id: JobId) -> Result<Option<Job>, StorageError>;
    fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StorageError>;
    /// Newest first, at most `limit` of those matching `keep`, looking at most at `scan`.
    fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError>;
    fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StorageError>;
    /// The newest `limit` events that belong to no job, newest first.
    fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StorageError>;
    /// Oldest first, at most `limit` of those matching `keep`, looking at most at `scan`.
    fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError>;
}

/// What a restart needs from the store.
pub struct Stored {
    pub next_job_id: JobId,
    pub chat_freeze: Option<ChatFreeze>,
    pub next_ops_seq: u64,
    /// Every job that is not final.
    pub active: Vec<Job>,
}

/// A store the driver commits to. Only the driver writes; reads may come from anywhere.
pub trait Store: History {
    /// Everything a restart starts from.
    fn load(&self) -> Result<Stored, StorageError>;
    /// Where the chat was read up to: the newest message handled in each channel.
    fn read_marks(&self) -> Result<ReadMarks, StorageError>;
    /// Applies a group's writes as one unit: readers see them at once, and a crash keeps all
    /// of them or none. The next [`flush`](Self::flush) makes them durable.
    fn commit(&self, writes: Writes) -> Result<(), StorageError>;
    /// Makes every commit so far durable, and (for a store shared by replicas) confirms that
    /// this replica still leads. Nothing a group allows leaves before this returns.
    fn flush(&self) -> Result<(), StorageError>;
    /// A last flush, for a clean stop.
    fn close(&self) -> Result<(), StorageError>;
}
