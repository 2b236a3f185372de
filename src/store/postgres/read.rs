//! What the engine, the job API and the tools read back, as queries. Records are the same
//! JSON as sled's values.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use serde::de::DeserializeOwned;

use super::connect::{explain, Conn};
use crate::domain::JobId;
use crate::freeze::ChatFreeze;
use crate::job::{AuditEntry, Job};
use crate::ports::store::ReadMarks;

pub const NEXT_JOB_ID: &str = "next_job_id";
pub const CHAT_FREEZE: &str = "chat_freeze";

pub type Read<T> = Result<T, String>;

fn failed(e: postgres::Error) -> String {
    format!("cannot read from PostgreSQL: {}", explain(&e))
}

pub fn decode<T: DeserializeOwned>(what: &str, json: &str) -> Read<T> {
    serde_json::from_str(json).map_err(|e| format!("corrupt record {what}: {e}"))
}

pub fn id(n: i64) -> Read<JobId> {
    u64::try_from(n)
        .map(JobId)
        .map_err(|_| format!("corrupt record: job ID {n}"))
}

pub fn job(c: &mut Conn, id: JobId) -> Read<Option<Job>> {
    let row = c
        .query_opt(
            "SELECT record FROM opsgate_jobs WHERE id = $1",
            &[&(id.0 as i64)],
        )
        .map_err(failed)?;
    row.map(|r| decode(&format!("job {id}"), r.get(0)))
        .transpose()
}

pub fn job_for_message(c: &mut Conn, message_id: &str) -> Read<Option<JobId>> {
    let row = c
        .query_opt(
            "SELECT job FROM opsgate_messages WHERE message_id = $1",
            &[&message_id],
        )
        .map_err(failed)?;
    row.map(|r| id(r.get(0))).transpose()
}

/// Jobs in ID order (`newest_first` or oldest first), at most `limit` of those matching
/// `keep`, looking at most at `scan`; rows are streamed, so a scan stops where it is done.
pub fn jobs(
    c: &mut Conn,
    newest_first: bool,
    limit: usize,
    scan: usize,
    keep: &dyn Fn(&Job) -> bool,
) -> Read<Vec<Job>> {
    let sql = if newest_first {
        "SELECT id, record FROM opsgate_jobs ORDER BY id DESC LIMIT $1"
    } else {
        "SELECT id, record FROM opsgate_jobs ORDER BY id LIMIT $1"
    };
    let scan = i64::try_from(scan).unwrap_or(i64::MAX);
    let params: [&dyn ToSql; 1] = [&scan];
    let mut rows = c.query_raw(sql, params).map_err(failed)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let job: Job = decode(&format!("job {}", row.get::<_, i64>(0)), row.get(1))?;
        if keep(&job) {
            out.push(job);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

pub fn active_jobs(c: &mut Conn) -> Read<Vec<Job>> {
    let rows = c
        .query(
            "SELECT id, record FROM opsgate_jobs WHERE active ORDER BY id",
            &[],
        )
        .map_err(failed)?;
    rows.iter()
        .map(|r| decode(&format!("job {}", r.get::<_, i64>(0)), r.get(1)))
        .collect()
}

pub fn audit(c: &mut Conn, id: JobId) -> Read<Vec<AuditEntry>> {
    let rows = c
        .query(
            "SELECT entry FROM opsgate_audit WHERE job = $1 ORDER BY seq",
            &[&(id.0 as i64)],
        )
        .map_err(failed)?;
    rows.iter()
        .map(|r| decode(&format!("audit entry of job {id}"), r.get(0)))
        .collect()
}

pub fn ops_events(c: &mut Conn, limit: usize) -> Read<Vec<AuditEntry>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .query(
            "SELECT entry FROM opsgate_ops_events ORDER BY seq DESC LIMIT $1",
            &[&limit],
        )
        .map_err(failed)?;
    rows.iter()
        .map(|r| decode("event of no job", r.get(0)))
        .collect()
}

pub fn next_ops_seq(c: &mut Conn) -> Read<u64> {
    let row = c
        .query_one(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM opsgate_ops_events",
            &[],
        )
        .map_err(failed)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

pub fn meta(c: &mut Conn, key: &str) -> Read<Option<String>> {
    let row = c
        .query_opt("SELECT value FROM opsgate_meta WHERE key = $1", &[&key])
        .map_err(failed)?;
    Ok(row.map(|r| r.get(0)))
}

/// The next job ID: job IDs start at 1.
pub fn next_job_id(c: &mut Conn) -> Read<JobId> {
    match meta(c, NEXT_JOB_ID)? {
        Some(n) => n
            .parse::<u64>()
            .map(|n| JobId(n.max(1)))
            .map_err(|_| format!("corrupt record {NEXT_JOB_ID}: `{n}`")),
        None => Ok(JobId(1)),
    }
}

pub fn chat_freeze(c: &mut Conn) -> Read<Option<ChatFreeze>> {
    meta(c, CHAT_FREEZE)?
        .map(|json| decode(CHAT_FREEZE, &json))
        .transpose()
}

pub fn read_marks(c: &mut Conn) -> Read<ReadMarks> {
    let rows = c
        .query("SELECT channel, message_id FROM opsgate_read_marks", &[])
        .map_err(failed)?;
    Ok(rows
        .iter()
        .map(|r| {
            let channel: String = r.get(0);
            let message: String = r.get(1);
            (channel.into(), message.into())
        })
        .collect())
}

/// Every audit entry at or after `since_ms`, with its job (`None` for an event of no job),
/// oldest first.
pub fn audit_since(c: &mut Conn, since_ms: u64) -> Read<Vec<(Option<JobId>, AuditEntry)>> {
    let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
    let rows = c
        .query(
            "SELECT job, at_ms, entry FROM opsgate_audit WHERE at_ms >= $1
             UNION ALL
             SELECT NULL, at_ms, entry FROM opsgate_ops_events WHERE at_ms >= $1
             ORDER BY at_ms, job NULLS FIRST",
            &[&since],
        )
        .map_err(failed)?;
    rows.iter()
        .map(|r| {
            let job = r.get::<_, Option<i64>>(0).map(id).transpose()?;
            Ok((job, decode("audit entry", r.get(2))?))
        })
        .collect()
}
