//! Huawei error bodies -> [`CloudError`], keeping the vendor's code and message verbatim.
//!
//! Three shapes are in use: DDM's `{"errCode","externalMessage"}`, TaurusDB's and the API
//! gateway's `{"error_code","error_msg"}`, and IAM's `{"error":{"code","message","title"}}`.
//! A body that is none of these (HTML from a proxy, truncated JSON) becomes an error naming
//! the HTTP status and a short, sanitized excerpt, never a panic.

use serde_json::Value;

use crate::cloud::http::{clean, excerpt, Answer};
use crate::ports::cloud::CloudError;

/// Huawei answers that prove a mutating request was refused before anything started, by
/// vendor code. The API gateway checks authentication, authorization, access control and
/// rate limits before it forwards a request to DDM or TaurusDB, so its `APIGW.01xx`-`04xx`
/// refusals (also spelt `APIG.`) prove nothing reached the service; the service codes are the
/// documented parameter error and the "another operation is in progress" answers (docs/
/// cloud-apis.md §1.7, §1.9). Anything else after sending (5xx, `APIG.0201` "Backend
/// timeout", `APIG.0202`, codes not listed) proves nothing either way.
const REFUSALS: &[(&str, &str)] = &[
    ("APIGW.0101", "the API does not exist or is not published"),
    ("APIGW.0301", "IAM authentication failed"),
    (
        "APIGW.0302",
        "the IAM user is not authorized to call the API",
    ),
    ("APIGW.0303", "app authentication failed"),
    ("APIGW.0304", "the app is not authorized to call the API"),
    ("APIGW.0305", "authentication failed"),
    ("APIGW.0306", "API access denied"),
    ("APIGW.0307", "the token must be renewed"),
    ("APIGW.0308", "throttled"),
    ("APIGW.0310", "the project is unavailable"),
    ("APIGW.0401", "unknown client IP address"),
    ("APIGW.0402", "the client IP address is not authorized"),
    ("DBS.280001", "parameter error"),
    ("DBS.200019", "another operation is in progress"),
    ("DBS.212033", "another operation is in progress"),
    ("DBS.201014", "another operation is in progress"),
    ("DBS.201015", "another operation is in progress"),
    ("DBS.200047", "another operation is in progress"),
    ("DBS.05000084", "another operation is in progress"),
];

/// Whether an error answer to a mutating call proves nothing started: an entry of
/// [`REFUSALS`], any 429 (throttling, whatever the body), or a 401 (the gateway refused the
/// credentials before the service saw the request).
pub fn proves_not_started(answer: &Answer) -> bool {
    if matches!(answer.status, 401 | 429) {
        return true;
    }
    let Some(code) = parse_vendor(&answer.body).and_then(|(code, _)| code) else {
        return false;
    };
    let code = match code.strip_prefix("APIG.") {
        Some(rest) => format!("APIGW.{rest}"),
        None => code,
    };
    REFUSALS.iter().any(|(known, _)| *known == code)
}

/// The error a non-success answer carries, the vendor's words kept.
pub fn from_answer(answer: &Answer) -> CloudError {
    vendor_error(answer.status, &answer.body)
}

/// The error a non-success answer carries.
pub fn vendor_error(status: u16, body: &[u8]) -> CloudError {
    match parse_vendor(body) {
        Some((code, message)) => CloudError::new(Some(status), code, message),
        None if body.iter().all(u8::is_ascii_whitespace) => {
            CloudError::new(Some(status), None, "the answer had an empty body")
        }
        None => CloudError::new(
            Some(status),
            None,
            format!("unrecognized answer: {}", excerpt(body)),
        ),
    }
}

/// `(code, message)` from any of the known shapes; `None` if the body has none of them.
pub fn parse_vendor(body: &[u8]) -> Option<(Option<String>, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |v: &Value, key: &str| -> Option<String> {
        match v.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let pairs = [
        (&v, "errCode", "externalMessage"),
        (&v, "error_code", "error_msg"),
    ];
    for (obj, code_key, msg_key) in pairs {
        let code = text(obj, code_key);
        let msg = text(obj, msg_key);
        if code.is_some() || msg.is_some() {
            return Some((code.map(|c| clean(&c)), clean(&msg.unwrap_or_default())));
        }
    }
    // IAM: {"error":{"code":401,"message":"...","title":"Unauthorized"}}. The numeric code
    // only repeats the HTTP status, so the message alone is kept.
    let inner = v.get("error")?;
    let msg = text(inner, "message")?;
    Some((None, clean(&msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddm_shape_is_kept_verbatim() {
        let e = vendor_error(
            400,
            br#"{"externalMessage" : "Parameter error.", "errCode" : "DBS.280001"}"#,
        );
        assert_eq!(
            e,
            CloudError::new(Some(400), Some("DBS.280001".into()), "Parameter error.")
        );
    }

    #[test]
    fn gateway_and_taurus_shape() {
        let e = vendor_error(
            429,
            br#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("APIGW.0308"));
        assert_eq!(e.message, "The throttling threshold has been reached");
        assert_eq!(e.http_status, Some(429));
    }

    #[test]
    fn iam_shape() {
        let e = vendor_error(
            401,
            br#"{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}"#,
        );
        assert_eq!(e.code, None);
        assert_eq!(e.message, "The username or password is wrong.");
    }

    #[test]
    fn malformed_bodies_name_the_status_and_an_excerpt() {
        let e = vendor_error(500, b"<html>\n<b>Bad gateway</b>\r\n\x1b[31m</html>");
        assert_eq!(e.http_status, Some(500));
        assert_eq!(e.code, None);
        assert!(
            e.message.starts_with("unrecognized answer: `<html>"),
            "{}",
            e.message
        );
        assert!(!e.message.contains('\n') && !e.message.contains('\x1b'));

        let long = vec![b'x'; 10_000];
        assert_eq!(
            vendor_error(502, &long).message,
            "unrecognized answer: `[…]`"
        );
        let many = "word ".repeat(1000);
        assert!(vendor_error(502, many.as_bytes()).message.chars().count() < 200);
        assert_eq!(
            vendor_error(503, b"  ").message,
            "the answer had an empty body"
        );
        // Valid JSON of the wrong shape, and invalid UTF-8, are handled the same way.
        assert!(vendor_error(500, b"[1,2]").message.contains("[1,2]"));
        assert!(vendor_error(500, &[0xff, 0xfe, b'{'])
            .message
            .starts_with("unrecognized"));
        assert!(vendor_error(500, br#"{"errCode":"#)
            .message
            .starts_with("unrecognized"));
    }

    fn ans(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn only_table_entries_prove_nothing_started() {
        let refused = [
            ans(
                400,
                r#"{"errCode":"DBS.280001","externalMessage":"Parameter error."}"#,
            ),
            ans(409, r#"{"error_code":"DBS.201014","error_msg":"busy"}"#),
            ans(403, r#"{"error_code":"APIG.0306","error_msg":"denied"}"#),
            ans(401, "<html>login</html>"),
            ans(429, ""),
        ];
        for a in &refused {
            assert!(proves_not_started(a), "{a:?}");
        }
        let unproven = [
            ans(
                504,
                r#"{"error_code":"APIG.0201","error_msg":"Backend timeout."}"#,
            ),
            ans(
                500,
                r#"{"errCode":"DBS.200412","externalMessage":"server error"}"#,
            ),
            ans(400, r#"{"errCode":"DBS.999999","externalMessage":"new"}"#),
            ans(502, "<html>Bad Gateway</html>"),
            ans(400, ""),
        ];
        for a in &unproven {
            assert!(!proves_not_started(a), "{a:?}");
        }
    }

    #[test]
    fn vendor_text_cannot_forge_lines() {
        let e = vendor_error(
            400,
            b"{\"errCode\":\"X\\n1\",\"externalMessage\":\"a\\nb\"}",
        );
        assert_eq!(e.code.as_deref(), Some("X 1"));
        assert_eq!(e.message, "a b");
    }
}
