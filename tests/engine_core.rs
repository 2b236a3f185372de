//! The engine on its own: decisions as steps of writes and effects, with no store, no
//! runtime and no clock. Time is whatever the test says; "the store" is a map the test
//! applies each step's writes to; a restart is a new engine on what that map holds.

mod support;

use opsgate::domain::MessageId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use opsgate::config::Config;
use opsgate::domain::{Actor, JobId};
use opsgate::engine::{Effect, Engine};
use opsgate::freeze::ChatFreeze;
use opsgate::job::{AuditEntry, Job, JobState};
use opsgate::metrics::Metrics;
use opsgate::ports::chat::{ChatEvent, Origin, Outgoing};
use opsgate::ports::cloud::{CloudOperation, Operations, SubmitOutcome};
use opsgate::ports::inbox::CloudUpdate;
use opsgate::ports::store::{History, StorageError, Stored, Writes};
use proptest::prelude::*;
use support::{actor, config, ADMIN, DBA, ONCALL};

const MINUTE: u64 = 60_000;

/// What a store would hold, in memory.
#[derive(Default)]
struct Memory {
    jobs: BTreeMap<JobId, Job>,
    audit: BTreeMap<JobId, Vec<AuditEntry>>,
    messages: HashMap<MessageId, JobId>,
    next_id: JobId,
    chat_freeze: Option<ChatFreeze>,
    ops: Vec<AuditEntry>,
}

#[derive(Default, Clone)]
struct MemoryStore(Arc<Mutex<Memory>>);

impl MemoryStore {
    fn apply(&self, writes: Writes) {
        let mut m = self.0.lock().unwrap();
        for (id, written) in writes.jobs {
            m.audit
                .entry(id)
                .or_default()
                .extend(written.audit.into_iter().map(|(_, e)| e));
            m.jobs.insert(id, written.job);
        }
        m.messages.extend(writes.messages);
        if let Some(next) = writes.next_job_id {
            m.next_id = next;
        }
        if let Some(freeze) = writes.chat_freeze {
            m.chat_freeze = freeze;
        }
        m.ops.extend(writes.ops_events.into_iter().map(|(_, e)| e));
        for gone in writes.forget {
            m.jobs.remove(&gone.job);
            m.audit.remove(&gone.job);
            if let Some(message) = gone.message_id {
                m.messages.remove(&message);
            }
        }
    }

    fn stored(&self) -> Stored {
        let m = self.0.lock().unwrap();
        Stored {
            next_job_id: m.next_id.max(JobId(1)),
            chat_freeze: m.chat_freeze.clone(),
            next_ops_seq: m.ops.len() as u64,
            active: (m.jobs.values())
                .filter(|j| !j.state.is_final())
                .cloned()
                .collect(),
        }
    }

    fn state(&self, id: JobId) -> Option<JobState> {
        self.0.lock().unwrap().jobs.get(&id).map(|j| j.state)
    }
}

impl History for MemoryStore {
    fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        Ok(self.0.lock().unwrap().jobs.get(&id).cloned())
    }
    fn job_for_message(&self, message_id: &str) -> Result<Option<JobId>, StorageError> {
        let m = self.0.lock().unwrap();
        Ok(m.messages.get(&MessageId::from(message_id)).copied())
    }
    fn recent_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        let m = self.0.lock().unwrap();
        let newest = m.jobs.values().rev().take(scan);
        Ok(newest.filter(|j| keep(j)).take(limit).cloned().collect())
    }
    fn audit(&self, id: JobId) -> Result<Vec<AuditEntry>, StorageError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .audit
            .get(&id)
            .cloned()
            .unwrap_or_default())
    }
    fn ops_events(&self, limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        let m = self.0.lock().unwrap();
        Ok(m.ops.iter().rev().take(limit).cloned().collect())
    }
    fn oldest_jobs(
        &self,
        limit: usize,
        scan: usize,
        keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        let m = self.0.lock().unwrap();
        let oldest = m.jobs.values().take(scan);
        Ok(oldest.filter(|j| keep(j)).take(limit).cloned().collect())
    }
}

/// No cloud: the engine only asks for a description, for dry runs.
struct NoCloud;
impl Operations for NoCloud {
    fn get(&self, operation: &str, _account: &str) -> Result<Arc<dyn CloudOperation>, String> {
        Err(format!("no cloud for {operation} in this test"))
    }
}

/// An engine and the memory it writes to, stepping as a driver would: each step's writes are
/// applied before its effects are looked at.
struct Core {
    engine: Engine,
    store: MemoryStore,
    config: Arc<Config>,
}

impl Core {
    fn new(config: Config) -> Core {
        Core::on(Arc::new(config), MemoryStore::default(), 0).0
    }

    /// A new engine on what `store` holds (a restart), and its first step's effects.
    fn on(config: Arc<Config>, store: MemoryStore, now: u64) -> (Core, Vec<Effect>) {
        let engine = Engine::new(
            config.clone(),
            store.stored(),
            Arc::new(store.clone()),
            Arc::new(NoCloud),
            Arc::new(Metrics::new()),
            now,
        );
        let mut core = Core {
            engine,
            store,
            config,
        };
        let effects = core.step();
        (core, effects)
    }

    fn restart(self, now: u64) -> (Core, Vec<Effect>) {
        Core::on(self.config, self.store, now)
    }

    fn step(&mut self) -> Vec<Effect> {
        let step = self.engine.take();
        self.store.apply(step.writes);
        step.effects
    }

    fn say(&mut self, who: &Actor, text: &str, now: u64) -> Vec<Effect> {
        let event = ChatEvent::Message {
            actor: who.clone(),
            origin: Origin::channel("ops"),
            text: text.into(),
        };
        self.engine.on_chat(event, now);
        self.step()
    }

    fn cloud(&mut self, job: JobId, update: CloudUpdate, now: u64) -> Vec<Effect> {
        self.engine.on_cloud(job, update, now);
        self.step()
    }
}

fn submits(effects: &[Effect]) -> Vec<JobId> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Submit(id) => Some(*id),
            _ => None,
        })
        .collect()
}

fn replies(effects: &[Effect]) -> Vec<&str> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Chat(Outgoing::Reply { text, .. }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn accepted() -> CloudUpdate {
    CloudUpdate::Submitted(SubmitOutcome::Accepted {
        handle: serde_json::json!({}),
        cloud_ref: Some("j-1".into()),
        answer: "accepted".into(),
    })
}

#[test]
fn a_job_is_written_submitting_in_the_step_that_submits_it_and_ends_by_the_clouds_word() {
    let mut core = Core::new(config("30m", 1));
    let alice = actor("alice", &[ONCALL]);
    let effects = core.say(&alice, "!restart ddm orders-db", 0);
    assert_eq!(submits(&effects), vec![JobId(1)]);
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Submitting));
    let effects = core.cloud(JobId(1), accepted(), 10);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Poll(JobId(1)))),
        "{effects:?}"
    );
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Running));
    core.cloud(JobId(1), CloudUpdate::Finished(Ok("done".into())), 20);
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Succeeded));
    // The lock went with it: the same target takes a new request.
    let effects = core.say(&alice, "!restart ddm orders-db", 30);
    assert_eq!(submits(&effects), vec![JobId(2)]);
}

#[test]
fn an_approval_counts_only_before_the_deadline_the_engine_is_given() {
    let mut core = Core::new(config("30m", 1));
    let alice = actor("alice", &[ONCALL]);
    let bob = actor("bob", &[DBA]);
    let effects = core.say(&alice, "!restart ddm orders-db hard", 0);
    assert!(submits(&effects).is_empty());
    assert_eq!(core.store.state(JobId(1)), Some(JobState::AwaitingApproval));
    // The requester never approves, whatever the roles.
    let effects = core.say(&actor("alice", &[DBA]), "!approve 1", MINUTE);
    assert!(
        replies(&effects)[0].contains("you requested it"),
        "{effects:?}"
    );
    let effects = core.say(&bob, "!approve 1", 31 * MINUTE);
    assert!(replies(&effects)[0].contains("expired"), "{effects:?}");
    assert!(submits(&effects).is_empty());
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Expired));

    let effects = core.say(&alice, "!restart ddm orders-db hard", 40 * MINUTE);
    assert!(submits(&effects).is_empty());
    let effects = core.say(&bob, "!approve 2", 41 * MINUTE);
    assert_eq!(submits(&effects), vec![JobId(2)]);
    assert_eq!(core.store.state(JobId(2)), Some(JobState::Submitting));
}

/// The tests' config with `[bot] keep_finished` set to `keep`.
fn keeping(keep: &str) -> Config {
    let text = support::config_text("2h", 1, "")
        .replace("[bot]\n", &format!("[bot]\nkeep_finished = \"{keep}\"\n"));
    support::parse(&text)
}

#[test]
fn the_deadline_passes_with_no_event_when_the_driver_says_the_time() {
    let mut core = Core::new(keeping("forever"));
    core.say(&actor("alice", &[ONCALL]), "!restart ddm orders-db hard", 0);
    assert_eq!(core.engine.next_deadline(), Some(120 * MINUTE));
    core.engine.tick(120 * MINUTE - 1);
    core.step();
    assert_eq!(core.store.state(JobId(1)), Some(JobState::AwaitingApproval));
    core.engine.tick(120 * MINUTE);
    core.step();
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Expired));
}

#[test]
fn a_restart_reconciles_what_was_being_submitted_and_resubmits_nothing() {
    let mut core = Core::new(config("30m", 1));
    core.say(&actor("alice", &[ONCALL]), "!restart ddm orders-db", 0);
    let (core, effects) = core.restart(MINUTE);
    assert!(submits(&effects).is_empty(), "{effects:?}");
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Reconcile(JobId(1)))));
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Submitting));
}

#[test]
fn a_status_reply_sees_the_writes_of_its_own_group() {
    let mut core = Core::new(config("30m", 1));
    let alice = actor("alice", &[ONCALL]);
    let origin = Origin::channel("ops");
    let message = |text: &str| ChatEvent::Message {
        actor: alice.clone(),
        origin: origin.clone(),
        text: text.into(),
    };
    // Two events before the step is taken: the reply to the second reads what the first
    // wrote, though nothing has reached the store yet.
    core.engine.on_chat(message("!restart ddm orders-db"), 0);
    core.engine
        .on_cloud(JobId(1), CloudUpdate::Finished(Ok("done".into())), 1);
    core.engine.on_chat(message("!status 1"), 2);
    let effects = core.step();
    let status = replies(&effects).pop().unwrap_or_default().to_string();
    assert!(status.contains("job 1 · submitting"), "{status}");
    assert!(status.contains("requested"), "{status}");
}

#[test]
fn finished_jobs_leave_after_the_retention_time_and_nothing_else_does() {
    let mut core = Core::new(keeping("1h"));
    let alice = actor("alice", &[ONCALL]);
    core.say(&alice, "!restart ddm orders-db", 0);
    core.cloud(JobId(1), accepted(), 1);
    core.cloud(JobId(1), CloudUpdate::Finished(Ok("done".into())), 2);
    core.say(&actor("root", &[ADMIN]), "!freeze 10m release", 3);
    core.say(&actor("root", &[ADMIN]), "!unfreeze", 4);
    // A finished job whose break-glass review is still open is kept, however old.
    let mut unreviewed = core.store.0.lock().unwrap().jobs[&JobId(1)].clone();
    unreviewed.id = JobId(2);
    unreviewed.break_glass = Some(opsgate::job::BreakGlass {
        by: alice.person(),
        reason: "db down".into(),
        at_ms: 0,
        review: None,
    });
    core.store
        .0
        .lock()
        .unwrap()
        .jobs
        .insert(JobId(2), unreviewed);
    core.store.0.lock().unwrap().next_id = JobId(3);
    let (mut core, _) = core.restart(5);
    core.say(&alice, "!restart ddm orders-db hard", 6);
    assert_eq!(core.store.state(JobId(3)), Some(JobState::AwaitingApproval));

    core.engine.tick(59 * MINUTE);
    core.step();
    assert_eq!(
        core.store.state(JobId(1)),
        Some(JobState::Succeeded),
        "not yet an hour"
    );
    core.engine.tick(61 * MINUTE);
    core.step();
    assert_eq!(
        core.store.state(JobId(1)),
        None,
        "finished more than an hour ago"
    );
    assert!(core.store.audit(JobId(1)).unwrap().is_empty());
    assert!(
        core.store.state(JobId(2)).is_some(),
        "its review is still open"
    );
    assert_eq!(core.store.state(JobId(3)), Some(JobState::AwaitingApproval));
    let status = core.say(&alice, "!status 1", 62 * MINUTE);
    assert!(
        replies(&status)[0].contains("Job 1 is no longer kept"),
        "{status:?}"
    );
    let overview = core.say(&alice, "!status", 62 * MINUTE);
    assert!(
        replies(&overview)[0].contains("freeze changes"),
        "{overview:?}"
    );
}

#[test]
fn forever_keeps_every_finished_job() {
    let mut core = Core::new(keeping("forever"));
    core.say(&actor("alice", &[ONCALL]), "!restart ddm orders-db", 0);
    core.cloud(JobId(1), accepted(), 1);
    core.cloud(JobId(1), CloudUpdate::Finished(Ok("done".into())), 2);
    assert_eq!(core.engine.next_deadline(), None);
    core.engine.tick(10_000 * 24 * 60 * MINUTE);
    core.step();
    assert_eq!(core.store.state(JobId(1)), Some(JobState::Succeeded));
}

/// One thing that can happen to the engine.
#[derive(Clone, Debug)]
enum Event {
    Request {
        target: usize,
        hard: bool,
    },
    Approve {
        job: JobId,
    },
    Deny {
        job: JobId,
    },
    Accepted {
        job: JobId,
    },
    Indeterminate {
        job: JobId,
    },
    Finished {
        job: JobId,
    },
    /// A restart: what was in flight is lost, the store is what remains.
    Restart,
    Tick,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0usize..3, any::<bool>()).prop_map(|(target, hard)| Event::Request { target, hard }),
        (1u64..8).prop_map(|job| Event::Approve { job: JobId(job) }),
        (1u64..8).prop_map(|job| Event::Deny { job: JobId(job) }),
        (1u64..8).prop_map(|job| Event::Accepted { job: JobId(job) }),
        (1u64..8).prop_map(|job| Event::Indeterminate { job: JobId(job) }),
        (1u64..8).prop_map(|job| Event::Finished { job: JobId(job) }),
        Just(Event::Restart),
        Just(Event::Tick),
    ]
}

const TARGETS: [&str; 3] = [
    "orders-db",
    "0123456789abcdef0123456789abcdefin09",
    "fedcba9876543210fedcba9876543210in09",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever happens in whatever order, restarts included: a job is submitted at most
    /// once, and only in a step whose writes left it `submitting` in the store.
    #[test]
    fn no_job_is_ever_submitted_twice_nor_before_it_is_written(
        events in proptest::collection::vec(event(), 1..60)
    ) {
        let mut core = Core::new(config("30m", 1));
        let (alice, bob) = (actor("alice", &[ONCALL]), actor("bob", &[DBA]));
        let mut submitted: BTreeMap<JobId, usize> = BTreeMap::new();
        let mut now = 0;
        for event in events {
            now += MINUTE;
            let effects = match event {
                Event::Request { target, hard } => {
                    let mode = if hard { " hard" } else { "" };
                    core.say(&alice, &format!("!restart ddm {}{mode}", TARGETS[target]), now)
                }
                Event::Approve { job } => core.say(&bob, &format!("!approve {job}"), now),
                Event::Deny { job } => core.say(&bob, &format!("!deny {job}"), now),
                Event::Accepted { job } => core.cloud(job, accepted(), now),
                Event::Indeterminate { job } => core.cloud(
                    job,
                    CloudUpdate::Submitted(SubmitOutcome::Indeterminate("HTTP 503".into())),
                    now,
                ),
                Event::Finished { job } => {
                    core.cloud(job, CloudUpdate::Finished(Ok("done".into())), now)
                }
                Event::Restart => {
                    let (restarted, effects) = core.restart(now);
                    core = restarted;
                    effects
                }
                Event::Tick => {
                    now += 31 * MINUTE;
                    core.engine.tick(now);
                    core.step()
                }
            };
            for id in submits(&effects) {
                prop_assert_eq!(core.store.state(id), Some(JobState::Submitting));
                *submitted.entry(id).or_default() += 1;
            }
        }
        for (id, n) in submitted {
            prop_assert_eq!(n, 1, "job {} submitted {} times", id, n);
        }
    }
}
