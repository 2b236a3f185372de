//! Read-only replies about jobs: `!status` (one job, or the overview) and `!jobs`.

use std::fmt::Write;

use super::cards::audit_line;
use super::Engine;
use crate::domain::time::{format_utc, relative};
use crate::domain::{Actor, JobId};
use crate::job::{Job, JobFilter, JobState};

/// Most jobs one `!jobs` reply lists, and how far back it looks.
const LIST_LIMIT: usize = 20;
const LIST_SCAN: usize = 5_000;
/// Most audit lines one `!status` reply shows (the newest ones).
const HISTORY_LIMIT: usize = 25;
/// Most open break-glass reviews and freeze changes `!status` lists.
const OVERVIEW_LIMIT: usize = 10;

impl Engine {
    pub(super) fn status_text(&mut self, id: JobId) -> String {
        let Some(job) = self.job_now(id) else {
            return self.no_job(id);
        };
        let mut out = self.card(&job).line();
        let history = self.audit_of(id);
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

    pub(super) fn jobs_text(&mut self, filter: JobFilter, actor: &Actor, now: u64) -> String {
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
            JobFilter::Mine | JobFilter::All | JobFilter::Review => {
                self.recent_jobs(LIST_LIMIT, LIST_SCAN, &keep)
            }
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
        for j in &jobs {
            let _ = write!(
                out,
                "\n  #{} {} {} · {} · by {} · {}",
                j.id,
                j.state.icon(),
                j.state.label(),
                self.action(&j.spec),
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
            if j.state == JobState::AwaitingApproval {
                let _ = write!(
                    out,
                    " · waits on {} ({}/{}) · expires {}",
                    self.config
                        .policy
                        .describe_roles(&j.requirement.approver_roles),
                    j.approvals.len(),
                    j.approvals_needed(),
                    relative(j.expires_ms, now)
                );
            }
        }
        out
    }

    /// `!status` without a job: counts, freezes in force, open break-glass reviews, and the
    /// latest freeze changes.
    pub(super) fn overview_text(&mut self, now: u64) -> String {
        let pending = (self.active.values())
            .filter(|j| j.state == JobState::AwaitingApproval)
            .count();
        let running = self.active.len() - pending;
        let mut out = format!("opsgate: {pending} pending, {running} running");
        let mut freezes: Vec<String> = (self.config.freezes.iter())
            .map(|f| f.describe_at(now))
            .collect();
        freezes.extend(
            (self.chat_freeze.as_ref())
                .filter(|f| f.ends_ms > now)
                .map(|f| f.describe_at(now)),
        );
        if freezes.is_empty() {
            out.push_str("\n  no freezes");
        }
        for f in freezes {
            let _ = write!(out, "\n  🧊 {f}");
        }
        self.open_reviews(&mut out);
        self.freeze_changes(&mut out);
        out
    }

    /// Break-glass jobs nobody has reviewed yet.
    fn open_reviews(&mut self, out: &mut String) {
        let reviews = self.recent_jobs(OVERVIEW_LIMIT, LIST_SCAN, &Job::review_pending);
        if reviews.is_empty() {
            out.push_str("\n  no break-glass jobs awaiting review");
            return;
        }
        let _ = write!(
            out,
            "\n  break-glass jobs awaiting review ({}review <job> ok|concern <note>):",
            self.config.prefix
        );
        for j in &reviews {
            let (by, reason) = (j.break_glass.as_ref())
                .map_or(("?", ""), |b| (b.by.name.as_str(), b.reason.as_str()));
            let _ = write!(
                out,
                "\n    #{} {} {} · {} · by {by}: {reason}",
                j.id,
                j.state.icon(),
                j.state.label(),
                self.action(&j.spec)
            );
        }
    }

    /// The latest freezes set and lifted in chat, newest first.
    fn freeze_changes(&mut self, out: &mut String) {
        let events = self.recent_ops_events(OVERVIEW_LIMIT);
        if events.is_empty() {
            return;
        }
        out.push_str("\n  freeze changes (newest first):");
        for e in events {
            let _ = write!(
                out,
                "\n    {} {}",
                format_utc(e.at_ms),
                audit_line(&e.event, e.actor.as_deref(), &e.detail)
            );
        }
    }
}
