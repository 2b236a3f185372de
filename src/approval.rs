//! Who may approve, deny or withdraw, as pure functions of a job, an actor and the time.
//! The engine persists whatever these allow; nothing else changes a job's approvals.

use std::fmt;

use crate::domain::{Actor, RoleId};
use crate::job::{Approval, Job, JobState};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotPending(JobState),
    Expired,
    SelfApproval,
    /// The actor has none of these roles (IDs).
    NotApprover(Vec<RoleId>),
    AlreadyCounted,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotPending(state) => {
                write!(f, "it is not awaiting approval (it is {})", state.label())
            }
            Refusal::Expired => f.write_str("the request has expired"),
            Refusal::SelfApproval => f.write_str("you requested it; someone else must decide"),
            Refusal::NotApprover(_) => f.write_str("you do not have an approver role for it"),
            Refusal::AlreadyCounted => f.write_str("your approval is already counted"),
        }
    }
}

fn check_can_decide(job: &Job, actor: &Actor, now_ms: u64) -> Result<(), Refusal> {
    if job.state != JobState::AwaitingApproval {
        return Err(Refusal::NotPending(job.state));
    }
    if now_ms >= job.expires_ms {
        return Err(Refusal::Expired);
    }
    if actor.id == job.requester.id {
        return Err(Refusal::SelfApproval);
    }
    let roles = &job.requirement.approver_roles;
    if !actor.roles.iter().any(|r| roles.contains(r)) {
        return Err(Refusal::NotApprover(roles.clone()));
    }
    Ok(())
}

/// Counts `actor`'s approval. Returns whether the job now has its quorum.
pub fn approve(job: &mut Job, actor: &Actor, now_ms: u64) -> Result<bool, Refusal> {
    check_can_decide(job, actor, now_ms)?;
    if job.approvals.iter().any(|a| a.by.id == actor.id) {
        return Err(Refusal::AlreadyCounted);
    }
    job.approvals.push(Approval {
        by: actor.person(),
        at_ms: now_ms,
        by_reaction: false,
    });
    Ok(job.has_quorum())
}

/// Whether `actor` may deny the job now (one deny by an approver ends the request).
pub fn may_deny(job: &Job, actor: &Actor, now_ms: u64) -> Result<(), Refusal> {
    check_can_decide(job, actor, now_ms)
}

/// Withdraws `actor`'s approval before quorum. Returns whether one was removed.
pub fn withdraw(job: &mut Job, actor: &Actor) -> Result<bool, Refusal> {
    if job.state != JobState::AwaitingApproval {
        return Err(Refusal::NotPending(job.state));
    }
    let before = job.approvals.len();
    job.approvals.retain(|a| a.by.id != actor.id);
    Ok(job.approvals.len() != before)
}

/// `actor`'s ✅ is no longer on the card (cleared, or removed while opsgate was away):
/// withdraws their approval if it was given with ✅, before quorum. An approval given with a
/// button or a command stays. Returns whether one was removed.
pub fn withdraw_reaction(job: &mut Job, actor: &Actor) -> bool {
    if job.state != JobState::AwaitingApproval {
        return false;
    }
    let before = job.approvals.len();
    job.approvals
        .retain(|a| !(a.by_reaction && a.by.id == actor.id));
    job.approvals.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobId, JobSpec, Person};
    use crate::job::Requirement;

    const APPROVER: RoleId = RoleId(20);

    fn job(needed: u32) -> Job {
        Job {
            id: JobId(1),
            spec: std::sync::Arc::new(JobSpec {
                operation: "ddm.restart".into(),
                account: "acct".into(),
                target: "orders-db".into(),
                params: Default::default(),
            }),
            requester: Person {
                id: "alice".into(),
                name: "alice".into(),
            },
            channel: "ops".into(),
            requirement: Requirement {
                rule: "r".into(),
                approvals: needed,
                approver_roles: vec![APPROVER],
            },
            state: JobState::AwaitingApproval,
            approvals: vec![],
            created_ms: 0,
            expires_ms: 1_000,
            updated_ms: 0,
            message_id: None,
            cloud_ref: None,
            handle: None,
            progress: None,
            outcome: None,
            submit_answer: None,
            started_ms: None,
            finished_ms: None,
            audit_len: 0,
            nonce: 1,
            break_glass: None,
            thread: false,
        }
    }

    fn actor(id: &str, roles: &[RoleId]) -> Actor {
        Actor {
            id: id.into(),
            name: id.into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn requester_never_counts_even_with_the_approver_role() {
        let mut j = job(1);
        assert_eq!(
            approve(&mut j, &actor("alice", &[APPROVER]), 10),
            Err(Refusal::SelfApproval)
        );
        assert!(j.approvals.is_empty());
        assert_eq!(
            may_deny(&j, &actor("alice", &[APPROVER]), 10),
            Err(Refusal::SelfApproval)
        );
    }

    #[test]
    fn each_approver_counts_once_and_quorum_needs_distinct_people() {
        let mut j = job(2);
        assert_eq!(approve(&mut j, &actor("bob", &[APPROVER]), 10), Ok(false));
        assert_eq!(
            approve(&mut j, &actor("bob", &[APPROVER]), 11),
            Err(Refusal::AlreadyCounted)
        );
        assert_eq!(j.approvals.len(), 1);
        assert_eq!(approve(&mut j, &actor("carol", &[APPROVER]), 12), Ok(true));
    }

    #[test]
    fn a_user_without_an_approver_role_does_not_move_the_count() {
        let mut j = job(1);
        assert_eq!(
            approve(&mut j, &actor("mallory", &[RoleId(99)]), 10),
            Err(Refusal::NotApprover(vec![APPROVER]))
        );
        assert!(j.approvals.is_empty());
        assert!(may_deny(&j, &actor("mallory", &[RoleId(99)]), 10).is_err());
    }

    #[test]
    fn nothing_is_approved_after_expiry() {
        let mut j = job(1);
        assert_eq!(
            approve(&mut j, &actor("bob", &[APPROVER]), 1_000),
            Err(Refusal::Expired)
        );
        assert!(j.approvals.is_empty());
    }

    #[test]
    fn withdrawing_before_quorum_removes_the_approval() {
        let mut j = job(2);
        approve(&mut j, &actor("bob", &[APPROVER]), 10).unwrap();
        assert_eq!(withdraw(&mut j, &actor("bob", &[APPROVER])), Ok(true));
        assert!(j.approvals.is_empty());
        assert_eq!(withdraw(&mut j, &actor("bob", &[APPROVER])), Ok(false));
        j.state = JobState::Running;
        assert_eq!(
            withdraw(&mut j, &actor("bob", &[APPROVER])),
            Err(Refusal::NotPending(JobState::Running))
        );
    }

    #[test]
    fn only_pending_jobs_can_be_decided() {
        let mut j = job(1);
        j.state = JobState::Denied;
        assert_eq!(
            approve(&mut j, &actor("bob", &[APPROVER]), 10),
            Err(Refusal::NotPending(JobState::Denied))
        );
    }
}
