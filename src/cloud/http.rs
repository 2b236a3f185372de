//! What every cloud transport shares: the one place that decides, from a failed HTTP call,
//! whether the request provably never reached the cloud or may have. "At most once" rests on
//! this distinction, so it lives here once.

use std::fmt;

use bytes::{Bytes, BytesMut};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::CloudError;

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

/// Sorts a failed `send()`. A connect failure happens before a byte of the request is
/// written; anything later, and any timeout (reqwest cannot say whether it struck while
/// connecting), may come after the cloud acted.
pub fn classify(e: &reqwest::Error, host: &str) -> SendError {
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
pub async fn read_body(resp: &mut reqwest::Response, host: &str) -> Bytes {
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
