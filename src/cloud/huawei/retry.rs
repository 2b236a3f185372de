//! Re-sending a request whose answer proves nothing started: throttling (429), "another
//! operation is in progress" (409), or a connection that could not be made.
//!
//! Nothing else is ever re-sent. In particular an indeterminate send (timeout, reset) ends
//! the loop at once: Huawei's APIs have no idempotency key, so a second send could start a
//! second restart.

use std::future::Future;
use std::time::Duration;

use super::errors;
use crate::cloud::http::{Answer, SendError};
use crate::ports::cloud::CloudError;

/// Throttling codes of the API gateway (HTTP 429); some FAQ pages spell it `APIG.0308`.
/// Shared by every Huawei operation.
pub const THROTTLE_CODES: &[&str] = &["APIGW.0308", "APIG.0308"];

/// Why an answer is a refusal that may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 429 / `APIGW.0308`: over the rate limit.
    Throttled,
    /// 409: another operation is running on the resource.
    Busy,
}

/// Backoff and budget. Public fields so tests can shrink them.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// First wait after a throttled answer; Huawei advises retrying after 2 to 5 s.
    pub throttled_base: Duration,
    /// First wait after "operation in progress"; restarts and backups take minutes.
    pub busy_base: Duration,
    /// First wait after a failed connection.
    pub unreachable_base: Duration,
    /// Ceiling of one wait before jitter.
    pub max_delay: Duration,
    /// Total waiting allowed; past it the last refusal is reported.
    pub budget: Duration,
    pub max_attempts: u32,
    /// A host that refuses connections rarely comes back within seconds, so give up sooner.
    pub max_unreachable_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            throttled_base: Duration::from_secs(2),
            busy_base: Duration::from_secs(10),
            unreachable_base: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
            max_attempts: 6,
            max_unreachable_attempts: 3,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with up to 50 % random jitter on top, so that many clients
    /// throttled together do not come back together.
    pub fn delay(&self, base: Duration, retry: u32) -> Duration {
        let exp = base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        exp.saturating_add(exp.mul_f64(fastrand::f64() * 0.5))
    }
}

/// How a retried send ended.
#[derive(Debug)]
pub enum Attempted {
    /// An answer that is not a retryable refusal: a success or a final error.
    Answered(Answer),
    /// Every attempt was throttled or "busy" until the budget ran out. Nothing started;
    /// this is the last refusal.
    Refused(CloudError),
    /// Nothing reached the cloud: no connection could be made, or retrying cannot help
    /// (missing secret, IAM refused the credentials). The text names what to fix.
    NotSent(String),
    /// The last attempt may have reached the cloud. Never re-sent.
    Indeterminate(String),
}

impl Attempted {
    /// The answer of a mutating call if it is a success; otherwise what the call proved,
    /// judged by Huawei's refusal table (`vendor` names the service in the text).
    pub fn success_or(self, vendor: &str) -> Result<Answer, crate::ports::cloud::SubmitOutcome> {
        use crate::ports::cloud::SubmitOutcome;
        match self {
            Attempted::Answered(a) if a.is_success() => Ok(a),
            Attempted::Answered(a) => Err(crate::cloud::refused_or_unknown(
                vendor,
                errors::from_answer(&a),
                errors::proves_not_started(&a),
            )),
            Attempted::Refused(e) => Err(SubmitOutcome::Refused(e)),
            Attempted::NotSent(m) => Err(SubmitOutcome::NotSent(m)),
            Attempted::Indeterminate(m) => Err(SubmitOutcome::Indeterminate(format!(
                "no answer from {vendor} ({m})"
            ))),
        }
    }
}

/// Calls `send` until it gets an answer that is not a refusal, within `policy`.
pub async fn send_with_retries<F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    send: F,
    refusal: impl Fn(&Answer) -> Option<Refusal>,
) -> Attempted
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answer, SendError>>,
{
    send_with_retries_by(policy, what, send, refusal, errors::from_answer).await
}

/// [`send_with_retries`] for any vendor: `error_of` reads a refusal's code and message (a
/// declared operation's JSON Pointers), for the last refusal when the retries run out.
pub async fn send_with_retries_by<F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut send: F,
    refusal: impl Fn(&Answer) -> Option<Refusal>,
    error_of: impl Fn(&Answer) -> CloudError,
) -> Attempted
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answer, SendError>>,
{
    let mut waited = Duration::ZERO;
    let mut attempts = 0u32;
    let mut unreachable = 0u32;
    loop {
        attempts += 1;
        let (base, last) = match send().await {
            Ok(answer) => match refusal(&answer) {
                None => return Attempted::Answered(answer),
                Some(Refusal::Throttled) => (policy.throttled_base, error_of(&answer)),
                Some(Refusal::Busy) => (policy.busy_base, error_of(&answer)),
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
            tracing::warn!(what, attempts, error = %last, "giving up: nothing was started");
            return match last.http_status {
                Some(_) => Attempted::Refused(last),
                None => Attempted::NotSent(last.message),
            };
        }
        tracing::info!(what, attempt = attempts, wait_ms = delay.as_millis() as u64, error = %last, "refused, nothing started; retrying");
        tokio::time::sleep(delay).await;
        waited = waited.saturating_add(delay);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            throttled_base: Duration::from_millis(1),
            busy_base: Duration::from_millis(1),
            unreachable_base: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            budget: Duration::from_secs(10),
            max_attempts: 4,
            max_unreachable_attempts: 2,
        }
    }

    fn answer(status: u16) -> Answer {
        Answer {
            status,
            body: bytes::Bytes::from_static(
                br#"{"error_code":"APIGW.0308","error_msg":"slow down"}"#,
            ),
        }
    }

    fn throttled(a: &Answer) -> Option<Refusal> {
        (a.status == 429).then_some(Refusal::Throttled)
    }

    #[test]
    fn delay_grows_and_is_capped_with_jitter() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let d0 = p.delay(p.throttled_base, 0);
            assert!(d0 >= Duration::from_secs(2) && d0 <= Duration::from_secs(3));
            let d1 = p.delay(p.throttled_base, 1);
            assert!(d1 >= Duration::from_secs(4) && d1 <= Duration::from_secs(6));
            let big = p.delay(p.busy_base, 30);
            assert!(big >= p.max_delay && big <= p.max_delay.mul_f64(1.5));
        }
    }

    #[tokio::test]
    async fn refusals_are_retried_until_an_answer() {
        let calls = AtomicU32::new(0);
        let out = send_with_retries(
            &fast(),
            "test",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Ok(answer(if n < 2 { 429 } else { 200 }))
            },
            throttled,
        )
        .await;
        assert!(matches!(out, Attempted::Answered(a) if a.status == 200));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_with_the_last_vendor_error() {
        let calls = AtomicU32::new(0);
        let out = send_with_retries(
            &fast(),
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(answer(429))
            },
            throttled,
        )
        .await;
        match out {
            Attempted::Refused(e) => {
                assert_eq!(e.code.as_deref(), Some("APIGW.0308"));
                assert_eq!(e.http_status, Some(429));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn indeterminate_is_never_resent() {
        let calls = AtomicU32::new(0);
        let out = send_with_retries(
            &fast(),
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(SendError::Indeterminate("timed out".into()))
            },
            throttled,
        )
        .await;
        assert!(matches!(out, Attempted::Indeterminate(_)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unreachable_gets_a_few_tries() {
        let calls = AtomicU32::new(0);
        let out = send_with_retries(
            &fast(),
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(SendError::NotSent("refused".into()))
            },
            throttled,
        )
        .await;
        assert!(matches!(out, Attempted::NotSent(m) if m == "refused"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
