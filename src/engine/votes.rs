//! Deciding a request: approve, deny, withdraw an approval, cancel.

use super::cards::already;
use super::Engine;
use crate::approval::{self, Refusal};
use crate::domain::{Actor, JobId, Severity};
use crate::job::JobState;
use crate::ports::chat::{Origin, Vote};

/// How a vote was cast.
pub(super) enum Via {
    /// ✅/❌ on the card.
    Reaction,
    /// A card button, with the reason typed into the Deny form.
    Button(Option<String>),
    /// `!approve` / `!deny`, with the deny's reason.
    Command(Option<String>),
}

impl Engine {
    pub(super) fn vote(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        id: JobId,
        vote: Vote,
        via: Via,
        now: u64,
    ) {
        let Some(job) = self.active.get_mut(&id) else {
            let msg = self.not_active(id);
            return self.refuse(origin, msg);
        };
        let result = match vote {
            Vote::Approve => approval::approve(job, actor, now).map(Some),
            Vote::Deny => approval::may_deny(job, actor, now).map(|_| None),
        };
        let (by_reaction, reason) = match via {
            Via::Reaction => (true, None),
            Via::Button(reason) | Via::Command(reason) => (false, reason),
        };
        if let (Ok(Some(_)), true, Some(given)) = (&result, by_reaction, job.approvals.last_mut()) {
            // Remembered so that a ✅ gone from the card withdraws only what ✅ gave.
            given.by_reaction = true;
        }
        match result {
            Err(refusal) => self.vote_refused(actor, origin, id, vote, refusal, now),
            Ok(None) => {
                let detail = match reason {
                    Some(r) => format!("denied by {}: {r}", actor.name),
                    None => format!("denied by {}", actor.name),
                };
                let who = Some(actor.audit_name());
                self.finish(id, JobState::Denied, who, "denied", detail, now);
            }
            Ok(Some(quorum)) => self.approved(actor, id, quorum, now),
        }
    }

    fn vote_refused(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        id: JobId,
        vote: Vote,
        refusal: Refusal,
        now: u64,
    ) {
        let verb = match vote {
            Vote::Approve => "approve",
            Vote::Deny => "deny",
        };
        let msg = match refusal {
            Refusal::Expired => {
                let why = "no quorum before the deadline".to_string();
                self.finish(id, JobState::Expired, None, "expired", why, now);
                format!("{}: job {id} has expired; nothing was run.", actor.name)
            }
            Refusal::NotApprover(roles) => format!(
                "{}: you cannot {verb} job {id}: it needs the role {}. The count did not change.",
                actor.name,
                self.config.policy.describe_roles(&roles)
            ),
            refusal => format!("{}: you cannot {verb} job {id}: {refusal}.", actor.name),
        };
        self.refuse(origin, msg);
    }

    /// An approval was counted; at quorum the job starts.
    fn approved(&mut self, actor: &Actor, id: JobId, quorum: bool, now: u64) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        let (have, need) = (job.approvals.len(), job.approvals_needed());
        let detail = format!("approval {have} of {need} by {}", actor.name);
        if !quorum {
            return self.save(id, Some(actor.audit_name()), "approval", detail, now);
        }
        self.metrics.approval("granted");
        let waited = now.saturating_sub(job.created_ms) as f64 / 1000.0;
        self.metrics.approval_wait.observe(waited);
        let detail = format!("{detail}; quorum reached");
        let text = format!(
            "👍 job {id} approved ({detail}): {}",
            self.action(&job.spec)
        );
        self.incident(id, Severity::Info, text);
        self.start(
            id,
            ("approved", detail, Some(actor.audit_name())),
            true,
            now,
        );
    }

    pub(super) fn withdraw(&mut self, actor: &Actor, origin: &Origin, id: JobId, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        match approval::withdraw(job, actor) {
            Ok(true) => {
                let detail = format!("{} withdrew their approval", actor.name);
                self.save(id, Some(actor.audit_name()), "withdrawn", detail, now);
            }
            Ok(false) => {}
            Err(_) => {
                let msg = format!(
                    "{}: job {id} is already {}; removing ✅ does not change it.",
                    actor.name,
                    job.state.label()
                );
                self.refuse(origin, msg);
            }
        }
    }

    pub(super) fn cancel(&mut self, actor: &Actor, origin: &Origin, id: JobId, now: u64) {
        let Some(job) = self.active.get(&id) else {
            let msg = self.not_active(id);
            return self.refuse(origin, msg);
        };
        let allowed = job.requester.id == actor.id || self.config.policy.is_admin(&actor.roles);
        if !allowed {
            let msg = format!(
                "{}: only {} (who requested it) or an admin can cancel job {id}.",
                actor.name, job.requester.name
            );
            return self.refuse(origin, msg);
        }
        if !job.state.can_become(JobState::Cancelled) {
            let msg = format!(
                "Job {id} is {}: it can no longer be cancelled.",
                job.state.label()
            );
            return self.refuse(origin, msg);
        }
        let detail = format!("cancelled by {}", actor.name);
        let who = Some(actor.audit_name());
        self.finish(id, JobState::Cancelled, who, "cancelled", detail, now);
    }

    /// A job that is not active: say what happened to it, or that it does not exist.
    fn not_active(&mut self, id: JobId) -> String {
        match self.job_now(id) {
            Some(job) => format!(
                "Job {id} {} ({}).",
                already(job.state),
                self.action(&job.spec)
            ),
            None => self.no_job(id),
        }
    }
}
