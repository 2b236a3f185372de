//! A group's [`Writes`] as statements of one transaction: one statement per table, each
//! taking its rows as arrays, so a group costs a few round trips however many jobs it
//! touches. A job, its place in the active index (a column of its row) and its audit
//! entries are always in the same transaction; later writes win over earlier ones, and a
//! job forgotten in the group is deleted after its last write, as in sled's batch.

use postgres::{Client, Statement, Transaction};

use super::read::{CHAT_FREEZE, NEXT_JOB_ID};
use crate::ports::store::Writes;

/// JSON of our own types; serializing into a string cannot fail, and if it ever did the
/// record would read back as corrupt rather than lose the others.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The statements a commit runs, prepared once per connection.
pub struct Statements {
    /// The lease of an epoch has not ended: the last statement of every commit, whose
    /// lock on the lease's row holds a takeover back until the commit is done.
    pub check_lease_locked: Statement,
    /// The same without the lock, for a group that wrote nothing.
    pub check_lease: Statement,
    pub messages: Statement,
    pub drop_meta: Statement,
    pub ops_events: Statement,
    pub read_marks: Statement,
    pub jobs: Statement,
    pub audit: Statement,
    pub forget_jobs: Statement,
    pub forget_audit: Statement,
    pub forget_messages: Statement,
    pub put_meta: Statement,
}

impl Statements {
    pub fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            check_lease_locked: client.prepare(
                "SELECT 1 FROM opsgate_leader
                 WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()
                 FOR SHARE",
            )?,
            check_lease: client.prepare(
                "SELECT 1 FROM opsgate_leader
                 WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()",
            )?,
            messages: client.prepare(
                "INSERT INTO opsgate_messages (message_id, job)
             SELECT * FROM unnest($1::text[], $2::bigint[]) AS m(message_id, job)
             ON CONFLICT (message_id) DO UPDATE SET job = EXCLUDED.job",
            )?,
            drop_meta: client.prepare("DELETE FROM opsgate_meta WHERE key = $1")?,
            ops_events: client.prepare(
                "INSERT INTO opsgate_ops_events (seq, at_ms, entry)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS o(seq, at_ms, entry)
             ON CONFLICT (seq) DO UPDATE SET at_ms = EXCLUDED.at_ms, entry = EXCLUDED.entry",
            )?,
            read_marks: client.prepare(
                "INSERT INTO opsgate_read_marks (channel, message_id)
             SELECT * FROM unnest($1::text[], $2::text[]) AS r(channel, message_id)
             ON CONFLICT (channel) DO UPDATE SET message_id = EXCLUDED.message_id",
            )?,
            jobs: client.prepare(
                "INSERT INTO opsgate_jobs (id, active, record)
         SELECT * FROM unnest($1::bigint[], $2::boolean[], $3::text[]) AS j(id, active, record)
         ON CONFLICT (id) DO UPDATE SET active = EXCLUDED.active, record = EXCLUDED.record",
            )?,
            audit: client.prepare(
                "INSERT INTO opsgate_audit (job, seq, at_ms, entry)
             SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::text[])
                 AS a(job, seq, at_ms, entry)
             ON CONFLICT (job, seq) DO UPDATE SET at_ms = EXCLUDED.at_ms, entry = EXCLUDED.entry",
            )?,
            forget_jobs: client.prepare("DELETE FROM opsgate_jobs WHERE id = ANY($1)")?,
            forget_audit: client.prepare("DELETE FROM opsgate_audit WHERE job = ANY($1)")?,
            forget_messages: client
                .prepare("DELETE FROM opsgate_messages WHERE message_id = ANY($1)")?,
            put_meta: client.prepare(
                "INSERT INTO opsgate_meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?,
        })
    }
}

pub fn apply(
    tx: &mut Transaction<'_>,
    s: &Statements,
    writes: &Writes,
) -> Result<(), postgres::Error> {
    jobs(tx, s, writes)?;
    if !writes.messages.is_empty() {
        // One row per message (the last write wins, as in sled): a statement may not
        // change a row twice.
        let latest: std::collections::BTreeMap<&str, i64> = (writes.messages.iter())
            .map(|(m, j)| (m.as_str(), j.0 as i64))
            .collect();
        let (ids, jobs): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
        tx.execute(&s.messages, &[&ids, &jobs])?;
    }
    if let Some(next) = writes.next_job_id {
        put_meta(tx, s, NEXT_JOB_ID, &next.0.to_string())?;
    }
    match &writes.chat_freeze {
        Some(Some(freeze)) => put_meta(tx, s, CHAT_FREEZE, &json(freeze))?,
        Some(None) => {
            tx.execute(&s.drop_meta, &[&CHAT_FREEZE])?;
        }
        None => {}
    }
    if !writes.ops_events.is_empty() {
        let latest: std::collections::BTreeMap<u64, &crate::job::AuditEntry> =
            writes.ops_events.iter().map(|(seq, e)| (*seq, e)).collect();
        let seqs: Vec<i64> = latest.keys().map(|seq| *seq as i64).collect();
        let at: Vec<i64> = latest.values().map(|e| e.at_ms as i64).collect();
        let entries: Vec<String> = latest.values().map(|e| json(*e)).collect();
        tx.execute(&s.ops_events, &[&seqs, &at, &entries])?;
    }
    forget(tx, s, writes)?;
    if !writes.read_marks.is_empty() {
        let (channels, messages): (Vec<&str>, Vec<&str>) = writes
            .read_marks
            .iter()
            .map(|(c, m)| (c.as_str(), m.as_str()))
            .unzip();
        tx.execute(&s.read_marks, &[&channels, &messages])?;
    }
    Ok(())
}

/// Each job's row (its record and whether it is active) and its new audit entries.
fn jobs(tx: &mut Transaction<'_>, s: &Statements, writes: &Writes) -> Result<(), postgres::Error> {
    if writes.jobs.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(writes.jobs.len());
    let mut active = Vec::with_capacity(writes.jobs.len());
    let mut records = Vec::with_capacity(writes.jobs.len());
    let (mut audit_jobs, mut seqs, mut at, mut entries) = (vec![], vec![], vec![], vec![]);
    for (id, written) in &writes.jobs {
        ids.push(id.0 as i64);
        active.push(!written.job.state.is_final());
        records.push(json(&written.job));
        for (seq, entry) in &written.audit {
            audit_jobs.push(id.0 as i64);
            seqs.push(*seq as i32);
            at.push(entry.at_ms as i64);
            entries.push(json(entry));
        }
    }
    tx.execute(&s.jobs, &[&ids, &active, &records])?;
    if !audit_jobs.is_empty() {
        tx.execute(&s.audit, &[&audit_jobs, &seqs, &at, &entries])?;
    }
    Ok(())
}

/// Finished jobs past the retention time, with their audit entries and card index entry.
fn forget(
    tx: &mut Transaction<'_>,
    s: &Statements,
    writes: &Writes,
) -> Result<(), postgres::Error> {
    if writes.forget.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = writes.forget.iter().map(|f| f.job.0 as i64).collect();
    let messages: Vec<&str> = (writes.forget.iter())
        .filter_map(|f| f.message_id.as_ref().map(|m| m.as_str()))
        .collect();
    tx.execute(&s.forget_jobs, &[&ids])?;
    tx.execute(&s.forget_audit, &[&ids])?;
    if !messages.is_empty() {
        tx.execute(&s.forget_messages, &[&messages])?;
    }
    Ok(())
}

fn put_meta(
    tx: &mut Transaction<'_>,
    s: &Statements,
    key: &str,
    value: &str,
) -> Result<(), postgres::Error> {
    tx.execute(&s.put_meta, &[&key, &value])?;
    Ok(())
}
