//! Break-glass: who may skip a rule's approvals, and the review of a job that did (`!review`).

use super::{Effect, Engine};
use crate::domain::{Actor, JobId, Severity};
use crate::job::{AuditEntry, Job, Review, Verdict};
use crate::policy::Rule;
use crate::ports::chat::{FlowOut, Origin, Outgoing};

impl Engine {
    /// Why `actor` may not use `--break-glass` under `rule`, if they may not.
    pub(super) fn break_glass_refusal(&self, rule: &Rule, actor: &Actor) -> Option<String> {
        if rule.break_glass_roles.is_empty() {
            return Some(format!(
                "Rule `{}` does not allow --break-glass; ask for the approval instead.",
                rule.name
            ));
        }
        if !actor
            .roles
            .iter()
            .any(|r| rule.break_glass_roles.contains(r))
        {
            return Some(format!(
                "{}: --break-glass under rule `{}` needs the role {}.",
                actor.name,
                rule.name,
                self.config.policy.describe_roles(&rule.break_glass_roles)
            ));
        }
        None
    }

    pub(super) fn on_review(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        id: JobId,
        verdict: Verdict,
        note: Option<String>,
        now: u64,
    ) {
        let Some(mut job) = self.job_now(id) else {
            let msg = self.no_job(id);
            return self.refuse(origin, msg);
        };
        if let Err(refusal) = self.may_review(&job, actor) {
            return self.refuse(origin, refusal);
        }
        if let Some(glass) = job.break_glass.as_mut() {
            glass.review = Some(Review {
                by: actor.person(),
                verdict,
                note: note.clone(),
                at_ms: now,
            });
        }
        let detail = match &note {
            Some(n) => format!("{} by {}: {n}", verdict.label(), actor.name),
            None => format!("{} by {}", verdict.label(), actor.name),
        };
        let icon = if verdict == Verdict::Ok {
            "✅"
        } else {
            "⚠️"
        };
        let text = format!(
            "{icon} job {id} break-glass review: {detail} ({})",
            self.action(&job.spec)
        );
        if let Some(active) = self.active.get_mut(&id) {
            active.break_glass = job.break_glass.clone();
            self.save(id, Some(actor.audit_name()), "review", detail, now);
        } else {
            self.save_finished(&mut job, actor, detail, now);
        }
        let severity = if verdict == Verdict::Ok {
            Severity::Info
        } else {
            Severity::Warning
        };
        self.incident_about(&job, severity, text.clone());
        self.reply(origin, text, false);
    }

    /// Whether `actor` may review `job`: it ran with break-glass, nobody reviewed it yet,
    /// they hold the rule's approver role (an admin role where it names none), and they are
    /// not who broke the glass.
    fn may_review(&self, job: &Job, actor: &Actor) -> Result<(), String> {
        let id = job.id;
        let Some(glass) = &job.break_glass else {
            return Err(format!(
                "Job {id} did not run with --break-glass; there is nothing to review."
            ));
        };
        if let Some(r) = &glass.review {
            return Err(format!(
                "Job {id} was already reviewed by {} ({}).",
                r.by.name,
                r.verdict.label()
            ));
        }
        let roles = if job.requirement.approver_roles.is_empty() {
            &self.config.policy.admin_roles
        } else {
            &job.requirement.approver_roles
        };
        if !actor.roles.iter().any(|r| roles.contains(r)) {
            return Err(format!(
                "{}: reviewing job {id} needs the role {}.",
                actor.name,
                self.config.policy.describe_roles(roles)
            ));
        }
        if glass.by.id == actor.id {
            return Err(format!(
                "{}: you used break-glass on job {id}; someone else must review it.",
                actor.name
            ));
        }
        Ok(())
    }

    /// A finished job's review: written and re-rendered here, as `save` does for active ones.
    fn save_finished(&mut self, job: &mut Job, actor: &Actor, detail: String, now: u64) {
        job.updated_ms = now;
        let entry = AuditEntry {
            at_ms: now,
            actor: Some(actor.audit_name()),
            event: "review".into(),
            detail: detail.clone(),
        };
        self.writes.put_job(job, Some(entry));
        let card = self.card(job);
        self.effects.push(Effect::Chat(Outgoing::UpdateCard {
            channel: job.channel.clone(),
            message_id: job.message_id.clone(),
            card,
        }));
        if job.thread {
            self.effects.push(Effect::Flow(FlowOut::ThreadLine {
                channel: job.channel.clone(),
                job: job.id,
                card_message: job.message_id.clone(),
                text: format!("review by {}: {detail}", actor.name),
            }));
        }
    }
}
