//! A declared HTTP operation: the request its declaration describes, sent at most once
//! (retried only on the answers it declares prove nothing started), and its answers read by
//! evidence: accepted (the declared status, and the job ID where the declaration says),
//! refused (an entry of its refusal table, with the vendor's message), or indeterminate,
//! which is reconciled by its declared read or ends `unknown`, and is never re-sent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fill::{self, Filled, Values};
use super::transport::Transport;
use crate::cloud::http::{excerpt, Answer};
use crate::cloud::huawei::retry::{self, Attempted, Refusal, RetryPolicy};
use crate::config::declared::{HttpCall, RequestTemplate};
use crate::config::{Account, Declaration};
use crate::domain::JobSpec;
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

pub struct DeclaredHttp {
    pub decl: Arc<Declaration>,
    pub account: Arc<Account>,
    pub transport: Transport,
    pub retry: RetryPolicy,
    policy: PollPolicy,
}

/// What is stored for submitted work and handed back to `poll`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Handle {
    job_id: Option<String>,
    /// Found under way by the reconcile read: polled with that read.
    #[serde(default)]
    reconciled: bool,
}

impl DeclaredHttp {
    pub fn new(
        decl: Arc<Declaration>,
        account: Arc<Account>,
        transport: Transport,
    ) -> DeclaredHttp {
        let floor = if transport.overridden() {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        let call = call(&decl);
        let (interval, timeout) = match call.and_then(|c| c.poll.as_ref()) {
            Some(p) => (p.interval, p.deadline),
            None => (Duration::from_secs(10), Duration::from_secs(600)),
        };
        // The account's poll_interval, when set, is the operator's pace and wins over the
        // declared one, as it wins over a built-in's.
        let interval = account.poll_interval.unwrap_or(interval).max(floor);
        let policy = PollPolicy {
            initial_delay: interval.min(Duration::from_secs(5)),
            interval,
            max_interval: interval.max(Duration::from_secs(60)),
            timeout,
        };
        DeclaredHttp {
            decl,
            account,
            transport,
            retry: RetryPolicy::default(),
            policy,
        }
    }

    fn call(&self) -> &HttpCall {
        call(&self.decl).expect("a DeclaredHttp is built from an HTTP declaration")
    }

    fn vendor(&self) -> &str {
        &self.decl.id
    }

    fn filled(
        &self,
        t: &RequestTemplate,
        spec: &JobSpec,
        job_id: Option<&str>,
    ) -> Result<Filled, String> {
        let values = Values {
            decl: &self.decl,
            spec,
            account: &self.account,
            job_id,
        };
        fill::fill(t, &values)
    }

    /// The error an answer carries, by the declaration's pointers.
    fn error_of(&self, answer: &Answer) -> CloudError {
        let errors = &self.call().errors;
        let json = answer.json();
        let at = |p: &Option<String>| {
            json.as_ref()
                .zip(p.as_deref())
                .and_then(|(v, p)| fill::text_at(v, p))
        };
        let code = at(&errors.code);
        let message = at(&errors.message).unwrap_or_else(|| {
            if answer.body.iter().all(u8::is_ascii_whitespace) {
                "the answer had an empty body".into()
            } else {
                format!("unrecognized answer: {}", excerpt(&answer.body))
            }
        });
        CloudError::new(Some(answer.status), code, message)
    }

    /// The refusal-table entry an answer matches, if any.
    fn refusal(&self, answer: &Answer) -> Option<&crate::config::declared::Refusal> {
        let err = self.error_of(answer);
        (self.call().errors.refused.iter())
            .find(|r| r.status == answer.status && (r.code.is_none() || r.code == err.code))
    }

    fn judge(&self, answer: &Answer) -> SubmitOutcome {
        let call = self.call();
        if !call.accepted.statuses.contains(&answer.status) {
            let err = self.error_of(answer);
            let refused = self.refusal(answer).is_some();
            return crate::cloud::refused_or_unknown(self.vendor(), err, refused);
        }
        let job_id = match &call.accepted.id {
            Some(pointer) => match answer.json().and_then(|v| fill::job_id_at(&v, pointer)) {
                Some(id) => Some(id),
                None => {
                    return crate::cloud::undocumented(
                        self.vendor(),
                        answer,
                        &format!("a JSON body with a plain ID at `{pointer}`"),
                    )
                }
            },
            None => None,
        };
        let said = match &job_id {
            Some(id) => format!(
                "{} accepted it (HTTP {}, job {id})",
                self.vendor(),
                answer.status
            ),
            None => format!("{} accepted it (HTTP {})", self.vendor(), answer.status),
        };
        SubmitOutcome::Accepted {
            handle: serde_json::to_value(Handle {
                job_id: job_id.clone(),
                reconciled: false,
            })
            .unwrap_or(Value::Null),
            cloud_ref: job_id,
            answer: said,
        }
    }

    /// One read (a poll or the reconcile read): its JSON body, or why there is none.
    async fn read(&self, f: &Filled) -> Result<Value, String> {
        let answer = self.transport.send(f).await.map_err(|e| e.to_string())?;
        if !answer.is_success() {
            return Err(self.error_of(&answer).to_string());
        }
        answer
            .json()
            .ok_or_else(|| format!("HTTP {} with {}", answer.status, excerpt(&answer.body)))
    }

    async fn poll_job(&self, spec: &JobSpec, job_id: Option<&str>) -> PollOutcome {
        let Some(poll) = &self.call().poll else {
            return PollOutcome::Succeeded(format!(
                "{} accepted it; its declaration follows nothing further",
                self.vendor()
            ));
        };
        let f = match self.filled(&poll.request, spec, job_id) {
            Ok(f) => f,
            Err(e) => return PollOutcome::Unknown(format!("cannot follow the work: {e}")),
        };
        let body = match self.read(&f).await {
            Ok(b) => b,
            Err(e) => return PollOutcome::Transient(e),
        };
        let Some(state) = fill::text_at(&body, &poll.state) else {
            return PollOutcome::Transient(format!(
                "no state at `{}` in {}",
                poll.state,
                excerpt(body.to_string().as_bytes())
            ));
        };
        if poll.succeeded.contains(&state) {
            PollOutcome::Succeeded(format!("{} says {state}", self.vendor()))
        } else if poll.failed.contains(&state) {
            let reason = (poll.message.as_deref())
                .and_then(|p| fill::text_at(&body, p))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| format!("{} says {state}", self.vendor()));
            PollOutcome::Failed(CloudError::new(None, None, reason))
        } else {
            let progress = (poll.progress.as_deref())
                .and_then(|p| fill::text_at(&body, p))
                .filter(|p| !p.is_empty())
                .map_or_else(|| state.clone(), |p| format!("{state}, {p}"));
            PollOutcome::InProgress {
                progress: Some(progress),
                handle: None,
            }
        }
    }

    /// The reconcile read's state, or why there is none.
    async fn resource_state(&self, spec: &JobSpec) -> Result<String, String> {
        let r = self
            .call()
            .reconcile
            .as_ref()
            .ok_or("no reconcile read is declared")?;
        let f = self.filled(&r.request, spec, None)?;
        let body = self.read(&f).await?;
        fill::text_at(&body, &r.state).ok_or_else(|| format!("no state at `{}`", r.state))
    }
}

fn call(decl: &Declaration) -> Option<&HttpCall> {
    match &decl.action {
        crate::config::declared::Action::Http(c) => Some(c),
        crate::config::declared::Action::Command(_) => None,
    }
}

#[async_trait]
impl CloudOperation for DeclaredHttp {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let f = match self.filled(&self.call().submit, spec, None) {
            Ok(f) => f,
            Err(e) => return SubmitOutcome::NotSent(e),
        };
        let retryable = |a: &Answer| {
            self.refusal(a)
                .filter(|r| r.retry)
                .map(|_| Refusal::Throttled)
        };
        let attempted = retry::send_with_retries_by(
            &self.retry,
            &self.decl.id,
            || self.transport.send(&f),
            retryable,
            |a| self.error_of(a),
        )
        .await;
        match attempted {
            Attempted::Answered(a) => self.judge(&a),
            Attempted::Refused(e) => SubmitOutcome::Refused(e),
            Attempted::NotSent(m) => SubmitOutcome::NotSent(m),
            Attempted::Indeterminate(m) => {
                SubmitOutcome::Indeterminate(format!("no answer from {} ({m})", self.vendor()))
            }
        }
    }

    async fn poll(&self, spec: &JobSpec, handle: &Value) -> PollOutcome {
        let h: Handle = serde_json::from_value(handle.clone()).unwrap_or_default();
        if !h.reconciled {
            return self.poll_job(spec, h.job_id.as_deref()).await;
        }
        let Some(r) = &self.call().reconcile else {
            return PollOutcome::Unknown("the reconcile read is no longer declared".into());
        };
        match self.resource_state(spec).await {
            Ok(s) if r.settled.contains(&s) => PollOutcome::Succeeded(format!(
                "the resource was seen {} and is now {s}",
                r.running.join("/")
            )),
            Ok(s) => PollOutcome::InProgress {
                progress: Some(s),
                handle: None,
            },
            Err(e) => PollOutcome::Transient(e),
        }
    }

    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        let not_resent = "it was not re-sent; check the resource before requesting it again";
        let Some(r) = &self.call().reconcile else {
            return ReconcileOutcome::Unknown(format!(
                "the answer proved nothing and `{}` declares no reconcile read; {not_resent}",
                self.vendor()
            ));
        };
        match self.resource_state(spec).await {
            Ok(s) if r.running.contains(&s) => ReconcileOutcome::Running {
                handle: serde_json::to_value(Handle {
                    job_id: None,
                    reconciled: true,
                })
                .unwrap_or(Value::Null),
                note: format!("the resource is {s}: the work is under way (nothing was re-sent)"),
            },
            Ok(s) => ReconcileOutcome::Unknown(format!(
                "the resource is {s}: the work may have finished or never started; {not_resent}"
            )),
            Err(e) => ReconcileOutcome::Unknown(format!(
                "could not read the resource ({e}); {not_resent}"
            )),
        }
    }

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let f = self.filled(&self.call().submit, spec, None)?;
        self.transport.describe(&f)
    }
}
