//! TaurusDB proxy restart (`taurus-proxy.restart`):
//! `POST /v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}/restart`, no request body
//! (`Content-Type: application/json` is still sent, as the API requires), answer
//! `{"job_id"}`, followed through the TaurusDB job API.
//!
//! The API has no idempotency key: after an answer that proves nothing (no answer, a 5xx,
//! a 2xx without a usable `job_id`) nothing is re-sent, and reconcile reports the proxy's
//! status and says honestly that it cannot tell.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use super::retry::{self, RetryPolicy};
use super::taurus_job::{self, JobHandle, TaurusJobs};
use super::{HuaweiClient, Service};
use crate::cloud::registry::AccountClients;
use crate::cloud::{
    CloudOperation, JobSpec, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};
use crate::command::ids;

const WHAT: &str = "proxy restart";

pub fn build(clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
    let client = clients
        .huawei
        .clone()
        .ok_or_else(|| format!("account `{}` is not a Huawei account", clients.account.name))?;
    Ok(Arc::new(TaurusProxyRestart::new(client)?))
}

/// The `taurus-proxy.restart` operation for one account.
pub struct TaurusProxyRestart {
    pub jobs: TaurusJobs,
    /// Backoff for refusals that prove nothing started (429, 409 busy, no connection).
    pub retry: RetryPolicy,
    pub policy: PollPolicy,
}

impl TaurusProxyRestart {
    pub fn new(client: Arc<HuaweiClient>) -> Result<TaurusProxyRestart, String> {
        let jobs = TaurusJobs::new(client)?;
        let policy = jobs.poll_policy();
        Ok(TaurusProxyRestart {
            jobs,
            retry: RetryPolicy::default(),
            policy,
        })
    }
}

#[async_trait]
impl CloudOperation for TaurusProxyRestart {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (instance, proxy) = match taurus_job::target(spec) {
            Ok(t) => t,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let client = self.jobs.client();
        let project = match client.project_id() {
            Ok(p) => p,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let path = format!("/v3/{project}/instances/{instance}/proxy/{proxy}/restart");
        let attempted = retry::send_with_retries(
            &self.retry,
            "taurus-proxy.restart",
            || client.send(Service::Gaussdb, Method::POST, &path, &[], None),
            taurus_job::refusal,
        )
        .await;
        let answer = match attempted.success_or("TaurusDB") {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let job_id = answer
            .json()
            .and_then(|v| v.get("job_id").and_then(Value::as_str).map(str::to_string))
            .filter(|j| ids::HUAWEI_JOB_ID.matches(j));
        let Some(job_id) = job_id else {
            return SubmitOutcome::undocumented("TaurusDB", &answer, "`{\"job_id\"}`");
        };
        let handle = JobHandle {
            instance_id: instance.clone(),
            proxy_id: proxy.clone(),
            job_id: job_id.clone(),
            submitted_at: crate::cloud::now_unix(),
            notes: Vec::new(),
        };
        SubmitOutcome::Accepted {
            handle: handle.to_value(),
            cloud_ref: Some(job_id.clone()),
            answer: format!(
                "TaurusDB accepted the restart of proxy {proxy} of instance {instance} (job {job_id})"
            ),
        }
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        match JobHandle::from_value(handle) {
            Some(h) => self.jobs.poll(WHAT, &h).await,
            None => PollOutcome::Transient(format!(
                "the stored handle of this {} is unreadable; check proxy {} in the console",
                WHAT,
                spec.param("proxy_id").unwrap_or("?")
            )),
        }
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        self.jobs.reconcile(WHAT, spec).await
    }
}
