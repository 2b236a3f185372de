//! What the TaurusDB (GaussDB for MySQL) proxy operations share: the job API
//! (`GET /v3/{project_id}/jobs?id=`), which refusals prove nothing started, the poll cadence,
//! the stored handle, and the honest reconcile.
//!
//! Both `taurus-proxy.restart` (its `job_id`) and `taurus-proxy.upgrade` (its `workflow_id`)
//! are followed through the same job API, as the Terraform provider does. A job is not
//! queryable for a few seconds after it is created, so "not found" within a grace period
//! after the submit is still pending.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors;
use super::retry::{Refusal, THROTTLE_CODES};
use super::{ddm, Answer, HuaweiClient, Service};
use crate::cloud::http::clean;
use crate::cloud::now_unix;
use crate::command::ids;
use crate::config::{Account, AuthMethod};
use crate::domain::JobSpec;
use crate::ports::cloud::{CloudError, PollOutcome, PollPolicy, ReconcileOutcome};

/// TaurusDB's "another operation is in progress" codes on a 409 (Terraform retries exactly
/// these; `DBS.212033`, "instance is currently being operated", is in its newer list).
pub const BUSY_CODES: &[&str] = &[
    "DBS.200019",
    "DBS.201014",
    "DBS.201015",
    "DBS.200047",
    "DBS.05000084",
    "DBS.212033",
];

/// Terraform waits 10 s before the first look at a TaurusDB job.
const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(10);
/// How long after the submit a "job not found" still counts as "not visible yet".
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The poll cadence: DDM's (Terraform's 10 s, the account's `poll_interval`, the same floors
/// for public and overridden endpoints), with Terraform's 10 s initial delay for TaurusDB.
pub fn poll_policy(account: &Account, endpoint_overridden: bool) -> PollPolicy {
    let mut policy = ddm::poll_policy(account, endpoint_overridden);
    policy.initial_delay = DEFAULT_INITIAL_DELAY.min(policy.interval);
    policy
}

/// Answers that prove nothing started: throttling, or another operation in progress.
pub fn refusal(answer: &Answer) -> Option<Refusal> {
    let code = errors::parse_vendor(&answer.body).and_then(|(code, _)| code);
    let code = code.as_deref().unwrap_or("");
    if answer.status == 429 || THROTTLE_CODES.contains(&code) {
        Some(Refusal::Throttled)
    } else if answer.status == 409 && BUSY_CODES.contains(&code) {
        Some(Refusal::Busy)
    } else {
        None
    }
}

/// What is stored for an accepted restart or upgrade and handed back to `poll`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHandle {
    pub instance_id: String,
    pub proxy_id: String,
    /// The restart's `job_id` or the upgrade's `workflow_id`.
    pub job_id: String,
    /// Unix seconds when the cloud accepted the request (starts the not-found grace).
    pub submitted_at: i64,
    /// Things the cloud said alongside the acceptance (e.g. a second, rejected entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl JobHandle {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(v: &Value) -> Option<JobHandle> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// The validated `(instance_id, proxy_id)` of a job.
pub fn target(spec: &JobSpec) -> Result<(String, String), CloudError> {
    let instance = match spec.param("instance_id") {
        Some(id) if ids::TAURUS_INSTANCE.matches(id) => id,
        Some(_) => {
            return Err(CloudError::local(format!(
                "the instance ID is not {}",
                ids::TAURUS_INSTANCE.describe
            )))
        }
        None => return Err(CloudError::local("the job has no instance_id")),
    };
    let proxy = match spec.param("proxy_id") {
        Some(id) if ids::TAURUS_PROXY.matches(id) => id,
        Some(_) => {
            return Err(CloudError::local(format!(
                "the proxy ID is not {}",
                ids::TAURUS_PROXY.describe
            )))
        }
        None => return Err(CloudError::local("the job has no proxy_id")),
    };
    Ok((instance.to_string(), proxy.to_string()))
}

/// The job API and proxy look-ups for one account.
pub struct TaurusJobs {
    client: Arc<HuaweiClient>,
    /// See [`DEFAULT_GRACE`].
    pub grace: Duration,
}

impl TaurusJobs {
    /// Fails early (at start-up, in the registry) on what would make every job fail.
    pub fn new(client: Arc<HuaweiClient>) -> Result<TaurusJobs, String> {
        client.endpoint(Service::Gaussdb)?;
        client.project_id().map_err(|e| e.message)?;
        if client.account().auth == AuthMethod::Password {
            client.endpoint(Service::Iam)?;
        }
        Ok(TaurusJobs {
            client,
            grace: DEFAULT_GRACE,
        })
    }

    pub fn client(&self) -> &Arc<HuaweiClient> {
        &self.client
    }

    /// The poll cadence for this account.
    pub fn poll_policy(&self) -> PollPolicy {
        let overridden = self
            .client
            .endpoint(Service::Gaussdb)
            .map(|e| e.overridden)
            .unwrap_or(false);
        poll_policy(self.client.account(), overridden)
    }

    /// One look at the job. `what` names the work in messages, e.g. "proxy restart".
    pub async fn poll(&self, what: &str, handle: &JobHandle) -> PollOutcome {
        let job_id = handle.job_id.as_str();
        if !ids::HUAWEI_JOB_ID.matches(job_id) {
            return PollOutcome::Transient(format!(
                "the stored {what} job ID is not usable; check the proxy in the console"
            ));
        }
        let project = match self.client.project_id() {
            Ok(p) => p,
            Err(e) => return PollOutcome::Transient(e.to_string()),
        };
        let answer = match self
            .client
            .send(
                Service::Gaussdb,
                Method::GET,
                &format!("/v3/{project}/jobs"),
                &[("id", job_id)],
                None,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return PollOutcome::Transient(e.to_string()),
        };
        let job = answer
            .is_success()
            .then(|| answer.json())
            .flatten()
            .and_then(|v| v.get("job").filter(|j| j.is_object()).cloned());
        let Some(job) = job else {
            return self.not_found(what, handle, &answer);
        };
        let text = |key: &str| {
            job.get(key)
                .and_then(Value::as_str)
                .map(clean)
                .filter(|s| !s.is_empty())
        };
        let notes = if handle.notes.is_empty() {
            String::new()
        } else {
            format!(" (note: {})", handle.notes.join("; "))
        };
        match text("status").as_deref() {
            Some("Completed") => {
                PollOutcome::Succeeded(format!("TaurusDB {what} job {job_id} completed{notes}"))
            }
            Some("Failed") => {
                let reason = text("fail_reason").unwrap_or_else(|| {
                    format!("TaurusDB reported the {what} job {job_id} as Failed")
                });
                PollOutcome::Failed(CloudError::new(None, None, reason))
            }
            Some(status) => {
                let progress = match text("process") {
                    Some(p) => format!("job {status}, {p}"),
                    None => format!("job {status}"),
                };
                PollOutcome::InProgress {
                    progress: Some(progress),
                    handle: None,
                }
            }
            None => PollOutcome::Transient(format!(
                "HTTP {} with an unreadable job answer: {}",
                answer.status,
                crate::cloud::http::excerpt(&answer.body)
            )),
        }
    }

    /// No job in the answer: too early, gone, or a real error.
    fn not_found(&self, what: &str, handle: &JobHandle, answer: &Answer) -> PollOutcome {
        let looks_missing = matches!(answer.status, 400 | 404) || answer.is_success();
        let since = now_unix().saturating_sub(handle.submitted_at).max(0);
        let grace = i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX);
        let why = if answer.is_success() {
            format!(
                "HTTP {} without a job: {}",
                answer.status,
                crate::cloud::http::excerpt(&answer.body)
            )
        } else {
            errors::from_answer(answer).to_string()
        };
        if looks_missing && since < grace {
            tracing::debug!(job_id = %handle.job_id, status = answer.status, "TaurusDB job not visible yet");
            return PollOutcome::InProgress {
                progress: Some(format!("{what} accepted; job not visible yet")),
                handle: None,
            };
        }
        if looks_missing {
            return PollOutcome::Transient(format!(
                "TaurusDB {what} job {} is still not found {since} s after it was accepted ({why})",
                handle.job_id
            ));
        }
        PollOutcome::Transient(why)
    }

    /// The status of a proxy from `GET /v3/{project_id}/instances/{instance_id}/proxies`,
    /// `Ok(None)` if the proxy is not in the list.
    pub async fn proxy_status(
        &self,
        instance_id: &str,
        proxy_id: &str,
    ) -> Result<Option<String>, String> {
        let project = self.client.project_id().map_err(|e| e.to_string())?;
        let answer = self
            .client
            .send(
                Service::Gaussdb,
                Method::GET,
                &format!("/v3/{project}/instances/{instance_id}/proxies"),
                &[],
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !answer.is_success() {
            return Err(errors::from_answer(&answer).to_string());
        }
        let v = answer.json().ok_or_else(|| {
            format!(
                "HTTP {} with an unreadable answer: {}",
                answer.status,
                crate::cloud::http::excerpt(&answer.body)
            )
        })?;
        let list = v
            .get("proxy_list")
            .and_then(Value::as_array)
            .ok_or_else(|| "the answer has no proxy_list".to_string())?;
        for entry in list {
            let proxy = entry.get("proxy").unwrap_or(entry);
            let id_is = |key: &str| proxy.get(key).and_then(Value::as_str) == Some(proxy_id);
            if id_is("pool_id") || id_is("id") {
                let status = proxy
                    .get("status")
                    .and_then(Value::as_str)
                    .map(clean)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "(no status)".to_string());
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// After a lost answer: the job cannot be found without its ID, so this never claims to
    /// know; it reports what the proxy looks like and what to check. Nothing is re-sent.
    pub async fn reconcile(&self, what: &str, spec: &JobSpec) -> ReconcileOutcome {
        let (instance, proxy) = match target(spec) {
            Ok(t) => t,
            Err(e) => return ReconcileOutcome::Unknown(e.to_string()),
        };
        let seen = match self.proxy_status(&instance, &proxy).await {
            Ok(Some(status)) => format!("proxy {proxy} reports status {status}"),
            Ok(None) => format!("proxy {proxy} is not in the instance's proxy list"),
            Err(e) => format!("the proxy list could not be read ({e})"),
        };
        ReconcileOutcome::Unknown(format!(
            "the {what} request may or may not have reached TaurusDB and it was not re-sent; \
             its job cannot be looked up without the job ID that was lost; {seen}. Check the \
             task center of TaurusDB instance {instance} for a recent {what} job on this proxy"
        ))
    }
}

/// The target of both TaurusDB proxy operations (one named target works for both, and the
/// per-target lock covers both).
pub fn proxy_target() -> Vec<crate::command::Param> {
    use crate::command::{ids, Param};
    vec![
        Param::new("instance_id", "<instance>", &ids::TAURUS_INSTANCE),
        Param::new("proxy_id", "<proxy>", &ids::TAURUS_PROXY),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::config::Config;

    /// An account as the config makes it (so new account fields need no change here).
    fn account(poll: Option<&str>) -> Account {
        let poll = poll.map_or(String::new(), |p| format!("poll_interval = \"{p}\""));
        let text = format!(
            r#"
[roles]
oncall = "1"
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_TAURUS_UNIT_TEST_UNSET"
{poll}
"#
        );
        let config = Config::parse(&text, Path::new("t.toml"), &crate::cloud::builtins()).unwrap();
        (*config.accounts["acct"]).clone()
    }

    fn ans(status: u16, body: &'static str) -> Answer {
        Answer {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn poll_policy_follows_terraform_and_the_floors() {
        let p = poll_policy(&account(None), false);
        assert_eq!(p.initial_delay, Duration::from_secs(10));
        assert_eq!(p.interval, Duration::from_secs(10));
        let fast = Some("100ms");
        assert_eq!(
            poll_policy(&account(fast), false).interval,
            Duration::from_secs(2)
        );
        let local = poll_policy(&account(fast), true);
        assert_eq!(local.interval, Duration::from_millis(100));
        assert_eq!(local.initial_delay, Duration::from_millis(100));
    }

    #[test]
    fn only_proven_refusals_are_retried() {
        for code in BUSY_CODES {
            let body = format!(r#"{{"error_code":"{code}","error_msg":"busy"}}"#);
            let a = Answer {
                status: 409,
                body: Bytes::from(body),
            };
            assert_eq!(refusal(&a), Some(Refusal::Busy), "{code}");
        }
        assert_eq!(
            refusal(&ans(429, r#"{"error_code":"APIGW.0308","error_msg":"x"}"#)),
            Some(Refusal::Throttled)
        );
        assert_eq!(refusal(&ans(429, "")), Some(Refusal::Throttled));
        // A busy code on another status, or another code on a 409, proves nothing.
        assert_eq!(
            refusal(&ans(400, r#"{"error_code":"DBS.200019","error_msg":"x"}"#)),
            None
        );
        assert_eq!(
            refusal(&ans(409, r#"{"error_code":"DBS.280001","error_msg":"x"}"#)),
            None
        );
        assert_eq!(refusal(&ans(500, "")), None);
    }

    #[test]
    fn handle_round_trips() {
        let h = JobHandle {
            instance_id: "i".into(),
            proxy_id: "p".into(),
            job_id: "j".into(),
            submitted_at: 7,
            notes: Vec::new(),
        };
        let v = h.to_value();
        assert!(v.get("notes").is_none());
        assert_eq!(JobHandle::from_value(&v), Some(h));
        assert_eq!(JobHandle::from_value(&Value::Null), None);
    }

    #[test]
    fn not_found_is_pending_only_within_the_grace() {
        let client = HuaweiClient::new(Arc::new(account(None)), reqwest::Client::new().into());
        let jobs = TaurusJobs::new(Arc::new(client)).unwrap();
        let mut h = JobHandle {
            job_id: "dff1d289-4d03-4942-854f-463ea07c000d".into(),
            submitted_at: now_unix(),
            ..JobHandle::default()
        };
        let missing = ans(
            404,
            r#"{"error_code":"DBS.200823","error_msg":"not found"}"#,
        );
        assert!(matches!(
            jobs.not_found("proxy restart", &h, &missing),
            PollOutcome::InProgress { .. }
        ));
        h.submitted_at -= 31;
        match jobs.not_found("proxy restart", &h, &missing) {
            PollOutcome::Transient(m) => {
                assert!(
                    m.contains("still not found") && m.contains("DBS.200823"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A server error is never taken for "not visible yet".
        h.submitted_at = now_unix();
        assert!(matches!(
            jobs.not_found("proxy restart", &h, &ans(500, "")),
            PollOutcome::Transient(_)
        ));
    }
}
