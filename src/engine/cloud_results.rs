//! What the cloud tasks report back, and what the engine makes of it.

use super::{Effect, Engine};
use crate::domain::{JobId, Severity};
use crate::job::JobState;
use crate::ports::cloud::{ReconcileOutcome, SubmitOutcome};
use crate::ports::inbox::CloudUpdate;

impl Engine {
    pub(super) fn cloud_result(&mut self, id: JobId, update: CloudUpdate, now: u64) {
        let Some(job) = self.active.get(&id) else {
            tracing::debug!(job = id, "update for a job that is no longer active");
            return;
        };
        let channel = job.channel.clone();
        match update {
            CloudUpdate::Submitted(SubmitOutcome::Accepted {
                handle,
                cloud_ref,
                answer,
            }) => {
                if self.transition(id, JobState::Running) {
                    if let Some(job) = self.active.get_mut(&id) {
                        job.handle = Some(handle);
                        job.cloud_ref = cloud_ref;
                        job.started_ms = Some(now);
                        job.progress = Some("accepted by the cloud".into());
                    }
                    self.save(id, None, "accepted", answer, now);
                    self.effects.push(Effect::Poll(id));
                    self.incident_on_start(id);
                }
            }
            CloudUpdate::Submitted(SubmitOutcome::Refused(err)) => {
                let text =
                    format!("❌ job {id} was refused by the cloud; nothing was started: {err}");
                self.finish(id, JobState::Failed, None, "refused", err.to_string(), now);
                self.notice(&channel, Some(id), text);
            }
            CloudUpdate::Submitted(SubmitOutcome::NotSent(why)) => {
                self.not_sent(id, &channel, why, now)
            }
            CloudUpdate::Submitted(SubmitOutcome::Indeterminate(seen)) => {
                // The request may have taken effect. Re-sending could restart twice; look.
                let verb = self.config.catalog.verb_of(&job.spec).to_string();
                let text = format!(
                    "⏳ job {id}: {seen}; checking whether the {verb} started (it will not be re-sent)"
                );
                if let Some(job) = self.active.get_mut(&id) {
                    job.progress =
                        Some(format!("unconfirmed: checking whether the {verb} started"));
                }
                self.save(id, None, "unconfirmed", seen, now);
                self.effects.push(Effect::Reconcile(id));
                self.notice(&channel, Some(id), text);
            }
            CloudUpdate::Reconciled(ReconcileOutcome::Running { handle, note }) => {
                if self.transition(id, JobState::Running) {
                    if let Some(job) = self.active.get_mut(&id) {
                        job.handle = Some(handle);
                        job.started_ms = Some(now);
                        job.progress = Some(note.clone());
                    }
                    self.save(id, None, "reconciled", note, now);
                    self.effects.push(Effect::Poll(id));
                }
            }
            CloudUpdate::Reconciled(ReconcileOutcome::Unknown(why)) => {
                self.unknown(id, &channel, why, now)
            }
            CloudUpdate::Progress { progress, handle } => {
                if let Some(job) = self.active.get_mut(&id) {
                    if handle.is_some() {
                        job.handle = handle;
                    }
                    let changed = progress.is_some() && job.progress != progress;
                    if progress.is_some() {
                        job.progress = progress.clone();
                    }
                    let detail = progress.unwrap_or_else(|| "progress".into());
                    if changed {
                        self.save(id, None, "progress", detail, now);
                    } else {
                        self.audit_only(id, "progress", &detail, now);
                    }
                }
            }
            CloudUpdate::NeedsAttention(what) => {
                if let Some(job) = self.active.get_mut(&id) {
                    job.progress = Some(format!("waiting for a person: {what}"));
                }
                self.save(id, None, "attention", what.clone(), now);
                self.incident(
                    id,
                    Severity::Warning,
                    format!("⚠️ job {id} is waiting for a person on the cloud side: {what}"),
                );
                self.notice(
                    &channel,
                    Some(id),
                    format!("⚠️ job {id} is waiting for a person on the cloud side: {what}"),
                );
            }
            CloudUpdate::Finished(Ok(detail)) => {
                self.finish(id, JobState::Succeeded, None, "succeeded", detail, now);
            }
            CloudUpdate::Finished(Err(err)) => {
                let text = format!("❌ job {id} failed: {err}");
                self.finish(id, JobState::Failed, None, "failed", err.to_string(), now);
                self.notice(&channel, Some(id), text);
            }
            CloudUpdate::Unknown(why) => self.unknown(id, &channel, why, now),
            // The operation could not be built (a missing secret, an unknown account).
            CloudUpdate::Unavailable(why) => self.not_sent(id, &channel, why, now),
        }
    }

    /// Nothing left opsgate: the job fails, and the text says what to fix.
    fn not_sent(&mut self, id: JobId, channel: &str, why: String, now: u64) {
        let text = format!("❌ job {id} was not sent: {why}");
        self.finish(id, JobState::Failed, None, "not-sent", why, now);
        self.notice(channel, Some(id), text);
    }

    fn unknown(&mut self, id: JobId, channel: &str, why: String, now: u64) {
        let text = format!("⚠️ job {id} ended unknown, and it was not re-sent: {why}");
        self.finish(id, JobState::Unknown, None, "unknown", why, now);
        self.notice(channel, Some(id), text);
    }
}
