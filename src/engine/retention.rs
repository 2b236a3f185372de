//! Retention: finished jobs older than `[bot] keep_finished` leave the store with their audit
//! entries, in the engine's ordinary writes (so durably, and all or nothing with the rest of
//! the group). Never a pending or running job, never one whose break-glass review is still
//! open, never the freeze log.

use super::Engine;
use crate::domain::JobId;
use crate::job::Job;

/// Most stored jobs one pass looks at, oldest first, and most it removes: a pass is one
/// bounded read and a bounded batch, whatever the history's size.
const SCAN: usize = 5_000;
const PER_PASS: usize = 500;
/// Until the next pass: soon while a pass finds a full batch, else a quarter of the retention
/// time and at most a minute. The first pass waits a little after a start, which has enough
/// to do.
const BUSY_MS: u64 = 100;
const QUIET_MS: u64 = 60_000;
pub(super) const FIRST_PASS_AFTER_MS: u64 = 10_000;

impl Engine {
    /// Removes finished jobs past the retention time, when a pass is due.
    pub(super) fn prune(&mut self, now: u64) {
        let Some(keep) = self.config.keep_finished else {
            return;
        };
        if now < self.next_prune_ms {
            return;
        }
        let cutoff = now.saturating_sub(keep.as_millis() as u64);
        let expired = self.oldest_jobs(PER_PASS, SCAN, &|j| past_retention(j, cutoff));
        for job in &expired {
            self.writes.forget(job);
        }
        if !expired.is_empty() {
            tracing::info!(
                jobs = expired.len(),
                "finished jobs past the retention time removed"
            );
        }
        let wait = if expired.len() == PER_PASS {
            BUSY_MS
        } else {
            QUIET_MS.min(keep.as_millis() as u64 / 4)
        };
        self.next_prune_ms = now + wait;
    }

    /// When the next retention pass is due, if jobs are not kept forever.
    pub(super) fn next_prune(&self) -> Option<u64> {
        self.config.keep_finished.map(|_| self.next_prune_ms)
    }

    /// The reply about a job number the store does not hold: never given out, or removed
    /// under the retention setting.
    pub(super) fn no_job(&self, id: JobId) -> String {
        match self.config.keep_finished {
            Some(keep) if id < self.next_id => format!(
                "Job {id} is no longer kept: finished jobs are kept for {} after they end.",
                humantime::format_duration(keep)
            ),
            _ => format!("There is no job {id}."),
        }
    }
}

fn past_retention(job: &Job, cutoff_ms: u64) -> bool {
    job.state.is_final()
        && !job.review_pending()
        && job.finished_ms.unwrap_or(job.updated_ms) < cutoff_ms
}
