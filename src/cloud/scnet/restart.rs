//! SCNet container restart (`scnet.restart`):
//! `POST {ai}/ai/openapi/v2/instance-service/task/actions/restart?instanceServiceId=..`,
//! then `GET {ai}/ai/openapi/v2/instance-service/{id}/detail` until the instance is
//! Running (success) or Failed/Terminated (failure); Waiting/Deploying are in progress.
//!
//! UNCONFIRMED (docs/cloud-apis.md §3.3–3.5): the docs call this call "start container
//! instance" and describe it for stopped or failed instances; whether it restarts a
//! Running one is not known. The name of the status field in the detail answer is not
//! documented: `status_field` in the account config names it, otherwise `status` and then
//! a few usual alternatives are tried. Statuses are compared case-insensitively.
//!
//! Right after the restart the detail may still show the status from before (Running or
//! Failed). So Running is a success only once a Waiting/Deploying status has been seen; an
//! instance seen Running all along for `settle` proves nothing and the job ends `unknown`.
//! Failed/Terminated count once a transitional status was seen or `settle` has passed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{envelope, ScnetClient};
use crate::cloud::http::clean;
use crate::cloud::http::SendError;
use crate::cloud::huawei::retry::RetryPolicy;
use crate::cloud::operation::AccountClients;
use crate::cloud::operation::BuiltIn;
use crate::cloud::{now_unix, Cadence};
use crate::command::{ids, OperationDef, Param};
use crate::config::Account;
use crate::domain::{JobSpec, Provider};
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

pub const RESTART_PATH: &str = "/ai/openapi/v2/instance-service/task/actions/restart";

/// Status field names tried, in order, when the config does not name one (UNCONFIRMED;
/// third-party SDKs read `status`).
pub const STATUS_FIELDS: &[&str] = &[
    "status",
    "instanceStatus",
    "taskStatus",
    "serviceStatus",
    "state",
];

/// SCNet documents no polling pace: DDM's, with a 3 s public floor and an hour for a
/// container restart to show.
const CADENCE: Cadence = Cadence {
    interval: Duration::from_secs(10),
    initial_delay: Duration::from_secs(5),
    max_interval: Duration::from_secs(60),
    timeout: Duration::from_secs(3600),
    public_floor: Duration::from_secs(3),
    override_floor: Duration::from_millis(50),
};

pub fn detail_path(id: &str) -> String {
    format!("/ai/openapi/v2/instance-service/{id}/detail")
}

/// The restart's query: the container instance, and nothing else (no body).
fn restart_query(instance_service_id: &str) -> [(&str, &str); 1] {
    [("instanceServiceId", instance_service_id)]
}

/// This operation's row in the catalog, and how it is built for an account.
pub const OPERATION: BuiltIn = BuiltIn { def, build };

fn def() -> OperationDef {
    OperationDef {
        id: "scnet.restart".into(),
        verb: "restart".into(),
        service: "scnet".into(),
        aliases: vec![],
        provider: Provider::Scnet,
        target: vec![Param::new(
            "instance_service_id",
            "<instance-service-id>",
            &ids::SCNET_INSTANCE,
        )],
        modes: None,
        args: vec![],
        usage: "!restart scnet <instance-service-id> [account=NAME]".into(),
        summary: "restart (start) an SCNet AI container instance".into(),
        notes: "<instance-service-id> is a named scnet target from the config, or a container \
                instance ID (32 hex characters) used with the default SCNet account (or \
                account=NAME). Caution: SCNet documents this call as starting container \
                instances that are stopped or failed; whether it restarts one that is already \
                Running is UNCONFIRMED. The job succeeds when the instance is Running again."
            .into(),
        check: None,
        lock: None,
        origin: None,
    }
}

fn build(clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
    let client = clients
        .scnet
        .clone()
        .ok_or_else(|| format!("account `{}` is not an SCNet account", clients.account.name))?;
    Ok(Arc::new(ScnetRestart::new(client)?))
}

pub struct ScnetRestart {
    client: Arc<ScnetClient>,
    /// Backoff for refusals that prove nothing started (HTTP 429, no connection).
    pub retry: RetryPolicy,
    /// See the module docs.
    pub settle: Duration,
    pub policy: PollPolicy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Handle {
    instance_service_id: String,
    #[serde(default)]
    seen_transitional: bool,
    #[serde(default)]
    submitted_at: Option<i64>,
}

impl Handle {
    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

pub fn poll_policy(account: &Account, local: bool) -> PollPolicy {
    CADENCE.policy(account, local)
}

/// The status in a detail answer's `data`, and the field it came from.
pub fn status_of(data: &Value, configured: Option<&str>) -> Option<(String, String)> {
    let fields: Vec<&str> = match configured {
        Some(f) => vec![f],
        None => STATUS_FIELDS.to_vec(),
    };
    fields.into_iter().find_map(|f| {
        let s = data.get(f)?.as_str()?.trim();
        (!s.is_empty()).then(|| (clean(s), f.to_string()))
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Running,
    Transitional,
    Failed,
    Completed,
    Other,
}

fn kind(status: &str) -> Kind {
    match status.to_ascii_lowercase().as_str() {
        "running" => Kind::Running,
        "waiting" | "deploying" => Kind::Transitional,
        "failed" | "terminated" => Kind::Failed,
        "completed" => Kind::Completed,
        _ => Kind::Other,
    }
}

/// What a look at the instance found.
enum Look {
    Status(String),
    Error(String),
}

impl ScnetRestart {
    pub fn new(client: Arc<ScnetClient>) -> Result<ScnetRestart, String> {
        client.check_endpoints()?;
        let policy = poll_policy(client.account(), client.is_local());
        Ok(ScnetRestart {
            client,
            retry: RetryPolicy::default(),
            settle: crate::cloud::watch_window(&policy),
            policy,
        })
    }

    fn instance_id<'a>(&self, spec: &'a JobSpec) -> Result<&'a str, CloudError> {
        match spec.param("instance_service_id") {
            Some(id) if ids::SCNET_INSTANCE.matches(id) => Ok(id),
            Some(_) => Err(CloudError::local(format!(
                "the instance ID is not {}",
                ids::SCNET_INSTANCE.describe
            ))),
            None => Err(CloudError::local("the job has no instance_service_id")),
        }
    }

    async fn look(&self, id: &str) -> Look {
        let answer = match self
            .client
            .ai_send(Method::GET, &detail_path(id), &[])
            .await
        {
            Ok(a) => a,
            Err(e) => return Look::Error(e.to_string()),
        };
        let data = match envelope::data(&answer) {
            Ok(d) => d,
            Err(e) => return Look::Error(e.to_string()),
        };
        let configured = self.client.account().settings.status_field.as_deref();
        match status_of(&data, configured) {
            Some((status, _)) => Look::Status(status),
            None => Look::Error(format!(
                "the detail answer has no status in {} (the field name is UNCONFIRMED; set \
                 accounts.{}.status_field)",
                configured.map_or_else(|| STATUS_FIELDS.join("/"), str::to_string),
                self.client.account().name
            )),
        }
    }

    fn judge(&self, mut h: Handle, status: &str) -> PollOutcome {
        let settled = h
            .submitted_at
            .map(|t| now_unix().saturating_sub(t))
            .unwrap_or(i64::MAX)
            >= i64::try_from(self.settle.as_secs()).unwrap_or(i64::MAX);
        let id = h.instance_service_id.clone();
        match kind(status) {
            Kind::Transitional => {
                let changed = !h.seen_transitional;
                h.seen_transitional = true;
                PollOutcome::InProgress {
                    progress: Some(format!("instance {status}")),
                    handle: changed.then(|| h.to_value()),
                }
            }
            Kind::Running if h.seen_transitional => PollOutcome::Succeeded(format!(
                "container instance {id} is {status} again after restarting"
            )),
            // Running all along proves nothing: the restart may have been too quick to see,
            // or never happened.
            Kind::Running if settled => PollOutcome::Unknown(format!(
                "container instance {id} stayed {status} for {} and was never seen starting \
                 (Waiting/Deploying): the restart may have finished between two looks, or \
                 never happened. Check the instance's events in the \
                 SCNet console before requesting it again",
                humantime::format_duration(self.settle)
            )),
            Kind::Failed | Kind::Completed if h.seen_transitional || settled => {
                PollOutcome::Failed(CloudError::local(format!(
                    "container instance {id} is {status}{}",
                    if kind(status) == Kind::Completed {
                        " (finished, not running)"
                    } else {
                        ""
                    }
                )))
            }
            Kind::Running | Kind::Failed | Kind::Completed => PollOutcome::InProgress {
                progress: Some(format!(
                    "instance still {status}, waiting for the restart to show"
                )),
                handle: None,
            },
            Kind::Other => PollOutcome::InProgress {
                progress: Some(format!("instance {status}")),
                handle: None,
            },
        }
    }
}

#[async_trait]
impl CloudOperation for ScnetRestart {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let id = match self.instance_id(spec) {
            Ok(id) => id,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let query = restart_query(id);
        let policy = &self.retry;
        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        let answer = loop {
            attempts += 1;
            let (base, last) = match self
                .client
                .ai_send(Method::POST, RESTART_PATH, &query)
                .await
            {
                Ok(a) if a.status == 429 => (
                    policy.throttled_base,
                    CloudError::new(Some(429), None, "throttled"),
                ),
                Ok(a) => break a,
                Err(SendError::NotSent(m)) if attempts < policy.max_unreachable_attempts => {
                    (policy.unreachable_base, CloudError::local(m))
                }
                Err(SendError::NotSent(m)) => return SubmitOutcome::NotSent(m),
                Err(SendError::Failed(e)) => return SubmitOutcome::NotSent(e.to_string()),
                Err(SendError::Indeterminate(m)) => {
                    return SubmitOutcome::Indeterminate(format!("no answer from SCNet ({m})"))
                }
            };
            let delay = policy.delay(base, attempts - 1);
            if attempts >= policy.max_attempts || waited.saturating_add(delay) > policy.budget {
                return match last.http_status {
                    Some(_) => SubmitOutcome::Refused(last),
                    None => SubmitOutcome::NotSent(last.message),
                };
            }
            tracing::info!(attempt = attempts, error = %last, "scnet.restart refused, nothing started; retrying");
            tokio::time::sleep(delay).await;
            waited = waited.saturating_add(delay);
        };
        let data = match envelope::data(&answer) {
            Ok(d) => d,
            Err(e) => {
                let refused = envelope::proves_not_started(&answer);
                return crate::cloud::refused_or_unknown("SCNet", e, refused);
            }
        };
        // Documented: `data` is the container instance ID. Anything else is not evidence.
        let Some(echoed) = data.as_str().map(clean).filter(|s| !s.is_empty()) else {
            return crate::cloud::undocumented(
                "SCNet",
                &answer,
                "`{\"code\":\"0\",\"data\":\"<instance id>\"}`",
            );
        };
        let handle = Handle {
            instance_service_id: id.to_string(),
            seen_transitional: false,
            submitted_at: Some(now_unix()),
        };
        SubmitOutcome::Accepted {
            handle: handle.to_value(),
            cloud_ref: Some(echoed.clone()),
            answer: format!(
                "SCNet accepted the restart of container instance {id} (answered {echoed})"
            ),
        }
    }

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let id = self.instance_id(spec).map_err(|e| e.to_string())?;
        (self.client).describe_ai(Method::POST, RESTART_PATH, &restart_query(id))
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        let mut h: Handle = serde_json::from_value(handle.clone()).unwrap_or_default();
        if !ids::SCNET_INSTANCE.matches(&h.instance_service_id) {
            match self.instance_id(spec) {
                Ok(id) => h.instance_service_id = id.to_string(),
                Err(e) => return PollOutcome::Failed(e),
            }
        }
        match self.look(&h.instance_service_id).await {
            Look::Status(s) => self.judge(h, &s),
            Look::Error(e) => PollOutcome::Transient(e),
        }
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        let id = match self.instance_id(spec) {
            Ok(id) => id,
            Err(e) => return ReconcileOutcome::Unknown(e.to_string()),
        };
        match self.look(id).await {
            Look::Status(s) if kind(&s) == Kind::Transitional => ReconcileOutcome::Running {
                handle: Handle {
                    instance_service_id: id.to_string(),
                    seen_transitional: true,
                    submitted_at: Some(now_unix()),
                }
                .to_value(),
                note: format!("container instance {id} is {s}: the restart is under way"),
            },
            Look::Status(s) if kind(&s) == Kind::Running => ReconcileOutcome::Running {
                handle: Handle {
                    instance_service_id: id.to_string(),
                    seen_transitional: false,
                    submitted_at: Some(now_unix()),
                }
                .to_value(),
                note: format!(
                    "container instance {id} is {s}; watching it for {} for the restart to \
                     show (nothing was re-sent)",
                    humantime::format_duration(self.settle)
                ),
            },
            Look::Status(s) => ReconcileOutcome::Unknown(format!(
                "container instance {id} is {s}; the restart may or may not have happened (it \
                 was not re-sent); check the instance in the SCNet console"
            )),
            Look::Error(e) => ReconcileOutcome::Unknown(format!(
                "could not read container instance {id} ({e}); the restart may or may not have \
                 happened (it was not re-sent)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_field_is_configurable_with_fallbacks() {
        let d = json!({"status": "Running", "state": "x"});
        assert_eq!(
            status_of(&d, None),
            Some(("Running".into(), "status".into()))
        );
        let d = json!({"instanceStatus": "Deploying"});
        assert_eq!(status_of(&d, None).unwrap().0, "Deploying");
        assert_eq!(status_of(&d, Some("status")), None);
        assert_eq!(
            status_of(&json!({"phase": "Running"}), Some("phase"))
                .unwrap()
                .0,
            "Running"
        );
        assert_eq!(status_of(&json!({"status": 3}), None), None);
        assert_eq!(status_of(&json!(null), None), None);
    }

    #[test]
    fn statuses_compare_case_insensitively() {
        assert_eq!(kind("RUNNING"), Kind::Running);
        assert_eq!(kind("waiting"), Kind::Transitional);
        assert_eq!(kind("Deploying"), Kind::Transitional);
        assert_eq!(kind("TERMINATED"), Kind::Failed);
        assert_eq!(kind("failed"), Kind::Failed);
        assert_eq!(kind("Completed"), Kind::Completed);
        assert_eq!(kind("Pending"), Kind::Other);
    }
}
