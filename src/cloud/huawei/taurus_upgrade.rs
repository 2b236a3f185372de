//! TaurusDB proxy kernel upgrade (`taurus-proxy.upgrade`):
//! `POST /v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}/upgrade-version` with
//! `{"source_version","target_version"}`.
//!
//! The HTTP 200 only says the request was handled: each `update_result[]` entry says
//! `ACCEPT` (with an empty `error_message`; followed through its `workflow_id` on the job
//! API, as Terraform does) or not (`REJECT`, or any message: the message reaches the user).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::retry::{self, RetryPolicy};
use super::taurus_job::{self, JobHandle, TaurusJobs};
use super::{Answer, HuaweiClient, Request, Service};
use crate::cloud::http::clean;
use crate::cloud::operation::AccountClients;
use crate::cloud::operation::BuiltIn;
use crate::command::{ids, OperationDef, Param};
use crate::domain::{JobSpec, Provider};
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

const WHAT: &str = "proxy kernel upgrade";

/// This operation's row in the catalog, and how it is built for an account.
pub const OPERATION: BuiltIn = BuiltIn { def, build };

fn def() -> OperationDef {
    OperationDef {
        id: "taurus-proxy.upgrade".into(),
        verb: "upgrade".into(),
        service: "taurus-proxy".into(),
        aliases: vec!["gaussdb-proxy".into()],
        provider: Provider::Huawei,
        target: taurus_job::proxy_target(),
        modes: None,
        args: vec![
            Param::new("source_version", "<source_version>", &ids::PROXY_VERSION),
            Param::new("target_version", "<target_version>", &ids::PROXY_VERSION),
        ],
        usage: "!upgrade taurus-proxy <instance> <proxy> <source_version> <target_version> \
                [account=NAME]"
            .into(),
        summary: "upgrade the kernel version of a Huawei Cloud TaurusDB proxy instance".into(),
        notes: "<source_version> is the proxy's current kernel version and <target_version> the \
                new one, e.g. 2.23.12.000 2.24.03.000; the target may not be lower than the \
                source. <instance> <proxy> may be replaced by a named taurus-proxy target. \
                TaurusDB may refuse the upgrade (REJECT); its reason is shown as it is."
            .into(),
        check: Some(check),
        lock: None,
        origin: None,
    }
}

fn build(clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
    let client = clients
        .huawei
        .clone()
        .ok_or_else(|| format!("account `{}` is not a Huawei account", clients.account.name))?;
    Ok(Arc::new(TaurusProxyUpgrade::new(client)?))
}

/// Compares two versions of the `PROXY_VERSION` shape numerically, part by part; missing
/// trailing parts count as 0 (`2.23.12` = `2.23.12.000`). `None` if either is not a version.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    fn parts(v: &str) -> Option<Vec<u32>> {
        if !ids::PROXY_VERSION.matches(v) {
            return None;
        }
        v.split('.').map(|p| p.parse().ok()).collect()
    }
    let (a, b) = (parts(a)?, parts(b)?);
    let len = a.len().max(b.len());
    let at = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
    Some(
        (0..len)
            .map(|i| at(&a, i).cmp(&at(&b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
    )
}

/// The command table's cross-argument check: the target version may not be lower than the
/// source version (the API requires target >= source).
pub fn check(params: &BTreeMap<String, String>) -> Result<(), String> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let (source, target) = (get("source_version"), get("target_version"));
    match compare_versions(source, target) {
        Some(Ordering::Greater) => Err(format!(
            "The target version {target} is lower than the source version {source}; a proxy \
             kernel cannot be downgraded."
        )),
        Some(_) => Ok(()),
        None => Err(format!(
            "Versions must look like {}.",
            ids::PROXY_VERSION.describe
        )),
    }
}

/// What an `update_result` answer means.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted {
        workflow_id: String,
        notes: Vec<String>,
    },
    Rejected(CloudError),
    /// Not the documented answer (no `update_result`, an entry without a state, an ACCEPT
    /// without a usable workflow): proves nothing.
    Unusable(String),
}

fn verdict(answer: &Answer) -> Verdict {
    let entries = answer
        .json()
        .and_then(|v| v.get("update_result").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    if entries.is_empty() {
        return Verdict::Unusable(format!(
            "TaurusDB answered HTTP {} without an update_result: {}",
            answer.status,
            crate::cloud::http::excerpt(&answer.body)
        ));
    }
    let mut followed: Option<String> = None;
    let mut notes = Vec::new();
    let mut untrackable = false;
    let mut refusals: Vec<(String, String)> = Vec::new();
    for entry in &entries {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .map(clean)
                .unwrap_or_default()
        };
        let (state, message, workflow) =
            (text("state"), text("error_message"), text("workflow_id"));
        if state.is_empty() {
            // Neither accepted nor refused: an entry without a state proves nothing.
            untrackable = true;
        } else if state == "ACCEPT" && message.trim().is_empty() {
            if !ids::HUAWEI_JOB_ID.matches(&workflow) {
                untrackable = true;
            } else if followed.is_none() {
                followed = Some(workflow);
            } else {
                notes.push(format!(
                    "also accepted as workflow {workflow} (not followed)"
                ));
            }
        } else {
            refusals.push((state, message));
        }
    }
    let described: Vec<String> = refusals
        .iter()
        .map(|(state, message)| {
            let state = if state.is_empty() { "no state" } else { state };
            if message.trim().is_empty() {
                format!("{state} (no message)")
            } else {
                format!("{state}: {message}")
            }
        })
        .collect();
    if let Some(workflow_id) = followed {
        notes.extend(described);
        return Verdict::Accepted { workflow_id, notes };
    }
    if untrackable {
        return Verdict::Unusable(format!(
            "TaurusDB answered with an update_result entry that has no state or no usable \
             workflow_id: {}",
            crate::cloud::http::excerpt(&answer.body)
        ));
    }
    // Nothing accepted: every entry refused. The vendor's words go to the user as they are.
    let code = refusals
        .first()
        .map(|(s, _)| s.clone())
        .filter(|s| !s.is_empty());
    let messages: Vec<&str> = refusals
        .iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| !m.trim().is_empty())
        .collect();
    let message = if messages.is_empty() {
        format!(
            "TaurusDB did not accept the upgrade and gave no reason ({})",
            described.join("; ")
        )
    } else {
        messages.join("; ")
    };
    Verdict::Rejected(CloudError::new(None, code, message))
}

/// The `taurus-proxy.upgrade` operation for one account.
pub struct TaurusProxyUpgrade {
    pub jobs: TaurusJobs,
    /// Backoff for refusals that prove nothing started (429, 409 busy, no connection).
    pub retry: RetryPolicy,
    pub policy: PollPolicy,
}

impl TaurusProxyUpgrade {
    pub fn new(client: Arc<HuaweiClient>) -> Result<TaurusProxyUpgrade, String> {
        let jobs = TaurusJobs::new(client)?;
        let policy = jobs.poll_policy();
        Ok(TaurusProxyUpgrade {
            jobs,
            retry: RetryPolicy::default(),
            policy,
        })
    }
}

impl TaurusProxyUpgrade {
    /// The upgrade request for `spec` (what `submit` sends and a dry run shows), with the
    /// instance and the proxy.
    fn request(&self, spec: &JobSpec) -> Result<(Request, String, String), CloudError> {
        let (instance, proxy) = taurus_job::target(spec)?;
        check(&spec.params).map_err(CloudError::local)?;
        let source = spec.param("source_version").unwrap_or_default();
        let target = spec.param("target_version").unwrap_or_default();
        let project = self.jobs.client().project_id()?;
        let path = format!("/v3/{project}/instances/{instance}/proxy/{proxy}/upgrade-version");
        let body = json!({"source_version": source, "target_version": target})
            .to_string()
            .into_bytes();
        Ok((
            Request::post(Service::Gaussdb, path, Some(body)),
            instance,
            proxy,
        ))
    }
}

#[async_trait]
impl CloudOperation for TaurusProxyUpgrade {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (request, instance, proxy) = match self.request(spec) {
            Ok(r) => r,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let source = spec.param("source_version").unwrap_or_default();
        let target = spec.param("target_version").unwrap_or_default();
        let client = self.jobs.client();
        let attempted = retry::send_with_retries(
            &self.retry,
            "taurus-proxy.upgrade",
            || client.send_request(&request),
            taurus_job::refusal,
        )
        .await;
        let answer = match attempted.success_or("TaurusDB") {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        match verdict(&answer) {
            Verdict::Accepted { workflow_id, notes } => {
                let mut said = format!(
                    "TaurusDB accepted the upgrade of proxy {proxy} of instance {instance} from \
                     {source} to {target} (workflow {workflow_id})"
                );
                if !notes.is_empty() {
                    said.push_str(&format!("; note: {}", notes.join("; ")));
                }
                let handle = JobHandle {
                    instance_id: instance,
                    proxy_id: proxy,
                    job_id: workflow_id.clone(),
                    submitted_at: crate::cloud::now_unix(),
                    notes,
                };
                SubmitOutcome::Accepted {
                    handle: handle.to_value(),
                    cloud_ref: Some(workflow_id),
                    answer: said,
                }
            }
            Verdict::Rejected(e) => SubmitOutcome::Refused(e),
            Verdict::Unusable(why) => SubmitOutcome::Indeterminate(why),
        }
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        match JobHandle::from_value(handle) {
            Some(h) => self.jobs.poll(WHAT, &h).await,
            None => PollOutcome::Transient(format!(
                "the stored handle of this {WHAT} is unreadable; check proxy {} in the console",
                clean(spec.param("proxy_id").unwrap_or("?"))
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn params(source: &str, target: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("source_version".to_string(), source.to_string()),
            ("target_version".to_string(), target.to_string()),
        ])
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        use Ordering::*;
        assert_eq!(compare_versions("2.23.12.000", "2.24.03.000"), Some(Less));
        assert_eq!(compare_versions("2.9.0", "2.10.0"), Some(Less));
        assert_eq!(compare_versions("2.23.12", "2.23.12.000"), Some(Equal));
        assert_eq!(compare_versions("2.23.12.001", "2.23.12"), Some(Greater));
        assert_eq!(compare_versions("10.0.0", "9.99.99.999"), Some(Greater));
        assert_eq!(compare_versions("2.x.1", "2.0.1"), None);
    }

    #[test]
    fn check_refuses_a_downgrade_with_a_clear_message() {
        assert!(check(&params("2.23.12.000", "2.24.03.000")).is_ok());
        assert!(check(&params("2.23.12.000", "2.23.12.000")).is_ok());
        let e = check(&params("2.24.03.000", "2.23.12.000")).unwrap_err();
        assert!(e.contains("lower than the source version"), "{e}");
        assert!(check(&params("2.24.03.000", "latest")).is_err());
        assert!(check(&BTreeMap::new()).is_err());
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: 200,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn accept_is_followed_through_its_workflow() {
        let v = verdict(&answer(
            r#"{"update_result":[{"instance_id":"i","workflow_id":"375ac6a4-2788-4e45-83bf-8a9d2324317f","state":"ACCEPT","error_message":null}]}"#,
        ));
        assert_eq!(
            v,
            Verdict::Accepted {
                workflow_id: "375ac6a4-2788-4e45-83bf-8a9d2324317f".into(),
                notes: vec![],
            }
        );
    }

    #[test]
    fn reject_reaches_the_user_verbatim() {
        let v = verdict(&answer(
            r#"{"update_result":[{"workflow_id":"","state":"REJECT","error_message":"Upgrade failed due to insufficient subnet ip"}]}"#,
        ));
        match v {
            Verdict::Rejected(e) => {
                assert_eq!(
                    e.to_string(),
                    "REJECT: Upgrade failed due to insufficient subnet ip"
                )
            }
            other => panic!("{other:?}"),
        }
        // ACCEPT with a message is not a success (Terraform's rule).
        let v = verdict(&answer(
            r#"{"update_result":[{"workflow_id":"w1","state":"ACCEPT","error_message":"quota"}]}"#,
        ));
        assert!(matches!(v, Verdict::Rejected(e) if e.message == "quota"));
        let v = verdict(&answer(r#"{"update_result":[{"state":"REJECT"}]}"#));
        assert!(
            matches!(&v, Verdict::Rejected(e) if e.message.contains("gave no reason")),
            "{v:?}"
        );
    }

    #[test]
    fn mixed_answers_follow_the_accepted_entry_and_keep_the_rejection() {
        // The documentation's own example.
        let v = verdict(&answer(
            r#"{"update_result":[{"workflow_id":"375ac6a4-2788-4e45-83bf-8a9d2324317f","state":"ACCEPT","error_message":null},{"workflow_id":"375ac6a4-2788-4e45-83be-8a9d2324327f","state":"REJECT","error_message":"Upgrade failed due to insufficient subnet ip"}]}"#,
        ));
        match v {
            Verdict::Accepted { workflow_id, notes } => {
                assert_eq!(workflow_id, "375ac6a4-2788-4e45-83bf-8a9d2324317f");
                assert_eq!(
                    notes,
                    ["REJECT: Upgrade failed due to insufficient subnet ip"]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unusable_answers_are_not_guessed() {
        for body in [
            "{}",
            "not json",
            r#"{"update_result":[]}"#,
            r#"{"update_result":[{"state":"ACCEPT","workflow_id":"../x"}]}"#,
        ] {
            assert!(
                matches!(verdict(&answer(body)), Verdict::Unusable(_)),
                "{body}"
            );
        }
    }
}
