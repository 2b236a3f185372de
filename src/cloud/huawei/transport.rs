//! One HTTP exchange, and the one distinction that makes "at most once" possible: did the
//! request provably never reach the cloud, or may it have?
//!
//! A connect failure (refused, DNS, TLS handshake) happens before a byte of the request is
//! written, so it is [`SendError::NotSent`] and safe to retry. A timeout or a connection
//! dropped later may come after the cloud acted, so it is [`SendError::Indeterminate`] and
//! must never be re-sent. A timeout is treated as indeterminate even if it fired while
//! still connecting: reqwest cannot tell us which, and guessing wrong would double-run.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::cloud::CloudError;

/// Answers larger than this are cut; a real Huawei answer is a few kilobytes.
const MAX_BODY: usize = 1 << 20;

/// An HTTP answer from the cloud: the request reached it and it said something.
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

    /// The vendor error this answer carries, verbatim.
    pub fn error(&self) -> CloudError {
        super::errors::vendor_error(self.status, &self.body)
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &super::errors::excerpt(&self.body))
            .finish()
    }
}

/// Why no answer was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request provably never reached the service (connection refused, DNS, IAM could
    /// not issue a token). Nothing happened; retrying is safe.
    NotSent(String),
    /// Nothing was sent and retrying will not help: a missing secret, an unknown endpoint,
    /// or IAM refusing the credentials.
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

/// What was received, with headers (needed for IAM's `X-Subject-Token`). Kept inside the
/// client: the headers may hold a token, so this type is never printed.
pub(super) struct Received {
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

/// A request ready to go. Header values are marked sensitive where they hold credentials.
pub(super) struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// `host[:port]` exactly as it goes in the `Host` header (the port only when it is not the
/// scheme's default), so the signed value is the sent value.
pub(super) fn host_header(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

pub(super) async fn exchange(http: &reqwest::Client, out: Outgoing) -> Result<Received, SendError> {
    let host = host_header(&out.url).unwrap_or_default();
    let mut req = http
        .request(out.method, out.url)
        .timeout(out.timeout)
        .body(out.body);
    for (name, value) in out.headers {
        req = req.header(name, value);
    }
    let mut resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return Err(classify(&e, &host)),
    };
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
    // The status line is in: the cloud has answered. A body that breaks off is kept as far
    // as it got; callers treat an unreadable body by its status.
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
    Ok(Received {
        status,
        headers,
        body: body.freeze(),
    })
}

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

/// The innermost error message (e.g. "Connection refused (os error 111)"); reqwest's own
/// top-level text is generic.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
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
        match exchange(&reqwest::Client::new(), out).await {
            Err(SendError::NotSent(m)) => assert!(m.contains("127.0.0.1"), "{m}"),
            Err(other) => panic!("expected NotSent, got {other:?}"),
            Ok(r) => panic!("expected NotSent, got HTTP {}", r.status),
        }
    }
}
