//! `opsgate backup FILE`, `opsgate restore FILE` and `opsgate migrate`.
//!
//! A backup is taken from a private copy of the data directory while the bot is stopped, or
//! by the running bot (which holds the directory) through its local HTTP endpoint, or from
//! the database (PostgreSQL) in one snapshot. Either way the file appears only once complete
//! and synced. A backup of either store restores into either.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::jobs_cli::{self, ApiEndpoint, Source};
use crate::store::postgres::{self, Url};
use crate::store::{self, BackupSummary, SledStore};

pub fn backup(source: Source, file: &Path, rt: &tokio::runtime::Runtime) -> Result<String, String> {
    let partial = partial_path(file);
    let written = match source {
        Source::Http(api) => fetch(rt, api, &partial),
        local => create(&partial).and_then(|mut out| {
            let store = local
                .archive()
                .map_err(|_| "no store to read".to_string())?;
            store.backup(&mut out).map(|s| describe(&s))
        }),
    };
    let summary = match written.and_then(|summary| finish(&partial, file).map(|()| summary)) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    Ok(format!("backup written to {}: {summary}\n", file.display()))
}

/// Where a restore or a migration writes.
pub enum Target<'a> {
    /// A new or empty data directory (sled).
    Directory(&'a Path),
    /// An empty database (PostgreSQL).
    Database(&'a Url),
}

pub fn restore(file: &Path, into: Target<'_>) -> Result<String, String> {
    let (summary, place) = match into {
        Target::Directory(data) => (store::restore(file, data)?, data.display().to_string()),
        Target::Database(url) => (postgres::restore(file, url)?, url.server()),
    };
    Ok(format!(
        "restored into {place}: {}; new jobs are numbered from {} so that no job ID is used twice\n",
        describe(&summary),
        summary.next_job_id
    ))
}

/// `opsgate migrate to-postgres`: the data directory `data` (its bot stopped) into the
/// empty database at `url`, as it is.
pub fn to_postgres(data: &Path, url: &Url) -> Result<String, String> {
    let copy = store::ReadOnly::open(data).map_err(|e| e.to_string())?;
    let sled: &SledStore = &copy.store;
    let summary = postgres::migrate_from_sled(sled, url)?;
    Ok(format!(
        "copied {} into PostgreSQL at {}: {}; jobs go on from {}\n",
        data.display(),
        url.server(),
        describe(&summary),
        summary.next_job_id
    ))
}

/// `opsgate migrate to-sled`: the database at `url` (every replica stopped) into the new
/// data directory `data`, as it is.
pub fn to_sled(url: &Url, data: &Path) -> Result<String, String> {
    let summary = postgres::migrate_to_sled(url, data)?;
    Ok(format!(
        "copied PostgreSQL at {} into {}: {}; jobs go on from {}\n",
        url.server(),
        data.display(),
        describe(&summary),
        summary.next_job_id
    ))
}

fn describe(s: &BackupSummary) -> String {
    format!("{} jobs, {} records", s.jobs, s.entries)
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    file.with_file_name(name)
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Syncs the finished file and gives it its name.
fn finish(partial: &Path, file: &Path) -> Result<(), String> {
    let sync = |p: &Path| File::open(p).and_then(|f| f.sync_all());
    sync(partial)
        .and_then(|()| std::fs::rename(partial, file))
        .and_then(
            |()| match file.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) => sync(dir),
                None => sync(Path::new(".")),
            },
        )
        .map_err(|e| format!("cannot finish {}: {e}", file.display()))
}

/// Streams the running bot's backup into `partial`.
fn fetch(rt: &tokio::runtime::Runtime, api: ApiEndpoint, partial: &Path) -> Result<String, String> {
    rt.block_on(async {
        let addr = api.addr;
        let mut resp = api
            .get("/api/backup")
            .send()
            .await
            .map_err(|e| format!("cannot reach the running bot at {addr}: {e}"))?;
        if let Some(refusal) = jobs_cli::refused(resp.status()) {
            return Err(refusal);
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(format!(
                "the running bot answered {status} for the backup: {}",
                text.trim()
            ));
        }
        let summary = resp
            .headers()
            .get("x-opsgate-backup")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<BackupSummary>(v).ok());
        let mut out = create(partial)?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("the backup from the running bot broke off: {e}"))?
        {
            out.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        }
        Ok(summary.map_or_else(|| "taken by the running bot".into(), |s| describe(&s)))
    })
}
