//! The store a bot runs on, for its config's `[store]`: sled in the data directory (this
//! process always leads), or PostgreSQL shared by replicas, where this process stands by
//! until it leads, keeps its lease while it does, and ends as soon as it has lost it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::http::Health;
use crate::config::store::Backend as Config;
use crate::metrics::Metrics;
use crate::ports::store::{History, Store};
use crate::store::postgres::{self, Lease, LeaseEvents, PgReader, PgStore, Url};
use crate::store::{Archive, SledStore};

/// Exit status when this replica lost the lead (sysexits EX_TEMPFAIL): its supervisor
/// starts it again, as a standby.
pub const EXIT_LOST_LEAD: i32 = 75;

/// A store, opened for reading; [`Backend::lead`] makes it this process's to write.
pub enum Backend {
    Sled(SledStore),
    Postgres {
        lease: Box<Lease>,
        reader: Arc<PgReader>,
    },
}

/// What the driver writes to, once this process leads.
pub struct Leading {
    pub store: Arc<dyn Store>,
    pub history: Arc<dyn History>,
    /// With PostgreSQL: the epoch this replica leads in, and the replica it took over from.
    pub epoch: Option<i64>,
    pub took_over_from: Option<String>,
    /// Whether this process surely still leads, by its own clock (always, on sled): what
    /// the chat adapter is about to post is held back once it does not.
    pub holds: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Backend {
    /// Opens sled's data directory `data`, or connects to PostgreSQL and brings its
    /// tables up to date (refusing a schema newer than this binary).
    pub fn open(config: &Config, data: &Path) -> Result<Backend, String> {
        match config {
            Config::Sled => Ok(Backend::Sled(
                SledStore::open(data).map_err(|e| e.to_string())?,
            )),
            Config::Postgres(pg) => {
                let url = Url::parse(pg.url.require("the PostgreSQL connection string")?.expose())?;
                postgres::open_schema(&url, "setup")?;
                Ok(Backend::Postgres {
                    lease: Box::new(Lease {
                        url: url.clone(),
                        replica: replica_name(),
                        duration: pg.lease,
                    }),
                    reader: Arc::new(PgReader::new(url)),
                })
            }
        }
    }

    /// Where the jobs are, for the log.
    pub fn describe(&self, data: &Path) -> String {
        match self {
            Backend::Sled(_) => format!("data directory {}", data.display()),
            Backend::Postgres { lease, .. } => format!(
                "PostgreSQL at {} as replica {} (lease {}s)",
                lease.url.server(),
                lease.replica,
                lease.duration.as_secs_f64()
            ),
        }
    }

    /// What the job API reads.
    pub fn archive(&self) -> Arc<dyn Archive> {
        match self {
            Backend::Sled(store) => Arc::new(store.clone()),
            Backend::Postgres { reader, .. } => reader.clone(),
        }
    }

    /// Returns once this process leads: at once on sled; with PostgreSQL after standing
    /// by (`/readyz` says so) until the lease is this replica's, which it then keeps
    /// renewing. A lost lease ends the process (exit 75) without a word in chat, where
    /// another replica now answers.
    pub fn lead(self, health: &Arc<Health>, metrics: &Arc<Metrics>) -> Result<Leading, String> {
        let (lease, _reader) = match self {
            Backend::Sled(store) => {
                metrics.leader.leader.set(1);
                let store = Arc::new(store);
                return Ok(Leading {
                    store: store.clone(),
                    history: store,
                    epoch: None,
                    took_over_from: None,
                    holds: Arc::new(|| true),
                });
            }
            Backend::Postgres { lease, reader } => (*lease, reader),
        };
        health.standby.store(true, Ordering::SeqCst);
        tracing::info!(replica = %lease.replica, "standing by until this replica leads");
        // Said once per new problem, not on every try.
        let last_problem = std::sync::Mutex::new(String::new());
        let lead = lease.wait_to_lead(&|why| {
            let mut last = last_problem.lock().unwrap_or_else(|e| e.into_inner());
            if *last != why {
                tracing::warn!(error = %why, "cannot reach PostgreSQL while standing by; trying again");
                *last = why.to_string();
            }
        });
        let released = Arc::new(AtomicBool::new(false));
        let events: Arc<dyn LeaseEvents> = Arc::new(Watch {
            health: health.clone(),
            metrics: metrics.clone(),
        });
        let (validity, _renewals) = lease
            .keep(&lead, released.clone(), events)
            .map_err(|e| format!("cannot start the lease's thread: {e}"))?;
        let store = Arc::new(PgStore::open(&lease.url, lead.epoch, released)?);
        metrics.leader.leader.set(1);
        metrics.leader.epoch.set(lead.epoch);
        if lead.previous.is_some() {
            metrics.leader.takeovers.inc();
        }
        health.standby.store(false, Ordering::SeqCst);
        match &lead.previous {
            Some(previous) => {
                tracing::warn!(epoch = lead.epoch, previous = %previous, "this replica leads now: took over")
            }
            None => tracing::info!(epoch = lead.epoch, "this replica leads (the first leader)"),
        }
        Ok(Leading {
            store: store.clone(),
            history: store,
            epoch: Some(lead.epoch),
            took_over_from: lead.previous,
            holds: Arc::new(move || validity.holds()),
        })
    }
}

/// What the lease tells the process.
struct Watch {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl LeaseEvents for Watch {
    fn renewal_failed(&self, why: &str) {
        self.metrics.leader.renewals_failed.inc();
        tracing::warn!(error = %why, "the lease could not be renewed; trying again until it would end");
    }

    fn lost(&self, why: &str) {
        self.health.store_open.store(false, Ordering::SeqCst);
        self.metrics.leader.leader.set(0);
        let line = format!(
            "this replica lost the lead ({why}): it stops taking input, says nothing more in \
             chat and ends (exit {EXIT_LOST_LEAD}); another replica leads"
        );
        super::logging::line(super::logging::Level::Error, &line);
        std::process::exit(EXIT_LOST_LEAD);
    }
}

/// This replica's name for the others: the host's name (a pod's name in Kubernetes) and
/// the process ID.
fn replica_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_string()
    };
    format!("{host}/{}", std::process::id())
}
