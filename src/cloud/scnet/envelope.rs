//! SCNet's answer envelope `{"code":"0","msg":"...","data":...}`. Failures often arrive with
//! HTTP 200, so the envelope `code` is always checked; anything but `"0"` is an error with
//! the code and message verbatim.

use serde_json::Value;

use crate::cloud::http::Answer;
use crate::cloud::http::{clean, excerpt};
use crate::ports::cloud::CloudError;

/// SCNet's code for a token that is expired or otherwise refused ([3p]: "token expired";
/// the official table says "insufficient permission"). Renew the token and retry once.
pub const TOKEN_REFUSED: &str = "10008";

/// A successful envelope's `data`, or the error the answer carries.
pub fn data(answer: &Answer) -> Result<Value, CloudError> {
    let parsed: Option<Value> = answer.json();
    let code = parsed.as_ref().and_then(|v| match v.get("code")? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("msg").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .map(clean)
        .unwrap_or_default();
    match (code.as_deref(), answer.is_success()) {
        (Some("0"), true) => Ok(parsed
            .and_then(|mut v| v.get_mut("data").map(Value::take))
            .unwrap_or(Value::Null)),
        (Some(code), _) => Err(CloudError::new(
            Some(answer.status),
            Some(clean(code)),
            if code == "0" && msg.is_empty() {
                "the answer said success with an HTTP error status".to_string()
            } else {
                msg
            },
        )),
        (None, _) if answer.body.iter().all(u8::is_ascii_whitespace) => Err(CloudError::new(
            Some(answer.status),
            None,
            "the answer had an empty body",
        )),
        (None, _) => Err(CloudError::new(
            Some(answer.status),
            None,
            format!("unrecognized answer: {}", excerpt(&answer.body)),
        )),
    }
}

/// Whether an error answer to a mutating call proves nothing started. SCNet publishes no
/// error table (docs/cloud-apis.md §3.5: only `10008` has a known meaning), so the table is
/// short: the token refused (still refused after the one renewal), throttling (429), and a
/// 401 or 403 without an envelope (the gateway refused the token). Every other code proves
/// nothing either way.
pub fn proves_not_started(answer: &Answer) -> bool {
    if answer.status == 429 || token_refused(answer) {
        return true;
    }
    matches!(answer.status, 401 | 403)
        && answer.json().and_then(|v| v.get("code").cloned()).is_none()
}

/// True when the answer is SCNet's "token refused" code.
pub fn token_refused(answer: &Answer) -> bool {
    matches!(data(answer), Err(e) if e.code.as_deref() == Some(TOKEN_REFUSED))
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
    fn code_zero_is_success_anything_else_is_an_error_even_with_200() {
        assert_eq!(
            data(&ans(200, r#"{"code":"0","msg":"success","data":"abc"}"#)).unwrap(),
            Value::String("abc".into())
        );
        let e = data(&ans(
            200,
            r#"{"code":"716868","msg":"启动任务错误","data":null}"#,
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "HTTP 200 716868: 启动任务错误");
        let e = data(&ans(200, r#"{"code":10008,"msg":"权限不足"}"#)).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("10008"));
        assert!(token_refused(&ans(200, r#"{"code":"10008","msg":"x"}"#)));
        assert!(!token_refused(&ans(200, r#"{"code":"0","msg":"x"}"#)));
        assert!(data(&ans(500, r#"{"code":"0"}"#)).is_err());
    }

    #[test]
    fn malformed_answers_do_not_panic() {
        assert!(data(&ans(200, "<html>"))
            .unwrap_err()
            .message
            .starts_with("unrecognized"));
        assert_eq!(
            data(&ans(502, "")).unwrap_err().message,
            "the answer had an empty body"
        );
        assert!(data(&ans(200, "[1]")).is_err());
        assert!(data(&ans(200, r#"{"code":[1]}"#)).is_err());
        assert_eq!(data(&ans(200, r#"{"code":"0"}"#)).unwrap(), Value::Null);
    }
}
