//! Synthetic job histories, for the recovery benchmark: a data directory holding many
//! finished jobs (with audit logs) and some pending approvals, as a long-lived bot would have.

use std::collections::BTreeMap;
use std::path::Path;

use opsgate::domain::{JobId, JobSpec, MessageId, Person, RoleId};
use opsgate::job::{AuditEntry, Job, JobState, Requirement};
use opsgate::ports::store::Writes;
use opsgate::store::{SledStore, StoreError};

fn job(id: u64, state: JobState, now_ms: u64) -> Job {
    let instance = format!("{id:032x}in09");
    let mut params = BTreeMap::new();
    params.insert("instance_id".to_string(), instance.clone());
    params.insert("mode".to_string(), "hard".to_string());
    let pending = state == JobState::AwaitingApproval;
    Job {
        id: JobId(id),
        spec: std::sync::Arc::new(JobSpec {
            operation: "ddm.restart".into(),
            account: "huawei".into(),
            target: instance,
            params,
        }),
        requester: Person {
            id: "alice".into(),
            name: "alice".into(),
        },
        channel: "ops".into(),
        requirement: Requirement {
            rule: "hard restart".into(),
            approvals: 1,
            approver_roles: vec![RoleId(20)],
        },
        state,
        approvals: Vec::new(),
        created_ms: now_ms,
        // Pending ones stay open for a day, so recovery keeps them pending.
        expires_ms: now_ms + 86_400_000,
        updated_ms: now_ms,
        message_id: pending.then(|| MessageId(format!("job-{id}"))),
        cloud_ref: (!pending).then(|| format!("{id:08x}-0000-0000-0000-000000000000")),
        handle: None,
        progress: None,
        outcome: (!pending).then(|| "DDM job completed".to_string()),
        submit_answer: None,
        started_ms: (!pending).then_some(now_ms),
        finished_ms: (!pending).then_some(now_ms + 30_000),
        audit_len: 0,
        nonce: 1,
        break_glass: None,
        thread: false,
    }
}

/// Writes `finished` succeeded jobs (4 audit entries each) and then `pending` jobs awaiting
/// approval into a new store at `dir`.
pub fn fill(dir: &Path, finished: u64, pending: u64) -> Result<(), StoreError> {
    let store = SledStore::open(dir)?;
    let now = opsgate::domain::time::now_ms();
    let mut batch = Writes::default();
    for id in 1..=finished + pending {
        let is_pending = id > finished;
        let mut j = job(
            id,
            if is_pending {
                JobState::AwaitingApproval
            } else {
                JobState::Succeeded
            },
            now,
        );
        let events: &[&str] = if is_pending {
            &["requested"]
        } else {
            &["requested", "approved", "accepted", "succeeded"]
        };
        for (i, event) in events.iter().enumerate() {
            let entry = AuditEntry {
                at_ms: now + i as u64,
                actor: Some("alice (alice)".into()),
                event: event.to_string(),
                detail: "synthetic".into(),
            };
            batch.put_job(&mut j, Some(entry));
        }
        if let Some(m) = &j.message_id {
            batch.index_message(m, JobId(id));
        }
        if id % 10_000 == 0 {
            store.commit(&std::mem::take(&mut batch))?;
        }
    }
    batch.set_next_id(JobId(finished + pending + 1));
    store.commit(&std::mem::take(&mut batch))?;
    store.flush()
}
