//! Huawei error bodies -> [`CloudError`], keeping the vendor's code and message verbatim.
//!
//! Three shapes are in use: DDM's `{"errCode","externalMessage"}`, TaurusDB's and the API
//! gateway's `{"error_code","error_msg"}`, and IAM's `{"error":{"code","message","title"}}`.
//! A body that is none of these (HTML from a proxy, truncated JSON) becomes an error naming
//! the HTTP status and a short, sanitized excerpt, never a panic.

use serde_json::Value;

use crate::cloud::CloudError;

/// Longest excerpt of an unreadable body that is shown to users.
const EXCERPT_CHARS: usize = 120;
/// Longest vendor message kept; real ones are a sentence.
const MESSAGE_CHARS: usize = 500;
/// Words longer than this in an unreadable body are not shown (see [`excerpt`]).
const LONG_WORD: usize = 64;

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

/// A vendor string made safe for a chat line or a log: control characters (newlines that
/// could forge a log line, terminal escapes) become spaces, and length is bounded.
pub fn clean(s: &str) -> String {
    truncate(
        &s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>(),
        MESSAGE_CHARS,
    )
}

/// A short, printable excerpt of an arbitrary body, for errors about unreadable answers.
/// Very long unbroken words are dropped: a misbehaving proxy that echoes the request could
/// otherwise put a token (thousands of base64 characters) into a chat message.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| if w.len() > LONG_WORD { "[…]" } else { w })
        .collect::<Vec<_>>()
        .join(" ");
    format!("`{}`", truncate(&flat, EXCERPT_CHARS).replace('`', "'"))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
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
