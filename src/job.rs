//! The job record and its state machine.
//!
//! A job's spec is fixed when it is requested; only its state, approvals and cloud progress
//! change. [`JobState::can_become`] is the one table of legal moves; the engine refuses any
//! other move, so a bug elsewhere cannot, say, resubmit a running job.

use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, JobId, JobSpec, MessageId, Person, RoleId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    AwaitingApproval,
    Approved,
    /// Durable before the request is sent: a job found here after a crash may or may not have
    /// reached the cloud, so it is reconciled, never re-sent.
    Submitting,
    Running,
    Succeeded,
    Failed,
    Denied,
    Expired,
    Cancelled,
    /// The cloud could not tell us what happened; a person must look.
    Unknown,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::Denied
                | JobState::Expired
                | JobState::Cancelled
                | JobState::Unknown
        )
    }

    /// Approved, submitting or running: the cloud work is (about to be) under way.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            JobState::Approved | JobState::Submitting | JobState::Running
        )
    }

    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (AwaitingApproval, Approved | Denied | Expired | Cancelled)
                | (Approved, Submitting | Cancelled)
                | (Submitting, Running | Failed | Unknown)
                | (Running, Running | Succeeded | Failed | Unknown)
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            JobState::AwaitingApproval => "awaiting approval",
            JobState::Approved => "approved",
            JobState::Submitting => "submitting",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Denied => "denied",
            JobState::Expired => "expired",
            JobState::Cancelled => "cancelled",
            JobState::Unknown => "unknown",
        }
    }

    /// The state as a metric label (no spaces).
    pub fn label_metric(self) -> &'static str {
        match self {
            JobState::AwaitingApproval => "awaiting_approval",
            other => other.label(),
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            JobState::AwaitingApproval => "⏳",
            JobState::Approved | JobState::Submitting | JobState::Running => "🔄",
            JobState::Succeeded => "✅",
            JobState::Failed => "❌",
            JobState::Denied => "🚫",
            JobState::Expired => "⌛",
            JobState::Cancelled => "↩️",
            JobState::Unknown => "⚠️",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: Person,
    pub at_ms: u64,
    /// Given with ✅ on the card (not a button or a command), so it goes when that ✅ is no
    /// longer there. Records from before this field say `false`: never withdrawn that way.
    #[serde(default)]
    pub by_reaction: bool,
}

/// What the matching rule demanded when the job was requested. Copied into the job so that a
/// config change cannot loosen the terms of a request already made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub rule: String,
    pub approvals: u32,
    pub approver_roles: Vec<RoleId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    /// Shared with the cloud task that acts on it, which needs its own handle to it.
    pub spec: std::sync::Arc<JobSpec>,
    pub requester: Person,
    /// Channel ID the request was made in; status updates go there.
    pub channel: ChannelId,
    pub requirement: Requirement,
    pub state: JobState,
    pub approvals: Vec<Approval>,
    pub created_ms: u64,
    /// When an unapproved request lapses (0 when no approval is needed).
    pub expires_ms: u64,
    pub updated_ms: u64,
    /// The job's message in chat (approval request and live status), once known.
    pub message_id: Option<MessageId>,
    /// The cloud's own identifier for the work, e.g. the DDM jobId.
    pub cloud_ref: Option<String>,
    /// The operation's record of submitted work, handed back to `poll` after a restart.
    pub handle: Option<serde_json::Value>,
    pub progress: Option<String>,
    /// Final word: the cloud's answer, the deny reason, the error.
    pub outcome: Option<String>,
    /// What the cloud answered a submit when that answer proved nothing (a 5xx, no answer,
    /// an undocumented 2xx), kept for the job's final word after the reconciliation.
    #[serde(default)]
    pub submit_answer: Option<String>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Number of audit entries written so far (the next entry's sequence number).
    pub audit_len: u32,
    /// A random number that binds the buttons on this job's card to this job: a button from
    /// another card (an old one, or one from before a restore) never acts on it. 0 for jobs
    /// stored before cards carried it.
    #[serde(default)]
    pub nonce: u64,
    /// Set when the job ran with `--break-glass`, skipping its approvals; open until an
    /// approver reviews it (`!review`). `None` for every job stored before break-glass.
    #[serde(default)]
    pub break_glass: Option<BreakGlass>,
    /// Its progress and audit trail also go to a thread on its card (snapshot of the rule
    /// and channel settings when requested).
    #[serde(default)]
    pub thread: bool,
}

/// Who skipped the approvals of a job, why, and the review that followed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub by: Person,
    pub reason: String,
    pub at_ms: u64,
    pub review: Option<Review>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub by: Person,
    pub verdict: Verdict,
    pub note: Option<String>,
    pub at_ms: u64,
}

impl Job {
    pub fn approvals_needed(&self) -> u32 {
        self.requirement.approvals
    }

    /// Ran with `--break-glass` and nobody has reviewed it yet.
    pub fn review_pending(&self) -> bool {
        self.break_glass
            .as_ref()
            .is_some_and(|b| b.review.is_none())
    }

    pub fn has_quorum(&self) -> bool {
        self.approvals.len() as u32 >= self.requirement.approvals
    }
}

/// What a reviewer thinks of a break-glass job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Concern,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Concern => "concern",
        }
    }
}

/// One line of a job's history. Never holds a secret: what was sent is described, not copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// Who acted (a chat user's name and ID), or `None` for the bot and the cloud.
    pub actor: Option<String>,
    /// `requested`, `approved`, `denied`, `submitted`, `cloud`, `succeeded`, ...
    pub event: String,
    pub detail: String,
}

/// Which jobs a listing shows (`!jobs pending`, `opsgate jobs --filter`, the job API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFilter {
    /// Pending and running (the default).
    Active,
    Pending,
    Running,
    Mine,
    All,
    /// Break-glass jobs whose review is still open.
    Review,
}

impl JobFilter {
    /// Filter names as typed after `!jobs` or passed to the HTTP API.
    pub fn parse(name: &str) -> Option<Self> {
        use JobFilter::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "active" => Active,
            "pending" => Pending,
            "running" => Running,
            "mine" => Mine,
            "all" => All,
            "review" => Review,
            _ => return None,
        })
    }

    /// Whether `job` belongs in the listing for the user `me`.
    pub fn keeps(self, job: &Job, me: &UserId) -> bool {
        use JobFilter::*;
        match self {
            Active => !job.state.is_final(),
            Pending => job.state == JobState::AwaitingApproval,
            Running => job.state.is_in_flight(),
            Mine => &job.requester.id == me,
            All => true,
            Review => job.review_pending(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;

    #[test]
    fn only_the_documented_moves_are_legal() {
        assert!(AwaitingApproval.can_become(Approved));
        assert!(Approved.can_become(Submitting));
        assert!(Submitting.can_become(Running));
        assert!(Running.can_become(Succeeded));
        // Nothing goes back to submitting, and final states are final.
        for s in [
            AwaitingApproval,
            Submitting,
            Running,
            Succeeded,
            Failed,
            Unknown,
        ] {
            assert!(!s.can_become(Submitting), "{s:?} -> Submitting");
        }
        for s in [Succeeded, Failed, Denied, Expired, Cancelled, Unknown] {
            assert!(s.is_final());
            for t in [AwaitingApproval, Approved, Running, Succeeded, Failed] {
                assert!(!s.can_become(t));
            }
        }
        assert!(!Submitting.can_become(Cancelled));
        assert!(!Running.can_become(Cancelled));
    }
}
