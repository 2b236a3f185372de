//! Moving jobs in and out of PostgreSQL as the entries of a sled store (key, value): the
//! entries `opsgate backup` writes and `opsgate restore` reads, whichever store made
//! them, and what `opsgate migrate` copies between a data directory and a database.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, Transaction};
use sha2::{Digest, Sha256};

use super::connect::explain;
use super::read::{CHAT_FREEZE as CHAT_FREEZE_ROW, NEXT_JOB_ID};
use super::write::Statements;
use crate::store::backup::{
    field, next_id_after_restore, read_error, skip_header, verify, EntrySink, Hashing, Header,
    MAGIC, RESTORE_BATCH,
};
use crate::store::{
    active_key, audit_key, job_key, message_key, ops_key, read_mark_key, BackupSummary, ACTIVE,
    AUDIT, CHAT_FREEZE, JOB, MESSAGE, NEXT_ID, OPS, READ_MARK, SEQ,
};

fn failed(e: postgres::Error) -> String {
    format!("PostgreSQL failed: {}", explain(&e))
}

/// A snapshot of the database: every read in it sees the same moment.
fn snapshot(client: &mut Client) -> Result<Transaction<'_>, String> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(failed)
}

/// Calls `f` with every entry, as sled would hold it, in the snapshot `tx`.
fn for_each_entry(tx: &mut Transaction<'_>, f: &mut EntrySink<'_>) -> Result<(), String> {
    let none: [&str; 0] = [];
    let mut rows = tx
        .query_raw(
            "SELECT job, seq, entry FROM opsgate_audit ORDER BY job, seq",
            none,
        )
        .map_err(failed)?;
    while let Some(r) = rows.next().map_err(failed)? {
        let key = audit_key(
            crate::domain::JobId(r.get::<_, i64>(0) as u64),
            r.get::<_, i32>(1) as u32,
        );
        f(&key, r.get::<_, &str>(2).as_bytes())?;
    }
    drop(rows);
    let mut rows = tx
        .query_raw(
            "SELECT id, record, active FROM opsgate_jobs ORDER BY id",
            none,
        )
        .map_err(failed)?;
    let mut active = Vec::new();
    while let Some(r) = rows.next().map_err(failed)? {
        let id = crate::domain::JobId(r.get::<_, i64>(0) as u64);
        f(&job_key(id), r.get::<_, &str>(1).as_bytes())?;
        if r.get::<_, bool>(2) {
            active.push(id);
        }
    }
    drop(rows);
    let mut rows = tx
        .query_raw("SELECT message_id, job FROM opsgate_messages", none)
        .map_err(failed)?;
    while let Some(r) = rows.next().map_err(failed)? {
        let job = r.get::<_, i64>(1) as u64;
        f(&message_key(r.get(0)), &job.to_be_bytes())?;
    }
    drop(rows);
    for r in tx
        .query("SELECT key, value FROM opsgate_meta", &[])
        .map_err(failed)?
    {
        match r.get::<_, &str>(0) {
            NEXT_JOB_ID => {
                let next: u64 = r.get::<_, &str>(1).parse().map_err(|_| {
                    format!("corrupt record {NEXT_JOB_ID}: `{}`", r.get::<_, &str>(1))
                })?;
                f(NEXT_ID, &next.to_be_bytes())?;
            }
            CHAT_FREEZE_ROW => f(CHAT_FREEZE, r.get::<_, &str>(1).as_bytes())?,
            other => return Err(format!("unknown record `{other}` in opsgate_meta")),
        }
    }
    let mut rows = tx
        .query_raw(
            "SELECT seq, entry FROM opsgate_ops_events ORDER BY seq",
            none,
        )
        .map_err(failed)?;
    while let Some(r) = rows.next().map_err(failed)? {
        f(
            &ops_key(r.get::<_, i64>(0) as u64),
            r.get::<_, &str>(1).as_bytes(),
        )?;
    }
    drop(rows);
    for r in
        (tx.query("SELECT channel, message_id FROM opsgate_read_marks", &[])).map_err(failed)?
    {
        f(&read_mark_key(r.get(0)), r.get::<_, &str>(1).as_bytes())?;
    }
    for id in active {
        f(&active_key(id), &[])?;
    }
    Ok(())
}

fn count(tx: &mut Transaction<'_>) -> Result<(u64, u64), String> {
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM opsgate_jobs),
                    (SELECT count(*) FROM opsgate_jobs WHERE active)
                  + (SELECT count(*) FROM opsgate_audit)
                  + (SELECT count(*) FROM opsgate_messages)
                  + (SELECT count(*) FROM opsgate_meta)
                  + (SELECT count(*) FROM opsgate_ops_events)
                  + (SELECT count(*) FROM opsgate_read_marks)",
            &[],
        )
        .map_err(failed)?;
    let jobs = row.get::<_, i64>(0) as u64;
    Ok((jobs, jobs + row.get::<_, i64>(1) as u64))
}

/// A backup of the database as of one moment, in the format of `opsgate backup`.
pub fn write(client: &mut Client, out: &mut dyn Write) -> Result<BackupSummary, String> {
    let mut tx = snapshot(client)?;
    let (jobs, entries) = count(&mut tx)?;
    let next_job_id = match tx
        .query_opt(
            "SELECT value FROM opsgate_meta WHERE key = $1",
            &[&NEXT_JOB_ID],
        )
        .map_err(failed)?
    {
        Some(r) => r.get::<_, &str>(0).parse::<u64>().unwrap_or(1).max(1),
        None => 1,
    };
    let header = Header {
        taken_at_ms: crate::domain::time::now_ms(),
        next_job_id,
        entries,
    };
    let io = |e: std::io::Error| format!("cannot write the backup: {e}");
    let mut out = Hashing {
        inner: BufWriter::new(out),
        hash: Sha256::new(),
    };
    out.write_all(MAGIC).map_err(io)?;
    serde_json::to_writer(&mut out, &header).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)?;
    let mut written = 0;
    for_each_entry(&mut tx, &mut |key, value| {
        for part in [key, value] {
            out.write_all(&(part.len() as u32).to_le_bytes())
                .map_err(io)?;
            out.write_all(part).map_err(io)?;
        }
        written += 1;
        Ok(())
    })?;
    if written != entries {
        return Err("the database changed while the backup was taken".into());
    }
    let digest = out.hash.finalize_reset();
    out.inner.write_all(&digest).map_err(io)?;
    out.inner.flush().map_err(io)?;
    Ok(BackupSummary {
        entries,
        jobs,
        next_job_id,
    })
}

/// Refuses a database that already holds any job, audit entry or setting of opsgate's.
fn refuse_non_empty(tx: &mut Transaction<'_>) -> Result<(), String> {
    let (jobs, entries) = count(tx)?;
    if jobs > 0 || entries > 0 {
        return Err(format!(
            "the database already holds opsgate data ({jobs} jobs, {entries} entries): load \
             only into an empty one (nothing was changed)"
        ));
    }
    Ok(())
}

/// Rows gathered from entries, written a batch at a time.
#[derive(Default)]
struct Rows {
    jobs: (Vec<i64>, Vec<bool>, Vec<String>),
    audit: (Vec<i64>, Vec<i32>, Vec<i64>, Vec<String>),
    messages: (Vec<String>, Vec<i64>),
    ops: (Vec<i64>, Vec<i64>, Vec<String>),
    marks: (Vec<String>, Vec<String>),
    meta: Vec<(&'static str, String)>,
    active: Vec<i64>,
    entries: u64,
    job_count: u64,
}

fn number(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn at_ms(entry: &str) -> Result<i64, String> {
    let parsed: crate::job::AuditEntry =
        serde_json::from_str(entry).map_err(|e| format!("corrupt audit entry: {e}"))?;
    Ok(parsed.at_ms as i64)
}

impl Rows {
    fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let bad = || format!("unknown entry `{}`", String::from_utf8_lossy(key));
        self.entries += 1;
        if key == SEQ {
            self.entries -= 1;
            return Ok(());
        }
        if key == NEXT_ID {
            let next = number(value).ok_or_else(bad)?;
            self.meta.push((NEXT_JOB_ID, next.to_string()));
            return Ok(());
        }
        if key == CHAT_FREEZE {
            self.meta
                .push((CHAT_FREEZE_ROW, text(value, "the freeze")?));
            return Ok(());
        }
        let (prefix, rest) = key.split_first().ok_or_else(bad)?;
        match *prefix {
            JOB => {
                self.jobs.0.push(number(rest).ok_or_else(bad)? as i64);
                self.jobs.1.push(false);
                self.jobs.2.push(text(value, "a job")?);
                self.job_count += 1;
            }
            ACTIVE => self.active.push(number(rest).ok_or_else(bad)? as i64),
            AUDIT => {
                let seq = rest.get(8..12).ok_or_else(bad)?;
                let entry = text(value, "an audit entry")?;
                self.audit.0.push(number(rest).ok_or_else(bad)? as i64);
                self.audit
                    .1
                    .push(u32::from_be_bytes(seq.try_into().map_err(|_| bad())?) as i32);
                self.audit.2.push(at_ms(&entry)?);
                self.audit.3.push(entry);
            }
            MESSAGE => {
                self.messages.0.push(text(rest, "a message ID")?);
                self.messages.1.push(number(value).ok_or_else(bad)? as i64);
            }
            OPS => {
                let entry = text(value, "an event")?;
                self.ops.0.push(number(rest).ok_or_else(bad)? as i64);
                self.ops.1.push(at_ms(&entry)?);
                self.ops.2.push(entry);
            }
            READ_MARK => {
                self.marks.0.push(text(rest, "a channel ID")?);
                self.marks.1.push(text(value, "a message ID")?);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    fn pending(&self) -> usize {
        self.jobs.0.len() + self.audit.0.len() + self.messages.0.len() + self.ops.0.len()
    }

    /// Writes what was gathered (jobs as inactive: the active index comes last, in
    /// [`Rows::finish`]).
    fn write(&mut self, tx: &mut Transaction<'_>, s: &Statements) -> Result<(), String> {
        let j = std::mem::take(&mut self.jobs);
        if !j.0.is_empty() {
            tx.execute(&s.jobs, &[&j.0, &j.1, &j.2]).map_err(failed)?;
        }
        let a = std::mem::take(&mut self.audit);
        if !a.0.is_empty() {
            tx.execute(&s.audit, &[&a.0, &a.1, &a.2, &a.3])
                .map_err(failed)?;
        }
        let m = std::mem::take(&mut self.messages);
        if !m.0.is_empty() {
            tx.execute(&s.messages, &[&m.0, &m.1]).map_err(failed)?;
        }
        let o = std::mem::take(&mut self.ops);
        if !o.0.is_empty() {
            tx.execute(&s.ops_events, &[&o.0, &o.1, &o.2])
                .map_err(failed)?;
        }
        let r = std::mem::take(&mut self.marks);
        if !r.0.is_empty() {
            tx.execute(&s.read_marks, &[&r.0, &r.1]).map_err(failed)?;
        }
        for (key, value) in std::mem::take(&mut self.meta) {
            tx.execute(&s.put_meta, &[&key, &value]).map_err(failed)?;
        }
        Ok(())
    }

    fn finish(&mut self, tx: &mut Transaction<'_>, s: &Statements) -> Result<(), String> {
        self.write(tx, s)?;
        tx.execute(
            "UPDATE opsgate_jobs SET active = true WHERE id = ANY($1)",
            &[&self.active],
        )
        .map_err(failed)?;
        Ok(())
    }
}

/// Loads entries into an empty database in one transaction: all of them or, on any
/// error, none. `next_job_id` (if given) replaces the stored counter.
fn load(
    client: &mut Client,
    fill: &mut dyn FnMut(&mut EntrySink<'_>) -> Result<(), String>,
    next_job_id: &dyn Fn(u64) -> u64,
) -> Result<BackupSummary, String> {
    let statements = Statements::prepare(client).map_err(failed)?;
    let mut tx = client.transaction().map_err(failed)?;
    tx.execute("LOCK TABLE opsgate_jobs IN EXCLUSIVE MODE", &[])
        .map_err(failed)?;
    refuse_non_empty(&mut tx)?;
    let mut rows = Rows::default();
    let mut stored_next = 1;
    fill(&mut |key, value| {
        if key == NEXT_ID {
            stored_next = number(value).unwrap_or(1);
        }
        rows.add(key, value)?;
        if rows.pending() >= RESTORE_BATCH {
            rows.write(&mut tx, &statements)?;
        }
        Ok(())
    })?;
    rows.finish(&mut tx, &statements)?;
    let next = next_job_id(stored_next);
    tx.execute(&statements.put_meta, &[&NEXT_JOB_ID, &next.to_string()])
        .map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(BackupSummary {
        entries: rows.entries,
        jobs: rows.job_count,
        next_job_id: next,
    })
}

/// `opsgate restore FILE` into an empty database: job IDs go on above any the backed-up
/// bot may have given out since (as for sled).
pub fn restore(file: &Path, client: &mut Client) -> Result<BackupSummary, String> {
    let header = verify(file)?;
    let mut reader = BufReader::new(std::fs::File::open(file).map_err(|e| read_error(file, e))?);
    skip_header(&mut reader).map_err(|e| read_error(file, e))?;
    let now = crate::domain::time::now_ms();
    load(
        client,
        &mut |add| {
            for _ in 0..header.entries {
                let key = field(&mut reader).map_err(|e| read_error(file, e))?;
                let value = field(&mut reader).map_err(|e| read_error(file, e))?;
                add(&key, &value)?;
            }
            Ok(())
        },
        &|_| next_id_after_restore(header.next_job_id, now),
    )
}

/// Copies a sled store into an empty database, as it is (job IDs go on where they were).
pub fn from_sled(
    sled: &crate::store::SledStore,
    client: &mut Client,
) -> Result<BackupSummary, String> {
    load(client, &mut |add| sled.for_each_entry(add), &|stored| {
        stored
    })
}

/// Copies the database into a new sled store, as it is. Refused while a replica leads.
pub fn to_sled(client: &mut Client, dir: &Path) -> Result<BackupSummary, String> {
    crate::store::backup::refuse_non_empty(dir)?;
    let mut tx = snapshot(client)?;
    let leading = tx
        .query_opt(
            "SELECT holder FROM opsgate_leader WHERE id = 1 AND expires_at > clock_timestamp()",
            &[],
        )
        .map_err(failed)?;
    if let Some(row) = leading {
        return Err(format!(
            "replica {} still leads: stop every replica first (nothing was changed)",
            row.get::<_, &str>(0)
        ));
    }
    let (jobs, entries) = count(&mut tx)?;
    let store = crate::store::SledStore::open(dir).map_err(|e| e.to_string())?;
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    let mut next_job_id = 1;
    for_each_entry(&mut tx, &mut |key, value| {
        if key == NEXT_ID {
            next_job_id = number(value).unwrap_or(1);
        }
        batch.insert(key, value);
        pending += 1;
        if pending >= RESTORE_BATCH {
            pending = 0;
            store
                .apply(std::mem::take(&mut batch))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    store.apply(batch).map_err(|e| e.to_string())?;
    store.close().map_err(|e| e.to_string())?;
    Ok(BackupSummary {
        entries,
        jobs,
        next_job_id,
    })
}
