//! The tables, created and migrated by opsgate itself: each migration is numbered, applied
//! once, in order, in one transaction with the number it brings the schema to. Replicas
//! starting together take turns (an advisory lock held for the transaction). A database
//! whose schema is newer than this binary knows is refused: an older opsgate must not write
//! to tables whose meaning it does not know.

use postgres::Client;

use super::connect::explain;

/// Each entry brings the schema from its index to its index + 1.
const MIGRATIONS: &[&str] = &[
    // 1: jobs (a job and its place in the active index are one row), their audit logs,
    // the card index, events of no job, counters and the `!freeze`, where chat was read up
    // to, and the leader's lease.
    r#"
    CREATE TABLE opsgate_jobs (
        id bigint PRIMARY KEY,
        active boolean NOT NULL,
        record text NOT NULL
    );
    CREATE INDEX opsgate_jobs_active ON opsgate_jobs (id) WHERE active;
    CREATE TABLE opsgate_audit (
        job bigint NOT NULL,
        seq integer NOT NULL,
        at_ms bigint NOT NULL,
        entry text NOT NULL,
        PRIMARY KEY (job, seq)
    );
    CREATE TABLE opsgate_messages (
        message_id text PRIMARY KEY,
        job bigint NOT NULL
    );
    CREATE TABLE opsgate_ops_events (
        seq bigint PRIMARY KEY,
        at_ms bigint NOT NULL,
        entry text NOT NULL
    );
    CREATE TABLE opsgate_meta (
        key text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE opsgate_read_marks (
        channel text PRIMARY KEY,
        message_id text NOT NULL
    );
    CREATE TABLE opsgate_leader (
        id smallint PRIMARY KEY CHECK (id = 1),
        holder text NOT NULL,
        epoch bigint NOT NULL,
        expires_at timestamptz NOT NULL
    );
    INSERT INTO opsgate_leader VALUES (1, '', 0, '-infinity');
    "#,
];

/// The schema version this binary writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// An arbitrary constant: the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6f70_7367_6174_6531;

/// Brings the schema up to [`VERSION`], or refuses a database whose schema is newer.
/// Returns the version found before.
pub fn migrate(client: &mut Client) -> Result<i32, String> {
    let failed = |e: postgres::Error| format!("cannot set up opsgate's tables: {}", explain(&e));
    let mut tx = client.transaction().map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(failed)?;
    // Quietly: the server's notice that the table exists would be logged on every start.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS opsgate_schema (
             id smallint PRIMARY KEY CHECK (id = 1),
             version integer NOT NULL
         )",
    )
    .map_err(failed)?;
    let found: i32 = tx
        .query_opt("SELECT version FROM opsgate_schema WHERE id = 1", &[])
        .map_err(failed)?
        .map_or(0, |row| row.get(0));
    if found > VERSION {
        return Err(format!(
            "the database holds opsgate's tables at schema version {found}, newer than this \
             opsgate knows (version {VERSION}): run the newer opsgate, or a database of this \
             version's (nothing was changed)"
        ));
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(migration).map_err(|e| {
            format!(
                "cannot migrate opsgate's tables to version {}: {}",
                from + 1,
                explain(&e)
            )
        })?;
    }
    if found < VERSION {
        tx.execute(
            "INSERT INTO opsgate_schema VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&VERSION],
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(failed)?;
    Ok(found)
}
