//! The local HTTP endpoint: `/healthz`, `/readyz`, `/metrics`, and a read-only job API used
//! by `opsgate jobs` / `opsgate audit` / `opsgate backup` while the bot holds the data
//! directory.
//!
//! The job API serves job specs, requesters and audit text, so it is guarded: with a token
//! configured it asks for `Authorization: Bearer TOKEN`; without one it answers only to
//! loopback connections (the same host, or the same pod). Probes and metrics stay open.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::domain::{JobId, UserId};
use crate::job::JobFilter;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::store::Archive;

/// What `/healthz` and `/readyz` report.
#[derive(Default)]
pub struct Health {
    /// The engine runs and holds the store.
    pub store_open: AtomicBool,
    /// The chat side takes commands (the shell reads input; Discord's gateway is ready).
    pub chat_ready: AtomicBool,
    /// This replica waits for the lead (PostgreSQL): it takes no input, and is ready to
    /// take over.
    pub standby: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    /// The job API's bearer token, if configured.
    api_token: Option<Secret>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    store: Arc<dyn Archive>,
    /// Overrides `chat_ready` with a live probe (Discord's gateway state).
    chat_probe: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

#[derive(Deserialize)]
struct JobsQuery {
    filter: Option<String>,
    limit: Option<usize>,
}

pub struct Server {
    pub addr: SocketAddr,
}

/// Starts the endpoint on `addr` (port 0 picks one) and returns where it listens.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    store: Arc<dyn Archive>,
    chat_probe: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    api_token: Option<Secret>,
) -> std::io::Result<Server> {
    let state = AppState {
        api_token,
        health,
        metrics,
        store,
        chat_probe,
    };
    let api = Router::new()
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/audit", get(audit))
        .route("/api/audit", get(audit_export))
        .route("/api/backup", get(backup))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(api)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http endpoint stopped");
        }
    });
    Ok(Server { addr })
}

/// Says where the endpoint listens, whatever the log filter: tests and scripts wait for
/// this line (`opsgate: http endpoint listening on ADDR`, or its JSON form).
pub fn announce(addr: SocketAddr) {
    super::logging::line(
        super::logging::Level::Info,
        &format!("http endpoint listening on {addr}"),
    );
}

/// The job API's door: the bearer token when one is configured, else loopback peers only.
async fn guard(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match admit(s.api_token.as_ref(), given, peer) {
        Ok(()) => next.run(request).await,
        Err(StatusCode::UNAUTHORIZED) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the job API needs its bearer token\n",
        )
            .into_response(),
        Err(status) => (
            status,
            "the job API has no token configured and answers only on this host\n",
        )
            .into_response(),
    }
}

/// Whether a job API request may pass: with a token, only `Authorization: Bearer TOKEN`
/// (401 otherwise, wherever it comes from); without one, only a loopback peer (403).
fn admit(
    token: Option<&Secret>,
    authorization: Option<&str>,
    peer: SocketAddr,
) -> Result<(), StatusCode> {
    match token {
        Some(token) => {
            let given = authorization.and_then(|v| v.strip_prefix("Bearer "));
            if given.is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes())) {
                Ok(())
            } else {
                Err(StatusCode::UNAUTHORIZED)
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(StatusCode::FORBIDDEN),
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing about
/// how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz(State(s): State<AppState>) -> Response {
    if s.health.store_open.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store closed\n").into_response()
    }
}

/// 200 `leader` once the store is open and chat connected; 200 `standby` while this
/// replica waits to take over (it is healthy and ready to); 503 otherwise.
async fn readyz(State(s): State<AppState>) -> Response {
    if s.health.standby.load(Ordering::Relaxed) {
        return (StatusCode::OK, "standby\n").into_response();
    }
    let store = s.health.store_open.load(Ordering::Relaxed);
    let chat = match &s.chat_probe {
        Some(probe) => probe(),
        None => s.health.chat_ready.load(Ordering::Relaxed),
    };
    match (store, chat) {
        (true, true) => (StatusCode::OK, "leader\n").into_response(),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "store closed\n").into_response(),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "chat not connected\n").into_response(),
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn jobs(State(s): State<AppState>, Query(q): Query<JobsQuery>) -> Response {
    let Some(filter) =
        JobFilter::parse(q.filter.as_deref().unwrap_or("active")).filter(|f| *f != JobFilter::Mine)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "filter must be active, pending, running, review or all\n",
        )
            .into_response();
    };
    let limit = q.limit.unwrap_or(50).min(1000);
    let store = s.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.recent_jobs(limit, 100_000, &|j| filter.keeps(j, &UserId::default()))
    })
    .await;
    match result {
        Ok(Ok(jobs)) => Json(jobs).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "could not read jobs\n").into_response(),
    }
}

async fn job(State(s): State<AppState>, Path(id): Path<JobId>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.job(id)).await {
        Ok(Ok(Some(job))) => Json(job).into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, format!("no job {id}\n")).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not read the job\n",
        )
            .into_response(),
    }
}

async fn audit(State(s): State<AppState>, Path(id): Path<JobId>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.audit(id)).await {
        Ok(Ok(entries)) => Json(entries).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not read the audit log\n",
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct ExportQuery {
    since: Option<u64>,
}

/// `opsgate audit export` while the bot holds the directory: JSON lines.
async fn audit_export(State(s): State<AppState>, Query(q): Query<ExportQuery>) -> Response {
    let store = s.store.clone();
    let since = q.since.unwrap_or(0);
    let lines =
        tokio::task::spawn_blocking(move || super::jobs_cli::export_lines(store.as_ref(), since))
            .await;
    match lines {
        Ok(Ok(lines)) => ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not read the audit log\n",
        )
            .into_response(),
    }
}

/// A consistent backup of the store (`opsgate backup` while the bot runs). Written to a
/// temporary file first, so that the store's writer lock is held only for local disk writes,
/// never while a slow client reads.
async fn backup(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let file = tempfile::tempfile()?;
        let summary = store.backup(&mut &file).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((file, summary))
    })
    .await;
    let (mut file, summary) = match written {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "backup failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup failed: {e}\n"),
            )
                .into_response();
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "backup failed\n").into_response(),
    };
    if let Err(e) = std::io::Seek::rewind(&mut file) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup failed: {e}\n"),
        )
            .into_response();
    }
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    let summary = serde_json::to_string(&summary).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::HeaderName::from_static("x-opsgate-backup"), summary),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_api_admits_the_token_or_without_one_only_loopback() {
        let token = Secret::new("t0ken");
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(admit(Some(&token), Some("Bearer t0ken"), remote), Ok(()));
        assert_eq!(
            admit(Some(&token), Some("Bearer t0ke"), local),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            admit(Some(&token), Some("t0ken"), local),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            admit(Some(&token), None, local),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(admit(None, None, local), Ok(()));
        assert_eq!(admit(None, None, v6), Ok(()));
        assert_eq!(
            admit(None, Some("Bearer x"), remote),
            Err(StatusCode::FORBIDDEN)
        );
    }
}
