//! SAE instance restart (`sae.restart`):
//! `PUT /pop/v1/sam/app/restartInstances?AppId=..&InstanceIds=a,b` -> `Data.ChangeOrderId`,
//! then `GET /pop/v1/sam/changeorder/DescribeChangeOrder?ChangeOrderId=..` until the change
//! order ends (table in docs/cloud-apis.md §2.3).
//!
//! Every call, submit or poll, draws from the account's shared call budget (SAE allows 60
//! per minute per user). Throttling answers (`Throttling.User`, SAE sends it with HTTP 400,
//! or any 429) and "a change order is already running" prove nothing started and are
//! retried with backoff. RestartInstances has no idempotency key: after a lost answer
//! nothing is re-sent, and reconcile only claims the restart is under way when it finds an
//! unfinished restart change order on the app.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::{self, vendor_error};
use super::{AlibabaClient, Answer, Request, SendError, SAE};
use crate::cloud::http::clean;
use crate::cloud::huawei::retry::RetryPolicy;
use crate::cloud::operation::AccountClients;
use crate::cloud::operation::BuiltIn;
use crate::cloud::{now_unix, plausible_id, Cadence};
use crate::command::{ids, OperationDef, Param};
use crate::config::Account;
use crate::domain::{JobSpec, Provider};
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

/// RestartInstances, also shown by a dry run.
pub const RESTART_PATH: &str = "/pop/v1/sam/app/restartInstances";
const DESCRIBE_PATH: &str = "/pop/v1/sam/changeorder/DescribeChangeOrder";
const LIST_PATH: &str = "/pop/v1/sam/changeorder/ListChangeOrders";

/// Codes that say another change is running (or SAE is upgrading): nothing was started.
const BUSY_CODES: &[&str] = &["Application.ChangerOrderRunning", "System.Upgrading"];

/// SAE asks for polls every 5 to 10 s at most; every poll counts against the budget.
const CADENCE: Cadence = Cadence {
    interval: Duration::from_secs(10),
    initial_delay: Duration::from_secs(5),
    max_interval: Duration::from_secs(60),
    timeout: Duration::from_secs(2 * 3600),
    public_floor: Duration::from_secs(5),
    override_floor: Duration::from_millis(50),
};

/// This operation's row in the catalog, and how it is built for an account.
pub const OPERATION: BuiltIn = BuiltIn { def, build };

fn def() -> OperationDef {
    OperationDef {
        id: "sae.restart".into(),
        verb: "restart".into(),
        service: "sae".into(),
        aliases: vec![],
        provider: Provider::Alibaba,
        target: vec![Param::new("app_id", "<app>", &ids::SAE_APP)],
        modes: None,
        args: vec![Param::new(
            "instance_ids",
            "<instance>[,<instance>...]",
            &ids::SAE_INSTANCES,
        )],
        usage: "!restart sae <app> <instance>[,<instance>...] [account=NAME]".into(),
        summary: "restart instances of an Alibaba Cloud SAE application".into(),
        notes: "<app> is a named sae target from the config, or an SAE application ID (a UUID) \
                used with the default Alibaba account (or account=NAME). Instances: 1 to 20 \
                instance IDs of that app, separated by commas without spaces. SAE runs the \
                restart as a change order; if it waits for a batch confirmation or an approval, \
                the job says so here and someone must act in the SAE console."
            .into(),
        check: Some(check),
        lock: None,
        origin: None,
    }
}

fn build(clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
    let client = clients.alibaba.clone().ok_or_else(|| {
        format!(
            "account `{}` is not an Alibaba account",
            clients.account.name
        )
    })?;
    Ok(Arc::new(SaeRestart::new(client)?))
}

/// Cross-argument check for the command table: no instance named twice.
pub fn check(params: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    let Some(list) = params.get("instance_ids") else {
        return Ok(());
    };
    let mut seen = std::collections::BTreeSet::new();
    for id in list.split(',') {
        if !seen.insert(id) {
            return Err(format!("Instance {id} is listed twice."));
        }
    }
    Ok(())
}

/// The `sae.restart` operation for one account.
pub struct SaeRestart {
    client: Arc<AlibabaClient>,
    /// Backoff for refusals that prove nothing started (throttling, busy, no connection).
    pub retry: RetryPolicy,
    pub policy: PollPolicy,
}

/// What is stored for a submitted restart and handed back to `poll`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Handle {
    app_id: String,
    instance_ids: String,
    change_order_id: Option<String>,
    #[serde(default)]
    submitted_at: Option<i64>,
}

impl Handle {
    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

pub fn poll_policy(account: &Account, endpoint_overridden: bool) -> PollPolicy {
    CADENCE.policy(account, endpoint_overridden)
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Throttled,
    Busy,
}

fn refusal(answer: &Answer) -> Option<Refusal> {
    if errors::is_throttled(answer) {
        return Some(Refusal::Throttled);
    }
    let code = errors::code_of(answer);
    (!answer.is_success() && code.as_deref().is_some_and(|c| BUSY_CODES.contains(&c)))
        .then_some(Refusal::Busy)
}

/// How a retried submit ended.
enum Attempted {
    Answered(Answer),
    /// Throttled or busy until the budget ran out: nothing started.
    Refused(CloudError),
    /// Nothing reached SAE; the text names what to fix.
    NotSent(String),
    Indeterminate(String),
}

/// A number that SAE may send as a JSON number or as a numeric string.
fn int_field(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(clean)
        .filter(|s| !s.is_empty())
}

/// What one change order says, in the terms of [`PollOutcome`] (§2.3 table).
fn outcome_of(order_id: &str, data: &Value) -> PollOutcome {
    let Some(status) = int_field(data, "Status") else {
        return PollOutcome::Transient(format!(
            "SAE answered without a readable Status for change order {order_id}"
        ));
    };
    let degraded = int_field(data, "SubStatus") == Some(1);
    let error = text_field(data, "ErrorMessage");
    let with_error = |text: String| match &error {
        Some(e) => format!("{text}: {e}"),
        None => text,
    };
    let degraded_note = if degraded {
        " — DEGRADED (SubStatus 1): a batch hit an error; the order stays executing until \
         someone rolls it back in the SAE console"
    } else {
        ""
    };
    match status {
        2 => PollOutcome::Succeeded(format!("SAE change order {order_id} succeeded")),
        3 | 6 | 10 => {
            let label = match status {
                3 => "failed",
                6 => "was terminated",
                _ => "failed because of a system exception",
            };
            let message = error.unwrap_or_else(|| {
                format!("SAE change order {order_id} {label} (status {status})")
            });
            PollOutcome::Failed(CloudError::new(
                None,
                Some(format!("ChangeOrder status {status}")),
                message,
            ))
        }
        8 | 9 | 11 => {
            let what = match status {
                8 => "is waiting for a manual confirmation of the next batch",
                9 => "is waiting for the next batch to start automatically",
                _ => "is waiting for approval",
            };
            PollOutcome::NeedsAttention(with_error(format!(
                "SAE change order {order_id} {what} (status {status}){degraded_note}"
            )))
        }
        0 | 1 | 12 => {
            let what = match status {
                0 => "preparing",
                1 => "executing",
                _ => "approved, waiting to run",
            };
            let text = format!("change order {order_id} {what}{degraded_note}");
            PollOutcome::InProgress {
                progress: Some(if degraded { with_error(text) } else { text }),
                handle: None,
            }
        }
        other => PollOutcome::InProgress {
            progress: Some(format!(
                "change order {order_id} in status {other} (not in opsgate's table)"
            )),
            handle: None,
        },
    }
}

/// Status codes of change orders that have not ended.
fn unfinished(status: i64) -> bool {
    matches!(status, 0 | 1 | 8 | 9 | 11 | 12)
}

/// A change order as ListChangeOrders shows it.
#[derive(Debug)]
struct Listed {
    id: String,
    status: Option<i64>,
    kind: String,
    created: String,
}

impl SaeRestart {
    pub fn new(client: Arc<AlibabaClient>) -> Result<SaeRestart, String> {
        let endpoint = client.endpoint(&SAE)?;
        let policy = poll_policy(client.account(), endpoint.overridden);
        Ok(SaeRestart {
            client,
            retry: RetryPolicy::default(),
            policy,
        })
    }

    fn params<'a>(&self, spec: &'a JobSpec) -> Result<(&'a str, &'a str), CloudError> {
        let app = match spec.param("app_id") {
            Some(id) if ids::SAE_APP.matches(id) => id,
            Some(_) => {
                return Err(CloudError::local(format!(
                    "the app ID is not {}",
                    ids::SAE_APP.describe
                )))
            }
            None => return Err(CloudError::local("the job has no app_id")),
        };
        let instances = match spec.param("instance_ids") {
            Some(list) if ids::SAE_INSTANCES.matches(list) => list,
            Some(_) => {
                return Err(CloudError::local(format!(
                    "the instance list is not {}",
                    ids::SAE_INSTANCES.describe
                )))
            }
            None => return Err(CloudError::local("the job has no instance_ids")),
        };
        Ok((app, instances))
    }

    /// The restart request for `spec`: what `submit` sends and a dry run shows.
    fn request(&self, spec: &JobSpec) -> Result<Request, CloudError> {
        let (app_id, instances) = self.params(spec)?;
        Ok(Request {
            api: SAE,
            action: "RestartInstances".into(),
            method: Method::PUT,
            path: RESTART_PATH.into(),
            query: vec![
                ("AppId".to_string(), app_id.to_string()),
                ("InstanceIds".to_string(), instances.to_string()),
            ],
        })
    }

    async fn send_with_retries(&self, request: &Request) -> Attempted {
        let policy = &self.retry;
        let mut waited = Duration::ZERO;
        let mut attempts = 0u32;
        let mut unreachable = 0u32;
        loop {
            attempts += 1;
            let sent = self.client.send_request(request).await;
            let (base, last) = match sent {
                Ok(answer) => match refusal(&answer) {
                    None => return Attempted::Answered(answer),
                    Some(Refusal::Throttled) => (policy.throttled_base, vendor_error(&answer)),
                    Some(Refusal::Busy) => (policy.busy_base, vendor_error(&answer)),
                },
                Err(SendError::NotSent(m)) => {
                    unreachable += 1;
                    if unreachable >= policy.max_unreachable_attempts {
                        return Attempted::NotSent(m);
                    }
                    (policy.unreachable_base, CloudError::local(m))
                }
                Err(SendError::Failed(e)) => return Attempted::NotSent(e.to_string()),
                Err(SendError::Indeterminate(m)) => return Attempted::Indeterminate(m),
            };
            let delay = policy.delay(base, attempts - 1);
            if attempts >= policy.max_attempts || waited.saturating_add(delay) > policy.budget {
                tracing::warn!(attempts, error = %last, "sae.restart: giving up, nothing was started");
                return match last.http_status {
                    Some(_) => Attempted::Refused(last),
                    None => Attempted::NotSent(last.message),
                };
            }
            tracing::info!(attempt = attempts, wait_ms = delay.as_millis() as u64, error = %last, "sae.restart refused, nothing started; retrying");
            tokio::time::sleep(delay).await;
            waited = waited.saturating_add(delay);
        }
    }

    async fn get(&self, action: &str, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let answer = self
            .client
            .send(&SAE, action, Method::GET, path, query)
            .await
            .map_err(|e| e.to_string())?;
        if errors::is_throttled(&answer) {
            return Err(format!("throttled: {}", vendor_error(&answer)));
        }
        if !answer.is_success() || errors::says_failure(&answer) {
            return Err(vendor_error(&answer).to_string());
        }
        answer.json().ok_or_else(|| {
            format!(
                "HTTP {} with an unreadable answer: {}",
                answer.status,
                crate::cloud::http::excerpt(&answer.body)
            )
        })
    }

    /// Recent change orders of the app, newest first as SAE lists them.
    async fn list_orders(&self, app_id: &str) -> Result<Vec<Listed>, String> {
        let v = self
            .get(
                "ListChangeOrders",
                LIST_PATH,
                &[("AppId", app_id), ("CurrentPage", "1"), ("PageSize", "20")],
            )
            .await?;
        let list = v
            .pointer("/Data/ChangeOrderList")
            .and_then(Value::as_array)
            .ok_or("ListChangeOrders answered without Data.ChangeOrderList")?;
        Ok(list
            .iter()
            .filter_map(|o| {
                let id = text_field(o, "ChangeOrderId").filter(|i| plausible_id(i))?;
                Some(Listed {
                    id,
                    status: int_field(o, "Status"),
                    kind: text_field(o, "CoTypeCode").unwrap_or_default(),
                    created: text_field(o, "CreateTime").unwrap_or_else(|| "?".into()),
                })
            })
            .collect())
    }

    /// The restart change orders of the app that have not ended. The type code for
    /// RestartInstances is taken to be `CoRestartInstances` (UNCONFIRMED), matched loosely.
    async fn unfinished_restarts(
        &self,
        app_id: &str,
    ) -> Result<(Vec<Listed>, Vec<Listed>), String> {
        let all = self.list_orders(app_id).await?;
        let (restarts, _): (Vec<Listed>, Vec<Listed>) = all
            .into_iter()
            .partition(|o| o.kind.to_ascii_lowercase().contains("restartinstance"));
        Ok(restarts
            .into_iter()
            .partition(|o| o.status.is_some_and(unfinished)))
    }
}

#[async_trait]
impl CloudOperation for SaeRestart {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (app_id, instances) = match self.params(spec) {
            Ok(p) => p,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let request = match self.request(spec) {
            Ok(r) => r,
            Err(e) => return SubmitOutcome::NotSent(e.to_string()),
        };
        let answer = match self.send_with_retries(&request).await {
            Attempted::Answered(a) if a.is_success() && !errors::says_failure(&a) => a,
            Attempted::Answered(a) => {
                let refused = errors::proves_not_started(&a);
                return crate::cloud::refused_or_unknown("SAE", vendor_error(&a), refused);
            }
            Attempted::Refused(e) => return SubmitOutcome::Refused(e),
            Attempted::NotSent(m) => return SubmitOutcome::NotSent(m),
            Attempted::Indeterminate(m) => {
                return SubmitOutcome::Indeterminate(format!("no answer from SAE ({m})"))
            }
        };
        // Documented: `{"Success":true,"Data":{"ChangeOrderId"}}`. Without a usable change
        // order the answer proves nothing, and reconcile looks for the restart instead.
        let order = answer
            .json()
            .filter(|v| v.get("Success").and_then(Value::as_bool) != Some(false))
            .and_then(|v| {
                v.pointer("/Data/ChangeOrderId")?
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|id| plausible_id(id));
        let Some(change_order_id) = order else {
            return crate::cloud::undocumented(
                "SAE",
                &answer,
                "`Data.ChangeOrderId` with `Success: true`",
            );
        };
        let handle = Handle {
            app_id: app_id.to_string(),
            instance_ids: instances.to_string(),
            change_order_id: Some(change_order_id.clone()),
            submitted_at: Some(now_unix()),
        };
        let text = format!(
            "SAE accepted the restart of {instances} in app {app_id} (change order \
             {change_order_id})"
        );
        SubmitOutcome::Accepted {
            handle: handle.to_value(),
            cloud_ref: Some(change_order_id),
            answer: text,
        }
    }

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let request = self.request(spec).map_err(|e| e.to_string())?;
        self.client.describe(&request)
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        let mut h: Handle = serde_json::from_value(handle.clone()).unwrap_or_default();
        if !ids::SAE_APP.matches(&h.app_id) {
            match self.params(spec) {
                Ok((app, instances)) => {
                    h.app_id = app.to_string();
                    h.instance_ids = instances.to_string();
                }
                Err(e) => return PollOutcome::Failed(e),
            }
        }
        let Some(order_id) = h.change_order_id.clone().filter(|o| plausible_id(o)) else {
            // Accepted without an ID: find the restart order SAE is running for the app.
            return match self.unfinished_restarts(&h.app_id).await {
                Ok((open, _)) if open.len() == 1 => {
                    h.change_order_id = Some(open[0].id.clone());
                    PollOutcome::InProgress {
                        progress: Some(format!("found change order {}", open[0].id)),
                        handle: Some(h.to_value()),
                    }
                }
                Ok(_) => PollOutcome::Transient(format!(
                    "cannot tell which change order of app {} is this restart",
                    h.app_id
                )),
                Err(e) => PollOutcome::Transient(e),
            };
        };
        let v = match self
            .get(
                "DescribeChangeOrder",
                DESCRIBE_PATH,
                &[("ChangeOrderId", order_id.as_str())],
            )
            .await
        {
            Ok(v) => v,
            Err(e) => return PollOutcome::Transient(e),
        };
        match v.get("Data") {
            Some(data) if data.is_object() => outcome_of(&order_id, data),
            _ => PollOutcome::Transient(format!(
                "DescribeChangeOrder answered without Data for {order_id}"
            )),
        }
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        let (app_id, instances) = match self.params(spec) {
            Ok(p) => p,
            Err(e) => return ReconcileOutcome::Unknown(e.to_string()),
        };
        let check = format!(
            "check the change orders of SAE app {app_id} in the console (or ListChangeOrders) \
             before requesting it again"
        );
        match self.unfinished_restarts(app_id).await {
            Ok((open, _)) if open.len() == 1 => {
                let o = &open[0];
                ReconcileOutcome::Running {
                    handle: Handle {
                        app_id: app_id.to_string(),
                        instance_ids: instances.to_string(),
                        change_order_id: Some(o.id.clone()),
                        submitted_at: Some(now_unix()),
                    }
                    .to_value(),
                    note: format!(
                        "found one unfinished restart change order on app {app_id}: {} \
                         (status {}, created {}); following it as this job's restart",
                        o.id,
                        o.status.unwrap_or(-1),
                        o.created
                    ),
                }
            }
            Ok((open, _)) if open.len() > 1 => ReconcileOutcome::Unknown(format!(
                "{} unfinished restart change orders on app {app_id} ({}); cannot tell which \
                 is ours (nothing was re-sent); {check}",
                open.len(),
                open.iter()
                    .map(|o| o.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Ok((_, done)) => {
                let latest = match done.first() {
                    Some(o) => format!(
                        "; the most recent restart change order is {} (status {}, created {}), \
                         which may or may not be ours",
                        o.id,
                        o.status.unwrap_or(-1),
                        o.created
                    ),
                    None => "; no restart change order is listed".to_string(),
                };
                ReconcileOutcome::Unknown(format!(
                    "no restart change order is under way on app {app_id}{latest}; the \
                     restart may or may not have happened (it was not re-sent); {check}"
                ))
            }
            Err(e) => ReconcileOutcome::Unknown(format!(
                "could not list the change orders of app {app_id} ({e}); the restart may or \
                 may not have happened (it was not re-sent); {check}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    fn ans(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn refusals_are_throttling_and_busy_only() {
        assert_eq!(
            refusal(&ans(400, r#"{"Code":"Throttling.User","Message":"m"}"#)),
            Some(Refusal::Throttled)
        );
        assert_eq!(refusal(&ans(429, "")), Some(Refusal::Throttled));
        assert_eq!(
            refusal(&ans(
                400,
                r#"{"Code":"Application.ChangerOrderRunning","Message":"m"}"#
            )),
            Some(Refusal::Busy)
        );
        assert_eq!(
            refusal(&ans(
                400,
                r#"{"Code":"InvalidApplication.NotFound","Message":"m"}"#
            )),
            None
        );
        assert_eq!(refusal(&ans(500, "")), None);
        assert_eq!(refusal(&ans(200, r#"{"Code":"200","Success":true}"#)), None);
    }

    #[test]
    fn the_status_table() {
        let o = |v: Value| outcome_of("co-1", &v);
        assert!(matches!(o(json!({"Status": 2})), PollOutcome::Succeeded(_)));
        for s in [3, 6, 10] {
            match o(json!({"Status": s, "ErrorMessage": "batch 1 failed: image pull"})) {
                PollOutcome::Failed(e) => assert_eq!(e.message, "batch 1 failed: image pull"),
                other => panic!("{s}: {other:?}"),
            }
        }
        assert!(
            matches!(o(json!({"Status": 3})), PollOutcome::Failed(e) if e.message.contains("status 3"))
        );
        for s in [8, 9, 11] {
            assert!(
                matches!(o(json!({"Status": s})), PollOutcome::NeedsAttention(_)),
                "{s}"
            );
        }
        for s in [0, 1, 12] {
            assert!(
                matches!(o(json!({"Status": s})), PollOutcome::InProgress { .. }),
                "{s}"
            );
        }
        match o(json!({"Status": "1", "SubStatus": 1, "ErrorMessage": "x"})) {
            PollOutcome::InProgress {
                progress: Some(p), ..
            } => {
                assert!(p.contains("DEGRADED") && p.ends_with(": x"), "{p}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            o(json!({"Status": 42})),
            PollOutcome::InProgress { .. }
        ));
        assert!(matches!(
            o(json!({"Status": "x"})),
            PollOutcome::Transient(_)
        ));
        assert!(matches!(o(json!({})), PollOutcome::Transient(_)));
    }

    #[test]
    fn order_ids_must_be_plain() {
        assert!(plausible_id("5afa5b98-0c64-4637-983f-15eaa888aaaa"));
        for bad in ["", "a&b=c", "a b", "../x", &"x".repeat(65)] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }
}
