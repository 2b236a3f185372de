//! Read-only replies: `!status`, `!jobs`, `!help`, `!whoami`.

use std::fmt::Write;

use super::Engine;
use crate::chat::card::format_utc;
use crate::chat::{Actor, JobCard};
use crate::command::catalog::{BUILTINS, OPERATIONS};
use crate::command::{usage_of, JobFilter, JobId};
use crate::job::Job;
use crate::policy;

/// Most jobs one `!jobs` reply lists, and how far back it looks.
const LIST_LIMIT: usize = 20;
const LIST_SCAN: usize = 5_000;
/// Most audit lines one `!status` reply shows (the newest ones).
const HISTORY_LIMIT: usize = 25;

impl Engine {
    fn lookup(&self, id: JobId) -> Option<Job> {
        self.active
            .get(&id)
            .map(|job| Job::clone(job))
            .or_else(|| self.store.job(id).ok().flatten())
    }

    pub(super) fn status_text(&self, id: JobId) -> String {
        let Some(job) = self.lookup(id) else {
            return format!("There is no job {id}.");
        };
        let card = JobCard::from_job(
            &job,
            policy::describe_roles(&self.config, &job.requirement.approver_roles),
        );
        let mut out = card.line();
        let history = self.store.audit(id).unwrap_or_default();
        let skip = history.len().saturating_sub(HISTORY_LIMIT);
        if skip > 0 {
            let _ = write!(out, "\n  … {skip} earlier entries");
        }
        for entry in history.iter().skip(skip) {
            let _ = write!(
                out,
                "\n  {} {}",
                format_utc(entry.at_ms),
                audit_line(&entry.event, entry.actor.as_deref(), &entry.detail)
            );
        }
        out
    }

    pub(super) fn jobs_text(&self, filter: JobFilter, actor: &Actor) -> String {
        let keep = |j: &Job| filter.keeps(j, &actor.id);
        let jobs: Vec<Job> = match filter {
            // Active jobs are all in memory; no need to touch the disk.
            JobFilter::Active | JobFilter::Pending | JobFilter::Running => {
                let mut v: Vec<Job> = self
                    .active
                    .values()
                    .filter(|j| keep(j))
                    .map(|j| Job::clone(j))
                    .collect();
                v.sort_by_key(|j| std::cmp::Reverse(j.id));
                v.truncate(LIST_LIMIT);
                v
            }
            JobFilter::Mine | JobFilter::All | JobFilter::Review => self
                .store
                .recent_jobs(LIST_LIMIT, LIST_SCAN, keep)
                .unwrap_or_default(),
        };
        let name = match filter {
            JobFilter::Active => "pending or running",
            JobFilter::Pending => "pending",
            JobFilter::Running => "running",
            JobFilter::Mine => "your",
            JobFilter::All => "recent",
            JobFilter::Review => "break-glass",
        };
        let plural = if jobs.len() == 1 { "" } else { "s" };
        let mut out = match (filter, jobs.len()) {
            (JobFilter::Mine, 0) => return "You have no jobs.".to_string(),
            (JobFilter::Review, 0) => {
                return "No break-glass jobs are awaiting review.".to_string()
            }
            (JobFilter::Review, n) => format!(
                "{n} break-glass job{plural} awaiting review ({}review <job> ok|concern <note>):",
                self.config.prefix
            ),
            (_, 0) => return format!("No {name} jobs."),
            (JobFilter::Mine, n) => format!("You have {n} job{plural}:"),
            (_, n) => format!("{n} {name} job{plural}:"),
        };
        let now = super::now_ms();
        for j in &jobs {
            let _ = write!(
                out,
                "\n  #{} {} {} · {} · by {} · {}",
                j.id,
                j.state.icon(),
                j.state.label(),
                j.action(),
                j.requester.name,
                format_utc(j.created_ms)
            );
            if let Some(glass) = j.break_glass.as_ref() {
                let status = match &glass.review {
                    None => "review pending".to_string(),
                    Some(r) => format!("reviewed {} by {}", r.verdict.label(), r.by.name),
                };
                let _ = write!(out, " · ⚠️ break-glass: {} · {status}", glass.reason);
            }
            if j.state == crate::job::JobState::AwaitingApproval {
                let _ = write!(
                    out,
                    " · waits on {} ({}/{}) · expires {}",
                    policy::describe_roles(&self.config, &j.requirement.approver_roles),
                    j.approvals.len(),
                    j.approvals_needed(),
                    relative(j.expires_ms, now)
                );
            }
        }
        out
    }

    pub(super) fn help_text(&self, topic: Option<&str>) -> String {
        let p = &self.config.prefix;
        if let Some(topic) = topic {
            let topic = topic.trim_start_matches(p.as_str());
            let Some(usage) = usage_of(topic) else {
                let verbs = BUILTINS
                    .iter()
                    .map(|b| b.verb)
                    .chain(OPERATIONS.iter().map(|op| op.verb));
                let verb = topic.split_whitespace().next().unwrap_or_default();
                let hint = match crate::command::suggest::nearest(verb, verbs) {
                    Some(v) => format!(" Did you mean `{v}`?"),
                    None => String::new(),
                };
                return format!(
                    "No command {}.{hint} {p}help lists them.",
                    crate::command::quote(topic)
                );
            };
            let mut out = format!("Usage: {usage}");
            let verb = topic.split_whitespace().next().unwrap_or_default();
            for op in OPERATIONS
                .iter()
                .filter(|op| op.verb.eq_ignore_ascii_case(verb))
            {
                if topic
                    .split_whitespace()
                    .nth(1)
                    .is_none_or(|s| op.answers_to(verb, s))
                {
                    let _ = write!(out, "\n{}: {}", op.key(), op.summary);
                    if let Some(modes) = &op.modes {
                        let _ = write!(
                            out,
                            "\n  mode: {}; without one it is {} (the default)",
                            modes.values.join(" or "),
                            modes.default
                        );
                    }
                    if !op.notes.is_empty() {
                        let _ = write!(out, "\n  {}", op.notes);
                    }
                    for rule in self.config.rules.iter().filter(|r| r.command == op.key()) {
                        let modes = if rule.modes.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", rule.modes.join("|"))
                        };
                        let _ = write!(
                            out,
                            "\n  rule `{}`:{modes} {}, requested by {}; {}",
                            rule.name,
                            policy::describe_scope(&rule.scope),
                            policy::describe_roles(&self.config, &rule.request_roles),
                            policy::describe_approval(&self.config, rule)
                        );
                        if rule.confirm {
                            out.push_str("; the requester confirms by typing the target's name");
                        }
                        if !rule.break_glass_roles.is_empty() {
                            let _ = write!(
                                out,
                                "; --break-glass \"reason\" allowed for {}",
                                policy::describe_roles(&self.config, &rule.break_glass_roles)
                            );
                        }
                    }
                    let targets: Vec<&str> = self
                        .config
                        .targets
                        .values()
                        .filter(|t| t.service == op.service)
                        .map(|t| t.name.as_str())
                        .collect();
                    if !targets.is_empty() {
                        let _ = write!(out, "\n  named targets: {}", targets.join(", "));
                    }
                    let _ = write!(
                        out,
                        "\n  add --dry-run to see what would happen without doing it"
                    );
                }
            }
            for b in BUILTINS
                .iter()
                .filter(|b| b.verb.eq_ignore_ascii_case(verb))
            {
                let _ = write!(out, "\n{}", b.summary);
            }
            return out;
        }
        let mut out = String::from("Commands:");
        for op in OPERATIONS {
            let _ = write!(out, "\n  {} — {}", op.usage, op.summary);
        }
        for b in BUILTINS {
            let _ = write!(out, "\n  {} — {}", b.usage, b.summary);
        }
        let _ = write!(out, "\nApprove or deny a request by reacting ✅ or ❌ on its message. Add --dry-run to a request to see what would happen without doing it, or --break-glass \"reason\" where a rule allows skipping its approvals. {p}help <command> explains one.");
        out
    }

    pub(super) fn whoami_text(&self, actor: &Actor, channel: &str) -> String {
        let roles: Vec<String> = actor
            .roles
            .iter()
            .map(|r| {
                self.config
                    .role_name(*r)
                    .map_or_else(|| r.to_string(), str::to_string)
            })
            .collect();
        let mut out = format!(
            "{} in #{} · roles: {}{}",
            if actor.name == actor.id {
                actor.name.clone()
            } else {
                format!("{} ({})", actor.name, actor.id)
            },
            self.config.channel_name(channel),
            if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            },
            if policy::is_admin(&self.config, &actor.roles) {
                " · admin"
            } else {
                ""
            }
        );
        for op in OPERATIONS {
            let modes: Vec<Option<&str>> = match &op.modes {
                Some(m) => m.values.iter().map(|v| Some(*v)).collect(),
                None => vec![None],
            };
            for mode in modes {
                let name = match mode {
                    Some(m) => format!("{} {m}", op.key()),
                    None => op.key(),
                };
                let scoped =
                    policy::scoped_verdicts(&self.config, &actor.roles, channel, &op.key(), mode);
                let verdict = match policy::check_request(
                    &self.config,
                    &actor.roles,
                    channel,
                    &op.key(),
                    mode,
                ) {
                    Ok(rule) => format!("yes, {}", policy::describe_approval(&self.config, rule)),
                    // Scoped rules may still allow it somewhere; they follow.
                    Err(_) if !scoped.is_empty() => "no: no rule covers it".to_string(),
                    Err(why) => format!("no: {why}"),
                };
                if scoped.is_empty() {
                    let _ = write!(out, "\n  {name}: {verdict}");
                } else {
                    let _ = write!(out, "\n  {name}:");
                    for (scope, v) in &scoped {
                        let v = match v {
                            Ok(rule) => format!(
                                "yes, {} (rule `{}`)",
                                policy::describe_approval(&self.config, rule),
                                rule.name
                            ),
                            Err(why) => format!("no: {why}"),
                        };
                        let _ = write!(out, "\n    {scope}: {v}");
                    }
                    let _ = write!(out, "\n    anywhere else: {verdict}");
                }
            }
        }
        let approver_of: Vec<&str> = self
            .config
            .rules
            .iter()
            .filter(|r| r.approvals > 0 && actor.roles.iter().any(|x| r.approver_roles.contains(x)))
            .map(|r| r.name.as_str())
            .collect();
        if !approver_of.is_empty() {
            let _ = write!(out, "\n  you may approve: {}", approver_of.join(", "));
        }
        out
    }
}

/// Logs a job's step in its `job` span: failures and unknown outcomes at WARN, so that they
/// show in a log filtered to warnings; everything else at INFO.
pub(super) fn log_step(id: JobId, event: &str, state: crate::job::JobState, detail: &str) {
    use crate::job::JobState;
    let span = tracing::info_span!("job", job = id);
    let _in = span.enter();
    match state {
        JobState::Failed | JobState::Unknown => {
            tracing::warn!(event, state = state.label(), "{detail}")
        }
        _ => tracing::info!(event, state = state.label(), "{detail}"),
    }
}

/// How a job that is over is described to someone who tries to act on it.
pub(super) fn already(state: crate::job::JobState) -> String {
    use crate::job::JobState::*;
    match state {
        Succeeded => "has already succeeded".into(),
        Failed => "has already failed".into(),
        Expired => "has already expired".into(),
        Denied => "was already denied".into(),
        Cancelled => "was already cancelled".into(),
        Unknown => "has already ended with an unknown outcome".into(),
        other => format!("is {}", other.label()),
    }
}

/// An audit entry's actor without the ID when it only repeats the name (`alice (alice)`,
/// as entries written by older versions have it).
pub(crate) fn actor_name(actor: &str) -> &str {
    match actor.split_once(" (") {
        Some((name, rest)) if rest.strip_suffix(')') == Some(name) => name,
        _ => actor,
    }
}

/// One audit line after its time: `EVENT by ACTOR: DETAIL`, or the detail alone when it
/// already says who did what (`denied by bob: not now`).
pub(crate) fn audit_line(event: &str, actor: Option<&str>, detail: &str) -> String {
    let actor = actor.map(actor_name);
    match actor {
        Some(a) if detail.starts_with(&format!("{event} by {a}")) => detail.to_string(),
        Some(a) => format!("{event} by {a}: {detail}"),
        None => format!("{event}: {detail}"),
    }
}

/// `in 14m`, `3m ago`: a time relative to `now`, to the minute (seconds under one).
pub(crate) fn relative(at_ms: u64, now_ms: u64) -> String {
    let (secs, future) = if at_ms >= now_ms {
        ((at_ms - now_ms) / 1000, true)
    } else {
        ((now_ms - at_ms) / 1000, false)
    };
    let span = match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}
