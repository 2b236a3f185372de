//! A team's own HTTP API, as a declared operation on an HTTP account would call it: restart
//! a named service (`POST /ops/v1/services/{name}/restart`, answered 202 with
//! `{"operation": {"id": ...}}`) and show that operation (`GET /ops/v1/operations/{id}`:
//! `state` running, then done). It checks what each authentication sends: `Authorization:
//! Bearer <demo::TEAM_TOKEN>` or `X-Api-Key: <demo::TEAM_TOKEN>`; the same paths under
//! `/ops/v1/public/` take no credentials. Errors are `{"code", "message"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::demo;
use super::reply::Reply;
use super::serve::{incoming, too_large, with_faults};
use super::state::{new_job_id, Shared};

struct TeamEmu {
    shared: Arc<Shared>,
    /// Operation ID -> (service, started, how long it runs).
    operations: Mutex<HashMap<String, (String, Instant, Duration)>>,
}

pub fn router<S>(shared: Arc<Shared>) -> Router<S> {
    let emu = Arc::new(TeamEmu {
        shared,
        operations: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/ops/v1/services/{name}/restart", post(restart_private))
        .route(
            "/ops/v1/public/services/{name}/restart",
            post(restart_public),
        )
        .route("/ops/v1/operations/{id}", get(show_private))
        .route("/ops/v1/public/operations/{id}", get(show_public))
        .with_state(emu)
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"code": code, "message": message}))
}

/// `Ok` when the request carries the team's token as a bearer token or an API key header.
fn authorized(headers: &HeaderMap) -> Result<(), Reply> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer "));
    if bearer == Some(demo::TEAM_TOKEN) || header("x-api-key") == Some(demo::TEAM_TOKEN) {
        return Ok(());
    }
    Err(error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "a valid bearer token or X-Api-Key is required",
    ))
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn restart(emu: Arc<TeamEmu>, name: String, req: Request, private: bool) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    with_faults(&shared, "team.restart", Some(name.clone()), || {
        if private {
            if let Err(refused) = authorized(&req.headers) {
                return refused;
            }
        }
        if !name_ok(&name) {
            return error(StatusCode::BAD_REQUEST, "BadName", "no such service name");
        }
        if !req.body.is_empty() && serde_json::from_slice::<Value>(&req.body).is_err() {
            return error(StatusCode::BAD_REQUEST, "BadBody", "the body is not JSON");
        }
        let id = format!("op-{}", new_job_id());
        let duration = emu.shared.lock().job_duration;
        emu.operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), (name.clone(), Instant::now(), duration));
        Reply::json(StatusCode::ACCEPTED, json!({"operation": {"id": id}}))
    })
    .await
    .into_response()
}

async fn show(emu: Arc<TeamEmu>, id: String, headers: HeaderMap, private: bool) -> Response {
    let shared = emu.shared.clone();
    with_faults(&shared, "team.operation", None, || {
        if private {
            if let Err(refused) = authorized(&headers) {
                return refused;
            }
        }
        let ops = emu.operations.lock().unwrap_or_else(|e| e.into_inner());
        let Some((service, started, duration)) = ops.get(&id) else {
            return error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        let state = if started.elapsed() >= *duration {
            "done"
        } else {
            "running"
        };
        Reply::json(
            StatusCode::OK,
            json!({"id": id, "service": service, "state": state}),
        )
    })
    .await
    .into_response()
}

async fn restart_private(
    State(emu): State<Arc<TeamEmu>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    restart(emu, name, req, true).await
}

async fn restart_public(
    State(emu): State<Arc<TeamEmu>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    restart(emu, name, req, false).await
}

async fn show_private(
    State(emu): State<Arc<TeamEmu>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    show(emu, id, headers, true).await
}

async fn show_public(
    State(emu): State<Arc<TeamEmu>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    show(emu, id, headers, false).await
}
