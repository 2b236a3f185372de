//! Alibaba error bodies -> [`CloudError`], keeping the vendor's code and message verbatim.
//!
//! The common shape is `{"RequestId","Code","Message","HostId","Recommend"}`; SAE bodies
//! also carry `Success:false`, `ErrorCode` and `TraceId`. A body that is none of these
//! becomes an error naming the HTTP status and a short, sanitized excerpt, never a panic.

use serde_json::Value;

use crate::cloud::http::Answer;
use crate::cloud::http::{clean, excerpt};
use crate::ports::cloud::CloudError;

/// `(code, message)` from an Alibaba body, if it has either.
pub fn parse_vendor(body: &[u8]) -> Option<(Option<String>, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |key: &str| -> Option<String> {
        match v.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // SAE puts "200" in `Code` on success; on errors `Code` and `ErrorCode` both carry the
    // vendor code. Prefer one that is not a bare HTTP status.
    let code = [text("Code"), text("ErrorCode")]
        .into_iter()
        .flatten()
        .find(|c| !c.bytes().all(|b| b.is_ascii_digit()))
        .or_else(|| text("Code"));
    let message = text("Message").or_else(|| text("message"));
    if code.is_none() && message.is_none() {
        return None;
    }
    Some((code.map(|c| clean(&c)), clean(&message.unwrap_or_default())))
}

/// The error an answer carries, verbatim.
pub fn vendor_error(answer: &Answer) -> CloudError {
    match parse_vendor(&answer.body) {
        Some((code, message)) => CloudError::new(Some(answer.status), code, message),
        None if answer.body.iter().all(u8::is_ascii_whitespace) => {
            CloudError::new(Some(answer.status), None, "the answer had an empty body")
        }
        None => CloudError::new(
            Some(answer.status),
            None,
            format!("unrecognized answer: {}", excerpt(&answer.body)),
        ),
    }
}

/// The vendor code of an answer, if any.
pub fn code_of(answer: &Answer) -> Option<String> {
    parse_vendor(&answer.body).and_then(|(code, _)| code)
}

/// Throttling: any `Throttling*` code (SAE answers `Throttling.User` with HTTP 400), or
/// HTTP 429 as other Alibaba products use. Such an answer proves nothing started.
pub fn is_throttled(answer: &Answer) -> bool {
    answer.status == 429 || code_of(answer).is_some_and(|c| c.starts_with("Throttling"))
}

/// Alibaba answers that prove a mutating request was refused before anything started, by
/// vendor code: the errors the RestartInstances document lists (all HTTP 400: the
/// application, its state, a parameter, quota or payment; a change already running), and
/// the API gateway's signing, credential and permission refusals, which it answers before
/// SAE sees the request. Throttling (`Throttling*`, any 429) is refused too. Anything else
/// after sending (5xx, `InternalError`, `ServiceUnavailable`, codes not listed) proves
/// nothing either way.
const REFUSALS: &[&str] = &[
    // RestartInstances' own table (specs/002).
    "InvalidApplication.NotFound",
    "InvalidParameter.NotEmpty",
    "InvalidParameter.Obviously",
    "InvalidParameter.WithMessage",
    "NoComputeResourceQuota.Exceed",
    "NoComputeResourceQuota.App.Exceed",
    "NoComputeResourceQuota.User.Exceed",
    "user.indebt",
    "System.Upgrading",
    "Application.ChangerOrderRunning",
    "Application.InvalidStatus",
    "Application.NotDeployYet",
    // The gateway: signature, credentials, permissions, API and version.
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "SignatureNonceUsed",
    "InvalidTimeStamp.Expired",
    "InvalidTimeStamp.Format",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.Malformed",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "Forbidden.RAM",
    "Forbidden.AccessKeyDisabled",
    "InvalidAction.NotFound",
    "InvalidVersion",
];

/// Whether an error answer to a mutating call proves nothing started (see [`REFUSALS`]).
pub fn proves_not_started(answer: &Answer) -> bool {
    is_throttled(answer) || code_of(answer).is_some_and(|c| REFUSALS.contains(&c.as_str()))
}

/// A 2xx answer whose body still says `Success: false`.
pub fn says_failure(answer: &Answer) -> bool {
    answer
        .json()
        .and_then(|v| v.get("Success").and_then(Value::as_bool))
        == Some(false)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn ans(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn common_and_sae_shapes_are_kept_verbatim() {
        let e = vendor_error(&ans(
            400,
            r#"{"RequestId":"r","Code":"InvalidApplication.NotFound","Message":"The current application does not exist.","Success":false,"ErrorCode":"InvalidApplication.NotFound"}"#,
        ));
        assert_eq!(
            e.to_string(),
            "HTTP 400 InvalidApplication.NotFound: The current application does not exist."
        );
        let e = vendor_error(&ans(
            400,
            r#"{"Code":"400","ErrorCode":"System.Upgrading","Message":"m"}"#,
        ));
        assert_eq!(e.code.as_deref(), Some("System.Upgrading"));
        let e = vendor_error(&ans(403, r#"{"Code":"Forbidden.RAM","Message":"a\nb"}"#));
        assert_eq!(e.message, "a b");
    }

    #[test]
    fn only_table_entries_prove_nothing_started() {
        for refused in [
            r#"{"Code":"Application.NotDeployYet","Message":"m","Success":false}"#,
            r#"{"Code":"400","ErrorCode":"NoComputeResourceQuota.Exceed","Message":"m"}"#,
            r#"{"Code":"SignatureDoesNotMatch","Message":"m"}"#,
            r#"{"Code":"Throttling.User","Message":"m"}"#,
        ] {
            assert!(proves_not_started(&ans(400, refused)), "{refused}");
        }
        for unproven in [
            (500, r#"{"Code":"InternalError","Message":"m"}"#),
            (503, r#"{"Code":"ServiceUnavailable","Message":"m"}"#),
            (400, r#"{"Code":"Something.New","Message":"m"}"#),
            (502, "<html>Bad Gateway</html>"),
            (200, ""),
        ] {
            assert!(
                !proves_not_started(&ans(unproven.0, unproven.1)),
                "{unproven:?}"
            );
        }
    }

    #[test]
    fn throttling_is_recognised_by_code_or_429() {
        assert!(is_throttled(&ans(
            400,
            r#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#
        )));
        assert!(is_throttled(&ans(
            400,
            r#"{"Code":"Throttling.Api","Message":""}"#
        )));
        assert!(is_throttled(&ans(429, "<html>")));
        assert!(!is_throttled(&ans(
            400,
            r#"{"Code":"InvalidParameter.NotEmpty"}"#
        )));
        assert!(!is_throttled(&ans(200, "{}")));
    }

    #[test]
    fn malformed_bodies_do_not_panic() {
        assert!(vendor_error(&ans(502, "<html>bad</html>"))
            .message
            .starts_with("unrecognized answer"));
        assert_eq!(
            vendor_error(&ans(500, " ")).message,
            "the answer had an empty body"
        );
        assert!(vendor_error(&ans(500, "[1]"))
            .message
            .starts_with("unrecognized"));
        assert!(says_failure(&ans(200, r#"{"Success":false}"#)));
        assert!(!says_failure(&ans(200, r#"{"Success":true}"#)));
        assert!(!says_failure(&ans(200, "nope")));
    }
}
