//! Reading what is stored, as it will be once this group's writes are in: the store's
//! history overlaid with the writes the engine has not handed over yet. A failed read is
//! kept for the driver, which stops on it.

use super::Engine;
use crate::domain::JobId;
use crate::job::{AuditEntry, Job};
use crate::ports::store::StorageError;

impl Engine {
    fn read<T: Default>(&mut self, read: Result<T, StorageError>) -> T {
        read.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the store");
            self.read_failure.get_or_insert(e);
            T::default()
        })
    }

    /// Whether this group removes job `id` (retention).
    fn forgotten(&self, id: JobId) -> bool {
        self.writes.forget.iter().any(|f| f.job == id)
    }

    /// A job that is not active: as written in this group, or as stored.
    pub(super) fn stored_job(&mut self, id: JobId) -> Option<Job> {
        if let Some(written) = self.writes.jobs.get(&id) {
            return Some(written.job.clone());
        }
        if self.forgotten(id) {
            return None;
        }
        let stored = self.history.job(id);
        self.read(stored)
    }

    pub(super) fn stored_job_for_message(&mut self, message_id: &str) -> Option<JobId> {
        let written = self.writes.messages.iter().rev();
        if let Some((_, job)) = written.into_iter().find(|(m, _)| m == message_id) {
            return Some(*job);
        }
        let stored = self.history.job_for_message(message_id);
        self.read(stored)
    }

    /// Newest first, at most `limit` of those matching `keep`, looking at most at `scan`
    /// stored jobs.
    pub(super) fn recent_jobs(
        &mut self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Vec<Job> {
        let stored = self.history.recent_jobs(limit, scan, &|j: &Job| {
            // A job written in this group is judged as it now is, below.
            !self.writes.jobs.contains_key(&j.id) && !self.forgotten(j.id) && keep(j)
        });
        let mut jobs = self.read(stored);
        jobs.extend(
            (self.writes.jobs.values())
                .map(|w| &w.job)
                .filter(|j| keep(j))
                .cloned(),
        );
        jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
        jobs.truncate(limit);
        jobs
    }

    /// Oldest first, at most `limit` stored jobs matching `keep` that this group neither
    /// writes nor removes, looking at most at `scan`.
    pub(super) fn oldest_jobs(
        &mut self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Vec<Job> {
        let stored = self.history.oldest_jobs(limit, scan, &|j: &Job| {
            !self.writes.jobs.contains_key(&j.id) && !self.forgotten(j.id) && keep(j)
        });
        self.read(stored)
    }

    /// A job's whole audit log.
    pub(super) fn audit_of(&mut self, id: JobId) -> Vec<AuditEntry> {
        if self.forgotten(id) {
            return Vec::new();
        }
        let stored = self.history.audit(id);
        let mut entries = self.read(stored);
        if let Some(written) = self.writes.jobs.get(&id) {
            entries.extend(written.audit.iter().map(|(_, e)| e.clone()));
        }
        entries
    }

    /// The newest `limit` events that belong to no job, newest first.
    pub(super) fn recent_ops_events(&mut self, limit: usize) -> Vec<AuditEntry> {
        let mut events: Vec<AuditEntry> = (self.writes.ops_events.iter().rev())
            .map(|(_, e)| e.clone())
            .collect();
        let stored = self.history.ops_events(limit);
        events.extend(self.read(stored));
        events.truncate(limit);
        events
    }
}
