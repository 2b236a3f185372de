//! The cloud seam: what an operation does for a job (submit, poll, reconcile, describe) and
//! what the cloud's answers prove. Each operation in `cloud/` implements [`CloudOperation`].
//!
//! The three-way [`SubmitOutcome`] is what makes "at most once" possible: an operation must
//! say `Indeterminate` whenever the request may have reached the cloud without an answer being
//! read (a timeout after sending, a reset connection), and the engine then never re-sends.

use std::time::Duration;

use std::fmt;

use async_trait::async_trait;

use crate::domain::JobSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudError {
    /// HTTP status, when the cloud answered at all.
    pub http_status: Option<u16>,
    /// Vendor error code, e.g. `DBS.280001`.
    pub code: Option<String>,
    /// Vendor message, verbatim (or our own description when the cloud sent none).
    pub message: String,
}

impl CloudError {
    pub fn new(http_status: Option<u16>, code: Option<String>, message: impl Into<String>) -> Self {
        CloudError {
            http_status,
            code,
            message: message.into(),
        }
    }

    /// An error of our own making (no HTTP answer), e.g. a missing secret.
    pub fn local(message: impl Into<String>) -> Self {
        CloudError::new(None, None, message)
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.http_status {
            write!(f, "HTTP {status}")?;
            if self.code.is_some() || !self.message.is_empty() {
                f.write_str(" ")?;
            }
        }
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The answer to a submit. Only evidence counts: a 2xx whose body is not the documented
/// shape is `Indeterminate`, and only the answers in a vendor's refusal table are `Refused`.
#[derive(Clone, Debug, PartialEq)]
pub enum SubmitOutcome {
    /// The cloud accepted the work, in the documented shape. `handle` is the operation's own
    /// record of it (job ID, instance ID, ...) and is persisted and handed back to `poll`
    /// after a restart.
    Accepted {
        handle: serde_json::Value,
        /// The cloud's identifier for the work, shown to users (e.g. the DDM `jobId`).
        cloud_ref: Option<String>,
        /// A short, secret-free summary of what the cloud answered, for the audit log.
        answer: String,
    },
    /// The cloud answered with a refusal that proves nothing started (an entry of the
    /// vendor's refusal table, or throttled/busy answers until the retries ran out).
    Refused(CloudError),
    /// Nothing left opsgate (a missing secret, no token, no connection could be made). The
    /// text names what to fix.
    NotSent(String),
    /// The request was sent and what came back proves nothing either way: no answer, a 5xx,
    /// a gateway timeout, a code not in the refusal table, or a 2xx that is not the
    /// documented answer. The text says what was seen. Never re-sent; the engine reconciles.
    Indeterminate(String),
}

/// One look at submitted work.
#[derive(Clone, Debug, PartialEq)]
pub enum PollOutcome {
    /// Still going. `progress` is shown to users; `handle`, when set, replaces the stored one
    /// (e.g. "instance seen RESTARTING").
    InProgress {
        progress: Option<String>,
        handle: Option<serde_json::Value>,
    },
    /// Waiting for a person on the cloud side (e.g. a manual batch confirmation).
    NeedsAttention(String),
    /// The cloud's job or change order says so, or the work was observed (e.g. RESTARTING,
    /// then RUNNING again).
    Succeeded(String),
    Failed(CloudError),
    /// Watching ended without evidence either way (e.g. the instance never showed the
    /// restart). The text says what was seen and what to check; the job ends `unknown`.
    Unknown(String),
    /// The look itself failed (network, throttling, 5xx). The poller backs off and tries again.
    Transient(String),
}

/// What the cloud says about a job whose submit answer proved nothing (no answer, a 5xx, an
/// undocumented 2xx), or that crashed between "submitting" and recording the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ReconcileOutcome {
    /// The work is visibly under way, or the resource is worth watching for it; carry on
    /// polling with this handle (whose poll ends `Unknown` if the work never shows).
    Running {
        handle: serde_json::Value,
        note: String,
    },
    /// The cloud cannot tell whether our request arrived. The job is marked unknown.
    Unknown(String),
}

/// How often a provider may be polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// Wait before the first poll (jobs are often not queryable at once).
    pub initial_delay: Duration,
    /// Normal interval between polls; never faster than the vendor allows.
    pub interval: Duration,
    /// Ceiling for backoff after transient errors.
    pub max_interval: Duration,
    /// Give up (job becomes unknown) after this long without a final answer.
    pub timeout: Duration,
}

#[async_trait]
pub trait CloudOperation: Send + Sync {
    fn poll_policy(&self) -> PollPolicy;

    /// Send the request once. Retries are allowed only for answers that prove nothing
    /// started (throttling, "operation in progress", connection refused).
    ///
    /// `Accepted` only for the documented answer; `Refused` only for an entry of the
    /// vendor's refusal table; everything else after sending is `Indeterminate`.
    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome;

    async fn poll(&self, spec: &JobSpec, handle: &serde_json::Value) -> PollOutcome;

    /// Ask the cloud whether a request whose answer was lost took effect. Must not re-send it.
    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome;

    /// The request [`submit`](Self::submit) would send, described without sending it and
    /// without any credential (`--dry-run`). Built by the same code that builds the request
    /// it sends, so the two cannot differ.
    fn describe(&self, spec: &JobSpec) -> Result<Described, String>;
}

/// One request as it would go out: method, URL (query included) and body, and how it would
/// be authenticated (never the credential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub method: String,
    pub url: String,
    pub body: Option<String>,
    /// e.g. `X-Auth-Token: an IAM token for user `ops-bot` (not shown)`.
    pub auth: String,
    /// Fixed headers sent besides the ones that authenticate it (a declared operation's).
    pub headers: Vec<(String, String)>,
}

impl Described {
    pub fn lines(&self) -> String {
        let mut out = self.request();
        out.push_str(&format!("\n    auth: {}", self.auth));
        out
    }

    /// What is sent, without how it is authenticated (the audit entry of a submit).
    pub fn request(&self) -> String {
        let mut out = format!("{} {}", self.method, self.url);
        for (name, value) in &self.headers {
            out.push_str(&format!("\n    {name}: {value}"));
        }
        if let Some(body) = &self.body {
            out.push_str(&format!("\n    body: {body}"));
        }
        out
    }
}

/// The operation a job runs, built for its account.
pub trait Operations: Send + Sync {
    /// The operation `operation` on `account`, or why it cannot be had (a missing secret,
    /// an account of another provider).
    fn get(
        &self,
        operation: &str,
        account: &str,
    ) -> Result<std::sync::Arc<dyn CloudOperation>, String>;

    /// [`CloudOperation::describe`] for a job's spec.
    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        self.get(&spec.operation, &spec.account)?.describe(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_status_code_and_message_verbatim() {
        let e = CloudError::new(Some(400), Some("DBS.280001".into()), "Parameter error.");
        assert_eq!(e.to_string(), "HTTP 400 DBS.280001: Parameter error.");
        assert_eq!(CloudError::local("no secret").to_string(), "no secret");
    }
}
