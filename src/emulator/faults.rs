//! Injected faults: canned answers, delays, and "it happened but the answer was lost".
//!
//! A fault is matched by operation name (`iam.token`, `ddm.restart`, `ddm.instance`,
//! `ddm.job`) and used up request by request. With `execute: false` the request has no
//! effect and the canned answer is sent after the delay. With `execute: true` the request
//! takes effect first, then the delay runs, then the canned answer (or the real one if no
//! status was given) is sent: a delay past the client's timeout then reproduces "the
//! restart started but the bot never heard back".

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::reply::Reply;

/// Operation names faults and call counts use.
pub const OPERATIONS: &[&str] = &[
    "iam.token",
    "ddm.restart",
    "ddm.instance",
    "ddm.job",
    "taurus.restart",
    "taurus.upgrade",
    "taurus.job",
    "taurus.proxies",
    "rds.restart",
    "rds.job",
    "rds.instances",
    "ecs.reboot",
    "ecs.job",
    "team.restart",
    "team.operation",
    "sae.restart",
    "sae.changeorder",
    "sae.changeorders",
    "scnet.token",
    "scnet.center",
    "scnet.restart",
    "scnet.detail",
];

const MAX_DELAY: Duration = Duration::from_secs(600);

/// The admin API's JSON for a fault.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub operation: String,
    /// HTTP status of the canned answer; none means "send the real answer" (a delay only).
    #[serde(default)]
    pub status: Option<u16>,
    /// A string is sent byte for byte (so it may be malformed JSON); any other JSON value
    /// is sent serialized.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub execute: bool,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub operation: String,
    pub status: Option<StatusCode>,
    pub body: String,
    pub delay: Duration,
    pub times: u32,
    pub execute: bool,
}

impl FaultSpec {
    pub fn validate(self) -> Result<Fault, String> {
        if !OPERATIONS.contains(&self.operation.as_str()) {
            return Err(format!(
                "unknown operation `{}` (one of: {})",
                self.operation,
                OPERATIONS.join(", ")
            ));
        }
        let status = match self.status {
            None => None,
            Some(code) => match StatusCode::from_u16(code) {
                Ok(s) if (200..=599).contains(&code) => Some(s),
                _ => {
                    return Err(format!(
                        "status {code} is not an HTTP status from 200 to 599"
                    ))
                }
            },
        };
        let delay = Duration::from_millis(self.delay_ms);
        if delay > MAX_DELAY {
            return Err("delay_ms must be at most 600000".to_string());
        }
        if self.times == 0 {
            return Err("times must be at least 1".to_string());
        }
        let body = match self.body {
            None => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        Ok(Fault {
            operation: self.operation,
            status,
            body,
            delay,
            times: self.times,
            // Without a canned answer the request must be handled for real.
            execute: self.execute || status.is_none(),
        })
    }
}

impl Fault {
    /// The canned answer, if this fault has one.
    pub fn reply(&self) -> Option<Reply> {
        self.status.map(|s| Reply::raw(s, self.body.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Fault, String> {
        serde_json::from_str::<FaultSpec>(json)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn accepts_the_documented_shape() {
        let f = parse(
            r#"{"operation":"ddm.restart","status":429,"body":"<raw>","delay_ms":0,"times":1,"execute":false}"#,
        )
        .unwrap();
        assert_eq!(f.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(f.body, "<raw>");
        assert!(!f.execute);
        let obj = parse(r#"{"operation":"ddm.job","status":404,"body":{"errCode":"X"}}"#).unwrap();
        assert_eq!(obj.body, r#"{"errCode":"X"}"#);
        assert_eq!(obj.times, 1);
        // A delay without an answer of its own still handles the request.
        assert!(
            parse(r#"{"operation":"ddm.job","delay_ms":5}"#)
                .unwrap()
                .execute
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            r#"{"operation":"nope","status":500}"#,
            r#"{"operation":"ddm.job","status":99}"#,
            r#"{"operation":"ddm.job","status":1000}"#,
            r#"{"operation":"ddm.job","status":500,"times":0}"#,
            r#"{"operation":"ddm.job","status":500,"delay_ms":18446744073709551615}"#,
            r#"{"operation":"ddm.job","status":500,"extra":1}"#,
            r#"{"status":500}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
