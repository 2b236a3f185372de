//! What the cloud tasks report back, and what the engine makes of it.

use super::{Effect, Engine};
use crate::domain::{JobId, Severity};
use crate::job::JobState;
use crate::ports::cloud::{CloudError, ReconcileOutcome, SubmitOutcome};
use crate::ports::inbox::CloudUpdate;

impl Engine {
    pub(super) fn cloud_result(&mut self, id: JobId, update: CloudUpdate, now: u64) {
        if !self.active.contains_key(&id) {
            tracing::debug!(job = id.0, "update for a job that is no longer active");
            return;
        }
        match update {
            CloudUpdate::Submitted(SubmitOutcome::Accepted {
                handle,
                cloud_ref,
                answer,
            }) => self.running(id, handle, cloud_ref, "accepted", answer, now),
            CloudUpdate::Submitted(SubmitOutcome::Refused(err)) => {
                let text =
                    format!("❌ job {id} was refused by the cloud; nothing was started: {err}");
                self.finish_with_notice(
                    id,
                    JobState::Failed,
                    "refused",
                    err.to_string(),
                    text,
                    now,
                );
            }
            CloudUpdate::Submitted(SubmitOutcome::NotSent(why)) => self.not_sent(id, why, now),
            CloudUpdate::Submitted(SubmitOutcome::Indeterminate(seen)) => {
                self.unconfirmed(id, seen, now)
            }
            CloudUpdate::Reconciled(ReconcileOutcome::Running { handle, note }) => {
                self.running(id, handle, None, "reconciled", note, now)
            }
            CloudUpdate::Reconciled(ReconcileOutcome::Unknown(why)) => self.unknown(id, why, now),
            CloudUpdate::Progress { progress, handle } => self.progress(id, progress, handle, now),
            CloudUpdate::NeedsAttention(what) => self.needs_attention(id, what, now),
            CloudUpdate::Finished(Ok(detail)) => {
                self.finish(id, JobState::Succeeded, None, "succeeded", detail, now);
            }
            CloudUpdate::Finished(Err(err)) => self.failed(id, err, now),
            CloudUpdate::Unknown(why) => self.unknown(id, why, now),
            // The operation could not be built (a missing secret, an unknown account).
            CloudUpdate::Unavailable(why) => self.not_sent(id, why, now),
        }
    }

    /// The work is under way in the cloud (accepted, or found under way by a reconcile):
    /// the job runs and is polled.
    fn running(
        &mut self,
        id: JobId,
        handle: serde_json::Value,
        cloud_ref: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        if !self.transition(id, JobState::Running) {
            return;
        }
        let accepted = event == "accepted";
        if let Some(job) = self.active.get_mut(&id) {
            job.handle = Some(handle);
            if cloud_ref.is_some() {
                job.cloud_ref = cloud_ref;
            }
            job.started_ms = Some(now);
            job.progress = Some(if accepted {
                "accepted by the cloud".into()
            } else {
                detail.clone()
            });
        }
        self.save(id, None, event, detail, now);
        self.effects.push(Effect::Poll(id));
        if accepted {
            self.incident_on_start(id);
        }
    }

    /// The submit's answer proves nothing: the request may have taken effect, and re-sending
    /// could restart twice, so the engine looks instead. The answer is kept for the job's
    /// last word.
    fn unconfirmed(&mut self, id: JobId, seen: String, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        let verb = self.config.catalog.verb_of(&job.spec).to_string();
        job.progress = Some(format!("unconfirmed: checking whether the {verb} started"));
        job.submit_answer = Some(seen.clone());
        let text = format!(
            "⏳ job {id}: {seen}; checking whether the {verb} started (it will not be re-sent)"
        );
        self.save(id, None, "unconfirmed", seen, now);
        self.effects.push(Effect::Reconcile(id));
        self.notice_job(id, text);
    }

    fn progress(
        &mut self,
        id: JobId,
        progress: Option<String>,
        handle: Option<serde_json::Value>,
        now: u64,
    ) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
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

    fn needs_attention(&mut self, id: JobId, what: String, now: u64) {
        if let Some(job) = self.active.get_mut(&id) {
            job.progress = Some(format!("waiting for a person: {what}"));
        }
        self.save(id, None, "attention", what.clone(), now);
        let text = format!("⚠️ job {id} is waiting for a person on the cloud side: {what}");
        self.incident(id, Severity::Warning, text.clone());
        self.notice_job(id, text);
    }

    fn failed(&mut self, id: JobId, err: CloudError, now: u64) {
        let detail = self.with_submit_answer(id, err.to_string());
        let text = format!("❌ job {id} failed: {detail}");
        self.finish_with_notice(id, JobState::Failed, "failed", detail, text, now);
    }

    /// Nothing left opsgate: the job fails, and the text says what to fix.
    fn not_sent(&mut self, id: JobId, why: String, now: u64) {
        let text = format!("❌ job {id} was not sent: {why}");
        self.finish_with_notice(id, JobState::Failed, "not-sent", why, text, now);
    }

    fn unknown(&mut self, id: JobId, why: String, now: u64) {
        let detail = self.with_submit_answer(id, why);
        let text = format!("⚠️ job {id} ended unknown, and it was not re-sent: {detail}");
        self.finish_with_notice(id, JobState::Unknown, "unknown", detail, text, now);
    }

    /// Ends the job, then says `text` in its channel as a new message.
    fn finish_with_notice(
        &mut self,
        id: JobId,
        state: JobState,
        event: &str,
        detail: String,
        text: String,
        now: u64,
    ) {
        let channel = self.channel_of(id);
        self.finish(id, state, None, event, detail, now);
        if let Some(channel) = channel {
            self.notice(&channel, Some(id), text);
        }
    }

    /// What was observed, after what the cloud answered the submit when that answer proved
    /// nothing: the one place a reader of the job's last line finds both.
    fn with_submit_answer(&self, id: JobId, observed: String) -> String {
        match self.active.get(&id).and_then(|j| j.submit_answer.as_ref()) {
            Some(answer) => format!("{answer}; then {observed}"),
            None => observed,
        }
    }

    /// A new message in the job's channel.
    fn notice_job(&mut self, id: JobId, text: String) {
        if let Some(channel) = self.channel_of(id) {
            self.notice(&channel, Some(id), text);
        }
    }
}
