//! The store's contract (ports::store), checked the same way against both stores: sled in
//! a temporary directory and PostgreSQL in a throwaway cluster (`support/postgres.rs`).
//! What one group writes is one unit, visible at once and there after a reopen; a job, its
//! place in the active index and its audit entries move together; retention removes a job
//! with its audit and its card's index entry; the read marks and every other record come
//! back as written; and a backup of either store restores into either.

#[path = "support/postgres.rs"]
mod postgres_cluster;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use opsgate::domain::JobId;
use opsgate::freeze::ChatFreeze;
use opsgate::job::{AuditEntry, Job, JobState};
use opsgate::ports::store::{Store, Writes};
use opsgate::store::postgres::{self, Lease, PgReader, PgStore, Url};
use opsgate::store::{Archive, SledStore};
use postgres_cluster::Postgres;

/// Opens the store under test, again on the same data each time, as a restart would.
type Open<'a> = &'a dyn Fn() -> Box<dyn Store>;

fn entry(event: &str, at_ms: u64) -> AuditEntry {
    AuditEntry {
        at_ms,
        actor: Some("alice (1)".into()),
        event: event.into(),
        detail: format!("détail of {event} with \"quotes\""),
    }
}

fn job(id: u64, state: &str) -> Job {
    serde_json::from_value(serde_json::json!({
        "id": id, "spec": {"operation": "ddm.restart", "account": "a", "target": format!("t-{id}"),
        "params": {}}, "requester": {"id": "u", "name": "u"}, "channel": "200",
        "requirement": {"rule": "r", "approvals": 1, "approver_roles": []},
        "state": state, "approvals": [], "created_ms": id, "expires_ms": 0,
        "updated_ms": 0, "message_id": format!("m-{id}"), "cloud_ref": null,
        "handle": null, "progress": null, "outcome": null, "started_ms": null,
        "finished_ms": null, "audit_len": 0
    }))
    .unwrap()
}

fn ops() -> opsgate::domain::ChannelId {
    "200".into()
}

fn commit(store: &dyn Store, writes: Writes) {
    store.commit(writes).unwrap();
    store.flush().unwrap();
}

/// One group with a record of every kind.
fn write_everything(store: &dyn Store) {
    let mut writes = Writes::default();
    let mut pending = job(1, "awaiting_approval");
    writes.put_job(&mut pending, Some(entry("requested", 10)));
    let mut done = job(2, "succeeded");
    writes.put_job(&mut done, Some(entry("requested", 11)));
    writes.put_job(&mut done, Some(entry("succeeded", 12)));
    writes.index_message("m-1", JobId(1));
    writes.set_next_id(JobId(3));
    writes.put_chat_freeze(Some(ChatFreeze {
        reason: "release".into(),
        by: opsgate::domain::Person {
            id: "u".into(),
            name: "root".into(),
        },
        set_ms: 5,
        ends_ms: 50,
    }));
    writes.put_ops_event(0, entry("freeze", 13));
    writes.mark_read("200".into(), "900".into());
    commit(store, writes);
}

/// Every record kind written in one group is read back at once and after a reopen.
fn a_group_is_read_back_whole(open: Open<'_>) {
    let store = open();
    write_everything(store.as_ref());
    read_everything(store.as_ref(), "at once");
    drop(store);
    read_everything(open().as_ref(), "after a reopen");
}

fn read_everything(store: &dyn Store, when: &str) {
    {
        let stored = store.load().unwrap();
        assert_eq!(stored.next_job_id, JobId(3), "{when}");
        assert_eq!(stored.next_ops_seq, 1, "{when}");
        assert_eq!(stored.chat_freeze.map(|f| f.reason), Some("release".into()));
        let active: Vec<JobId> = stored.active.iter().map(|j| j.id).collect();
        assert_eq!(
            active,
            vec![JobId(1)],
            "only the job that is not final, {when}"
        );
        assert_eq!(store.job(JobId(2)).unwrap().unwrap().audit_len, 2, "{when}");
        assert_eq!(
            store.audit(JobId(2)).unwrap(),
            vec![entry("requested", 11), entry("succeeded", 12)],
            "{when}"
        );
        assert_eq!(store.job_for_message("m-1").unwrap(), Some(JobId(1)));
        assert_eq!(store.job_for_message("m-9").unwrap(), None);
        assert_eq!(store.ops_events(5).unwrap(), vec![entry("freeze", 13)]);
        let marks = store.read_marks().unwrap();
        assert_eq!(marks.get(&ops()).map(|m| m.as_str()), Some("900"), "{when}");
    }
}

/// A job that becomes final leaves the active index in the same commit; later groups
/// append to its audit log; a lifted freeze is gone; a read mark moves forward.
fn later_groups_move_a_job_and_its_index_together(open: Open<'_>) {
    let first = open();
    let store = first.as_ref();
    let mut j = job(7, "awaiting_approval");
    let mut writes = Writes::default();
    writes.put_job(&mut j, Some(entry("requested", 1)));
    writes.put_chat_freeze(Some(ChatFreeze {
        reason: "x".into(),
        by: opsgate::domain::Person {
            id: "u".into(),
            name: "root".into(),
        },
        set_ms: 1,
        ends_ms: 2,
    }));
    commit(store, writes);
    assert_eq!(store.load().unwrap().active.len(), 1);
    j.state = JobState::Denied;
    let mut writes = Writes::default();
    writes.put_job(&mut j, Some(entry("denied", 2)));
    writes.put_chat_freeze(None);
    writes.mark_read("200".into(), "901".into());
    commit(store, writes);
    drop(first);
    let store = open();
    let stored = store.load().unwrap();
    assert!(stored.active.is_empty(), "a final job is not active");
    assert!(stored.chat_freeze.is_none(), "the freeze was lifted");
    assert_eq!(
        store.job(JobId(7)).unwrap().unwrap().state,
        JobState::Denied
    );
    assert_eq!(store.audit(JobId(7)).unwrap().len(), 2);
    assert_eq!(
        store.read_marks().unwrap().get(&ops()).unwrap().as_str(),
        "901"
    );
}

/// Retention: a forgotten job goes with its audit entries and its card's index entry.
fn a_forgotten_job_leaves_with_its_audit_and_index(open: Open<'_>) {
    let first = open();
    let store = first.as_ref();
    let mut writes = Writes::default();
    let mut jobs = Vec::new();
    for id in 1..=3 {
        let mut j = job(id, "succeeded");
        writes.put_job(&mut j, Some(entry("requested", id)));
        writes.put_job(&mut j, Some(entry("succeeded", id + 1)));
        writes.index_message(&format!("m-{id}"), JobId(id));
        jobs.push(j);
    }
    commit(store, writes);
    let mut writes = Writes::default();
    writes.forget(&jobs[0]);
    writes.forget(&jobs[2]);
    commit(store, writes);
    drop(first);
    let store = open();
    for gone in [1, 3] {
        assert_eq!(store.job(JobId(gone)).unwrap(), None);
        assert!(store.audit(JobId(gone)).unwrap().is_empty());
        assert_eq!(store.job_for_message(&format!("m-{gone}")).unwrap(), None);
    }
    assert_eq!(store.job(JobId(2)).unwrap().map(|j| j.id), Some(JobId(2)));
    assert_eq!(store.audit(JobId(2)).unwrap().len(), 2);
}

/// Newest and oldest first, bounded by `limit` and `scan`, filtered by `keep`.
fn listings_are_ordered_and_bounded(open: Open<'_>) {
    let store = open();
    let store = store.as_ref();
    let mut writes = Writes::default();
    for id in 1..=10 {
        let state = if id % 2 == 0 { "succeeded" } else { "running" };
        writes.put_job(&mut job(id, state), None);
    }
    commit(store, writes);
    let ids = |jobs: Vec<Job>| jobs.iter().map(|j| j.id.0).collect::<Vec<_>>();
    let all = |_: &Job| true;
    let running = |j: &Job| j.state == JobState::Running;
    assert_eq!(ids(store.recent_jobs(3, 100, &all).unwrap()), [10, 9, 8]);
    assert_eq!(ids(store.oldest_jobs(3, 100, &all).unwrap()), [1, 2, 3]);
    assert_eq!(
        ids(store.recent_jobs(10, 100, &running).unwrap()),
        [9, 7, 5, 3, 1]
    );
    assert_eq!(
        ids(store.recent_jobs(10, 4, &running).unwrap()),
        [9, 7],
        "scan bounds"
    );
    assert_eq!(ids(store.oldest_jobs(2, 100, &running).unwrap()), [1, 3]);
}

/// A flush with nothing written succeeds (and, on PostgreSQL, confirms the lease).
fn an_empty_flush_succeeds(open: Open<'_>) {
    let store = open();
    store.commit(Writes::default()).unwrap();
    store.flush().unwrap();
    store.flush().unwrap();
}

/// A named case of the contract.
type Case = (&'static str, fn(Open<'_>));

const CASES: &[Case] = &[
    ("a group is read back whole", a_group_is_read_back_whole),
    (
        "later groups move a job and its index together",
        later_groups_move_a_job_and_its_index_together,
    ),
    (
        "a forgotten job leaves with its audit and index",
        a_forgotten_job_leaves_with_its_audit_and_index,
    ),
    (
        "listings are ordered and bounded",
        listings_are_ordered_and_bounded,
    ),
    ("an empty flush succeeds", an_empty_flush_succeeds),
];

#[test]
fn the_contract_holds_on_sled() {
    for (name, case) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> Box<dyn Store> { Box::new(SledStore::open(dir.path()).unwrap()) };
        eprintln!("sled: {name}");
        case(&open);
    }
}

/// The store of a replica that leads `url`'s database, with a lease long enough for a test.
pub fn leading(url: &Url) -> PgStore {
    postgres::open_schema(url, "test").unwrap();
    let lease = Lease {
        url: url.clone(),
        replica: "contract-test".into(),
        duration: Duration::from_secs(120),
    };
    let mut client = url.connect("test", Duration::from_secs(10)).unwrap();
    let epoch = match lease.try_take(&mut client).unwrap() {
        Some(lead) => lead.epoch,
        // Already ours (a reopen): the same epoch still leads.
        None => client
            .query_one("SELECT epoch FROM opsgate_leader", &[])
            .unwrap()
            .get(0),
    };
    PgStore::open(url, epoch, Arc::new(AtomicBool::new(false))).unwrap()
}

#[test]
fn the_contract_holds_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    for (name, case) in CASES {
        let url = Url::parse(&pg.database()).unwrap();
        let open = || -> Box<dyn Store> { Box::new(leading(&url)) };
        eprintln!("postgres: {name}");
        case(&open);
    }
}

fn assert_filled(store: &dyn opsgate::ports::store::History) {
    assert_eq!(store.job(JobId(2)).unwrap().unwrap().audit_len, 2);
    assert_eq!(store.audit(JobId(2)).unwrap().len(), 2);
    assert_eq!(store.job_for_message("m-1").unwrap(), Some(JobId(1)));
    assert_eq!(store.ops_events(5).unwrap(), vec![entry("freeze", 13)]);
}

#[test]
fn a_backup_of_either_store_restores_into_either() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();

    // sled -> file -> PostgreSQL
    let sled = SledStore::open(&dir.path().join("sled")).unwrap();
    write_everything(&sled);
    let file = dir.path().join("from-sled.backup");
    let written = Archive::backup(&sled, &mut std::fs::File::create(&file).unwrap()).unwrap();
    let url = Url::parse(&pg.database()).unwrap();
    let restored = postgres::restore(&file, &url).unwrap();
    assert_eq!(restored.entries, written.entries);
    assert!(restored.next_job_id > 1_000_000_000_000, "{restored:?}");
    let reader = PgReader::new(url.clone());
    assert_filled(&reader);
    let again = postgres::restore(&file, &url).unwrap_err();
    assert!(again.contains("already holds opsgate data"), "{again}");

    // PostgreSQL -> file -> sled
    let url = Url::parse(&pg.database()).unwrap();
    write_everything(&leading(&url));
    let file = dir.path().join("from-pg.backup");
    let reader = PgReader::new(url);
    let written = reader
        .backup(&mut std::fs::File::create(&file).unwrap())
        .unwrap();
    let target = dir.path().join("restored");
    let restored = opsgate::store::restore(&file, &target).unwrap();
    assert_eq!(restored.entries, written.entries);
    let sled = SledStore::open(&target).unwrap();
    assert_filled(&sled);
    assert_eq!(
        sled.read_marks().unwrap().get(&ops()).map(|m| m.as_str()),
        Some("900")
    );
}

#[test]
fn migrate_copies_sled_into_an_empty_database_and_back() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sled");
    write_everything(&SledStore::open(&data).unwrap());
    let url = Url::parse(&pg.database()).unwrap();
    let copy = opsgate::store::ReadOnly::open(&data).unwrap();
    let moved = postgres::migrate_from_sled(&copy.store, &url).unwrap();
    assert_eq!(moved.next_job_id, 3, "IDs go on where they were");
    assert_filled(&PgReader::new(url.clone()));
    let refused = postgres::migrate_from_sled(&copy.store, &url).unwrap_err();
    assert!(refused.contains("already holds opsgate data"), "{refused}");

    let back = dir.path().join("back");
    let moved = postgres::migrate_to_sled(&url, &back).unwrap();
    assert_eq!(moved.next_job_id, 3);
    let sled = SledStore::open(&back).unwrap();
    assert_filled(&sled);
    assert_eq!(sled.load().unwrap().active.len(), 1);
    let refused = postgres::migrate_to_sled(&url, &back).unwrap_err();
    assert!(refused.contains("is not empty"), "{refused}");
}
