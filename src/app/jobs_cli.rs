//! `opsgate jobs` and `opsgate audit`: read from a private copy of the data directory (they
//! never create or change one), or, while a running bot holds it (sled allows one process),
//! through that bot's local HTTP endpoint.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::chat::card::format_utc;
use crate::command::JobFilter;
use crate::job::Job;
use crate::store::{AuditEntry, ReadOnly, StoreError};

pub enum Source {
    Store(ReadOnly),
    Http(SocketAddr),
}

/// Opens a copy of the data directory, or falls back to the running bot's endpoint (also
/// used by `opsgate backup`).
pub fn source(data: PathBuf, http: Option<SocketAddr>) -> Result<Source, String> {
    match ReadOnly::open(&data) {
        Ok(copy) => Ok(Source::Store(copy)),
        Err(StoreError::Locked(_)) => match http {
            Some(addr) => Ok(Source::Http(addr)),
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
    addr: SocketAddr,
    path: &str,
) -> Result<Option<T>, String> {
    rt.block_on(async {
        let url = format!("http://{addr}{path}");
        let resp = reqwest::get(&url)
            .await
            .map_err(|e| format!("cannot reach the running bot at {addr}: {e}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(format!(
                "the running bot answered {} for {path}",
                resp.status()
            ));
        }
        resp.json::<T>()
            .await
            .map(Some)
            .map_err(|e| format!("unreadable answer from the running bot: {e}"))
    })
}

pub fn jobs(
    source: &Source,
    filter: JobFilter,
    limit: usize,
    json: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let jobs: Vec<Job> = match source {
        Source::Store(copy) => copy
            .store
            .recent_jobs(limit, usize::MAX, |j| filter.keeps(j, ""))
            .map_err(|e| e.to_string())?,
        Source::Http(addr) => {
            let name = match filter {
                JobFilter::Pending => "pending",
                JobFilter::Running => "running",
                JobFilter::All | JobFilter::Mine => "all",
                JobFilter::Active => "active",
            };
            get(rt, *addr, &format!("/api/jobs?filter={name}&limit={limit}"))?.unwrap_or_default()
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
            j.action(),
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
    job: u64,
    json: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let entries: Option<Vec<AuditEntry>> = match source {
        Source::Store(copy) => match copy.store.job(job).map_err(|e| e.to_string())? {
            Some(_) => Some(copy.store.audit(job).map_err(|e| e.to_string())?),
            None => None,
        },
        Source::Http(addr) => match get::<Job>(rt, *addr, &format!("/api/jobs/{job}"))? {
            Some(_) => get(rt, *addr, &format!("/api/jobs/{job}/audit"))?,
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
