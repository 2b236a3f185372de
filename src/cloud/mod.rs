//! The clouds: one module per operation, the vendors' clients and signers they share, and
//! the catalog that lists the operations. Every operation implements
//! [`CloudOperation`](crate::ports::cloud::CloudOperation); the engine never speaks HTTP.

pub mod alibaba;
pub mod catalog;
pub mod command;
pub mod declared;
pub mod http;
pub mod huawei;
pub mod operation;
pub mod registry;
pub mod scnet;

use std::time::Duration;

pub use catalog::builtins;
pub use registry::Registry;

use crate::ports::cloud::{CloudError, PollPolicy, SubmitOutcome};

/// A mutating call's error answer: `Refused` if the vendor's table says it proves nothing
/// started, otherwise `Indeterminate`, naming what `vendor` answered.
pub fn refused_or_unknown(
    vendor: &str,
    err: CloudError,
    proves_not_started: bool,
) -> SubmitOutcome {
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
