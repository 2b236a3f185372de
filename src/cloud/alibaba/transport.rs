//! One HTTP exchange for the Alibaba and SCNet clients. Whether a failed call may have
//! reached the cloud is decided once, for every provider, in [`crate::cloud::http`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::cloud::http::{classify, read_body};
use crate::cloud::huawei::errors::excerpt;
use crate::cloud::CloudError;

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

pub use crate::cloud::http::SendError;

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
    let body = read_body(&mut resp, &host).await;
    Ok(Answer { status, body })
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
