//! A job's life: the moves of its state machine, each written with its audit entry and shown
//! on its card; the lock it holds while active; replies and notices.

use super::cards::{audit_line, log_step};
use super::{Effect, Engine};
use crate::domain::{ChannelId, JobId, JobSpec};
use crate::job::{AuditEntry, Job, JobState};
use crate::ports::chat::{FlowOut, Origin, Outgoing};

impl Engine {
    pub(super) fn reply(&mut self, to: &Origin, text: impl Into<String>, private: bool) {
        self.effects.push(Effect::Chat(Outgoing::Reply {
            to: to.clone(),
            text: text.into(),
            private,
        }));
    }

    /// Replies that refuse something; counted so the command metric can tell refusals apart.
    pub(super) fn refuse(&mut self, origin: &Origin, text: impl Into<String>) {
        self.refusals += 1;
        self.reply(origin, text, true);
    }

    pub(super) fn notice(&mut self, channel: &ChannelId, job: Option<JobId>, text: String) {
        self.effects.push(Effect::Chat(Outgoing::Notice {
            channel: channel.clone(),
            job,
            text,
        }));
    }

    /// What `spec` does in one line, e.g. `restart ddm orders-db hard`.
    pub(super) fn action(&self, spec: &JobSpec) -> String {
        self.config.catalog.action_of(spec)
    }

    /// Queues a line for a threaded job's thread.
    pub(super) fn thread_line(&mut self, id: JobId, text: String) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        self.effects.push(Effect::Flow(FlowOut::ThreadLine {
            channel: job.channel.clone(),
            job: id,
            card_message: job.message_id.clone(),
            text,
        }));
    }

    /// Persist `job` (with an audit entry) and queue an update of its message.
    pub(super) fn save(
        &mut self,
        id: JobId,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        let thread_text = self
            .active
            .get(&id)
            .filter(|j| j.thread)
            .map(|_| audit_line(event, actor.as_deref(), &detail));
        let Some(state) = self.record(id, actor, event, detail, now) else {
            return;
        };
        if let Some(job) = self.active.get(&id) {
            let card = self.card(job);
            self.effects.push(Effect::Chat(Outgoing::UpdateCard {
                channel: job.channel.clone(),
                message_id: job.message_id.clone(),
                card,
            }));
        }
        if let Some(text) = thread_text {
            self.thread_line(id, text);
        }
        self.effects.push(Effect::Observe(id, state));
    }

    /// Persist without queueing a card update (used before the card is first posted).
    pub(super) fn save_quiet(
        &mut self,
        id: JobId,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        if let Some(state) = self.record(id, actor, event, detail, now) {
            self.effects.push(Effect::Observe(id, state));
        }
    }

    /// Writes an active job with a new audit entry; returns its state.
    fn record(
        &mut self,
        id: JobId,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) -> Option<JobState> {
        let job = self.active.get_mut(&id)?;
        job.updated_ms = now;
        log_step(id, event, job.state, &detail);
        let entry = AuditEntry {
            at_ms: now,
            actor,
            event: event.to_string(),
            detail,
        };
        self.writes.put_job(job, Some(entry));
        Some(job.state)
    }

    /// Append to a job's audit log without changing what chat shows.
    pub(super) fn audit_only(&mut self, id: JobId, event: &str, detail: &str, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        let entry = AuditEntry {
            at_ms: now,
            actor: None,
            event: event.to_string(),
            detail: detail.to_string(),
        };
        self.writes.put_job(job, Some(entry));
        if job.thread {
            self.thread_line(id, audit_line(event, None, detail));
        }
    }

    /// Move a job to `state` if that move is legal; returns whether it moved.
    pub(super) fn transition(&mut self, id: JobId, state: JobState) -> bool {
        match self.active.get_mut(&id) {
            Some(job) if job.state.can_become(state) => {
                job.state = state;
                true
            }
            Some(job) => {
                tracing::warn!(job = id.0, from = ?job.state, to = ?state, "illegal transition refused");
                false
            }
            None => false,
        }
    }

    /// Approved -> submitting, durably, then submit. `announce` updates the job's message;
    /// it is off when the message is about to be posted for the first time anyway.
    pub(super) fn start(
        &mut self,
        id: JobId,
        approval: (&str, String, Option<String>),
        announce: bool,
        now: u64,
    ) {
        if !self.transition(id, JobState::Approved) {
            return;
        }
        self.expiries.retain(|(_, j)| *j != id);
        let (event, detail, actor) = approval;
        if announce && self.active.get(&id).is_some_and(|j| j.thread) {
            let text = audit_line(event, actor.as_deref(), &detail);
            self.thread_line(id, text);
        }
        self.save_quiet(id, actor, event, detail, now);
        if self.transition(id, JobState::Submitting) {
            let detail = self.submitting_detail(id);
            if announce {
                self.save(id, None, "submitting", detail, now);
            } else {
                self.save_quiet(id, None, "submitting", detail, now);
            }
            self.effects.push(Effect::Submit(id));
        }
    }

    /// The audit entry of a submit. For a declared operation it is the request or argv
    /// exactly as described, credentials never (the `requested` entry names the
    /// declaration's file and hash), so what was sent stays readable after the file changes.
    fn submitting_detail(&self, id: JobId) -> String {
        let plain = "sending the request to the cloud".to_string();
        let Some(job) = self.active.get(&id) else {
            return plain;
        };
        let declared =
            (self.config.catalog.by_id(&job.spec.operation)).is_some_and(|op| op.origin.is_some());
        if !declared {
            return plain;
        }
        match self.operations.describe(&job.spec) {
            Ok(d) => format!("sending {}", d.request()),
            Err(e) => format!("sending the request (cannot describe it: {e})"),
        }
    }

    /// Move a job to a final state, release its lock, persist, and drop it from memory.
    pub(super) fn finish(
        &mut self,
        id: JobId,
        state: JobState,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        if !self.transition(id, state) {
            return;
        }
        if let Some(job) = self.active.get_mut(&id) {
            job.finished_ms = Some(now);
            job.outcome = Some(detail.clone());
        }
        self.incident_on_finish(id, state, &detail);
        self.count_finished(id, state);
        let outcome_line = self.active.get(&id).filter(|j| j.thread).map(|j| {
            format!(
                "{} job {id} {}: {} · {detail}",
                state.icon(),
                state.label(),
                self.action(&j.spec)
            )
        });
        self.save(id, actor, event, detail, now);
        // A threaded job's channel shows its card; its outcome is said there too. Failures
        // and unknown outcomes get their notice from `cloud_results.rs` already.
        if let (Some(text), false) = (
            outcome_line,
            matches!(state, JobState::Failed | JobState::Unknown),
        ) {
            if let Some(channel) = self.channel_of(id) {
                self.notice(&channel, Some(id), text);
            }
        }
        if let Some(job) = self.active.remove(&id) {
            let lock = self.lock_key(&job.spec);
            if self.locks.get(&lock) == Some(&id) {
                self.locks.remove(&lock);
            }
            self.expiries.remove(&(job.expires_ms, id));
        }
    }

    fn count_finished(&self, id: JobId, state: JobState) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        let provider = (self.config.catalog.by_id(&job.spec.operation))
            .map_or("unknown", |op| op.provider.name());
        self.metrics.job_finished(provider, state.label_metric());
        match state {
            JobState::Denied => self.metrics.approval("denied"),
            JobState::Expired => self.metrics.approval("expired"),
            _ => {}
        }
    }

    /// The lock key of the resource `spec` acts on: where it lives (provider, region or
    /// private endpoint, project, SCNet cluster) and its IDs, never the account's name, so two
    /// accounts that reach the same instance share one lock. An account missing from the
    /// config (a job stored under an older config) is keyed by its name.
    pub(super) fn lock_key(&self, spec: &JobSpec) -> String {
        let op = self.config.catalog.by_id(&spec.operation);
        let place = match self.config.accounts.get(&spec.account) {
            Some(a) => a.place(),
            None => format!("account {}", spec.account),
        };
        // A row may say what its lock is (a declared operation's `lock`); otherwise the
        // service and every target parameter.
        let (group, params): (&str, Vec<&str>) = match op {
            Some(o) => match &o.lock {
                Some(lock) => (
                    &lock.group,
                    lock.params.iter().map(String::as_str).collect(),
                ),
                None => (
                    &o.service,
                    o.target.iter().map(|p| p.name.as_str()).collect(),
                ),
            },
            None => (&spec.operation, Vec::new()),
        };
        let mut key = format!("{place}/{group}");
        for name in params {
            key.push('/');
            key.push_str(spec.param(name).unwrap_or(""));
        }
        key
    }

    /// The job `id` as it now is: active, written in this group, or stored.
    pub(super) fn job_now(&mut self, id: JobId) -> Option<Job> {
        match self.active.get(&id) {
            Some(job) => Some(Job::clone(job)),
            None => self.stored_job(id),
        }
    }
}
