//! How the emulated API gateway authenticates a request: an IAM token it issued, or an
//! AK/SK signature checked with the same signer the client uses, over the exact method,
//! path, query, headers and body received.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use super::reply::Reply;
use super::state::State;
use super::Incoming;
use crate::cloud::huawei::signer::{self, SigningInput};

/// The gateway refuses signatures dated further than this from its own clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

fn refused(detail: &str) -> Reply {
    Reply::gateway_error(
        StatusCode::UNAUTHORIZED,
        "APIGW.0301",
        &format!("Incorrect IAM authentication information: {detail}"),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Ok(())` if the request carries valid credentials, else the gateway's 401.
pub fn authenticate(state: &State, req: &Incoming, now: Instant) -> Result<(), Reply> {
    if let Some(token) = header(&req.headers, "x-auth-token") {
        return match state.tokens.get(token) {
            Some(t) if !t.revoked && now < t.expires => Ok(()),
            Some(_) => Err(Reply::gateway_error(
                StatusCode::UNAUTHORIZED,
                "APIGW.0307",
                "The token must be updated.",
            )),
            None => Err(refused("decrypt token fail")),
        };
    }
    match header(&req.headers, "authorization") {
        Some(auth) => verify_signature(state, req, auth),
        None => Err(refused("no X-Auth-Token or Authorization header")),
    }
}

fn verify_signature(state: &State, req: &Incoming, authorization: &str) -> Result<(), Reply> {
    let parsed = signer::parse_authorization(authorization)
        .ok_or_else(|| refused("malformed Authorization header"))?;
    if !parsed.signed_headers.iter().any(|h| h == "x-sdk-date") {
        return Err(refused("x-sdk-date must be signed"));
    }
    let date = header(&req.headers, "x-sdk-date").ok_or_else(|| refused("missing X-Sdk-Date"))?;
    let when = signer::parse_sdk_date(date).ok_or_else(|| refused("malformed X-Sdk-Date"))?;
    let skew = (OffsetDateTime::now_utc() - when).unsigned_abs();
    if skew > MAX_SKEW {
        return Err(refused(
            "the request time differs from the server time by more than 15 minutes",
        ));
    }
    let secret = state
        .keys
        .get(&parsed.access)
        .ok_or_else(|| refused("access key not found"))?;

    let mut signed = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        let mut values = req.headers.get_all(name.as_str()).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(refused("a signed header is missing or repeated"));
        };
        let value = value
            .to_str()
            .map_err(|_| refused("a signed header is not text"))?;
        signed.push((name.as_str(), value));
    }
    let path = decode_path(&req.path).ok_or_else(|| refused("malformed path"))?;
    let query = decode_query(req.query.as_deref().unwrap_or(""))
        .ok_or_else(|| refused("malformed query"))?;
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let input = SigningInput {
        method: req.method.as_str(),
        path: &path,
        query: &query,
        headers: &signed,
        body: &req.body,
    };
    if signer::verify(secret, &input, &parsed.signature) {
        Ok(())
    } else {
        Err(refused("verify aksk signature fail"))
    }
}

/// Each segment percent-decoded; `None` if a segment is not valid UTF-8.
pub fn decode_path(raw: &str) -> Option<String> {
    raw.split('/')
        .map(|seg| {
            percent_decode_str(seg)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect::<Option<Vec<_>>>()
        .map(|segs| segs.join("/"))
}

/// `k=v&k2=v2`, each side percent-decoded (a `+` stays a `+`, as in RFC 3986).
pub fn decode_query(raw: &str) -> Option<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode_str(k).decode_utf8().ok()?.into_owned();
            let v = percent_decode_str(v).decode_utf8().ok()?.into_owned();
            Some((k, v))
        })
        .collect()
}

/// The first value of `key` in a raw query, decoded.
pub fn query_value(raw: Option<&str>, key: &str) -> Option<String> {
    decode_query(raw?)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_client_encodes() {
        assert_eq!(decode_path("/v1/a%20b/c").as_deref(), Some("/v1/a b/c"));
        assert_eq!(decode_path("/v1/%FF"), None);
        assert_eq!(
            decode_query("b=2&a=x%2Fy&flag&&c=1+1").unwrap(),
            [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "x/y".to_string()),
                ("flag".to_string(), String::new()),
                ("c".to_string(), "1+1".to_string()),
            ]
        );
        assert_eq!(decode_query("a=%C3"), None);
    }
}
