//! The SCNet AK/SK token signature (docs/cloud-apis.md §3.1 b).
//!
//! `signature` = lowercase hex HMAC-SHA256(key = secret key, message = the compact JSON
//! `{"accessKey":"<AK>","timestamp":"<ts>","user":"<user>"}`), keys in exactly that order,
//! no spaces. The message is built by hand, not by a JSON library, so that the byte layout
//! cannot change under us; the values are JSON-escaped.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The exact bytes that are signed.
pub fn message(access_key: &str, timestamp: &str, user: &str) -> String {
    format!(
        "{{\"accessKey\":{},\"timestamp\":{},\"user\":{}}}",
        json_string(access_key),
        json_string(timestamp),
        json_string(user)
    )
}

/// A JSON string literal; `serde_json` escapes exactly as a compact encoder would.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn signature(secret_key: &str, access_key: &str, timestamp: &str, user: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) else {
        return String::new();
    };
    mac.update(message(access_key, timestamp, user).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a claimed signature (for the emulator).
pub fn verify(
    secret_key: &str,
    access_key: &str,
    timestamp: &str,
    user: &str,
    claimed: &str,
) -> bool {
    let Ok(claimed) = hex::decode(claimed) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) else {
        return false;
    };
    mac.update(message(access_key, timestamp, user).as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // §5.5: self-computed (not official) vector, a regression aid.
    #[test]
    fn the_documented_message_and_signature() {
        let m = message("85f96a42b13f4d2c8b760d2775bbcca8", "1764597591", "bob");
        assert_eq!(
            m,
            r#"{"accessKey":"85f96a42b13f4d2c8b760d2775bbcca8","timestamp":"1764597591","user":"bob"}"#
        );
        let sig = signature(
            "testSecret",
            "85f96a42b13f4d2c8b760d2775bbcca8",
            "1764597591",
            "bob",
        );
        assert_eq!(
            sig,
            "28dfc192dc89e1757078cd9eb04e1468bcefc74dabb255a76ccb57be73875290"
        );
        assert!(verify(
            "testSecret",
            "85f96a42b13f4d2c8b760d2775bbcca8",
            "1764597591",
            "bob",
            &sig
        ));
        assert!(!verify(
            "other",
            "85f96a42b13f4d2c8b760d2775bbcca8",
            "1764597591",
            "bob",
            &sig
        ));
        assert!(!verify(
            "testSecret",
            "85f96a42b13f4d2c8b760d2775bbcca8",
            "1764597591",
            "bob",
            "zz"
        ));
    }

    #[test]
    fn values_are_json_escaped() {
        assert_eq!(
            message("a\"b", "1", "x\\y"),
            r#"{"accessKey":"a\"b","timestamp":"1","user":"x\\y"}"#
        );
    }
}
