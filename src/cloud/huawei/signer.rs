//! Huawei `SDK-HMAC-SHA256` request signing (APIG), as pure functions.
//!
//! The client signs with [`sign`]; the emulator checks a received request with [`verify`]
//! over the very same canonical form, so the two can never drift apart silently. The
//! algorithm follows the API Request Signing Guide and the Go SDK (`core/auth/signer`);
//! the unit tests reproduce the published vectors byte for byte.

pub use crate::cloud::http::encode;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The signed timestamp header. The gateway rejects a skew of more than 15 minutes.
pub const DATE_HEADER: &str = "X-Sdk-Date";

type HmacSha256 = Hmac<Sha256>;

/// What is signed: the request as it goes on the wire, minus the transport.
#[derive(Clone, Copy, Debug)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// The path, not percent-encoded (e.g. `/v1/{project_id}/instances/{id}/action`).
    pub path: &'a str,
    /// Decoded query parameters, in any order (repeated keys allowed).
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign, exactly as sent. Must include `X-Sdk-Date`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes sent (empty when there is none).
    pub body: &'a [u8],
}

/// A computed signature and the `Authorization` header that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

/// The parts of a received `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub access: String,
    /// Lowercase header names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// `YYYYMMDDTHHMMSSZ` in UTC, the only format the gateway accepts.
pub fn sdk_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an `X-Sdk-Date` value; `None` for anything malformed.
pub fn parse_sdk_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// The path as it is put on the wire: each segment encoded, no trailing slash added.
pub fn wire_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// The path as it is signed: each segment encoded, always ending with `/`. The slash is
/// for the signature only; the request itself goes to the path without it.
pub fn canonical_uri(path: &str) -> String {
    let mut uri = wire_path(path);
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Sorted by key, then by value for repeated keys (both compared unencoded, as the SDK
/// does), each encoded, joined with `&`. Empty when there is no query.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs = query.to_vec();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query string the client sends: the canonical one, so the gateway decodes exactly
/// the parameters that were signed.
pub fn wire_query(query: &[(&str, &str)]) -> String {
    canonical_query(query)
}

/// Canonical header block (`name:value\n` per header, sorted) and the signed-headers list.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut lower: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    lower.sort();
    let block = lower
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect::<String>();
    let names = lower
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED_HEADERS\nHEX(SHA256(body))`. The header block ends
/// with its own newline, which is why the request has an empty line before the list.
pub fn canonical_request(input: &SigningInput<'_>) -> String {
    let (headers, signed) = canonical_headers(input.headers);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        canonical_uri(input.path),
        canonical_query(input.query),
        headers,
        signed,
        hex_sha256(input.body)
    )
}

pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

/// HMAC accepts keys of any length, so `None` cannot happen in practice; callers still
/// handle it (an empty signature, a failed check) rather than panic.
fn mac(secret_key: &str) -> Option<HmacSha256> {
    HmacSha256::new_from_slice(secret_key.as_bytes()).ok()
}

/// Lowercase hex HMAC-SHA256 of the string to sign, keyed with the SK bytes directly
/// (no derived-key chain, unlike AWS SigV4).
pub fn signature(secret_key: &str, string_to_sign: &str) -> String {
    let Some(mut m) = mac(secret_key) else {
        return String::new();
    };
    m.update(string_to_sign.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex` (comma and space between).
pub fn authorization(access_key: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn date_of<'a>(headers: &[(&str, &'a str)]) -> Option<&'a str> {
    headers
        .iter()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(DATE_HEADER))
        .map(|(_, value)| value.trim())
}

/// Signs a request. `None` when the headers carry no `X-Sdk-Date` (it must be signed).
pub fn sign(access_key: &str, secret_key: &str, input: &SigningInput<'_>) -> Option<Signed> {
    let date = date_of(input.headers)?;
    let (_, signed_headers) = canonical_headers(input.headers);
    let sig = signature(secret_key, &string_to_sign(date, &canonical_request(input)));
    Some(Signed {
        authorization: authorization(access_key, &signed_headers, &sig),
        signed_headers,
        signature: sig,
    })
}

/// Checks a claimed signature in constant time. `input.headers` must be the headers the
/// request named in `SignedHeaders`, with the values received.
pub fn verify(secret_key: &str, input: &SigningInput<'_>, claimed_hex: &str) -> bool {
    let Some(date) = date_of(input.headers) else {
        return false;
    };
    let Ok(claimed) = hex::decode(claimed_hex) else {
        return false;
    };
    let Some(mut m) = mac(secret_key) else {
        return false;
    };
    m.update(string_to_sign(date, &canonical_request(input)).as_bytes());
    m.verify_slice(&claimed).is_ok()
}

/// Parses `SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`; `None` if malformed.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let rest = header.trim().strip_prefix(ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let (mut access, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let slot = match key {
            "Access" => &mut access,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            _ => return None,
        };
        if slot.replace(value.to_string()).is_some() {
            return None;
        }
    }
    let signed_headers: Vec<String> = signed?
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return None;
    }
    Some(ParsedAuthorization {
        access: access.filter(|a| !a.is_empty())?,
        signed_headers,
        signature: sig.filter(|s| !s.is_empty())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    // §5.1: the official Signing Guide example.
    const DOC_AK: &str = "QTWAOYTTINDUT2QVKYUC";
    const DOC_SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";

    fn doc_input<'a>(
        query: &'a [(&'a str, &'a str)],
        headers: &'a [(&'a str, &'a str)],
    ) -> SigningInput<'a> {
        SigningInput {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query,
            headers,
            body: b"",
        }
    }

    const DOC_QUERY: &[(&str, &str)] = &[
        ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
        ("limit", "2"),
    ];
    const DOC_HEADERS: &[(&str, &str)] = &[
        ("Content-Type", "application/json"),
        ("Host", "service.region.example.com"),
        ("X-Sdk-Date", "20191115T033655Z"),
    ];

    #[test]
    fn doc_example_canonical_request_is_byte_exact() {
        let cr = canonical_request(&doc_input(DOC_QUERY, DOC_HEADERS));
        let expected = "GET\n\
            /v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n\
            limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
            content-type:application/json\n\
            host:service.region.example.com\n\
            x-sdk-date:20191115T033655Z\n\
            \n\
            content-type;host;x-sdk-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(cr, expected);
        assert_eq!(
            hex_sha256(cr.as_bytes()),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        assert_eq!(
            string_to_sign("20191115T033655Z", &cr),
            "SDK-HMAC-SHA256\n20191115T033655Z\n\
             b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
    }

    #[test]
    fn doc_example_signature_and_header() {
        let signed = sign(DOC_AK, DOC_SK, &doc_input(DOC_QUERY, DOC_HEADERS)).unwrap();
        assert_eq!(
            signed.signature,
            "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
        assert_eq!(signed.signed_headers, "content-type;host;x-sdk-date");
        assert_eq!(
            signed.authorization,
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, \
             SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
        assert!(verify(
            DOC_SK,
            &doc_input(DOC_QUERY, DOC_HEADERS),
            &signed.signature
        ));
    }

    #[test]
    fn verify_rejects_any_change() {
        let good = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe";
        let input = doc_input(DOC_QUERY, DOC_HEADERS);
        assert!(!verify("wrong-secret", &input, good));
        assert!(!verify(DOC_SK, &input, "not-hex"));
        let other_query = [("limit", "3")];
        assert!(!verify(DOC_SK, &doc_input(&other_query, DOC_HEADERS), good));
        let mut body_changed = input;
        body_changed.body = b"{}";
        assert!(!verify(DOC_SK, &body_changed, good));
        let no_date = [("Host", "service.region.example.com")];
        assert!(!verify(DOC_SK, &doc_input(DOC_QUERY, &no_date), good));
        assert!(sign(DOC_AK, DOC_SK, &doc_input(DOC_QUERY, &no_date)).is_none());
    }

    // §5.2: the Go SDK unit tests (only x-sdk-date is signed; no host header was set).
    #[test]
    fn go_sdk_t1_get() {
        let headers = [("X-Sdk-Date", "20060102T150405Z")];
        let input = SigningInput {
            method: "GET",
            path: "/path",
            query: &[("limit", "1")],
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            canonical_request(&input),
            format!("GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n{EMPTY_SHA}")
        );
        assert_eq!(
            sign("AccessKey", "SecretKey", &input)
                .unwrap()
                .authorization,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    #[test]
    fn go_sdk_t2_post_hashes_the_exact_body_bytes() {
        let headers = [("X-Sdk-Date", "20060102T150405Z")];
        let input = SigningInput {
            method: "POST",
            path: "/path",
            query: &[("key", "value")],
            headers: &headers,
            // Go's json.Encoder appends a newline, and it is part of what was hashed.
            body: b"{\"Name\":\"test\",\"Id\":1}\n",
        };
        assert_eq!(
            sign("AccessKey", "SecretKey", &input).unwrap().signature,
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    #[test]
    fn go_sdk_canonical_query_string() {
        let query = [
            ("limit", "1"),
            ("enable", "true"),
            ("test", "一 (&=?!#%.*)"),
            ("path", "/tmp/123"),
            ("multi", "3"),
            ("multi", "1"),
            ("multi", "2"),
        ];
        assert_eq!(
            canonical_query(&query),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123\
             &test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn canonical_uri_encodes_segments_and_adds_the_slash_once() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/v1/a b/c"), "/v1/a%20b/c/");
        assert_eq!(canonical_uri("/v1/x/"), "/v1/x/");
        assert_eq!(wire_path("/v1/a b/c"), "/v1/a%20b/c");
    }

    #[test]
    fn sdk_date_round_trips() {
        let t = time::macros::datetime!(2019-11-15 03:36:55 UTC);
        assert_eq!(sdk_date(t), "20191115T033655Z");
        assert_eq!(parse_sdk_date("20191115T033655Z"), Some(t));
        assert_eq!(parse_sdk_date("2019-11-15T03:36:55Z"), None);
        assert_eq!(parse_sdk_date(""), None);
    }

    #[test]
    fn parses_authorization_headers() {
        let p = parse_authorization(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=content-type;host;x-sdk-date, Signature=ab12",
        )
        .unwrap();
        assert_eq!(p.access, "AK");
        assert_eq!(p.signed_headers, ["content-type", "host", "x-sdk-date"]);
        assert_eq!(p.signature, "ab12");
        for bad in [
            "",
            "Bearer x",
            "SDK-HMAC-SHA256",
            "SDK-HMAC-SHA256Access=AK, SignedHeaders=h, Signature=s",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=h",
            "SDK-HMAC-SHA256 Access=AK, Access=B, SignedHeaders=h, Signature=s",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;;b, Signature=s",
            "SDK-HMAC-SHA256 Access=, SignedHeaders=h, Signature=s",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=h, Signature=s, Extra=1",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
