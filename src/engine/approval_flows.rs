//! Approval flows beyond approve/deny: change freezes (`[[freezes]]`, `!freeze`,
//! `!unfreeze`), break-glass reviews (`!review`), typed confirmation (`!confirm`), dry runs
//! and the `!status` overview. Every change here goes into the group's batch like any
//! job change, so it is durable before the reply that announces it.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::confirmations::{Miss, Pending, WINDOW_MS};
use super::views::relative;
use super::{Effect, Engine};
use crate::chat::card::format_utc;
use crate::chat::{Actor, FlowOut, Origin, Outgoing};
use crate::command::{JobId, OperationRequest, Verdict};
use crate::config::{Rule, Severity};
use crate::job::{Job, JobState, Person, Review};
use crate::policy::{self, Subject};
use crate::store::AuditEntry;

/// The freeze set with `!freeze` (one at a time; a new one replaces it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatFreeze {
    pub reason: String,
    pub by: Person,
    pub set_ms: u64,
    pub ends_ms: u64,
}

/// The freeze a request falls under.
pub struct FreezeHit {
    pub reason: String,
    pub ends_ms: u64,
    /// `freeze `release weekend`` or `!freeze by root`.
    pub source: String,
}

/// Most open break-glass reviews and freeze changes `!status` lists.
const OVERVIEW_LIMIT: usize = 10;

pub(super) fn person(actor: &Actor) -> Person {
    Person {
        id: actor.id.clone(),
        name: actor.name.clone(),
    }
}

impl Engine {
    /// The freeze covering a request under `rule` on `subject` now (the one that ends last).
    pub(super) fn freeze_hit(
        &self,
        rule: &Rule,
        subject: &Subject<'_>,
        now: u64,
    ) -> Option<FreezeHit> {
        let tags = policy::tags_of(&self.config, subject);
        let mut hits: Vec<FreezeHit> = self
            .config
            .freezes
            .iter()
            .filter(|f| f.covers(&rule.name, &tags))
            .filter_map(|f| {
                Some(FreezeHit {
                    reason: f.reason.clone(),
                    ends_ms: f.window.ends_after(now)?,
                    source: format!("freeze `{}`", f.name),
                })
            })
            .collect();
        if let Some(f) = self.chat_freeze.as_ref().filter(|f| f.ends_ms > now) {
            hits.push(FreezeHit {
                reason: f.reason.clone(),
                ends_ms: f.ends_ms,
                source: format!("!freeze by {}", f.by.name),
            });
        }
        hits.into_iter().max_by_key(|h| h.ends_ms)
    }

    /// The refusal for a request that a freeze covers.
    pub(super) fn frozen_text(&self, what: &str, rule: &Rule, hit: &FreezeHit, now: u64) -> String {
        let mut out = format!(
            "🧊 {what} is frozen until {} ({}): {} ({}).",
            format_utc(hit.ends_ms),
            relative(hit.ends_ms, now),
            hit.reason,
            hit.source
        );
        if !rule.break_glass_roles.is_empty() {
            let _ = write!(
                out,
                " Rule `{}` allows {}: add --break-glass \"reason\" to run it anyway.",
                rule.name,
                policy::describe_roles(&self.config, &rule.break_glass_roles)
            );
        }
        out
    }

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
                policy::describe_roles(&self.config, &rule.break_glass_roles)
            ));
        }
        None
    }

    /// Records an event that belongs to no job (a freeze set or lifted).
    fn ops_event(&mut self, actor: &Actor, event: &str, detail: String, now: u64) {
        let entry = AuditEntry {
            at_ms: now,
            actor: super::commands::who(actor),
            event: event.to_string(),
            detail,
        };
        self.batch.put_ops_event(self.ops_seq, &entry);
        self.ops_seq += 1;
    }

    fn refuse_unless_admin(&mut self, actor: &Actor, origin: &Origin, verb: &str) -> bool {
        if policy::is_admin(&self.config, &actor.roles) {
            return false;
        }
        let msg = format!("{}: only an admin can {verb}.", actor.name);
        self.refuse(origin, msg);
        true
    }

    pub(super) fn on_freeze(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        duration: std::time::Duration,
        reason: String,
        now: u64,
    ) {
        if self.refuse_unless_admin(actor, origin, &format!("{}freeze", self.config.prefix)) {
            return;
        }
        let freeze = ChatFreeze {
            reason,
            by: person(actor),
            set_ms: now,
            ends_ms: now.saturating_add(duration.as_millis() as u64),
        };
        self.batch.put_chat_freeze(Some(&freeze));
        let detail = format!("until {}: {}", format_utc(freeze.ends_ms), freeze.reason);
        self.ops_event(actor, "freeze", detail, now);
        let text = format!(
            "🧊 Freeze set by {} until {} ({}): {}. Every request is refused until then, except with --break-glass where a rule allows it; {}unfreeze lifts it.",
            actor.name,
            format_utc(freeze.ends_ms),
            relative(freeze.ends_ms, now),
            freeze.reason,
            self.config.prefix
        );
        self.chat_freeze = Some(freeze);
        self.reply(origin, text.clone(), false);
        self.ops_notice(Severity::Warning, text);
    }

    pub(super) fn on_unfreeze(&mut self, actor: &Actor, origin: &Origin, now: u64) {
        if self.refuse_unless_admin(actor, origin, &format!("{}unfreeze", self.config.prefix)) {
            return;
        }
        let Some(freeze) = self.chat_freeze.take().filter(|f| f.ends_ms > now) else {
            let mut msg = format!("No {}freeze is in force.", self.config.prefix);
            let config_freezes: Vec<String> = self
                .config
                .freezes
                .iter()
                .filter_map(|f| f.window.ends_after(now).map(|end| (f, end)))
                .map(|(f, end)| format!("`{}` until {}", f.name, format_utc(end)))
                .collect();
            if !config_freezes.is_empty() {
                let _ = write!(
                    msg,
                    " Freezes from the config stay until they end ({}); change the config to lift them.",
                    config_freezes.join(", ")
                );
            }
            return self.refuse(origin, msg);
        };
        self.batch.put_chat_freeze::<ChatFreeze>(None);
        let detail = format!(
            "lifted the freeze set by {}: {}",
            freeze.by.name, freeze.reason
        );
        self.ops_event(actor, "unfreeze", detail, now);
        let text = format!(
            "☀️ Freeze lifted by {} (it was set by {}: {}).",
            actor.name, freeze.by.name, freeze.reason
        );
        self.reply(origin, text.clone(), false);
        self.ops_notice(Severity::Info, text);
    }

    /// A notice about no job in particular, to the incident channel for `severity`.
    fn ops_notice(&mut self, severity: Severity, text: String) {
        if let Some(channel) = self.config.incidents.channel_for("", severity) {
            let channel = channel.to_string();
            self.notice(&channel, None, text);
        }
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
        self.publish_writes();
        let job = match self.active.get(&id) {
            Some(job) => Some(Job::clone(job)),
            None => self.store.job(id).ok().flatten(),
        };
        let Some(mut job) = job else {
            return self.refuse(origin, format!("There is no job {id}."));
        };
        let Some(glass) = job.break_glass.as_mut() else {
            let msg =
                format!("Job {id} did not run with --break-glass; there is nothing to review.");
            return self.refuse(origin, msg);
        };
        if let Some(r) = &glass.review {
            let msg = format!(
                "Job {id} was already reviewed by {} ({}).",
                r.by.name,
                r.verdict.label()
            );
            return self.refuse(origin, msg);
        }
        // The rule's approvers review what skipped them; admins where it names none.
        let roles = if job.requirement.approver_roles.is_empty() {
            self.config.admin_roles.clone()
        } else {
            job.requirement.approver_roles.clone()
        };
        if !actor.roles.iter().any(|r| roles.contains(r)) {
            let msg = format!(
                "{}: reviewing job {id} needs the role {}.",
                actor.name,
                policy::describe_roles(&self.config, &roles)
            );
            return self.refuse(origin, msg);
        }
        if glass.by.id == actor.id {
            let msg = format!(
                "{}: you used break-glass on job {id}; someone else must review it.",
                actor.name
            );
            return self.refuse(origin, msg);
        }
        glass.review = Some(Review {
            by: person(actor),
            verdict,
            note: note.clone(),
            at_ms: now,
        });
        let detail = match &note {
            Some(n) => format!("{} by {}: {n}", verdict.label(), actor.name),
            None => format!("{} by {}", verdict.label(), actor.name),
        };
        let text = format!(
            "{} job {id} break-glass review: {detail} ({})",
            if verdict == Verdict::Ok {
                "✅"
            } else {
                "⚠️"
            },
            job.action()
        );
        if let Some(active) = self.active.get_mut(&id) {
            active.break_glass = job.break_glass.clone();
            self.save(id, super::commands::who(actor), "review", detail, now);
        } else {
            // A finished job: written and re-rendered here, as `save` does for active ones.
            job.updated_ms = now;
            let entry = AuditEntry {
                at_ms: now,
                actor: super::commands::who(actor),
                event: "review".into(),
                detail: detail.clone(),
            };
            self.batch.put_job(&mut job, Some(entry));
            let card = self.card(&job);
            self.effects.push(Effect::Chat(Outgoing::UpdateCard {
                channel: job.channel.clone(),
                message_id: job.message_id.clone(),
                card,
            }));
            if job.thread {
                self.effects.push(Effect::Flow(FlowOut::ThreadLine {
                    channel: job.channel.clone(),
                    job: id,
                    card_message: job.message_id.clone(),
                    text: format!("review by {}: {detail}", actor.name),
                }));
            }
        }
        let severity = if verdict == Verdict::Ok {
            Severity::Info
        } else {
            Severity::Warning
        };
        self.incident_about(&job, severity, text.clone());
        self.reply(origin, text, false);
    }

    /// Keeps a request whose rule asks for typed confirmation and tells the requester how
    /// to confirm it. Nothing is stored.
    pub(super) fn ask_confirmation(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        req: OperationRequest,
        now: u64,
    ) {
        let expected = req.target.clone();
        let action = format!("{} {}", req.op.key(), req.target);
        let expires_ms = now + WINDOW_MS;
        let pending = Pending {
            actor_id: actor.id.clone(),
            channel: origin.channel.clone(),
            request: req,
            expected: expected.clone(),
            expires_ms,
        };
        let Some(number) = self.confirmations.open(pending, now) else {
            let msg = "Too many requests are waiting for confirmation; try again in a minute.";
            return self.refuse(origin, msg);
        };
        let text = format!(
            "⚠️ {action} needs your confirmation: type `{}confirm {number} {expected}` within {} s. Nothing was stored yet; unconfirmed, it lapses.",
            self.config.prefix,
            WINDOW_MS / 1000
        );
        self.effects.push(Effect::Flow(FlowOut::ConfirmPrompt {
            to: origin.clone(),
            number,
            expected,
            expires_ms,
            text,
        }));
    }

    pub(super) fn on_confirm(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        number: u64,
        typed: &str,
        now: u64,
    ) {
        match self
            .confirmations
            .confirm(number, actor, origin, typed, now)
        {
            Ok(req) => self.request_confirmed(actor, origin, req, now),
            Err(Miss::Unknown) => {
                let msg = format!(
                    "There is no request {number} waiting for confirmation (it may have lapsed after {} s); ask again.",
                    WINDOW_MS / 1000
                );
                self.refuse(origin, msg)
            }
            Err(Miss::NotYours) => {
                let msg = format!(
                    "{}: request {number} is not yours to confirm (only its requester can, where it was asked).",
                    actor.name
                );
                self.refuse(origin, msg)
            }
            Err(Miss::WrongName { expected }) => {
                let msg = format!(
                    "That is not the target's name; type `{}confirm {number} {expected}` exactly. The request stays open until it lapses.",
                    self.config.prefix
                );
                self.refuse(origin, msg)
            }
        }
    }

    /// The private answer to `--dry-run`: what would apply and what would be sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dry_run_text(
        &self,
        actor: &Actor,
        spec: &crate::cloud::JobSpec,
        rule: &Rule,
        req: &OperationRequest,
        freeze: &Option<FreezeHit>,
        busy: &Option<String>,
        refusal: Option<&str>,
    ) -> String {
        let now = super::now_ms();
        let c = &self.config;
        let mut out = format!(
            "🧪 Dry run of {}: nothing was stored or sent.\n  rule `{}` ({}): {}",
            crate::job::action_of(spec),
            rule.name,
            policy::describe_scope(&rule.scope),
            policy::describe_approval(c, rule)
        );
        match (&req.break_glass, rule.break_glass_roles.is_empty()) {
            (Some(_), _) => match self.break_glass_refusal(rule, actor) {
                None => out.push_str(
                    "\n  --break-glass: would skip the approvals and any freeze, post a critical notice, and mark the job for review",
                ),
                Some(why) => {
                    let _ = write!(out, "\n  --break-glass: refused: {why}");
                }
            },
            (None, false) => {
                let _ = write!(
                    out,
                    "\n  break-glass: allowed for {}",
                    policy::describe_roles(c, &rule.break_glass_roles)
                );
            }
            (None, true) => out.push_str("\n  break-glass: not allowed by this rule"),
        }
        if rule.confirm {
            let _ = write!(
                out,
                "\n  confirmation: you would first type `{}confirm <number> {}` within {} s",
                c.prefix,
                spec.target,
                WINDOW_MS / 1000
            );
        }
        match busy {
            Some(b) => {
                let _ = write!(out, "\n  lock: {b}");
            }
            None => out.push_str("\n  lock: free"),
        }
        match freeze {
            Some(hit) => {
                let _ = write!(
                    out,
                    "\n  freeze: 🧊 until {} ({}): {} ({})",
                    format_utc(hit.ends_ms),
                    relative(hit.ends_ms, now),
                    hit.reason,
                    hit.source
                );
            }
            None => out.push_str("\n  freeze: none"),
        }
        match super::dry_run::describe(spec, c) {
            Ok(d) => {
                let _ = write!(out, "\n  would send: {}", d.lines());
            }
            Err(e) => {
                let _ = write!(out, "\n  would send: cannot tell ({e})");
            }
        }
        let verdict = match refusal {
            Some(r) => format!("would be refused: {r}"),
            None if req.break_glass.is_some() || rule.approvals == 0 => "would run at once".into(),
            None => "would be posted for approval".into(),
        };
        let _ = write!(out, "\n  outcome: {verdict}");
        out
    }

    /// `!status` without a job: counts, freezes in force, open break-glass reviews, and the
    /// latest freeze changes.
    pub(super) fn overview_text(&mut self, now: u64) -> String {
        self.publish_writes();
        let pending = self
            .active
            .values()
            .filter(|j| j.state == JobState::AwaitingApproval)
            .count();
        let running = self.active.len() - pending;
        let mut out = format!("opsgate: {pending} pending, {running} running");
        let mut freezes: Vec<String> = self
            .config
            .freezes
            .iter()
            .map(|f| {
                let state = match f.window.ends_after(now) {
                    Some(end) => format!(
                        "in force until {} ({})",
                        format_utc(end),
                        relative(end, now)
                    ),
                    None => "not in force now".to_string(),
                };
                let covers = match (f.rules.is_empty(), f.tags.is_empty()) {
                    (true, true) => "every request".to_string(),
                    _ => {
                        let mut parts: Vec<String> =
                            f.rules.iter().map(|r| format!("rule `{r}`")).collect();
                        if !f.tags.is_empty() {
                            let tags: Vec<String> =
                                f.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            parts.push(format!("where {}", tags.join(", ")));
                        }
                        parts.join(", ")
                    }
                };
                format!(
                    "🧊 freeze `{}` ({}; covers {covers}): {} · {state}",
                    f.name,
                    f.window.describe(),
                    f.reason
                )
            })
            .collect();
        if let Some(f) = self.chat_freeze.as_ref().filter(|f| f.ends_ms > now) {
            freezes.push(format!(
                "🧊 !freeze by {} (covers every request): {} · in force until {} ({})",
                f.by.name,
                f.reason,
                format_utc(f.ends_ms),
                relative(f.ends_ms, now)
            ));
        }
        if freezes.is_empty() {
            out.push_str("\n  no freezes");
        }
        for f in freezes {
            let _ = write!(out, "\n  {f}");
        }
        let reviews = self
            .store
            .recent_jobs(OVERVIEW_LIMIT, 5_000, Job::review_pending)
            .unwrap_or_default();
        if reviews.is_empty() {
            out.push_str("\n  no break-glass jobs awaiting review");
        } else {
            let _ = write!(
                out,
                "\n  break-glass jobs awaiting review ({}review <job> ok|concern <note>):",
                self.config.prefix
            );
            for j in &reviews {
                let (by, reason) = j
                    .break_glass
                    .as_ref()
                    .map_or(("?", ""), |b| (b.by.name.as_str(), b.reason.as_str()));
                let _ = write!(
                    out,
                    "\n    #{} {} {} · {} · by {by}: {reason}",
                    j.id,
                    j.state.icon(),
                    j.state.label(),
                    j.action()
                );
            }
        }
        let events = self.store.ops_events(OVERVIEW_LIMIT).unwrap_or_default();
        if !events.is_empty() {
            out.push_str("\n  freeze changes (newest first):");
            for e in events {
                let _ = write!(
                    out,
                    "\n    {} {}",
                    format_utc(e.at_ms),
                    super::views::audit_line(&e.event, e.actor.as_deref(), &e.detail)
                );
            }
        }
        out
    }
}
