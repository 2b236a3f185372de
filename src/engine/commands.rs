//! Chat events: commands, reactions and buttons.

use super::{Effect, Engine};
use crate::approval::{self, Refusal};
use crate::chat::{Actor, CardAction, ChatEvent, FlowOut, Origin, Outgoing, Vote};
use crate::cloud::JobSpec;
use crate::command::{self, Command, JobId, OperationRequest};
use crate::config::Severity;
use crate::job::{self, Job, JobState, Person, Requirement};
use crate::policy;

/// The verb of a command, for metric labels: known verbs only, so chat cannot inflate the
/// label set.
fn metric_verb(text: &str, prefix: &str) -> String {
    let verb = text
        .trim_start()
        .strip_prefix(prefix)
        .and_then(|b| b.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_lowercase();
    let known = crate::command::catalog::builtin_by_verb(&verb).is_some()
        || crate::command::catalog::is_operation_verb(&verb);
    if known {
        verb
    } else {
        "unknown".to_string()
    }
}

/// How a vote was cast.
enum Via {
    /// ✅/❌ on the card.
    Reaction,
    /// A card button, with the reason typed into the Deny form.
    Button(Option<String>),
    /// `!approve` / `!deny`, with the deny's reason.
    Command(Option<String>),
}

/// The audit log's actor: the name, and the ID too when it says something more (Discord).
pub(super) fn who(actor: &Actor) -> Option<String> {
    Some(if actor.name == actor.id {
        actor.name.clone()
    } else {
        format!("{} ({})", actor.name, actor.id)
    })
}

impl Engine {
    pub(super) fn on_chat(&mut self, event: ChatEvent, now: u64) {
        match event {
            ChatEvent::Message {
                actor,
                origin,
                text,
            } => self.on_message(&actor, &origin, &text, now),
            ChatEvent::Reaction {
                actor,
                origin,
                message_id,
                emoji,
                added,
            } => {
                let Some(vote) = Vote::from_emoji(&emoji) else {
                    return;
                };
                // Reactions on messages that are not approval requests are chat, not votes.
                let Some(job) = self.job_of_message(&message_id) else {
                    return;
                };
                match (vote, added) {
                    (Vote::Approve, true) => {
                        self.vote(&actor, &origin, job, Vote::Approve, Via::Reaction, now)
                    }
                    (Vote::Deny, true) => {
                        self.vote(&actor, &origin, job, Vote::Deny, Via::Reaction, now)
                    }
                    (Vote::Approve, false) => self.withdraw(&actor, &origin, job, now),
                    (Vote::Deny, false) => {}
                }
            }
            ChatEvent::Button {
                actor,
                origin,
                job,
                nonce,
                message_id,
                vote,
            } => {
                if self.button_is_for(job, nonce, &message_id) {
                    self.vote(&actor, &origin, job, vote, Via::Button(None), now);
                } else {
                    let text = format!("This button is not on job {job}'s card, so it was not counted. Use the buttons on that job's own card, or {}approve {job}.", self.config.prefix);
                    self.reply(&origin, text, true);
                }
            }
            ChatEvent::CardAction {
                actor,
                origin,
                job,
                nonce,
                message_id,
                action,
            } => {
                if !self.button_is_for(job, nonce, &message_id) {
                    let text = format!("This button is not on job {job}'s card, so it did nothing. Use the buttons on that job's own card.");
                    return self.reply(&origin, text, true);
                }
                match action {
                    CardAction::Approve => {
                        self.vote(&actor, &origin, job, Vote::Approve, Via::Button(None), now)
                    }
                    CardAction::Deny { reason } => {
                        // Typed into a modal: the same checks as a `!deny` reason.
                        let words: Vec<&str> =
                            reason.as_deref().unwrap_or("").split_whitespace().collect();
                        match command::reason_text(&words, "the Deny form") {
                            Ok(reason) => self.vote(
                                &actor,
                                &origin,
                                job,
                                Vote::Deny,
                                Via::Button(reason),
                                now,
                            ),
                            Err(e) => self.refuse(&origin, e.message),
                        }
                    }
                    CardAction::Cancel => self.cancel(&actor, &origin, job, now),
                }
            }
            ChatEvent::MessagePosted { job, message_id } => {
                self.record_message_id(job, message_id);
            }
            ChatEvent::CardLost { job, message_id } => self.repost_card(job, &message_id, now),
            ChatEvent::CheckMarkGone {
                actor, message_id, ..
            } => {
                if let Some(job) = self.job_of_message(&message_id) {
                    self.check_mark_gone(&actor, job, now);
                }
            }
        }
    }

    /// The job whose card `message_id` is. An active job's card first: its ID may have been
    /// learned in this very group (a reposted card), before the index reached the store.
    fn job_of_message(&self, message_id: &str) -> Option<JobId> {
        let live = self
            .active
            .values()
            .find(|j| j.message_id.as_deref() == Some(message_id));
        match live {
            Some(job) => Some(job.id),
            None => self.store.job_for_message(message_id).ok().flatten(),
        }
    }

    /// `actor`'s ✅ left the card without a live removal (cleared by a moderator, or removed
    /// while opsgate was away): an approval they gave with ✅ is withdrawn, quietly.
    fn check_mark_gone(&mut self, actor: &Actor, id: JobId, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        if approval::withdraw_reaction(job, actor) {
            let detail = format!(
                "{}'s ✅ is no longer on the card; approval withdrawn",
                actor.name
            );
            self.save(id, who(actor), "withdrawn", detail, now);
        }
    }

    /// A job's card was deleted in chat: post its current card again (the new message's ID
    /// comes back as `MessagePosted` and replaces the old one durably). Only for an active
    /// job and its current card: a finished job's card is history, and an older card was
    /// already replaced.
    fn repost_card(&mut self, id: JobId, lost: &str, now: u64) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        if job.message_id.as_deref() != Some(lost) {
            return;
        }
        let (channel, card) = (job.channel.clone(), self.card(job));
        self.audit_only(
            id,
            "card_reposted",
            "the job's message was deleted in chat; its card was posted again",
            now,
        );
        self.effects.push(Effect::Chat(Outgoing::Card {
            channel,
            card,
            mention_roles: Vec::new(),
        }));
    }

    /// Whether a button with `nonce` on message `message_id` belongs to job `id`'s card. A job
    /// no longer active has no open card; [`vote`](Self::vote) says what became of it.
    fn button_is_for(&self, id: JobId, nonce: Option<u64>, message_id: &str) -> bool {
        let Some(job) = self.active.get(&id) else {
            return true;
        };
        let same_nonce = match nonce {
            Some(nonce) => nonce == job.nonce,
            // Cards posted before nonces carry none; so do only the jobs they were for.
            None => job.nonce == 0,
        };
        let same_message = job.message_id.as_deref().is_none_or(|m| m == message_id);
        same_nonce && same_message
    }

    fn on_message(&mut self, actor: &Actor, origin: &Origin, text: &str, now: u64) {
        let parsed = command::parse(text, &self.config.prefix, &self.config.targets);
        let cmd = match parsed {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return,
            Err(e) => {
                self.metrics
                    .command(&metric_verb(text, &self.config.prefix), "invalid");
                tracing::debug!(user = %actor.id, error = %e.message, "refused command");
                self.reply(origin, e.to_string(), true);
                return;
            }
        };
        let verb = metric_verb(text, &self.config.prefix);
        let replies_before = self.refusals;
        match cmd {
            Command::Operation(req) => self.request(actor, origin, req, now),
            Command::Approve(id) => {
                self.vote(actor, origin, id, Vote::Approve, Via::Command(None), now)
            }
            Command::Deny(id, reason) => {
                self.vote(actor, origin, id, Vote::Deny, Via::Command(reason), now)
            }
            Command::Cancel(id) => self.cancel(actor, origin, id, now),
            Command::Status(id) => {
                self.publish_writes();
                let text = self.status_text(id);
                self.reply(origin, text, false);
            }
            Command::Overview => {
                let text = self.overview_text(now);
                self.reply(origin, text, false);
            }
            Command::Confirm(number, typed) => self.on_confirm(actor, origin, number, &typed, now),
            Command::Review(id, verdict, note) => {
                self.on_review(actor, origin, id, verdict, note, now)
            }
            Command::Freeze(duration, reason) => {
                self.on_freeze(actor, origin, duration, reason, now)
            }
            Command::Unfreeze => self.on_unfreeze(actor, origin, now),
            Command::Jobs(filter) => {
                self.publish_writes();
                let text = self.jobs_text(filter, actor);
                self.reply(origin, text, false);
            }
            Command::Help(topic) => {
                let text = self.help_text(topic.as_deref());
                self.reply(origin, text, true);
            }
            Command::WhoAmI => {
                let text = self.whoami_text(actor, &origin.channel);
                self.reply(origin, text, true);
            }
        }
        let outcome = if self.refusals > replies_before {
            "refused"
        } else {
            "accepted"
        };
        self.metrics.command(&verb, outcome);
    }

    /// Replies that refuse something; counted so the command metric can tell refusals apart.
    pub(super) fn refuse(&mut self, origin: &Origin, text: impl Into<String>) {
        self.refusals += 1;
        self.reply(origin, text, true);
    }

    fn request(&mut self, actor: &Actor, origin: &Origin, req: OperationRequest, now: u64) {
        self.request_with(actor, origin, req, false, now);
    }

    /// A request its requester has just confirmed (`!confirm`): checked again in full, as
    /// rules, freezes and locks may have changed in the meantime.
    pub(super) fn request_confirmed(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        req: OperationRequest,
        now: u64,
    ) {
        self.request_with(actor, origin, req, true, now);
    }

    fn request_with(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        req: OperationRequest,
        confirmed: bool,
        now: u64,
    ) {
        let op = req.op;
        let account = match &req.account {
            Some(name) => match self.config.accounts.get(name) {
                Some(acc) if acc.provider == op.provider => acc.name.clone(),
                Some(acc) => {
                    let msg = format!(
                        "Account `{name}` is a {} account; {} needs {}.",
                        acc.provider.name(),
                        op.key(),
                        op.provider.name()
                    );
                    return self.refuse(origin, msg);
                }
                None => return self.refuse(origin, format!("Unknown account `{name}`.")),
            },
            None => match self.config.default_account(op.provider) {
                Some(acc) => acc.name.clone(),
                None => {
                    let msg = format!(
                        "There is no default {} account; add account=NAME.",
                        op.provider.name()
                    );
                    return self.refuse(origin, msg);
                }
            },
        };
        // The rule depends on what the request acts on: the named target, else the account.
        let config = self.config.clone();
        let subject = policy::Subject {
            target: config
                .targets
                .contains_key(&req.target)
                .then_some(req.target.as_str()),
            account: &account,
        };
        let rule = match policy::check_request_on(
            &config,
            &actor.roles,
            &origin.channel,
            &op.key(),
            req.mode.as_deref(),
            &subject,
        ) {
            Ok(rule) => rule,
            Err(refusal) => return self.refuse(origin, refusal),
        };
        let spec = JobSpec {
            operation: op.id.to_string(),
            account: account.clone(),
            target: req.target.clone(),
            params: req.params.clone(),
        };
        let what = match req.mode.as_deref() {
            Some(m) => format!("`{} {m}` on {}", op.key(), spec.target),
            None => format!("`{}` on {}", op.key(), spec.target),
        };
        // Checked in this order, so the refusal names the first thing in the way: a
        // break-glass that is not allowed, a freeze (which break-glass passes), the lock
        // (which nothing passes).
        let glass_refusal = req
            .break_glass
            .as_ref()
            .and_then(|_| self.break_glass_refusal(rule, actor));
        let freeze = self.freeze_hit(rule, &subject, now);
        let frozen = freeze
            .as_ref()
            .filter(|_| req.break_glass.is_none() || glass_refusal.is_some())
            .map(|hit| self.frozen_text(&what, rule, hit, now));
        let lock = job::lock_key(&spec, &self.config);
        let busy = self
            .locks
            .get(&lock)
            .and_then(|id| self.active.get(id))
            .map(|holder| {
                format!(
                    "{} is busy: job {} ({}, {}) holds it. Wait for it to finish{}.",
                    spec.target,
                    holder.id,
                    holder.action(),
                    holder.state.label(),
                    if holder.state == JobState::AwaitingApproval {
                        " or cancel it"
                    } else {
                        ""
                    }
                )
            });
        let refusal = glass_refusal.clone().or(frozen.clone()).or(busy.clone());
        if req.dry_run {
            let text =
                self.dry_run_text(actor, &spec, rule, &req, &freeze, &busy, refusal.as_deref());
            return self.reply(origin, text, true);
        }
        if let Some(refusal) = refusal {
            return self.refuse(origin, refusal);
        }
        if rule.confirm && !confirmed {
            return self.ask_confirmation(actor, origin, req, now);
        }

        let id = self.next_id;
        self.next_id += 1;
        self.batch.set_next_id(self.next_id);
        let break_glass = req.break_glass.map(|reason| job::BreakGlass {
            by: super::approval_flows::person(actor),
            reason,
            at_ms: now,
            review: None,
        });
        let needs_approval = rule.approvals > 0 && break_glass.is_none();
        let job = Job {
            id,
            spec: std::sync::Arc::new(spec),
            requester: Person {
                id: actor.id.clone(),
                name: actor.name.clone(),
            },
            channel: origin.answer_channel().to_string(),
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
            started_ms: None,
            finished_ms: None,
            audit_len: 0,
            nonce: fastrand::u64(1..),
            break_glass: break_glass.clone(),
            thread: rule.thread || self.config.thread_channels.contains(&origin.channel),
        };
        let action = job.action();
        tracing::info!(job = id, user = %actor.id, action = %action, "job requested");
        let mut detail = format!(
            "{action} under rule `{}` in #{}",
            rule.name,
            self.config.channel_name(&origin.channel)
        );
        if confirmed {
            detail.push_str(", confirmed by typing the target's name");
        }
        self.locks.insert(lock, id);
        if needs_approval {
            self.expiries.insert((job.expires_ms, id));
        }
        self.active.insert(id, Box::new(job));
        self.save_quiet(id, who(actor), "requested", detail.clone(), now);
        let mut thread = vec![format!("requested by {}: {detail}", actor.name)];
        if needs_approval {
            let card = self.card(&self.active[&id]);
            let mention_roles = if self.config.discord.mention_approvers {
                rule.approver_roles.clone()
            } else {
                Vec::new()
            };
            let text = format!(
                "🔔 job {id} requested by {}: {} (needs {} approval{} from {})",
                actor.name,
                card.action,
                rule.approvals,
                if rule.approvals == 1 { "" } else { "s" },
                card.approver_roles
            );
            self.effects.push(Effect::Chat(Outgoing::Card {
                channel: origin.answer_channel().to_string(),
                card,
                mention_roles,
            }));
            self.incident(id, Severity::Info, text);
        } else {
            let (event, why) = match &break_glass {
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
            thread.push(format!("{event}: {why}"));
            self.start(id, (event, why, who(actor)), false, now);
            let card = self.card(&self.active[&id]);
            self.effects.push(Effect::Chat(Outgoing::Card {
                channel: origin.answer_channel().to_string(),
                card,
                mention_roles: Vec::new(),
            }));
            if let Some(glass) = &break_glass {
                let text = format!(
                    "🚨 job {id}: {} used --break-glass on {} (rule `{}` asks for {} approval{} from {}), running now without them: {}. It stays marked until someone with that role runs `{}review {id} ok|concern <note>`.",
                    actor.name,
                    self.active[&id].action(),
                    rule.name,
                    rule.approvals,
                    if rule.approvals == 1 { "" } else { "s" },
                    policy::describe_roles(&self.config, &rule.approver_roles),
                    glass.reason,
                    self.config.prefix
                );
                self.incident(id, Severity::Critical, text);
            }
        }
        if self.active.get(&id).is_some_and(|j| j.thread) {
            for text in thread {
                self.thread_line(id, text);
            }
        }
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

    /// Persist without queueing a card update (used before the card is first posted).
    fn save_quiet(
        &mut self,
        id: JobId,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        if let Some(job) = self.active.get_mut(&id) {
            job.updated_ms = now;
            super::views::log_step(id, event, job.state, &detail);
            let entry = crate::store::AuditEntry {
                at_ms: now,
                actor,
                event: event.to_string(),
                detail,
            };
            self.batch.put_job(job, Some(entry));
            self.effects.push(Effect::Observe(id, job.state));
        }
    }

    /// Approved -> submitting, durably, then submit. `announce` updates the job's message;
    /// it is off when the message is about to be posted for the first time anyway.
    fn start(
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
            let text = super::views::audit_line(event, actor.as_deref(), &detail);
            self.thread_line(id, text);
        }
        self.save_quiet(id, actor, event, detail, now);
        if self.transition(id, JobState::Submitting) {
            let detail = "sending the request to the cloud".to_string();
            if announce {
                self.save(id, None, "submitting", detail, now);
            } else {
                self.save_quiet(id, None, "submitting", detail, now);
            }
            self.effects.push(Effect::Submit(id));
        }
    }

    /// A job that is not active: say what happened to it, or that it does not exist.
    fn not_active(&mut self, id: JobId) -> String {
        self.publish_writes();
        match self.store.job(id) {
            Ok(Some(job)) => format!(
                "Job {id} {} ({}).",
                super::views::already(job.state),
                job.action()
            ),
            _ => format!("There is no job {id}."),
        }
    }

    fn vote(&mut self, actor: &Actor, origin: &Origin, id: JobId, vote: Vote, via: Via, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            let msg = self.not_active(id);
            return self.refuse(origin, msg);
        };
        let verb = if vote == Vote::Approve {
            "approve"
        } else {
            "deny"
        };
        let result = match vote {
            Vote::Approve => approval::approve(job, actor, now).map(Some),
            Vote::Deny => approval::may_deny(job, actor, now).map(|_| None),
        };
        let (by_reaction, reason) = match via {
            Via::Reaction => (true, None),
            Via::Button(reason) => (false, reason),
            Via::Command(reason) => (false, reason),
        };
        if let (Ok(Some(_)), true, Some(given)) = (&result, by_reaction, job.approvals.last_mut()) {
            // Remembered so that a ✅ gone from the card withdraws only what ✅ gave.
            given.by_reaction = true;
        }
        match result {
            Err(Refusal::Expired) => {
                self.finish(
                    id,
                    JobState::Expired,
                    None,
                    "expired",
                    "no quorum before the deadline".into(),
                    now,
                );
                let msg = format!("{}: job {id} has expired; nothing was run.", actor.name);
                self.refuse(origin, msg);
            }
            Err(Refusal::NotApprover(roles)) => {
                let msg = format!(
                    "{}: you cannot {verb} job {id}: it needs the role {}. The count did not change.",
                    actor.name,
                    policy::describe_roles(&self.config, &roles)
                );
                self.refuse(origin, msg);
            }
            Err(refusal) => {
                let msg = format!("{}: you cannot {verb} job {id}: {refusal}.", actor.name);
                self.refuse(origin, msg);
            }
            Ok(None) => {
                let detail = match reason {
                    Some(r) => format!("denied by {}: {r}", actor.name),
                    None => format!("denied by {}", actor.name),
                };
                self.finish(id, JobState::Denied, who(actor), "denied", detail, now);
            }
            Ok(Some(quorum)) => {
                let (have, need) = (job.approvals.len(), job.approvals_needed());
                let detail = format!("approval {have} of {need} by {}", actor.name);
                if quorum {
                    self.metrics.approval("granted");
                    let waited = now.saturating_sub(job.created_ms) as f64 / 1000.0;
                    self.metrics.approval_wait.observe(waited);
                    let detail = format!("{detail}; quorum reached");
                    let text = format!("👍 job {id} approved ({detail}): {}", job.action());
                    self.incident(id, Severity::Info, text);
                    self.start(id, ("approved", detail, who(actor)), true, now);
                } else {
                    self.save(id, who(actor), "approval", detail, now);
                }
            }
        }
    }

    fn withdraw(&mut self, actor: &Actor, origin: &Origin, id: JobId, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        match approval::withdraw(job, actor) {
            Ok(true) => {
                let detail = format!("{} withdrew their approval", actor.name);
                self.save(id, who(actor), "withdrawn", detail, now);
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

    fn cancel(&mut self, actor: &Actor, origin: &Origin, id: JobId, now: u64) {
        let Some(job) = self.active.get(&id) else {
            let msg = self.not_active(id);
            return self.refuse(origin, msg);
        };
        let allowed = job.requester.id == actor.id || policy::is_admin(&self.config, &actor.roles);
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
        self.finish(
            id,
            JobState::Cancelled,
            who(actor),
            "cancelled",
            format!("cancelled by {}", actor.name),
            now,
        );
    }
}
