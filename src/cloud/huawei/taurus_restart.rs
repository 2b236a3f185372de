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
use serde_json::Value;

use super::retry::{self, RetryPolicy};
use super::taurus_job::{self, JobHandle, TaurusJobs};
use super::{HuaweiClient, Request, Service};
use crate::cloud::operation::AccountClients;
use crate::cloud::operation::BuiltIn;
use crate::command::{ids, OperationDef};
use crate::domain::{JobSpec, Provider};
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

const WHAT: &str = "proxy restart";

/// This operation's row in the catalog, and how it is built for an account.
pub const OPERATION: BuiltIn = BuiltIn { def, build };

fn def() -> OperationDef {
    OperationDef {
        id: "taurus-proxy.restart".into(),
        verb: "restart".into(),
        service: "taurus-proxy".into(),
        aliases: vec!["gaussdb-proxy".into()],
        provider: Provider::Huawei,
        target: taurus_job::proxy_target(),
        modes: None,
        args: vec![],
        usage: "!restart taurus-proxy <instance> <proxy> [account=NAME]".into(),
        summary: "restart a Huawei Cloud TaurusDB (GaussDB for MySQL) proxy instance".into(),
        notes: "Instead of <instance> <proxy> (a TaurusDB instance ID ending in in07 and a proxy \
                ID ending in po01, used with the default Huawei account or account=NAME), give a \
                named taurus-proxy target from the config. Connections through the proxy drop \
                while it restarts."
            .into(),
        check: None,
        lock: None,
        origin: None,
    }
}

fn build(clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
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

impl TaurusProxyRestart {
    /// The restart request for `spec` (what `submit` sends and a dry run shows), with the
    /// instance and the proxy. No body: TaurusDB's restart takes none.
    fn request(&self, spec: &JobSpec) -> Result<(Request, String, String), CloudError> {
        let (instance, proxy) = taurus_job::target(spec)?;
        let project = self.jobs.client().project_id()?;
        let path = format!("/v3/{project}/instances/{instance}/proxy/{proxy}/restart");
        Ok((Request::post(Service::Gaussdb, path, None), instance, proxy))
    }
}

#[async_trait]
impl CloudOperation for TaurusProxyRestart {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (request, instance, proxy) = match self.request(spec) {
            Ok(r) => r,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let client = self.jobs.client();
        let attempted = retry::send_with_retries(
            &self.retry,
            "taurus-proxy.restart",
            || client.send_request(&request),
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
            return crate::cloud::undocumented("TaurusDB", &answer, "`{\"job_id\"}`");
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

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let (request, _, _) = self.request(spec).map_err(|e| e.to_string())?;
        self.jobs.client().describe(&request)
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        self.jobs.reconcile(WHAT, spec).await
    }
}
