//! One HTTP exchange for the Huawei clients: URL, headers and timeout in, the cloud's
//! answer out. Whether a failed call may have reached the cloud is decided once, for every
//! provider, in [`crate::cloud::http`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::cloud::http::{classify, read_body};
use crate::cloud::CloudError;

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

pub use crate::cloud::http::SendError;

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
    let body = read_body(&mut resp, &host).await;
    Ok(Received {
        status,
        headers,
        body,
    })
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
