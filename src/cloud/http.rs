//! What every cloud client shares: one HTTP exchange (request in, answer out), the one
//! place that decides from a failed call whether the request provably never reached the
//! cloud or may have ("at most once" rests on this), and vendor text made safe to show.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::ports::cloud::CloudError;

/// A resolved base URL (no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub base: String,
    /// True when the config overrode the vendor's public host (an emulator or a private
    /// cloud). Such endpoints may be polled faster than the public ones.
    pub overridden: bool,
}

impl Endpoint {
    /// The URL a request goes to, and the full path that is signed: the base (which may
    /// carry a path prefix, on private clouds) with `path` and `query` encoded as the
    /// vendor's signer canonicalises them.
    pub fn wire_url(
        &self,
        path: &str,
        query: &[(&str, &str)],
        encode_path: fn(&str) -> String,
        encode_query: fn(&[(&str, &str)]) -> String,
    ) -> Result<(Url, String), String> {
        let mut url =
            Url::parse(&self.base).map_err(|e| format!("bad endpoint `{}`: {e}", self.base))?;
        let full_path = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&encode_path(&full_path));
        let query_string = encode_query(query);
        url.set_query((!query_string.is_empty()).then_some(query_string.as_str()));
        Ok((url, full_path))
    }
}

/// Answers larger than this are cut; real ones are a few kilobytes.
const MAX_BODY: usize = 1 << 20;

/// Why no answer was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request provably never reached the service (connection refused, DNS, no token
    /// could be had). Nothing happened; retrying is safe.
    NotSent(String),
    /// Nothing was sent and retrying will not help: a missing secret, an unknown endpoint,
    /// or refused credentials.
    Failed(CloudError),
    /// The request may have reached the service (timeout, connection reset after writing).
    /// It must never be re-sent.
    Indeterminate(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotSent(m) => write!(f, "not sent: {m}"),
            SendError::Failed(e) => write!(f, "{e}"),
            SendError::Indeterminate(m) => write!(f, "no answer: {m}"),
        }
    }
}

/// A request ready to go. Header values that hold credentials are marked sensitive.
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What was received, with its headers (IAM's token comes in `X-Subject-Token`). The headers
/// may hold a token, so this type has no `Debug`: turn it into an [`Answer`] to pass it on.
pub struct Received {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn into_answer(self) -> Answer {
        Answer {
            status: self.status,
            body: self.body,
        }
    }
}

/// An HTTP answer: the request reached the cloud and it said something.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or `None` if it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may hold a token (SCNet's token answers); show a sanitized excerpt only.
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &excerpt(&self.body))
            .finish()
    }
}

/// `host[:port]` exactly as the `Host` header carries it (the port only when it is not the
/// scheme's default), so that a signed value is the sent value.
pub fn host_header(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// A header value, or a local error that does not echo the (possibly secret) value.
pub fn header_value(v: &str) -> Result<HeaderValue, SendError> {
    HeaderValue::from_str(v).map_err(|_| {
        SendError::Failed(CloudError::local(
            "a credential or header contains characters not allowed in HTTP headers",
        ))
    })
}

/// The same, marked sensitive so it never shows in debug output.
pub fn secret_header(v: &str) -> Result<HeaderValue, SendError> {
    let mut value = header_value(v)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Most requests in flight at once per provider: as many as the idle connections kept per
/// host (`registry.rs`), so a burst of jobs reuses the same few connections instead of
/// opening and closing new ones (with 16 in flight and 4 kept, a burst of 1,000 opened 425),
/// which bounds memory and is kinder to the vendor's API.
pub const REQUESTS_IN_FLIGHT: usize = 4;

/// One provider's HTTP client: kept-alive connections shared by its accounts, and a bound
/// on its requests in flight. A slot is held for one request only, never across a retry's
/// backoff sleep, so a throttled operation cannot starve the provider's other operations
/// and polls.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Http {
    pub fn new(client: reqwest::Client, in_flight: usize) -> Http {
        Http {
            client,
            slots: Arc::new(tokio::sync::Semaphore::new(in_flight)),
        }
    }
}

impl From<reqwest::Client> for Http {
    fn from(client: reqwest::Client) -> Http {
        Http::new(client, REQUESTS_IN_FLIGHT)
    }
}

/// Sends one request and reads its answer (bounded), or says whether it may have arrived.
/// Waits for one of the provider's slots first (see [`Http`]).
pub async fn exchange(http: &Http, out: Outgoing) -> Result<Received, SendError> {
    // The semaphore is never closed; if it were, the request would go unbounded.
    let _slot = http.slots.acquire().await.ok();
    let host = host_header(&out.url).unwrap_or_default();
    // An empty body is sent with no length at all unless one is set; RFC 9110 §8.6 asks
    // for `Content-Length: 0` on a POST or PUT without content, as the vendors' SDKs send
    // it, and some gateways answer 411 without it.
    let needs_length =
        out.body.is_empty() && matches!(out.method, Method::POST | Method::PUT | Method::PATCH);
    let mut req = http
        .client
        .request(out.method, out.url)
        .timeout(out.timeout)
        .body(out.body);
    if needs_length {
        req = req.header(reqwest::header::CONTENT_LENGTH, "0");
    }
    for (name, value) in out.headers {
        req = req.header(name, value);
    }
    let mut resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return Err(classify(&e, &host)),
    };
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
    let body = read_body(&mut resp, &host).await;
    Ok(Received {
        status,
        headers,
        body,
    })
}

/// Sorts a failed `send()`. A connect failure happens before a byte of the request is
/// written; anything later, and any timeout (reqwest cannot say whether it struck while
/// connecting), may come after the cloud acted.
fn classify(e: &reqwest::Error, host: &str) -> SendError {
    let cause = root_cause(e);
    if e.is_builder() {
        SendError::Failed(CloudError::local(format!(
            "could not build the request to {host}: {cause}"
        )))
    } else if e.is_connect() {
        SendError::NotSent(format!("could not connect to {host}: {cause}"))
    } else if e.is_timeout() {
        SendError::Indeterminate(format!("{host} did not answer in time"))
    } else {
        SendError::Indeterminate(format!("the connection to {host} failed: {cause}"))
    }
}

/// Reads an answer's body, at most `MAX_BODY` bytes. The status line is in, so the cloud has
/// answered: a body that breaks off is kept as far as it got, and callers judge an unreadable
/// body by its status.
async fn read_body(resp: &mut reqwest::Response, host: &str) -> Bytes {
    let status = resp.status().as_u16();
    let mut body = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%host, status, error = %root_cause(&e), "answer body cut short");
                break;
            }
        }
    }
    body.freeze()
}

/// The innermost error message (e.g. "Connection refused (os error 111)"); reqwest's own
/// top-level text is generic.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// RFC 3986 unreserved characters stay as they are; every other byte becomes `%XX`. Both
/// vendors' signatures canonicalise with this set.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes with the RFC 3986 unreserved set (space `%20`, `/` `%2F`, `,` `%2C`).
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Longest excerpt of an unreadable body that is shown to users.
const EXCERPT_CHARS: usize = 120;
/// Longest vendor message kept; real ones are a sentence.
const MESSAGE_CHARS: usize = 500;
/// Words longer than this in an unreadable body are not shown (see [`excerpt`]).
const LONG_WORD: usize = 64;

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
    fn host_header_includes_only_non_default_ports() {
        let h = |u: &str| host_header(&Url::parse(u).unwrap()).unwrap();
        assert_eq!(
            h("https://ddm.cn-north-4.myhuaweicloud.com/v1"),
            "ddm.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(h("https://example.com:443/"), "example.com");
        assert_eq!(h("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
    }

    #[tokio::test]
    async fn refused_connection_is_not_sent() {
        // Bind then drop a listener to get a port that refuses connections.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let out = Outgoing {
            method: Method::GET,
            url: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(5),
        };
        match exchange(&reqwest::Client::new().into(), out).await {
            Err(SendError::NotSent(m)) => assert!(m.contains("127.0.0.1"), "{m}"),
            Err(other) => panic!("expected NotSent, got {other:?}"),
            Ok(r) => panic!("expected NotSent, got HTTP {}", r.status),
        }
    }

    #[tokio::test]
    async fn a_bodyless_post_says_content_length_0() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        let out = Outgoing {
            method: Method::POST,
            url: Url::parse(&format!("http://127.0.0.1:{port}/restart")).unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(5),
        };
        assert!(exchange(&reqwest::Client::new().into(), out).await.is_ok());
        let head = server.await.unwrap();
        assert!(head.contains("content-length: 0\r\n"), "{head}");
    }

    #[test]
    fn debug_never_shows_long_words() {
        let a = Answer {
            status: 200,
            body: Bytes::from(format!("{{\"token\":\"{}\"}}", "x".repeat(300))),
        };
        assert!(!format!("{a:?}").contains(&"x".repeat(100)));
    }
}
