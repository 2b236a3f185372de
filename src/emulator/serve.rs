//! What the SAE and SCNet emulators share with the Huawei one: the request as received,
//! call counting and logging, and injected faults (canned answers, delays, "acted but answered late").

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;

use super::auth::decode_query;
use super::reply::Reply;
use super::state::Shared;
use super::{Incoming, MAX_REQUEST_BODY};

/// Reads the whole request, or `None` if the body is too large.
pub async fn incoming(req: Request) -> Option<Incoming> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY).await.ok()?;
    Some(Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    })
}

pub fn too_large() -> Reply {
    Reply::admin_error(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large")
}

/// The resource a call names in its query, for the call log: the values of `keys` joined
/// by `/` (a missing key counts as empty).
pub fn query_target(req: &Incoming, keys: &[&str]) -> String {
    let query = decode_query(req.query.as_deref().unwrap_or("")).unwrap_or_default();
    let value = |key: &&str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    };
    keys.iter().map(value).collect::<Vec<_>>().join("/")
}

/// Counts the call, logs it if it mutates (`target` is what it acts on), applies the first
/// queued fault for `operation` (if any), and otherwise answers with `handle`. With
/// `execute`, `handle` runs before the delay, as a request that took effect but whose
/// answer came too late.
pub async fn with_faults(
    shared: &Arc<Shared>,
    operation: &'static str,
    target: Option<String>,
    mut handle: impl FnMut() -> Reply,
) -> Reply {
    let fault = {
        let mut s = shared.lock();
        s.count(operation);
        if let Some(target) = target {
            s.log_call(operation, target);
        }
        s.take_fault(operation)
    };
    let reply = match fault {
        None => handle(),
        Some(fault) => {
            let real = fault.execute.then(&mut handle);
            tokio::time::sleep(fault.delay).await;
            match (fault.reply(), real) {
                (Some(canned), _) => canned,
                (None, Some(real)) => real,
                (None, None) => handle(),
            }
        }
    };
    tracing::debug!(
        operation,
        status = reply.status.as_u16(),
        "emulator answered"
    );
    reply
}

/// A header as text, if present and readable.
pub fn header<'a>(req: &'a Incoming, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}
