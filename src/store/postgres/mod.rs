//! PostgreSQL as the store, shared by replicas of which one leads (`lease.rs`).
//!
//! [`PgStore`] is the leader's: each group's [`Writes`] are one transaction (`write.rs`)
//! whose last statement checks, with a lock on the lease's row, that this replica's epoch
//! still leads and its lease has not ended; the transaction commits with
//! `synchronous_commit` on (the server's default, asked for again on every connection), so
//! when [`Store::commit`] returns the group is durable. [`Store::flush`] confirms the lease
//! when no commit has since the last flush (a group that wrote nothing), so no effect
//! leaves a replica that no longer leads. Any error poisons the store: every later call
//! fails with the first error, nothing is retried, and the driver stops; a connection lost
//! during a commit leaves its outcome unknown, which whoever leads next reads from the
//! database.
//!
//! [`PgReader`] serves reads for the job API and the tools on a connection of its own.

mod backup;
mod connect;
pub mod lease;
mod read;
mod schema;
mod write;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use connect::Url;
pub use lease::{Lead, Lease, LeaseEvents, Validity};
pub use schema::VERSION as SCHEMA_VERSION;

use connect::{explain, Conn};

use crate::domain::JobId;
use crate::job::{AuditEntry, Job};
use crate::ports::store::{History, ReadMarks, StorageError, Store, Stored, Writes};

/// How long the server may leave a request of the store's unanswered (TCP) before the
/// call fails: a server that vanished ends in an error, never a hang.
const DEADLINE: Duration = Duration::from_secs(10);

/// Connects and brings the tables up to this version's schema (refusing a newer one).
pub fn open_schema(url: &Url, purpose: &str) -> Result<Conn, String> {
    let mut client = url.connect(purpose, DEADLINE)?;
    schema::migrate(&mut client)?;
    Ok(Conn::new(client))
}

/// The leader's store: commits only while its epoch leads.
pub struct PgStore {
    epoch: i64,
    inner: Mutex<Writer>,
    /// Set on a clean stop, before the lease is released: its renewals end without taking
    /// the release for a loss.
    released: Arc<AtomicBool>,
}

struct Writer {
    conn: Conn,
    statements: write::Statements,
    /// The first error; once set, every call fails with it.
    failed: Option<StorageError>,
    /// The last commit confirmed the lease and no flush has come since.
    confirmed: bool,
}

fn failure(e: &postgres::Error) -> StorageError {
    StorageError::new(format!("PostgreSQL failed: {}", explain(e)))
}

fn lost(epoch: i64) -> StorageError {
    StorageError::lost_lead(format!(
        "the lease of epoch {epoch} has ended or another replica leads: nothing more is committed"
    ))
}

impl PgStore {
    /// The store of the leader of `epoch`, on a connection of its own; `released` is the
    /// flag its lease's renewals stop on.
    pub fn open(url: &Url, epoch: i64, released: Arc<AtomicBool>) -> Result<PgStore, String> {
        let mut conn = open_schema(url, "leader")?;
        let prepared = conn
            .client
            .batch_execute("SET synchronous_commit = on")
            .and_then(|()| write::Statements::prepare(&mut conn.client));
        let statements = prepared.map_err(|e| {
            format!(
                "cannot prepare opsgate's statements on PostgreSQL: {}",
                explain(&e)
            )
        })?;
        Ok(PgStore {
            epoch,
            released,
            inner: Mutex::new(Writer {
                conn,
                statements,
                failed: None,
                confirmed: false,
            }),
        })
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection, unless the store failed before; its error poisons it.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut writer = self.writer();
        if let Some(first) = &writer.failed {
            return Err(first.clone());
        }
        let result = f(&mut writer);
        if let Err(e) = &result {
            writer.failed = Some(e.clone());
        }
        result
    }

    fn read<T>(&self, f: impl FnOnce(&mut Conn) -> read::Read<T>) -> Result<T, StorageError> {
        self.with(|w| f(&mut w.conn).map_err(StorageError::new))
    }

    /// Releases the lease, for a clean stop: a standby takes over at once.
    fn release(&self) -> Result<(), StorageError> {
        self.released.store(true, Ordering::SeqCst);
        let epoch = self.epoch;
        self.with(|w| lease::release(&mut w.conn.client, epoch).map_err(|e| failure(&e)))
    }
}

impl Writer {
    /// Applies `writes` and checks the lease, in one transaction.
    fn commit(&mut self, writes: &Writes, epoch: i64) -> Result<(), StorageError> {
        let mut tx = self.conn.client.transaction().map_err(|e| failure(&e))?;
        write::apply(&mut tx, &self.statements, writes).map_err(|e| failure(&e))?;
        let leads = tx
            .query_opt(&self.statements.check_lease_locked, &[&epoch])
            .map_err(|e| failure(&e))?;
        if leads.is_none() {
            // Dropping the transaction rolls it back.
            return Err(lost(epoch));
        }
        tx.commit().map_err(|e| failure(&e))?;
        self.confirmed = true;
        Ok(())
    }

    fn confirm_lease(&mut self, epoch: i64) -> Result<(), StorageError> {
        if std::mem::take(&mut self.confirmed) {
            return Ok(());
        }
        let leads = (self.conn.client)
            .query_opt(&self.statements.check_lease, &[&epoch])
            .map_err(|e| failure(&e))?;
        leads.map(|_| ()).ok_or_else(|| lost(epoch))
    }
}

impl History for PgStore {
    fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        self.read(|c| read::job(c, id))
    }

    fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StorageError> {
        self.read(|c| read::job_for_message(c, message_id))
    }

    fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        self.read(|c| read::jobs(c, true, limit, scan, keep))
    }

    fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StorageError> {
        self.read(|c| read::audit(c, id))
    }

    fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        self.read(|c| read::ops_events(c, limit))
    }

    fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        self.read(|c| read::jobs(c, false, limit, scan, keep))
    }
}

impl Store for PgStore {
    fn load(&self) -> Result<Stored, StorageError> {
        self.read(|c| {
            Ok(Stored {
                next_job_id: read::next_job_id(c)?,
                chat_freeze: read::chat_freeze(c)?,
                next_ops_seq: read::next_ops_seq(c)?,
                active: read::active_jobs(c)?,
            })
        })
    }

    fn read_marks(&self) -> Result<ReadMarks, StorageError> {
        self.read(read::read_marks)
    }

    fn commit(&self, writes: Writes) -> Result<(), StorageError> {
        if writes.is_empty() {
            return Ok(());
        }
        let epoch = self.epoch;
        self.with(|w| w.commit(&writes, epoch))
    }

    fn flush(&self) -> Result<(), StorageError> {
        let epoch = self.epoch;
        self.with(|w| w.confirm_lease(epoch))
    }

    fn close(&self) -> Result<(), StorageError> {
        self.release()
    }
}

/// Reads for the job API and the tools, on a connection of their own that is opened again
/// after an error (a reader is no writer: nothing it does can lose a commit).
pub struct PgReader {
    url: Url,
    conn: Mutex<Option<Conn>>,
}

impl PgReader {
    pub fn new(url: Url) -> PgReader {
        PgReader {
            url,
            conn: Mutex::new(None),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&mut Conn) -> read::Read<T>) -> Result<T, String> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Conn::new(self.url.connect("reader", DEADLINE)?));
        }
        let conn = slot.as_mut().expect("connected above");
        let result = f(conn);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    pub fn audit_since(&self, since_ms: u64) -> Result<Vec<(Option<JobId>, AuditEntry)>, String> {
        self.read(|c| read::audit_since(c, since_ms))
    }

    /// A consistent backup of the database's jobs, in the format `opsgate restore` reads.
    pub fn backup(&self, out: &mut dyn std::io::Write) -> Result<super::BackupSummary, String> {
        self.read(|c| backup::write(&mut c.client, out))
    }
}

impl History for PgReader {
    fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        self.read(|c| read::job(c, id)).map_err(StorageError::new)
    }

    fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StorageError> {
        self.read(|c| read::job_for_message(c, message_id))
            .map_err(StorageError::new)
    }

    fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        self.read(|c| read::jobs(c, true, limit, scan, keep))
            .map_err(StorageError::new)
    }

    fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StorageError> {
        self.read(|c| read::audit(c, id)).map_err(StorageError::new)
    }

    fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        self.read(|c| read::ops_events(c, limit))
            .map_err(StorageError::new)
    }

    fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        self.read(|c| read::jobs(c, false, limit, scan, keep))
            .map_err(StorageError::new)
    }
}

/// `opsgate restore FILE` into the (empty) database at `url`.
pub fn restore(file: &std::path::Path, url: &Url) -> Result<super::BackupSummary, String> {
    let mut conn = open_schema(url, "restore")?;
    backup::restore(file, &mut conn.client)
}

/// `opsgate migrate`: the sled store `sled` into the (empty) database at `url`.
pub fn migrate_from_sled(
    sled: &super::SledStore,
    url: &Url,
) -> Result<super::BackupSummary, String> {
    let mut conn = open_schema(url, "migrate")?;
    backup::from_sled(sled, &mut conn.client)
}

/// `opsgate migrate`: the database at `url` into a new sled data directory `dir`.
pub fn migrate_to_sled(url: &Url, dir: &std::path::Path) -> Result<super::BackupSummary, String> {
    let mut conn = open_schema(url, "migrate")?;
    backup::to_sled(&mut conn.client, dir)
}
