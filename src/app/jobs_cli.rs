//! `opsgate jobs` and `opsgate audit`: read from a private copy of the data directory (they
//! never create or change one), or, while a running bot holds it (sled allows one process),
//! through that bot's local HTTP endpoint.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::command::Catalog;
use crate::config::Config;
use crate::domain::time::format_utc;
use crate::domain::{JobId, UserId};
use crate::job::AuditEntry;
use crate::job::Job;
use crate::job::JobFilter;
use crate::secret::Secret;
use crate::store::postgres::PgReader;
use crate::store::{Archive, ReadOnly, StoreError};

pub enum Source {
    /// A private copy of the data directory (sled, while no bot holds it).
    Store(ReadOnly),
    /// The database (PostgreSQL), read directly whether or not replicas run.
    Database(Box<PgReader>),
    /// The running bot that holds the data directory (sled).
    Http(ApiEndpoint),
}

impl Source {
    /// The store to read, or the running bot to ask over HTTP.
    pub fn archive(&self) -> Result<&dyn Archive, &ApiEndpoint> {
        match self {
            Source::Store(copy) => Ok(&copy.store),
            Source::Database(reader) => Ok(reader.as_ref()),
            Source::Http(api) => Err(api),
        }
    }
}

/// The running bot's job API: where it listens and the bearer token it asks for.
pub struct ApiEndpoint {
    pub addr: SocketAddr,
    pub token: Option<Secret>,
}

impl ApiEndpoint {
    /// The config's `[http] listen` (an unspecified address such as 0.0.0.0 means this
    /// host) and its `api_token`; `None` without an address.
    pub fn of(config: &Config) -> Option<ApiEndpoint> {
        config.http_listen.map(|addr| ApiEndpoint {
            addr: local(addr),
            token: config.api_token.value.clone(),
        })
    }

    /// A GET of `path` with the token, when there is one.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().get(format!("http://{}{path}", self.addr));
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }
}

/// An address to connect to for a listen address: 0.0.0.0 and [::] become loopback.
pub fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The database of a config whose `[store]` is PostgreSQL.
pub fn database(pg: &crate::config::store::Postgres) -> Result<Source, String> {
    let url = pg.url.require("the PostgreSQL connection string")?;
    let url = crate::store::postgres::Url::parse(url.expose())?;
    Ok(Source::Database(Box::new(PgReader::new(url))))
}

/// Opens a copy of the data directory, or falls back to the running bot's endpoint (also
/// used by `opsgate backup`).
pub fn source(data: PathBuf, http: Option<ApiEndpoint>) -> Result<Source, String> {
    match ReadOnly::open(&data) {
        Ok(copy) => Ok(Source::Store(copy)),
        Err(StoreError::Locked(_)) => match http {
            Some(api) => Ok(Source::Http(api)),
            None => Err(format!(
                "{} is held by a running opsgate and the config has no [http] listen address to ask it through",
                data.display()
            )),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// `Ok(None)` when the bot answers 404.
fn get<T: serde::de::DeserializeOwned>(
    rt: &tokio::runtime::Runtime,
    api: &ApiEndpoint,
    path: &str,
) -> Result<Option<T>, String> {
    rt.block_on(async {
        let Some(resp) = answer(api, path).await? else {
            return Ok(None);
        };
        resp.json::<T>()
            .await
            .map(Some)
            .map_err(|e| format!("unreadable answer from the running bot: {e}"))
    })
}

/// The bot's successful answer to a GET of `path`; `Ok(None)` when it answers 404, an
/// error saying why for any other failure.
async fn answer(api: &ApiEndpoint, path: &str) -> Result<Option<reqwest::Response>, String> {
    let resp = (api.get(path).send().await)
        .map_err(|e| format!("cannot reach the running bot at {}: {e}", api.addr))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if let Some(refusal) = refused(resp.status()) {
        return Err(refusal);
    }
    if !resp.status().is_success() {
        return Err(format!(
            "the running bot answered {} for {path}",
            resp.status()
        ));
    }
    Ok(Some(resp))
}

/// What to say when the job API refuses us for want of the token.
pub fn refused(status: reqwest::StatusCode) -> Option<String> {
    match status {
        reqwest::StatusCode::UNAUTHORIZED => Some(
            "the running bot refused the job API token: set the same OPSGATE_API_TOKEN \
             (or [http] api_token_env / api_token_file) as the bot"
                .to_string(),
        ),
        reqwest::StatusCode::FORBIDDEN => Some(
            "the running bot's job API answers only on this host without a token: \
             set OPSGATE_API_TOKEN (or [http] api_token_env / api_token_file) for both"
                .to_string(),
        ),
        _ => None,
    }
}

pub fn jobs(
    source: &Source,
    catalog: &Catalog,
    filter: JobFilter,
    limit: usize,
    json: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let jobs: Vec<Job> = match source.archive() {
        Ok(store) => store
            .recent_jobs(limit, usize::MAX, &|j| filter.keeps(j, &UserId::default()))
            .map_err(|e| e.to_string())?,
        Err(addr) => {
            let name = match filter {
                JobFilter::Pending => "pending",
                JobFilter::Running => "running",
                JobFilter::All | JobFilter::Mine => "all",
                JobFilter::Active => "active",
                JobFilter::Review => "review",
            };
            get(rt, addr, &format!("/api/jobs?filter={name}&limit={limit}"))?.unwrap_or_default()
        }
    };
    if json {
        return serde_json::to_string_pretty(&jobs).map_err(|e| e.to_string());
    }
    let mut out = format!(
        "{:>6}  {:<18} {:<44} {:<14} {}\n",
        "ID", "STATE", "ACTION", "REQUESTER", "CREATED"
    );
    for j in &jobs {
        let _ = writeln!(
            out,
            "{:>6}  {:<18} {:<44} {:<14} {}",
            j.id,
            j.state.label(),
            catalog.action_of(&j.spec),
            j.requester.name,
            format_utc(j.created_ms)
        );
    }
    if jobs.is_empty() {
        out.push_str("(no jobs)\n");
    }
    Ok(out)
}

pub fn audit(
    source: &Source,
    job: JobId,
    json: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let entries: Option<Vec<AuditEntry>> = match source.archive() {
        Ok(store) => match store.job(job).map_err(|e| e.to_string())? {
            Some(_) => Some(store.audit(job).map_err(|e| e.to_string())?),
            None => None,
        },
        Err(addr) => match get::<Job>(rt, addr, &format!("/api/jobs/{job}"))? {
            Some(_) => get(rt, addr, &format!("/api/jobs/{job}/audit"))?,
            None => None,
        },
    };
    let Some(entries) = entries else {
        return Err(format!("no job {job}"));
    };
    if json {
        return serde_json::to_string_pretty(&entries).map_err(|e| e.to_string());
    }
    let mut out = String::new();
    for e in &entries {
        let _ = writeln!(
            out,
            "{}  {:<12} {:<24} {}",
            format_utc(e.at_ms),
            e.event,
            e.actor.as_deref().unwrap_or("-"),
            e.detail
        );
    }
    Ok(out)
}

/// `opsgate audit export --since DATE`: every audit entry at or after `since_ms` as JSON
/// lines, oldest first, each with its job's operation, account, target and parameters (no
/// job for an event that belongs to none, such as a freeze).
pub fn export(
    source: &Source,
    since_ms: u64,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    match source.archive() {
        Ok(store) => export_lines(store, since_ms),
        Err(api) => rt.block_on(async {
            let path = format!("/api/audit?since={since_ms}");
            let resp = (answer(api, &path).await?).ok_or_else(|| {
                "the running bot answered 404 for /api/audit: it is older than this opsgate"
                    .to_string()
            })?;
            resp.text()
                .await
                .map_err(|e| format!("unreadable answer from the running bot: {e}"))
        }),
    }
}

/// The JSON lines of [`export`], read from `store`.
pub fn export_lines(store: &dyn Archive, since_ms: u64) -> Result<String, String> {
    let mut jobs: std::collections::BTreeMap<JobId, Option<Job>> = Default::default();
    let mut out = String::new();
    for (job, entry) in store.audit_since(since_ms)? {
        let spec = match job {
            Some(id) => match jobs.get(&id) {
                Some(known) => known.as_ref().map(|j| j.spec.clone()),
                None => {
                    let found = store.job(id).map_err(|e| e.to_string())?;
                    let spec = found.as_ref().map(|j| j.spec.clone());
                    jobs.insert(id, found);
                    spec
                }
            },
            None => None,
        };
        let line = serde_json::json!({
            "job": job,
            "operation": spec.as_ref().map(|s| &s.operation),
            "account": spec.as_ref().map(|s| &s.account),
            "target": spec.as_ref().map(|s| &s.target),
            "params": spec.as_ref().map(|s| &s.params),
            "at": rfc3339(entry.at_ms),
            "at_ms": entry.at_ms,
            "actor": entry.actor,
            "event": entry.event,
            "detail": entry.detail,
        });
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

/// `2026-12-07T06:30:00.123Z`
fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `--since`: a date (`2026-12-01`, midnight UTC) or a time (`2026-12-01T08:00:00Z`), in
/// Unix milliseconds.
pub fn parse_since(text: &str) -> Result<u64, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let at = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .map_err(|_| {
            format!(
                "`{text}` is not a date such as 2026-12-01 or a time such as 2026-12-01T08:00:00Z"
            )
        })?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("`{text}` is before 1970"))
}
