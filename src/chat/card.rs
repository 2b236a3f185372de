//! A job's message as structured data: the terminal prints it as one line, Discord as an
//! embed with buttons. Built from the job alone, so it can be re-rendered after a restart.

use std::fmt::Write;

use crate::command::JobId;
use crate::job::{Job, JobState};

#[derive(Clone, Debug, PartialEq)]
pub struct JobCard {
    pub job: JobId,
    /// The job's nonce, carried by the card's buttons.
    pub nonce: u64,
    pub state: JobState,
    /// e.g. `restart ddm orders-db hard`
    pub action: String,
    pub requester: String,
    pub rule: String,
    pub approvals: usize,
    pub approvals_needed: u32,
    pub approvers: Vec<String>,
    /// Approver role names, for "needs approval from ...".
    pub approver_roles: String,
    pub expires_ms: u64,
    pub cloud_ref: Option<String>,
    pub progress: Option<String>,
    pub outcome: Option<String>,
    /// How long the cloud work took, once finished.
    pub duration_ms: Option<u64>,
}

/// Between the rule's name and a break-glass note in [`JobCard::rule`]. The card's fields
/// stay as the Discord adapter knows them (its tests build cards field by field), so the
/// note rides in the one field every renderer shows; [`JobCard::break_glass_note`] reads it.
const NOTE: &str = " · ⚠️ ";

impl JobCard {
    pub fn from_job(job: &Job, approver_roles: String) -> JobCard {
        let mut rule = job.requirement.rule.clone();
        if let Some(glass) = &job.break_glass {
            let review = match &glass.review {
                None => "review pending".to_string(),
                Some(r) => format!("reviewed {} by {}", r.verdict.label(), r.by.name),
            };
            rule = format!(
                "{rule}{NOTE}break-glass by {}: {} · {review}",
                glass.by.name, glass.reason
            );
        }
        JobCard {
            job: job.id,
            nonce: job.nonce,
            state: job.state,
            action: job.action(),
            requester: job.requester.name.clone(),
            rule,
            approvals: job.approvals.len(),
            approvals_needed: job.requirement.approvals,
            approvers: job.approvals.iter().map(|a| a.by.name.clone()).collect(),
            approver_roles,
            expires_ms: job.expires_ms,
            cloud_ref: job.cloud_ref.clone(),
            progress: job.progress.clone(),
            outcome: job.outcome.clone(),
            duration_ms: match (job.started_ms, job.finished_ms) {
                (Some(s), Some(f)) => Some(f.saturating_sub(s)),
                _ => None,
            },
        }
    }

    /// `break-glass by alice: db down · review pending`, for a job that ran with
    /// `--break-glass`.
    pub fn break_glass_note(&self) -> Option<&str> {
        self.rule.split_once(NOTE).map(|(_, note)| note)
    }

    /// Who may press what on an open card: Approve/Deny for the approver roles, Cancel for
    /// the requester or an admin.
    pub fn who_may(&self) -> String {
        format!(
            "approve/deny: {} · cancel: {} or an admin",
            self.approver_roles, self.requester
        )
    }

    /// Whether Approve/Deny still mean something.
    pub fn is_open(&self) -> bool {
        self.state == JobState::AwaitingApproval
    }

    /// One line of text: the whole card for the terminal, the fallback text elsewhere.
    pub fn line(&self) -> String {
        // Written into one buffer sized for a long line, so it is built without growing.
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{} job {} · {} · {} · requested by {}",
            self.state.icon(),
            self.job,
            self.state.label(),
            self.action,
            self.requester
        );
        if self.approvals_needed > 0 {
            let _ = write!(
                out,
                " · approvals {}/{}",
                self.approvals, self.approvals_needed
            );
            if !self.approvers.is_empty() {
                let _ = write!(out, " ({})", self.approvers.join(", "));
            }
        }
        if self.state == JobState::AwaitingApproval {
            let _ = write!(
                out,
                " · rule `{}` needs {} from {} · expires {} · react ✅/❌ or !approve {} / !deny {} · !cancel {}: {} or an admin",
                self.rule,
                if self.approvals_needed == 1 { "an approval".to_string() } else { format!("{} approvals", self.approvals_needed) },
                self.approver_roles,
                format_utc(self.expires_ms),
                self.job,
                self.job,
                self.job,
                self.requester
            );
        }
        if let Some(note) = self.break_glass_note() {
            let _ = write!(out, " · ⚠️ {note}");
        }
        if let Some(p) = &self.progress {
            if !self.state.is_final() {
                let _ = write!(out, " · {p}");
            }
        }
        // Once: the progress or outcome text often names the cloud's job already.
        if let Some(r) = &self.cloud_ref {
            let shown = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains(r.as_str()));
            let progress_shown = !self.state.is_final() && shown(&self.progress);
            if !progress_shown && !shown(&self.outcome) {
                let _ = write!(out, " · cloud job {r}");
            }
        }
        if let Some(d) = self.duration_ms {
            let _ = write!(out, " · took {}", format_duration_ms(d));
        }
        if let Some(o) = &self.outcome {
            let _ = write!(out, " · {o}");
        }
        out
    }
}

/// `2026-11-23 16:40:05 UTC`
pub fn format_utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{secs}"),
    }
}

/// `1.2s`, `3m05s`
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
