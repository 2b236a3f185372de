//! Notifications to the incident channels: for jobs that needed approval, when they are
//! requested, decided, started and finished; for every job that fails or ends unknown.

use super::{Effect, Engine};
use crate::domain::{JobId, Severity};
use crate::job::{Job, JobState};
use crate::ports::chat::Outgoing;

impl Engine {
    pub(super) fn incident(&mut self, id: JobId, severity: Severity, text: String) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        let job = Job::clone(job);
        self.incident_about(&job, severity, text);
    }

    /// A notification about `job`, active or not.
    pub(super) fn incident_about(&mut self, job: &Job, severity: Severity, text: String) {
        let id = job.id;
        let catalog = &self.config.catalog;
        let service = (catalog.by_id(&job.spec.operation)).map_or("", |op| op.service.as_str());
        let Some(channel) = self.config.incidents.channel_for(service, severity) else {
            return;
        };
        self.effects.push(Effect::Chat(Outgoing::Incident {
            channel: channel.clone(),
            job: id,
            severity,
            text,
            job_channel: job.channel.clone(),
            message_id: job.message_id.clone(),
        }));
    }

    /// A job that needed approval has started running in the cloud.
    pub(super) fn incident_on_start(&mut self, id: JobId) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        if job.requirement.approvals > 0 {
            let text = format!("🔄 job {id} started: {}", self.action(&job.spec));
            self.incident(id, Severity::Info, text);
        }
    }

    /// The notification for a job reaching a final state, if it gets one.
    pub(super) fn incident_on_finish(&mut self, id: JobId, state: JobState, detail: &str) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        let needed_approval = job.requirement.approvals > 0;
        let action = self.action(&job.spec);
        let (severity, text) = match state {
            JobState::Failed => (
                Severity::Critical,
                format!("❌ job {id} failed: {action}: {detail}"),
            ),
            JobState::Unknown => (
                Severity::Critical,
                format!("⚠️ job {id} ended unknown: {action}: {detail}"),
            ),
            _ if !needed_approval => return,
            JobState::Succeeded => (Severity::Info, format!("✅ job {id} succeeded: {action}")),
            JobState::Denied => (
                Severity::Info,
                format!("🚫 job {id} denied: {action}: {detail}"),
            ),
            JobState::Expired => (
                Severity::Info,
                format!("⌛ job {id} expired without approval: {action}"),
            ),
            JobState::Cancelled => (
                Severity::Info,
                format!("↩️ job {id} cancelled: {action}: {detail}"),
            ),
            _ => return,
        };
        self.incident(id, severity, text);
    }
}
