//! One HTTP exchange for the Alibaba and SCNet clients, with the distinction "at most once"
//! rests on: did the request provably never reach the cloud, or may it have?
//!
//! Same rules as the Huawei transport: a connect failure happens before a byte of the
//! request is written ([`SendError::NotSent`], safe to retry); a timeout or a connection
//! dropped later may come after the cloud acted ([`SendError::Indeterminate`], never
//! re-sent). A timeout counts as indeterminate even while connecting: reqwest cannot say
//! which, and guessing wrong would run a restart twice.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::cloud::huawei::errors::excerpt;
use crate::cloud::CloudError;

/// Answers larger than this are cut; real ones are a few kilobytes.
const MAX_BODY: usize = 1 << 20;

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
        // The body may hold a token (SCNet token answers); show only a sanitized excerpt.
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &excerpt(&self.body))
            .finish()
    }
}

/// Why no answer was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request provably never reached the service. Retrying is safe.
    NotSent(String),
    /// Nothing was sent and retrying will not help (missing secret, bad endpoint, refused
    /// credentials).
    Failed(CloudError),
    /// The request may have reached the service. It must never be re-sent.
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

/// A request ready to go. Header values holding credentials are marked sensitive.
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// `host[:port]` exactly as the `Host` header carries it (port only when not the default).
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

pub async fn exchange(http: &reqwest::Client, out: Outgoing) -> Result<Answer, SendError> {
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
    Ok(Answer {
        status,
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

    #[tokio::test]
    async fn refused_connection_is_not_sent() {
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
            other => panic!("expected NotSent, got {other:?}"),
        }
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
