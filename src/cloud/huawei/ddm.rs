//! DDM instance restart (`ddm.restart`): `POST /v1/{project_id}/instances/{id}/action`.
//!
//! Completion is read from the job API when the answer carried a `jobId`, else from the
//! instance status: seen `RESTARTING`, then back to `RUNNING`. An instance that is only ever
//! seen `RUNNING` proves nothing, and the job ends `unknown`. The restart API has no
//! idempotency key, so after an answer that proves nothing, nothing is re-sent; reconcile
//! watches the instance instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors;
use super::retry::{self, Refusal, RetryPolicy};
use super::{Answer, HuaweiClient, Request, SendError, Service};
use crate::cloud::http::clean;
use crate::cloud::operation::AccountClients;
use crate::cloud::operation::BuiltIn;
use crate::cloud::{now_unix, plausible_id, Cadence};
use crate::command::{ids, Modes, OperationDef, Param};
use crate::config::{Account, AuthMethod};
use crate::domain::{JobSpec, Provider};
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

/// DDM's "another operation is being performed on the instance" codes (Terraform retries
/// exactly these on a 409).
const BUSY_CODES: &[&str] = &["DBS.200019", "DBS.212033"];
/// Throttling code of the API gateway; some FAQ pages spell it `APIG.0308`.
const THROTTLE_CODES: &[&str] = retry::THROTTLE_CODES;

/// Terraform's pace for DDM: poll every 10 s; never faster than 2 s on the public cloud.
pub const CADENCE: Cadence = Cadence {
    interval: Duration::from_secs(10),
    initial_delay: Duration::from_secs(5),
    max_interval: Duration::from_secs(60),
    timeout: Duration::from_secs(2 * 3600),
    public_floor: Duration::from_secs(2),
    override_floor: Duration::from_millis(50),
};

/// This operation's row in the catalog, and how it is built for an account.
pub const OPERATION: BuiltIn = BuiltIn { def, build };

fn def() -> OperationDef {
    OperationDef {
        id: "ddm.restart".into(),
        verb: "restart".into(),
        service: "ddm".into(),
        aliases: vec![],
        provider: Provider::Huawei,
        target: vec![Param::new("instance_id", "<target>", &ids::DDM_INSTANCE)],
        modes: Some(Modes::new("mode", &["soft", "hard"], "soft")),
        args: vec![],
        usage: "!restart ddm <target> [soft|hard] [account=NAME]".into(),
        summary: "restart a Huawei Cloud DDM instance (soft, the default: processes; hard: \
                  reboots the VM)"
            .into(),
        notes: "<target> is a named target from the config, or a DDM instance ID used with the \
                default Huawei account (or account=NAME)."
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
    Ok(Arc::new(DdmRestart::new(client)?))
}

/// The `ddm.restart` operation for one account.
pub struct DdmRestart {
    client: Arc<HuaweiClient>,
    /// Backoff for refusals that prove nothing started (429, 409 busy, no connection).
    pub retry: RetryPolicy,
    /// How long an instance that is RUNNING but was never seen RESTARTING is watched before
    /// the job ends `unknown` ([`crate::cloud::watch_window`]): a soft restart can finish
    /// between two polls, so RUNNING alone proves nothing.
    pub settle: Duration,
    pub policy: PollPolicy,
}

/// What is stored for a submitted restart and handed back to `poll`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Handle {
    instance_id: String,
    job_id: Option<String>,
    #[serde(default)]
    seen_restarting: bool,
    /// Unix seconds when the restart was accepted (or found under way).
    #[serde(default)]
    submitted_at: Option<i64>,
}

impl Handle {
    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The poll cadence for an account (see [`Cadence::policy`]).
pub fn poll_policy(account: &Account, endpoint_overridden: bool) -> PollPolicy {
    CADENCE.policy(account, endpoint_overridden)
}

fn refusal(answer: &Answer) -> Option<Refusal> {
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

/// The job ID of a 2xx restart answer in the documented shape (`Some(None)` for a shape
/// without one), or `None` if the answer is not that shape and so proves nothing.
///
/// Documented: `{"instanceId","instanceName","jobId"}`; older documentation shows `{}`,
/// after which completion is read from the instance status. A `jobId` that is not a plain
/// identifier, an `instanceId` naming another instance, HTML, an empty or truncated body:
/// none of these is evidence that the restart was accepted.
fn accepted_job(answer: &Answer, instance_id: &str) -> Option<Option<String>> {
    let value = answer.json()?;
    let object = value.as_object()?;
    if let Some(other) = object.get("instanceId") {
        if other.as_str() != Some(instance_id) {
            return None;
        }
    }
    match object.get("jobId") {
        Some(Value::String(id)) if plausible_id(id) => Some(Some(id.clone())),
        Some(_) => None,
        None if object.is_empty() || object.contains_key("instanceId") => Some(None),
        None => None,
    }
}

/// What an instance look says.
enum InstanceLook {
    Status(String),
    Error(String),
}

impl DdmRestart {
    /// Fails early (at start-up, in the registry) on what would make every job fail.
    pub fn new(client: Arc<HuaweiClient>) -> Result<DdmRestart, String> {
        let endpoint = client.endpoint(Service::Ddm)?;
        client.project_id().map_err(|e| e.message)?;
        if client.account().auth == AuthMethod::Password {
            client.endpoint(Service::Iam)?;
        }
        let policy = poll_policy(client.account(), endpoint.overridden);
        Ok(DdmRestart {
            client,
            retry: RetryPolicy::default(),
            settle: crate::cloud::watch_window(&policy),
            policy,
        })
    }

    /// The restart request for `spec` (what `submit` sends and a dry run shows), with the
    /// instance and the mode.
    fn request<'a>(&self, spec: &'a JobSpec) -> Result<(Request, &'a str, &'a str), CloudError> {
        let instance_id = self.instance_id(spec)?;
        let mode = spec.param("mode").unwrap_or("soft");
        if !matches!(mode, "soft" | "hard") {
            return Err(CloudError::local(format!(
                "unknown restart mode `{}` (soft or hard)",
                clean(mode)
            )));
        }
        let project = self.client.project_id()?;
        let path = format!("/v1/{project}/instances/{instance_id}/action");
        let body = json!({"restart": {"type": mode}}).to_string().into_bytes();
        Ok((
            Request::post(Service::Ddm, path, Some(body)),
            instance_id,
            mode,
        ))
    }

    fn instance_id<'a>(&self, spec: &'a JobSpec) -> Result<&'a str, CloudError> {
        match spec.param("instance_id") {
            Some(id) if ids::DDM_INSTANCE.matches(id) => Ok(id),
            Some(_) => Err(CloudError::local(format!(
                "the instance ID is not {}",
                ids::DDM_INSTANCE.describe
            ))),
            None => Err(CloudError::local("the job has no instance_id")),
        }
    }

    async fn get(&self, path: &str) -> Result<Answer, SendError> {
        self.client
            .send(Service::Ddm, Method::GET, path, &[], None)
            .await
    }

    async fn look_at_instance(&self, instance_id: &str) -> InstanceLook {
        let project = match self.client.project_id() {
            Ok(p) => p,
            Err(e) => return InstanceLook::Error(e.to_string()),
        };
        let answer = match self
            .get(&format!("/v1/{project}/instances/{instance_id}"))
            .await
        {
            Ok(a) => a,
            Err(e) => return InstanceLook::Error(e.to_string()),
        };
        if !answer.is_success() {
            return InstanceLook::Error(errors::from_answer(&answer).to_string());
        }
        match answer
            .json()
            .as_ref()
            .and_then(|v| v.get("status")?.as_str())
        {
            Some(status) if !status.is_empty() => InstanceLook::Status(clean(status)),
            _ => InstanceLook::Error(format!(
                "HTTP {} with an unreadable instance answer: {}",
                answer.status,
                crate::cloud::http::excerpt(&answer.body)
            )),
        }
    }

    /// `Some(outcome)` when the job API settles the poll; `None` to look at the instance.
    async fn poll_job(&self, job_id: &str) -> Option<PollOutcome> {
        let project = self.client.project_id().ok()?;
        let answer = match self.get(&format!("/v3/{project}/jobs/{job_id}")).await {
            Ok(a) => a,
            Err(e) => return Some(PollOutcome::Transient(e.to_string())),
        };
        // Not found (too early, or a v1 job the v3 API does not know), not allowed, or a
        // rejected ID: the instance status still tells the story.
        if matches!(answer.status, 400 | 403 | 404) {
            tracing::debug!(
                job_id,
                status = answer.status,
                "DDM job not readable; using the instance status"
            );
            return None;
        }
        if !answer.is_success() {
            return Some(PollOutcome::Transient(
                errors::from_answer(&answer).to_string(),
            ));
        }
        let v = answer.json()?;
        let job = v.get("job")?;
        let text = |key: &str| job.get(key).and_then(Value::as_str).map(clean);
        match text("status")?.as_str() {
            "Completed" => Some(PollOutcome::Succeeded(format!(
                "DDM job {job_id} completed"
            ))),
            "Failed" => {
                let reason = text("fail_reason")
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "DDM reported the restart job as Failed".to_string());
                Some(PollOutcome::Failed(CloudError::new(None, None, reason)))
            }
            status => {
                let progress = match text("process").filter(|p| !p.is_empty()) {
                    Some(p) => format!("job {status}, {p}"),
                    None => format!("job {status}"),
                };
                Some(PollOutcome::InProgress {
                    progress: Some(progress),
                    handle: None,
                })
            }
        }
    }

    fn poll_instance_status(&self, mut handle: Handle, status: &str) -> PollOutcome {
        match status {
            "RESTARTING" => {
                let changed = !handle.seen_restarting;
                handle.seen_restarting = true;
                PollOutcome::InProgress {
                    progress: Some("instance RESTARTING".to_string()),
                    handle: changed.then(|| handle.to_value()),
                }
            }
            "RUNNING" if handle.seen_restarting => PollOutcome::Succeeded(format!(
                "instance {} is RUNNING again after restarting",
                handle.instance_id
            )),
            "RUNNING" => {
                let since = handle
                    .submitted_at
                    .map(|t| now_unix().saturating_sub(t))
                    .unwrap_or(i64::MAX);
                if since >= i64::try_from(self.settle.as_secs()).unwrap_or(i64::MAX) {
                    PollOutcome::Unknown(format!(
                        "instance {} stayed RUNNING for {} and was never seen RESTARTING: the \
                         restart may have finished between two looks, or never happened. Check \
                         the instance's recent events in the DDM console before requesting it \
                         again",
                        handle.instance_id,
                        humantime::format_duration(self.settle)
                    ))
                } else {
                    PollOutcome::InProgress {
                        progress: Some("instance RUNNING, waiting for the restart to show".into()),
                        handle: None,
                    }
                }
            }
            "ERROR" => PollOutcome::Failed(CloudError::local(format!(
                "instance {} is in status ERROR",
                handle.instance_id
            ))),
            other => PollOutcome::InProgress {
                progress: Some(format!("instance {other}")),
                handle: None,
            },
        }
    }
}

#[async_trait]
impl CloudOperation for DdmRestart {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (request, instance_id, mode) = match self.request(spec) {
            Ok(r) => r,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let attempted = retry::send_with_retries(
            &self.retry,
            "ddm.restart",
            || self.client.send_request(&request),
            refusal,
        )
        .await;
        let answer = match attempted.success_or("DDM") {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let job_id = match accepted_job(&answer, instance_id) {
            Some(job_id) => job_id,
            None => {
                return crate::cloud::undocumented(
                    "DDM",
                    &answer,
                    "a JSON object with `jobId`, or the older empty `{}`",
                )
            }
        };
        let handle = Handle {
            instance_id: instance_id.to_string(),
            job_id: job_id.clone(),
            seen_restarting: false,
            submitted_at: Some(now_unix()),
        };
        let answer = match &job_id {
            Some(j) => format!("DDM accepted the {mode} restart of {instance_id} (job {j})"),
            None => format!("DDM accepted the {mode} restart of {instance_id} (no job ID given)"),
        };
        SubmitOutcome::Accepted {
            handle: handle.to_value(),
            cloud_ref: job_id,
            answer,
        }
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        let mut h: Handle = serde_json::from_value(handle.clone()).unwrap_or_default();
        if !ids::DDM_INSTANCE.matches(&h.instance_id) {
            match self.instance_id(spec) {
                Ok(id) => h.instance_id = id.to_string(),
                Err(e) => return PollOutcome::Failed(e),
            }
        }
        if let Some(job_id) = h.job_id.clone().filter(|j| plausible_id(j)) {
            if let Some(outcome) = self.poll_job(&job_id).await {
                return outcome;
            }
        }
        match self.look_at_instance(&h.instance_id).await {
            InstanceLook::Status(status) => self.poll_instance_status(h, &status),
            InstanceLook::Error(e) => PollOutcome::Transient(e),
        }
    }

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let (request, _, _) = self.request(spec).map_err(|e| e.to_string())?;
        self.client.describe(&request)
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        let instance_id = match self.instance_id(spec) {
            Ok(id) => id,
            Err(e) => return ReconcileOutcome::Unknown(e.to_string()),
        };
        match self.look_at_instance(instance_id).await {
            InstanceLook::Status(s) if s == "RESTARTING" => ReconcileOutcome::Running {
                handle: Handle {
                    instance_id: instance_id.to_string(),
                    job_id: None,
                    seen_restarting: true,
                    submitted_at: Some(now_unix()),
                }
                .to_value(),
                note: format!("instance {instance_id} is RESTARTING: the restart is under way"),
            },
            InstanceLook::Status(s) if s == "RUNNING" => ReconcileOutcome::Running {
                handle: Handle {
                    instance_id: instance_id.to_string(),
                    job_id: None,
                    seen_restarting: false,
                    submitted_at: Some(now_unix()),
                }
                .to_value(),
                note: format!(
                    "instance {instance_id} is RUNNING; watching it for {} for the restart \
                     to show (nothing was re-sent)",
                    humantime::format_duration(self.settle)
                ),
            },
            InstanceLook::Status(s) => ReconcileOutcome::Unknown(format!(
                "instance {instance_id} is {s}; the restart may or may not have happened \
                 (it was not re-sent). Check the instance in the DDM console before \
                 requesting it again"
            )),
            InstanceLook::Error(e) => ReconcileOutcome::Unknown(format!(
                "could not read instance {instance_id} ({e}); the restart may or may not have \
                 happened (it was not re-sent)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::config::SecretRef;
    use crate::domain::Provider;

    fn account(poll: Option<Duration>) -> Account {
        Account {
            name: "acct".into(),
            provider: Provider::Huawei,
            region: "cn-north-4".into(),
            project_id: Some("0123456789abcdef0123456789abcdef".into()),
            default: false,
            auth: AuthMethod::Password,
            iam_user: Some("u".into()),
            iam_domain: Some("d".into()),
            password: SecretRef::default(),
            access_key: SecretRef::default(),
            secret_key: SecretRef::default(),
            token: SecretRef::default(),
            endpoints: BTreeMap::new(),
            poll_interval: poll,
            request_timeout: Duration::from_secs(30),
            settings: Default::default(),
        }
    }

    #[test]
    fn poll_policy_defaults_and_floors() {
        let p = poll_policy(&account(None), false);
        assert_eq!(p.initial_delay, Duration::from_secs(5));
        assert_eq!(p.interval, Duration::from_secs(10));
        assert_eq!(p.max_interval, Duration::from_secs(60));
        assert_eq!(p.timeout, Duration::from_secs(7200));

        let fast = Some(Duration::from_millis(100));
        let public = poll_policy(&account(fast), false);
        assert_eq!(public.interval, Duration::from_secs(2));
        assert_eq!(public.initial_delay, Duration::from_secs(2));
        let local = poll_policy(&account(fast), true);
        assert_eq!(local.interval, Duration::from_millis(100));
        assert_eq!(local.initial_delay, Duration::from_millis(100));
        let tiny = poll_policy(&account(Some(Duration::from_millis(1))), true);
        assert_eq!(tiny.interval, Duration::from_millis(50));

        let slow = poll_policy(&account(Some(Duration::from_secs(300))), false);
        assert_eq!(slow.initial_delay, Duration::from_secs(5));
        assert!(slow.max_interval >= slow.interval);
    }

    fn ans(status: u16, body: &'static str) -> Answer {
        Answer {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn only_proven_refusals_are_retried() {
        assert_eq!(
            refusal(&ans(
                409,
                r#"{"errCode":"DBS.200019","externalMessage":"busy"}"#
            )),
            Some(Refusal::Busy)
        );
        assert_eq!(
            refusal(&ans(
                409,
                r#"{"errCode":"DBS.212033","externalMessage":"busy"}"#
            )),
            Some(Refusal::Busy)
        );
        assert_eq!(
            refusal(&ans(
                429,
                r#"{"error_code":"APIGW.0308","error_msg":"slow"}"#
            )),
            Some(Refusal::Throttled)
        );
        assert_eq!(refusal(&ans(429, "garbage")), Some(Refusal::Throttled));
        assert_eq!(
            refusal(&ans(
                409,
                r#"{"errCode":"DBS.280001","externalMessage":"x"}"#
            )),
            None
        );
        assert_eq!(refusal(&ans(500, "")), None);
        assert_eq!(refusal(&ans(200, "{}")), None);
    }

    fn op(settle: Duration) -> DdmRestart {
        let client = HuaweiClient::new(Arc::new(account(None)), reqwest::Client::new().into());
        let mut op = DdmRestart::new(Arc::new(client)).unwrap();
        op.settle = settle;
        op
    }

    fn handle(seen_restarting: bool, submitted_at: Option<i64>) -> Handle {
        Handle {
            instance_id: "28e8841d0b9c4f6a9a30742ee60e1068in09".into(),
            job_id: None,
            seen_restarting,
            submitted_at,
        }
    }

    #[test]
    fn instance_status_drives_completion() {
        let op = op(Duration::from_secs(60));
        // RESTARTING is remembered in the handle (once).
        match op.poll_instance_status(handle(false, Some(now_unix())), "RESTARTING") {
            PollOutcome::InProgress {
                handle: Some(h), ..
            } => {
                assert_eq!(h["seen_restarting"], json!(true))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            op.poll_instance_status(handle(true, Some(now_unix())), "RESTARTING"),
            PollOutcome::InProgress { handle: None, .. }
        ));
        assert!(matches!(
            op.poll_instance_status(handle(true, Some(now_unix())), "RUNNING"),
            PollOutcome::Succeeded(_)
        ));
        // RUNNING without having seen RESTARTING: wait out the settle window first.
        assert!(matches!(
            op.poll_instance_status(handle(false, Some(now_unix())), "RUNNING"),
            PollOutcome::InProgress { .. }
        ));
        // Never seen RESTARTING: after the window the outcome is unknown, not a success.
        assert!(matches!(
            op.poll_instance_status(handle(false, Some(now_unix() - 61)), "RUNNING"),
            PollOutcome::Unknown(_)
        ));
        assert!(matches!(
            op.poll_instance_status(handle(true, None), "ERROR"),
            PollOutcome::Failed(_)
        ));
        assert!(matches!(
            op.poll_instance_status(handle(true, None), "BACKUP"),
            PollOutcome::InProgress { .. }
        ));
    }

    #[test]
    fn only_the_documented_answer_is_acceptance() {
        let id = "28e8841d0b9c4f6a9a30742ee60e1068in09";
        let job = |body: &str| {
            let a = Answer {
                status: 200,
                body: Bytes::from(body.to_string()),
            };
            accepted_job(&a, id)
        };
        let documented = format!(r#"{{"instanceId":"{id}","instanceName":"n","jobId":"j-1"}}"#);
        assert_eq!(job(&documented), Some(Some("j-1".into())));
        assert_eq!(job("{}"), Some(None));
        assert_eq!(job(&format!(r#"{{"instanceId":"{id}"}}"#)), Some(None));
        for nothing in [
            "",
            "<html><body>OK</body></html>",
            r#"{"jobId":"#,
            r#"{"jobId":"../x"}"#,
            r#"{"jobId":7}"#,
            r#"{"status":"ok"}"#,
            r#"{"instanceId":"someone-else","jobId":"j-1"}"#,
            "[]",
        ] {
            assert_eq!(job(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn build_fails_early_for_unknown_regions() {
        let mut acc = account(None);
        acc.region = "xx-nowhere-1".into();
        let client = HuaweiClient::new(Arc::new(acc), reqwest::Client::new().into());
        let err = DdmRestart::new(Arc::new(client)).err().unwrap();
        assert!(err.contains("endpoints.ddm"), "{err}");
    }

    #[test]
    fn job_ids_must_be_plain() {
        assert!(plausible_id("1eb697c0-1842-43a3-8671-f562d0385cb9"));
        for bad in ["", "../x", "a/b", "a b", "%2F", &"x".repeat(65)] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }

    #[test]
    fn handle_round_trips_and_tolerates_missing_fields() {
        let h = Handle {
            instance_id: "i".into(),
            job_id: None,
            seen_restarting: true,
            submitted_at: Some(5),
        };
        let v = h.to_value();
        assert_eq!(
            v,
            json!({"instance_id":"i","job_id":null,"seen_restarting":true,"submitted_at":5})
        );
        let old: Handle = serde_json::from_value(json!({"instance_id":"i","job_id":"j"})).unwrap();
        assert!(!old.seen_restarting);
        assert_eq!(old.submitted_at, None);
    }
}
