//! A request for a cloud operation: which account and rule apply, what stands in its way
//! (a break-glass that is not allowed, a freeze, the target's lock), and then a dry run, a
//! confirmation prompt, or a new job.

use std::sync::Arc;

use super::{Effect, Engine};
use crate::command::OperationRequest;
use crate::domain::{Actor, JobId, JobSpec, Severity};
use crate::freeze::{self, FreezeHit};
use crate::job::{BreakGlass, Job, JobState, Requirement};
use crate::policy::{self, Rule, Subject};
use crate::ports::chat::{Origin, Outgoing};

/// What a request would meet, checked before anything is stored.
pub(super) struct Gates {
    /// Why `--break-glass` may not be used, when it was asked for.
    pub glass_refusal: Option<String>,
    /// The freeze covering the request now, if any.
    pub freeze: Option<FreezeHit>,
    /// The refusal a freeze causes (none when break-glass passes it).
    pub frozen: Option<String>,
    /// Who holds the target's lock, when someone does.
    pub busy: Option<String>,
}

impl Gates {
    /// The first thing in the way, in the order they are checked: a break-glass that is not
    /// allowed, a freeze (which break-glass passes), the lock (which nothing passes).
    pub fn refusal(&self) -> Option<&String> {
        (self.glass_refusal.as_ref())
            .or(self.frozen.as_ref())
            .or(self.busy.as_ref())
    }
}

impl Engine {
    /// `confirmed`: the requester has just typed `!confirm`; everything is checked again in
    /// full, as rules, freezes and locks may have changed in the meantime.
    pub(super) fn request(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        req: OperationRequest,
        confirmed: bool,
        now: u64,
    ) {
        let account = match self.account_for(&req) {
            Ok(account) => account,
            Err(refusal) => return self.refuse(origin, refusal),
        };
        // The rule depends on what the request acts on: the named target, else the account.
        let config = self.config.clone();
        let subject = Subject {
            target: (config.targets.contains_key(&req.target)).then_some(req.target.as_str()),
            account: &account,
        };
        let rule = match policy::check_request_on(
            &config.policy,
            &actor.roles,
            &origin.channel,
            &req.op.key(),
            req.mode.as_deref(),
            &subject,
        ) {
            Ok(rule) => rule,
            Err(refusal) => return self.refuse(origin, refusal),
        };
        let spec = JobSpec {
            operation: req.op.id.clone(),
            account: account.clone(),
            target: req.target.clone(),
            params: req.params.clone(),
        };
        let gates = self.gates(actor, &req, rule, &subject, &spec, now);
        if req.dry_run {
            let text = self.dry_run_text(actor, &spec, rule, &req, &gates, now);
            return self.reply(origin, text, true);
        }
        if let Some(refusal) = gates.refusal() {
            return self.refuse(origin, refusal.clone());
        }
        if rule.confirm && !confirmed {
            return self.ask_confirmation(actor, origin, req, now);
        }
        let (id, requested) = self.open_job(actor, origin, rule, spec, &req, confirmed, now);
        let mut thread = vec![format!("requested by {}: {requested}", actor.name)];
        thread.extend(self.post_job(actor, origin, rule, id, now));
        if self.active.get(&id).is_some_and(|j| j.thread) {
            for text in thread {
                self.thread_line(id, text);
            }
        }
    }

    /// The account a request uses: the one it names (of the operation's provider), or the
    /// provider's default.
    fn account_for(&self, req: &OperationRequest) -> Result<String, String> {
        let op = &req.op;
        match &req.account {
            Some(name) => match self.config.accounts.get(name) {
                Some(acc) if acc.provider == op.provider => Ok(acc.name.clone()),
                Some(acc) => Err(format!(
                    "Account `{name}` is a {} account; {} needs {}.",
                    acc.provider.name(),
                    op.key(),
                    op.provider.name()
                )),
                None => Err(format!("Unknown account `{name}`.")),
            },
            None => match self.config.default_account(op.provider) {
                Some(acc) => Ok(acc.name.clone()),
                None => Err(format!(
                    "There is no default {} account; add account=NAME.",
                    op.provider.name()
                )),
            },
        }
    }

    fn gates(
        &self,
        actor: &Actor,
        req: &OperationRequest,
        rule: &Rule,
        subject: &Subject<'_>,
        spec: &JobSpec,
        now: u64,
    ) -> Gates {
        let what = match req.mode.as_deref() {
            Some(m) => format!("`{} {m}` on {}", req.op.key(), spec.target),
            None => format!("`{}` on {}", req.op.key(), spec.target),
        };
        let glass_refusal =
            (req.break_glass.as_ref()).and_then(|_| self.break_glass_refusal(rule, actor));
        let tags = policy::tags_of(&self.config.policy, subject);
        let freeze = freeze::hit(
            &self.config.freezes,
            self.chat_freeze.as_ref(),
            &rule.name,
            &tags,
            now,
        );
        let frozen = (freeze.as_ref())
            .filter(|_| req.break_glass.is_none() || glass_refusal.is_some())
            .map(|hit| self.frozen_text(&what, rule, hit, now));
        let busy = self.lock_holder(spec);
        Gates {
            glass_refusal,
            freeze,
            frozen,
            busy,
        }
    }

    /// Who holds the lock of the resource `spec` acts on, said for the refusal.
    fn lock_holder(&self, spec: &JobSpec) -> Option<String> {
        let holder = self
            .locks
            .get(&self.lock_key(spec))
            .and_then(|id| self.active.get(id))?;
        let or_cancel = if holder.state == JobState::AwaitingApproval {
            " or cancel it"
        } else {
            ""
        };
        Some(format!(
            "{} is busy: job {} ({}, {}) holds it. Wait for it to finish{or_cancel}.",
            spec.target,
            holder.id,
            self.action(&holder.spec),
            holder.state.label(),
        ))
    }

    /// Stores a new job for the request, holding the target's lock; returns its number and
    /// what its audit log says of the request.
    #[allow(clippy::too_many_arguments)]
    fn open_job(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        rule: &Rule,
        spec: JobSpec,
        req: &OperationRequest,
        confirmed: bool,
        now: u64,
    ) -> (JobId, String) {
        let id = self.next_id;
        self.next_id = id.next();
        self.writes.set_next_id(self.next_id);
        let break_glass = req.break_glass.clone().map(|reason| BreakGlass {
            by: actor.person(),
            reason,
            at_ms: now,
            review: None,
        });
        let needs_approval = rule.approvals > 0 && break_glass.is_none();
        let job = Job {
            id,
            spec: Arc::new(spec),
            requester: actor.person(),
            channel: origin.answer_channel().clone(),
            requirement: Requirement {
                rule: rule.name.clone(),
                approvals: rule.approvals,
                approver_roles: rule.approver_roles.clone(),
            },
            state: JobState::AwaitingApproval,
            approvals: Vec::new(),
            created_ms: now,
            expires_ms: if needs_approval {
                now + rule.expires.as_millis() as u64
            } else {
                0
            },
            updated_ms: now,
            message_id: None,
            cloud_ref: None,
            handle: None,
            progress: None,
            outcome: None,
            submit_answer: None,
            started_ms: None,
            finished_ms: None,
            audit_len: 0,
            nonce: fastrand::u64(1..),
            break_glass,
            thread: rule.thread || self.config.thread_channels.contains(&origin.channel),
        };
        let action = self.action(&job.spec);
        tracing::info!(job = id.0, user = %actor.id, action = %action, "job requested");
        let mut detail = format!(
            "{action} under rule `{}` in #{}",
            rule.name,
            self.config.policy.channel_name(&origin.channel)
        );
        if confirmed {
            detail.push_str(", confirmed by typing the target's name");
        }
        // A declared operation's file and hash, so a later edit of it shows in the log.
        if let Some(origin) = &req.op.origin {
            detail.push_str(&format!(" ({origin})"));
        }
        self.locks.insert(self.lock_key(&job.spec), id);
        if needs_approval {
            self.expiries.insert((job.expires_ms, id));
        }
        self.active.insert(id, Box::new(job));
        self.save_quiet(
            id,
            Some(actor.audit_name()),
            "requested",
            detail.clone(),
            now,
        );
        (id, detail)
    }

    /// Posts a new job's card: for approval, or (no approval needed, or break-glass) as it
    /// starts. Returns what its thread says of the start.
    fn post_job(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        rule: &Rule,
        id: JobId,
        now: u64,
    ) -> Option<String> {
        let job = self.active.get(&id)?;
        let channel = origin.answer_channel().clone();
        if job.expires_ms > 0 {
            let card = self.card(job);
            let mention_roles = rule.approver_roles.clone();
            let text = format!(
                "🔔 job {id} requested by {}: {} (needs {} approval{} from {})",
                actor.name,
                card.action,
                rule.approvals,
                if rule.approvals == 1 { "" } else { "s" },
                card.approver_roles
            );
            self.effects.push(Effect::Chat(Outgoing::Card {
                channel,
                card,
                mention_roles,
            }));
            self.incident(id, Severity::Info, text);
            return None;
        }
        let glass = job.break_glass.clone();
        let (event, why) = match &glass {
            Some(glass) => (
                "break-glass",
                format!(
                    "approvals skipped with --break-glass by {}: {}",
                    actor.name, glass.reason
                ),
            ),
            None => (
                "approved",
                format!("rule `{}` needs no approval", rule.name),
            ),
        };
        let started = format!("{event}: {why}");
        self.start(id, (event, why, Some(actor.audit_name())), false, now);
        if let Some(job) = self.active.get(&id) {
            let card = self.card(job);
            self.effects.push(Effect::Chat(Outgoing::Card {
                channel,
                card,
                mention_roles: Vec::new(),
            }));
        }
        if let Some(glass) = glass {
            self.break_glass_notice(actor, rule, id, &glass.reason);
        }
        Some(started)
    }

    fn break_glass_notice(&mut self, actor: &Actor, rule: &Rule, id: JobId, reason: &str) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        let text = format!(
            "🚨 job {id}: {} used --break-glass on {} (rule `{}` asks for {} approval{} from {}), running now without them: {reason}. It stays marked until someone with that role runs `{}review {id} ok|concern <note>`.",
            actor.name,
            self.action(&job.spec),
            rule.name,
            rule.approvals,
            if rule.approvals == 1 { "" } else { "s" },
            self.config.policy.describe_roles(&rule.approver_roles),
            self.config.prefix
        );
        self.incident(id, Severity::Critical, text);
    }
}
