//! Alibaba Cloud V3 request signing (`ACS3-HMAC-SHA256`), as pure functions.
//!
//! The client signs with [`sign`]; the emulator checks a received request with [`verify`]
//! over the very same canonical form. The algorithm follows the "V3 request structure and
//! signature" page and `darabonba-openapi-util` (`get_authorization`,
//! `get_canonical_query_string`, `get_canonicalized_headers`); the unit tests reproduce the
//! official example and the SDK vector byte for byte.
//!
//! Query values are encoded with the RFC 3986 unreserved set, so `InstanceIds=a,b` is signed
//! as `InstanceIds=a%2Cb`; the client sends exactly the canonical query string, so what is
//! signed is what goes on the wire.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet};

pub use crate::cloud::http::encode;
use crate::cloud::http::UNRESERVED;
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";
pub const DATE_HEADER: &str = "x-acs-date";
pub const NONCE_HEADER: &str = "x-acs-signature-nonce";
pub const CONTENT_SHA_HEADER: &str = "x-acs-content-sha256";
pub const ACTION_HEADER: &str = "x-acs-action";
pub const VERSION_HEADER: &str = "x-acs-version";

/// Headers every request must sign (besides any other `x-acs-*` it sends).
pub const REQUIRED_SIGNED: &[&str] = &[
    "host",
    ACTION_HEADER,
    CONTENT_SHA_HEADER,
    DATE_HEADER,
    NONCE_HEADER,
    VERSION_HEADER,
];

/// The same for paths, keeping `/`.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

type HmacSha256 = Hmac<Sha256>;

/// What is signed: the request as it goes on the wire.
#[derive(Clone, Copy, Debug)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// The path, not percent-encoded (e.g. `/pop/v1/sam/app/restartInstances`).
    pub path: &'a str,
    /// Decoded query parameters. Avoid empty values: the SDKs disagree on them (§5.4).
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign, exactly as sent (names in any case; repeated names allowed).
    pub headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex SHA-256 of the exact body bytes (the `x-acs-content-sha256` value).
    pub payload_hash: &'a str,
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

/// `yyyy-MM-ddTHH:mm:ssZ` in UTC, e.g. `2023-10-26T10:22:32Z`.
pub fn acs_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an `x-acs-date` value; `None` for anything malformed.
pub fn parse_acs_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// A fresh random nonce (32 hex characters), one per request.
pub fn new_nonce() -> String {
    std::iter::repeat_with(|| format!("{:016x}", fastrand::u64(..)))
        .take(2)
        .collect()
}

/// The path as signed and sent: percent-encoded, keeping `/` (an empty path stays empty).
pub fn canonical_uri(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Sorted by key (then value), each side encoded, joined with `&`; an empty value gives a
/// bare key, as the Python util does. This is also the query string the client sends.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs = query.to_vec();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                encode(k)
            } else {
                format!("{}={}", encode(k), encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical header block (`name:v1,v2\n` per lowercase name, values trimmed and sorted)
/// and the signed-headers list (`a;b;c`).
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut grouped: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (name, value) in headers {
        grouped
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut block = String::new();
    for (name, values) in &mut grouped {
        values.sort_unstable();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    let names = grouped.keys().cloned().collect::<Vec<_>>().join(";");
    (block, names)
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED_HEADERS\nPAYLOAD_HASH`. The header block ends with
/// its own newline, so there is an empty line before the signed-headers list.
pub fn canonical_request(input: &SigningInput<'_>) -> String {
    let (headers, signed) = canonical_headers(input.headers);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        canonical_uri(input.path),
        canonical_query(input.query),
        headers,
        signed,
        input.payload_hash
    )
}

/// `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request (no date or scope line).
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", hex_sha256(canonical_request.as_bytes()))
}

fn mac(secret: &str) -> Option<HmacSha256> {
    HmacSha256::new_from_slice(secret.as_bytes()).ok()
}

/// Lowercase hex HMAC-SHA256 of the string to sign, keyed with the AccessKey secret.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let Some(mut m) = mac(secret) else {
        return String::new();
    };
    m.update(string_to_sign.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// `ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex` (no spaces after commas).
pub fn authorization(access_key: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key},SignedHeaders={signed_headers},Signature={signature}"
    )
}

pub fn sign(access_key: &str, secret: &str, input: &SigningInput<'_>) -> Signed {
    let (_, signed_headers) = canonical_headers(input.headers);
    let sig = signature(secret, &string_to_sign(&canonical_request(input)));
    Signed {
        authorization: authorization(access_key, &signed_headers, &sig),
        signed_headers,
        signature: sig,
    }
}

/// Checks a claimed signature in constant time. `input.headers` must be the headers named
/// in `SignedHeaders`, with the values received.
pub fn verify(secret: &str, input: &SigningInput<'_>, claimed_hex: &str) -> bool {
    let Ok(claimed) = hex::decode(claimed_hex) else {
        return false;
    };
    let Some(mut m) = mac(secret) else {
        return false;
    };
    m.update(string_to_sign(&canonical_request(input)).as_bytes());
    m.verify_slice(&claimed).is_ok()
}

/// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`; `None` if malformed.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let rest = header.trim().strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut access, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let slot = match key {
            "Credential" => &mut access,
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

    // §5.3: the official V3 example (RunInstances on ECS).
    #[test]
    fn official_v3_example_byte_for_byte() {
        let headers = [
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", EMPTY_SHA),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
        ];
        let query = [
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ];
        let input = SigningInput {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: &hex_sha256(b""),
        };
        let expected = "POST\n/\n\
            ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
            host:ecs.cn-shanghai.aliyuncs.com\n\
            x-acs-action:RunInstances\n\
            x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-acs-date:2023-10-26T10:22:32Z\n\
            x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
            x-acs-version:2014-05-26\n\n\
            host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cr = canonical_request(&input);
        assert_eq!(cr, expected);
        assert_eq!(
            hex_sha256(cr.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            string_to_sign(&cr),
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let signed = sign("YourAccessKeyId", "YourAccessKeySecret", &input);
        assert_eq!(
            signed.signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert!(verify("YourAccessKeySecret", &input, &signed.signature));
        assert!(!verify("other", &input, &signed.signature));
        assert!(!verify("YourAccessKeySecret", &input, "zz"));
    }

    // §5.4: darabonba-openapi-util `test_get_authorization` (empty path, an empty query
    // value as a bare key, one header name given twice with its values sorted and joined).
    #[test]
    fn sdk_v3_vector() {
        let query = [("test", "ok"), ("empty", "")];
        let headers = [("x-acs-test", "http"), ("x-acs-TEST", "https")];
        let input = SigningInput {
            method: "GET",
            path: "",
            query: &query,
            headers: &headers,
            payload_hash: "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        };
        assert_eq!(canonical_query(&query), "empty&test=ok");
        assert_eq!(
            canonical_headers(&headers),
            (
                "x-acs-test:http,https\n".to_string(),
                "x-acs-test".to_string()
            )
        );
        assert_eq!(
            sign("acesskey", "secret", &input).authorization,
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
             Signature=da772425f29289d3460d5fc961455d40c5e8c6afd0888b78a910c991e6a14846"
        );
    }

    // §5.5: self-computed (NOT official) vector for the bot's own SAE request; a regression aid.
    #[test]
    fn sae_restart_regression_vector() {
        let headers = [
            ("host", "sae.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "RestartInstances"),
            ("x-acs-content-sha256", EMPTY_SHA),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2019-05-06"),
        ];
        let query = [
            ("InstanceIds", "inst-a,inst-b"),
            ("AppId", "1daa7236-3844-4f36-b39a-605b0cc0aaaa"),
        ];
        let input = SigningInput {
            method: "PUT",
            path: "/pop/v1/sam/app/restartInstances",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA,
        };
        assert_eq!(
            canonical_query(&query),
            "AppId=1daa7236-3844-4f36-b39a-605b0cc0aaaa&InstanceIds=inst-a%2Cinst-b"
        );
        assert_eq!(
            hex_sha256(canonical_request(&input).as_bytes()),
            "d96ca55bd58d23f897b231467cdde9b088adb7a0b95e2b62275a4ebd60d6a727"
        );
        assert_eq!(
            sign("ak", "testSecret", &input).signature,
            "60832b1a508e4ab107fed1cb93d48d64517ce2a3f93412217c1d0d9899ea43c4"
        );
    }

    #[test]
    fn encoding_follows_rfc3986() {
        assert_eq!(encode("a,b c*~/+"), "a%2Cb%20c%2A~%2F%2B");
        assert_eq!(encode("一"), "%E4%B8%80");
        assert_eq!(canonical_uri("/pop/v1/sam/a b"), "/pop/v1/sam/a%20b");
        assert_eq!(canonical_uri(""), "");
    }

    #[test]
    fn dates_round_trip_and_garbage_is_refused() {
        let t = time::macros::datetime!(2023-10-26 10:22:32 UTC);
        assert_eq!(acs_date(t), "2023-10-26T10:22:32Z");
        assert_eq!(parse_acs_date("2023-10-26T10:22:32Z"), Some(t));
        assert_eq!(parse_acs_date("20231026T102232Z"), None);
        assert_eq!(parse_acs_date(""), None);
        let n = new_nonce();
        assert_eq!(n.len(), 32);
        assert_ne!(n, new_nonce());
    }

    #[test]
    fn authorization_parses_and_rejects_malformed() {
        let p = parse_authorization(
            "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=abc",
        )
        .unwrap();
        assert_eq!(p.access, "AK");
        assert_eq!(p.signed_headers, ["host", "x-acs-date"]);
        assert_eq!(p.signature, "abc");
        for bad in [
            "",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256Credential=AK,SignedHeaders=host,Signature=abc",
            "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host",
            "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;;x,Signature=abc",
            "ACS3-HMAC-SHA256 Credential=AK,Credential=B,SignedHeaders=host,Signature=abc",
            "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host,Signature=abc,Extra=1",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=abc",
        ] {
            assert!(parse_authorization(bad).is_none(), "{bad}");
        }
    }
}
