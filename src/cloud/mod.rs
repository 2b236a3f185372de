//! The seam between the engine and the clouds.
//!
//! Each cloud operation (DDM restart, TaurusDB proxy restart, ...) is one type implementing
//! [`CloudOperation`]. The engine never speaks HTTP; it asks an operation to submit, poll or
//! reconcile, and records the answer before acting on it.
//!
//! The three-way [`SubmitOutcome`] is what makes "at most once" possible: an operation must
//! say `Indeterminate` whenever the request may have reached the cloud without an answer being
//! read (a timeout after sending, a reset connection), and the engine then never re-sends.

pub mod alibaba;
pub mod error;
pub mod http;
pub mod huawei;
pub mod registry;
pub mod scnet;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::CloudError;
pub use registry::Registry;

/// What a job asks a cloud to do. Fixed when the job is requested; approvals are bound to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Operation identifier from the command table, e.g. `ddm.restart`.
    pub operation: String,
    /// Name of the account in the config whose credentials and endpoints are used.
    pub account: String,
    /// What the user named: a configured target name, or the raw ID they typed.
    pub target: String,
    /// Validated parameters, e.g. `instance_id`, `mode`. Keys are defined by the operation.
    pub params: BTreeMap<String, String>,
}

impl JobSpec {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
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

impl SubmitOutcome {
    /// A mutating call's error answer: `Refused` if the vendor's table says it proves nothing
    /// started, otherwise `Indeterminate`, naming what `vendor` answered.
    pub fn from_error(vendor: &str, err: CloudError, proves_not_started: bool) -> SubmitOutcome {
        if proves_not_started {
            SubmitOutcome::Refused(err)
        } else {
            SubmitOutcome::Indeterminate(format!("{vendor} answered {err}"))
        }
    }

    /// A 2xx whose body is not the documented answer (`expected` names what was missing).
    pub fn undocumented(vendor: &str, answer: &http::Answer, expected: &str) -> SubmitOutcome {
        let body = if answer.body.iter().all(u8::is_ascii_whitespace) {
            "an empty body".to_string()
        } else {
            http::excerpt(&answer.body)
        };
        SubmitOutcome::Indeterminate(format!(
            "{vendor} answered HTTP {} with {body}, not the documented answer ({expected})",
            answer.status
        ))
    }
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

/// How long a resource that shows no sign of the work (an instance that stays RUNNING) is
/// watched before the job ends `unknown`: six looks at the account's pace, and never less
/// than 5 s, since a status can change seconds after the API answered.
pub fn watch_window(policy: &PollPolicy) -> Duration {
    (policy.interval * 6).max(Duration::from_secs(5))
}

/// A provider's documented polling pace, from which each account's [`PollPolicy`] is made.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Used when the account sets no `poll_interval`.
    pub interval: Duration,
    pub initial_delay: Duration,
    pub max_interval: Duration,
    pub timeout: Duration,
    /// Never poll the public cloud faster than this, whatever the config says.
    pub public_floor: Duration,
    /// An overridden endpoint (emulator, private cloud) may be polled this fast.
    pub override_floor: Duration,
}

impl Cadence {
    /// The account's `poll_interval` (or the provider's default), never below the floor for
    /// the kind of endpoint; the initial delay and backoff ceiling follow the interval.
    pub fn policy(
        &self,
        account: &crate::config::Account,
        endpoint_overridden: bool,
    ) -> PollPolicy {
        let floor = if endpoint_overridden {
            self.override_floor
        } else {
            self.public_floor
        };
        let interval = account.poll_interval.unwrap_or(self.interval).max(floor);
        PollPolicy {
            initial_delay: self.initial_delay.min(interval),
            interval,
            max_interval: self.max_interval.max(interval),
            timeout: self.timeout,
        }
    }
}

/// Unix seconds now, as stored in job handles.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A vendor-issued ID that goes back into a URL path or query: only a plain identifier of
/// at most 64 letters, digits, `-` and `_` is accepted.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
}

/// The cloud vendor behind an account. Each operation belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Huawei,
    Alibaba,
    Scnet,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Huawei, Provider::Alibaba, Provider::Scnet];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Huawei => "huawei",
            Provider::Alibaba => "alibaba",
            Provider::Scnet => "scnet",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }
}
