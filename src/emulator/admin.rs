//! The emulator's own control API under `/_emulator/`, for tests and the demo: queue
//! faults, read call counts and the log of mutating calls, revoke tokens, change timings,
//! add credentials, and force an instance into a status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::faults::FaultSpec;
use super::reply::Reply;
use super::state::{Shared, MAX_JOB_DURATION, MAX_TOKEN_TTL};
use crate::command::ids;

type S = AxState<Arc<Shared>>;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/calls", get(calls).delete(reset_calls))
        .route("/calls/log", get(call_log))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/settings", get(show_settings).post(settings))
        .route("/users", post(add_user))
        .route("/access-keys", post(add_access_key))
        .route("/instances", post(set_instance))
}

/// Parses a JSON body, answering 400 with the reason instead of axum's plain-text rejection.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::admin_error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

fn ok() -> Reply {
    Reply::json(StatusCode::OK, json!({"ok": true}))
}

async fn healthz() -> Reply {
    ok()
}

async fn add_fault(AxState(shared): S, body: Bytes) -> Reply {
    let spec: FaultSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match spec.validate() {
        Ok(fault) => {
            let mut s = shared.lock();
            s.faults.push(fault);
            Reply::json(StatusCode::OK, json!({"queued": s.faults.len()}))
        }
        Err(e) => Reply::admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_faults(AxState(shared): S) -> Reply {
    shared.lock().faults.clear();
    ok()
}

async fn calls(AxState(shared): S) -> Reply {
    Reply::json(StatusCode::OK, json!(shared.lock().calls))
}

/// Every mutating call so far, in order: `[{"operation": "ddm.restart", "target": ID}, ...]`.
async fn call_log(AxState(shared): S) -> Reply {
    Reply::json(StatusCode::OK, json!(shared.lock().call_log))
}

async fn reset_calls(AxState(shared): S) -> Reply {
    let mut s = shared.lock();
    s.calls.clear();
    s.call_log.clear();
    ok()
}

async fn revoke_tokens(AxState(shared): S) -> Reply {
    let mut s = shared.lock();
    for t in s.tokens.values_mut() {
        t.revoked = true;
    }
    Reply::json(StatusCode::OK, json!({"revoked": s.tokens.len()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    job_duration_ms: Option<u64>,
    token_ttl_ms: Option<u64>,
}

fn settings_reply(job_duration: Duration, token_ttl: Duration) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({
            "job_duration_ms": job_duration.as_millis() as u64,
            "token_ttl_ms": token_ttl.as_millis() as u64,
        }),
    )
}

async fn show_settings(AxState(shared): S) -> Reply {
    let s = shared.lock();
    settings_reply(s.job_duration, s.token_ttl)
}

async fn settings(AxState(shared): S, body: Bytes) -> Reply {
    let new: Settings = match parse(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut s = shared.lock();
    if let Some(ms) = new.job_duration_ms {
        s.job_duration = Duration::from_millis(ms).min(MAX_JOB_DURATION);
    }
    if let Some(ms) = new.token_ttl_ms {
        s.token_ttl = Duration::from_millis(ms).min(MAX_TOKEN_TTL);
    }
    settings_reply(s.job_duration, s.token_ttl)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    domain: String,
    name: String,
    password: String,
}

async fn add_user(AxState(shared): S, body: Bytes) -> Reply {
    let u: User = match parse(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    shared.lock().users.insert((u.domain, u.name), u.password);
    ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKey {
    access_key: String,
    secret_key: String,
}

async fn add_access_key(AxState(shared): S, body: Bytes) -> Reply {
    let k: AccessKey = match parse(&body) {
        Ok(k) => k,
        Err(r) => return r,
    };
    if k.access_key.is_empty() {
        return Reply::admin_error(StatusCode::BAD_REQUEST, "access_key must not be empty");
    }
    shared.lock().keys.insert(k.access_key, k.secret_key);
    ok()
}

/// DDM instance statuses from the "Status Description" page.
const STATUSES: &[&str] = &[
    "CREATING",
    "CREATEFAILED",
    "RUNNING",
    "ERROR",
    "RESTARTING",
    "FREEZING",
    "FROZEN",
    "UNFREEZING",
    "RESIZING",
    "UPGRADE_VERSION_INSTANCE",
    "ROLL_BACK_DB_VERSION",
    "GROWING",
    "REDUCING",
    "RESTORE",
    "BACKUP",
    "MODIFY_NAME",
    "MIGRATE_DATABASE",
    "RESET_PASSWORD",
    "ONDEMAND_TO_PERIOD",
    "PERIOD_RESOURCE_SPEC_CHG",
    "SET_CONFIGURATION",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetInstance {
    instance_id: String,
    status: String,
}

/// Forces a status until the next restart; `RUNNING` returns the instance to normal.
async fn set_instance(AxState(shared): S, body: Bytes) -> Reply {
    let req: SetInstance = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !ids::DDM_INSTANCE.matches(&req.instance_id) {
        return Reply::admin_error(
            StatusCode::BAD_REQUEST,
            ids::DDM_INSTANCE.describe.to_string(),
        );
    }
    if !STATUSES.contains(&req.status.as_str()) {
        return Reply::admin_error(
            StatusCode::BAD_REQUEST,
            format!("unknown status (one of: {})", STATUSES.join(", ")),
        );
    }
    let mut s = shared.lock();
    let now = Instant::now();
    let instance = s.instance(&req.instance_id);
    instance.restarting_until = None;
    instance.forced = (req.status != "RUNNING").then_some(req.status);
    Reply::json(
        StatusCode::OK,
        json!({"instance_id": req.instance_id, "status": instance.status(now)}),
    )
}
