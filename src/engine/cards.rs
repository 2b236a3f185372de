//! How a job is shown: its card, its audit lines, its log lines.

use super::Engine;
use crate::domain::JobId;
use crate::job::{Job, JobState};
use crate::ports::chat::JobCard;

impl Engine {
    /// A job's card as it now stands.
    pub(super) fn card(&self, job: &Job) -> JobCard {
        let mut rule = job.requirement.rule.clone();
        if let Some(glass) = &job.break_glass {
            let review = match &glass.review {
                None => "review pending".to_string(),
                Some(r) => format!("reviewed {} by {}", r.verdict.label(), r.by.name),
            };
            let note = format!(
                "break-glass by {}: {} · {review}",
                glass.by.name, glass.reason
            );
            rule = JobCard::rule_with_note(&rule, &note);
        }
        JobCard {
            job: job.id,
            nonce: job.nonce,
            state: job.state,
            action: self.action(&job.spec),
            requester: job.requester.name.clone(),
            rule,
            approvals: job.approvals.len(),
            approvals_needed: job.requirement.approvals,
            approvers: job.approvals.iter().map(|a| a.by.name.clone()).collect(),
            approver_roles: self
                .config
                .policy
                .describe_roles(&job.requirement.approver_roles),
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
}

/// Logs a job's step in its `job` span: failures and unknown outcomes at WARN, so that they
/// show in a log filtered to warnings; everything else at INFO.
pub(super) fn log_step(id: JobId, event: &str, state: JobState, detail: &str) {
    let span = tracing::info_span!("job", job = id.0);
    let _in = span.enter();
    match state {
        JobState::Failed | JobState::Unknown => {
            tracing::warn!(event, state = state.label(), "{detail}")
        }
        _ => tracing::info!(event, state = state.label(), "{detail}"),
    }
}

/// How a job that is over is described to someone who tries to act on it.
pub(super) fn already(state: JobState) -> String {
    use JobState::*;
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
pub(super) fn actor_name(actor: &str) -> &str {
    match actor.split_once(" (") {
        Some((name, rest)) if rest.strip_suffix(')') == Some(name) => name,
        _ => actor,
    }
}

/// One audit line after its time: `EVENT by ACTOR: DETAIL`, or the detail alone when it
/// already says who did what (`denied by bob: not now`).
pub(super) fn audit_line(event: &str, actor: Option<&str>, detail: &str) -> String {
    let actor = actor.map(actor_name);
    match actor {
        Some(a) if detail.starts_with(&format!("{event} by {a}")) => detail.to_string(),
        Some(a) => format!("{event} by {a}: {detail}"),
        None => format!("{event}: {detail}"),
    }
}
