//! PostgreSQL as the store, what only it has: versioned migrations (a newer schema is
//! refused), the leader's lease (one leader among replicas racing for it, fencing of a
//! leader whose lease ended), and fail-stop on a server that stops or cuts the connection,
//! with nothing committed lost. Against a throwaway cluster (`support/postgres.rs`).

#[path = "support/postgres.rs"]
mod postgres_cluster;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use opsgate::domain::JobId;
use opsgate::ports::store::{History, Store, Writes};
use opsgate::store::postgres::{self, Lease, LeaseEvents, PgStore, Url};
use postgres_cluster::{database_of, Postgres};

/// A short lease, as the failover tests use (production's default is 15 s).
const LEASE: Duration = Duration::from_secs(1);

fn lease(url: &Url, replica: &str) -> Lease {
    Lease {
        url: url.clone(),
        replica: replica.into(),
        duration: LEASE,
    }
}

fn take(lease: &Lease) -> Option<postgres::Lead> {
    let mut client = lease.url.connect("test", Duration::from_secs(10)).unwrap();
    lease.try_take(&mut client).unwrap()
}

fn next_id(store: &dyn Store, n: u64) -> Result<(), String> {
    let mut writes = Writes::default();
    writes.set_next_id(JobId(n));
    store.commit(writes).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())
}

/// The database's name (from `host:port/name`).
fn db_name(url: &Url) -> String {
    database_of(&url.server()).to_string()
}

fn fresh(pg: &Postgres) -> Url {
    let url = Url::parse(&pg.database()).unwrap();
    postgres::open_schema(&url, "test").unwrap();
    url
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_and_left_alone() {
    let Some(pg) = Postgres::start() else { return };
    let url = fresh(&pg);
    let name = db_name(&url);
    pg.sql(&name, "UPDATE opsgate_schema SET version = 99");
    let error = postgres::open_schema(&url, "test").err().expect("refused");
    assert!(
        error.contains("schema version 99, newer than this opsgate"),
        "{error}"
    );
    assert_eq!(pg.sql(&name, "SELECT version FROM opsgate_schema"), "99");
    // Opening again at the same version changes nothing.
    pg.sql(
        &name,
        &format!(
            "UPDATE opsgate_schema SET version = {}",
            postgres::SCHEMA_VERSION
        ),
    );
    postgres::open_schema(&url, "test").unwrap();
}

#[test]
fn of_replicas_racing_for_the_lease_exactly_one_leads_each_time() {
    let Some(pg) = Postgres::start() else { return };
    for round in 0..10 {
        let url = fresh(&pg);
        let barrier = Arc::new(Barrier::new(3));
        let leaders = Arc::new(AtomicUsize::new(0));
        let racers: Vec<_> = (0..3)
            .map(|i| {
                let lease = lease(&url, &format!("replica-{i}"));
                let mut client = url.connect("test", Duration::from_secs(10)).unwrap();
                let (barrier, leaders) = (barrier.clone(), leaders.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    if lease.try_take(&mut client).unwrap().is_some() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for r in racers {
            r.join().unwrap();
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 1, "round {round}");
    }
}

#[derive(Default)]
struct Told {
    lost: AtomicBool,
    failed: AtomicUsize,
}

impl LeaseEvents for Told {
    fn renewal_failed(&self, _why: &str) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }
    fn lost(&self, _why: &str) {
        self.lost.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_leader_whose_lease_ended_commits_nothing_and_confirms_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let url = fresh(&pg);
    let name = db_name(&url);
    let first = lease(&url, "first");
    let lead = take(&first).expect("the first replica leads");
    assert_eq!(lead.previous, None);
    let old = PgStore::open(&url, lead.epoch, Arc::new(AtomicBool::new(false))).unwrap();
    next_id(&old, 5).unwrap();
    assert!(take(&lease(&url, "second")).is_none(), "the lease is held");

    // The leader pauses (renews nothing) past its lease; another takes over.
    std::thread::sleep(LEASE + Duration::from_millis(300));
    let second = lease(&url, "second");
    let new_lead = take(&second).expect("the lease ended");
    assert_eq!(new_lead.epoch, lead.epoch + 1);
    assert_eq!(new_lead.previous.as_deref(), Some("first"));
    let new = PgStore::open(&url, new_lead.epoch, Arc::new(AtomicBool::new(false))).unwrap();

    let refused = next_id(&old, 99).unwrap_err();
    assert!(refused.contains("another replica leads"), "{refused}");
    let error = old.flush().unwrap_err();
    assert!(error.is_lost_lead(), "{error}");
    assert_eq!(
        pg.sql(
            &name,
            "SELECT value FROM opsgate_meta WHERE key = 'next_job_id'"
        ),
        "5",
        "the old leader's last group was not committed"
    );
    next_id(&new, 6).unwrap();
    assert_eq!(new.load().unwrap().next_job_id, JobId(6));

    // The old leader's renewals see the loss at once.
    let told = Arc::new(Told::default());
    let (validity, renewals) = first
        .keep(&lead, Arc::new(AtomicBool::new(false)), told.clone())
        .unwrap();
    renewals.join().unwrap();
    assert!(told.lost.load(Ordering::SeqCst));
    assert!(!validity.holds(), "its own clock says the lease ended too");
}

#[test]
fn a_kept_lease_stays_and_a_released_one_is_taken_at_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = fresh(&pg);
    let first = lease(&url, "first");
    let lead = take(&first).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let told = Arc::new(Told::default());
    let (validity, keeper) = first.keep(&lead, released.clone(), told.clone()).unwrap();
    let store = PgStore::open(&url, lead.epoch, released).unwrap();
    for n in 0..8 {
        // Four lease lengths in all: only the renewals keep it.
        std::thread::sleep(LEASE / 2);
        next_id(&store, 10 + n).unwrap();
        assert!(
            take(&lease(&url, "second")).is_none(),
            "still held after {n}"
        );
        assert!(validity.holds(), "renewed: it holds by its own clock too");
    }
    store.close().unwrap();
    keeper.join().unwrap();
    assert!(!told.lost.load(Ordering::SeqCst), "a release is no loss");
    let next = take(&lease(&url, "second")).expect("released: taken at once");
    assert_eq!(next.epoch, lead.epoch + 1);
}

fn leader(url: &Url) -> PgStore {
    let lead = take(&Lease {
        duration: Duration::from_secs(60),
        ..lease(url, "leader")
    })
    .unwrap();
    PgStore::open(url, lead.epoch, Arc::new(AtomicBool::new(false))).unwrap()
}

#[test]
fn a_cut_connection_or_a_stopped_server_stops_the_store_and_loses_nothing_committed() {
    let Some(pg) = Postgres::start() else { return };
    let url = fresh(&pg);
    let name = db_name(&url);
    let store = leader(&url);
    next_id(&store, 7).unwrap();
    assert!(pg.terminate_connections(&name) >= 1);
    let error = next_id(&store, 8).unwrap_err();
    assert!(error.contains("PostgreSQL failed"), "{error}");
    let again = store.job(JobId(1)).unwrap_err();
    assert_eq!(
        again.to_string(),
        error,
        "poisoned: the first error, not a retry"
    );

    let url = fresh(&pg);
    let store = leader(&url);
    next_id(&store, 9).unwrap();
    pg.stop_immediate();
    let error = next_id(&store, 10).unwrap_err();
    assert!(error.contains("PostgreSQL failed"), "{error}");
    assert!(store.flush().is_err(), "stays failed");
    pg.restart();
    let reopened = PgStore::open(
        &url,
        pg.sql(&db_name(&url), "SELECT epoch FROM opsgate_leader")
            .parse()
            .unwrap(),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(reopened.load().unwrap().next_job_id, JobId(9));
}
