//! Huawei error bodies -> [`CloudError`], keeping the vendor's code and message verbatim.
//!
//! Three shapes are in use: DDM's `{"errCode","externalMessage"}`, TaurusDB's and the API
//! gateway's `{"error_code","error_msg"}`, and IAM's `{"error":{"code","message","title"}}`.
//! A body that is none of these (HTML from a proxy, truncated JSON) becomes an error naming
//! the HTTP status and a short, sanitized excerpt, never a panic.

use serde_json::Value;

use crate::cloud::http::{clean, excerpt, Answer};
use crate::cloud::CloudError;

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
