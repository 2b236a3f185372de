//! Shared test helpers: an engine with a recording chat and a scripted cloud operation.
#![allow(dead_code)]

pub mod emulated;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use opsgate::cloud::Registry;
use opsgate::config::Config;
use opsgate::domain::{Actor, JobSpec, MessageId, RoleId};
use opsgate::driver::{Driver, Seams};
use opsgate::metrics::Metrics;
use opsgate::ports::chat::{ChatEvent, ChatOut, FlowOut, Origin, Outgoing};
use opsgate::ports::cloud::Operations;
use opsgate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};
use opsgate::ports::inbox::{EngineEvent, EngineHandle};
use opsgate::store::SledStore;

pub const CONFIG: &str = r#"
[bot]
admin_roles = ["admin"]
[roles]
oncall = "10"
dba = "20"
admin = "40"
guest = "50"
sre = "60"
[channels]
ops = "ops"
random = "random"
incidents = "incidents"
alerts = "alerts"
[incidents]
default = "incidents"
routes = [{ severities = ["critical"], channel = "alerts" }]
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_TEST_UNSET_PASSWORD"
[targets.orders-db]
service = "ddm"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"
tags = { env = "prod" }
[[rules]]
name = "soft"
command = "restart ddm"
modes = ["soft"]
request_roles = ["oncall", "dba", "sre"]
channels = ["ops"]
[[rules]]
name = "hard"
command = "restart ddm"
modes = ["hard"]
request_roles = ["oncall", "dba", "sre"]
channels = ["ops"]
approvals = APPROVALS
approver_roles = ["dba"]
expires = "EXPIRES"
HARD_EXTRA
"#;

/// Records everything the engine asks chat to do.
#[derive(Default)]
pub struct RecordingChat {
    pub sent: Mutex<Vec<Outgoing>>,
    /// Approval-flow messages (thread lines, confirmation prompts), as sent.
    pub flows: Mutex<Vec<FlowOut>>,
}

impl ChatOut for RecordingChat {
    fn send(&self, out: Outgoing) -> Option<MessageId> {
        let id = match &out {
            Outgoing::Card { card, .. } => Some(MessageId(format!("msg-{}", card.job))),
            _ => None,
        };
        self.sent.lock().unwrap().push(out);
        id
    }

    /// Kept as sent; a confirmation prompt is also recorded as the reply it stands for.
    fn send_flow(&self, out: FlowOut) -> Option<MessageId> {
        self.flows.lock().unwrap().push(out.clone());
        if let FlowOut::ConfirmPrompt { .. } = out {
            self.send(out.fallback());
        }
        None
    }
}

impl RecordingChat {
    /// The text of every line sent to job `job`'s thread.
    pub fn thread(&self, job: u64) -> Vec<String> {
        self.flows
            .lock()
            .unwrap()
            .iter()
            .filter_map(|f| match f {
                FlowOut::ThreadLine { job: j, text, .. } if j.0 == job => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn texts(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|o| match o {
                Outgoing::Reply { text, .. }
                | Outgoing::Notice { text, .. }
                | Outgoing::Incident { text, .. } => text.clone(),
                Outgoing::Card { card, .. } | Outgoing::UpdateCard { card, .. } => card.line(),
            })
            .collect()
    }

    /// (job, action) of every new card, in the order the engine posted them.
    pub fn new_cards(&self) -> Vec<(u64, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Outgoing::Card { card, .. } => Some((card.job.0, card.action.clone())),
                _ => None,
            })
            .collect()
    }

    /// (channel, text) of every incident notification so far.
    pub fn incidents(&self) -> Vec<(String, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Outgoing::Incident { channel, text, .. } => {
                    Some((channel.to_string(), text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The last direct answer to a command. Unlike [`last`](Self::last), a card edited by
    /// cloud progress in the meantime cannot take its place: only chat events get replies.
    pub fn last_reply(&self) -> String {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .rev()
            .find_map(|o| match o {
                Outgoing::Reply { text, .. } => Some(text.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The last thing said outside the incident channels (where commands are typed).
    pub fn last(&self) -> String {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .rev()
            .find_map(|o| match o {
                Outgoing::Incident { .. } => None,
                Outgoing::Reply { text, .. } | Outgoing::Notice { text, .. } => Some(text.clone()),
                Outgoing::Card { card, .. } | Outgoing::UpdateCard { card, .. } => {
                    Some(card.line())
                }
            })
            .unwrap_or_default()
    }
}

/// A cloud operation that counts submits and finishes after `polls` polls.
pub struct ScriptedOp {
    pub submits: AtomicUsize,
    pub reconciles: AtomicUsize,
    pub polls_needed: usize,
    pub polls: AtomicUsize,
    pub reject: Option<CloudError>,
    /// Submit answers with this outcome instead (e.g. `NotSent`, `Indeterminate`).
    pub outcome: Option<SubmitOutcome>,
    /// Never answer a submit (simulates a crash while the request is in flight).
    pub hang_submit: bool,
}

impl ScriptedOp {
    pub fn new(polls_needed: usize) -> Arc<ScriptedOp> {
        Arc::new(ScriptedOp {
            submits: AtomicUsize::new(0),
            reconciles: AtomicUsize::new(0),
            polls_needed,
            polls: AtomicUsize::new(0),
            reject: None,
            outcome: None,
            hang_submit: false,
        })
    }

    pub fn with(f: impl FnOnce(&mut ScriptedOp)) -> Arc<ScriptedOp> {
        let mut op = ScriptedOp {
            submits: AtomicUsize::new(0),
            reconciles: AtomicUsize::new(0),
            polls_needed: 1,
            polls: AtomicUsize::new(0),
            reject: None,
            outcome: None,
            hang_submit: false,
        };
        f(&mut op);
        Arc::new(op)
    }
    pub fn submits(&self) -> usize {
        self.submits.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CloudOperation for ScriptedOp {
    fn poll_policy(&self) -> PollPolicy {
        PollPolicy {
            initial_delay: Duration::from_millis(5),
            interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
            timeout: Duration::from_secs(30),
        }
    }
    async fn submit(&self, _spec: &JobSpec) -> SubmitOutcome {
        self.submits.fetch_add(1, Ordering::SeqCst);
        if self.hang_submit {
            std::future::pending::<()>().await;
        }
        if let Some(outcome) = &self.outcome {
            return outcome.clone();
        }
        match &self.reject {
            Some(e) => SubmitOutcome::Refused(e.clone()),
            None => SubmitOutcome::Accepted {
                handle: serde_json::json!({"n": 1}),
                cloud_ref: Some("cloud-job-1".into()),
                answer: "accepted".into(),
            },
        }
    }
    async fn poll(&self, _spec: &JobSpec, _handle: &serde_json::Value) -> PollOutcome {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.polls_needed {
            PollOutcome::Succeeded("done".into())
        } else {
            PollOutcome::InProgress {
                progress: Some(format!("{n} polls")),
                handle: None,
            }
        }
    }
    async fn reconcile(&self, _spec: &JobSpec) -> ReconcileOutcome {
        self.reconciles.fetch_add(1, Ordering::SeqCst);
        ReconcileOutcome::Unknown("instance is RUNNING; cannot tell".into())
    }
    fn describe(&self, _spec: &JobSpec) -> Result<Described, String> {
        Err("a scripted operation sends nothing".into())
    }
}

/// A scripted operation whose dry run is described by the real operation for the config,
/// as the bot would describe it.
struct DescribedAsReal {
    scripted: Arc<ScriptedOp>,
    real: Option<Arc<dyn CloudOperation>>,
}

#[async_trait]
impl CloudOperation for DescribedAsReal {
    fn poll_policy(&self) -> PollPolicy {
        self.scripted.poll_policy()
    }
    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        self.scripted.submit(spec).await
    }
    async fn poll(&self, spec: &JobSpec, handle: &serde_json::Value) -> PollOutcome {
        self.scripted.poll(spec, handle).await
    }
    async fn reconcile(&self, spec: &JobSpec) -> ReconcileOutcome {
        self.scripted.reconcile(spec).await
    }
    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        match &self.real {
            Some(real) => real.describe(spec),
            None => self.scripted.describe(spec),
        }
    }
}

pub struct Harness {
    pub handle: EngineHandle,
    /// A clone of the engine's store, for reading what it holds.
    pub store: SledStore,
    pub chat: Arc<RecordingChat>,
    pub op: Arc<ScriptedOp>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub rt: tokio::runtime::Runtime,
}

pub fn config(expires: &str, approvals: u32) -> Config {
    parse(&config_text(expires, approvals, ""))
}

/// The tests' config text: the hard restart needs `approvals` within `expires`, and its
/// rule ends with the lines `hard_extra`.
pub fn config_text(expires: &str, approvals: u32, hard_extra: &str) -> String {
    CONFIG
        .replace("EXPIRES", expires)
        .replace("APPROVALS", &approvals.to_string())
        .replace("HARD_EXTRA", hard_extra)
}

pub fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("t.toml"), &opsgate::cloud::builtins()).expect("test config")
}

impl Harness {
    pub fn start(dir: &Path, op: Arc<ScriptedOp>) -> Harness {
        Harness::start_with(dir, op, "30m", 1)
    }

    pub fn start_with(dir: &Path, op: Arc<ScriptedOp>, expires: &str, approvals: u32) -> Harness {
        Harness::start_config(dir, op, config(expires, approvals))
    }

    /// An engine on `config`, with `op` as its `ddm.restart` on account `acct`.
    pub fn start_config(dir: &Path, op: Arc<ScriptedOp>, config: Config) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = Arc::new(config);
        let real = Registry::from_config(&config)
            .get("ddm.restart", "acct")
            .ok();
        let mut registry = Registry::default();
        let scripted = DescribedAsReal {
            scripted: op.clone(),
            real,
        };
        registry.insert("ddm.restart", "acct", Arc::new(scripted));
        let chat = Arc::new(RecordingChat::default());
        let store = Arc::new(SledStore::open(dir).unwrap());
        let seams = Seams {
            store: store.clone(),
            history: store.clone(),
            operations: Arc::new(registry),
            chat: chat.clone(),
            observer: None,
            runtime: rt.handle().clone(),
            metrics: Arc::new(Metrics::new()),
            leads: Arc::new(|| true),
        };
        let (driver, handle, rx) = Driver::new(config, seams).unwrap();
        let thread = std::thread::spawn(move || {
            driver
                .run(rx)
                .expect("the engine stopped on a storage error")
        });
        let h = Harness {
            handle,
            store: SledStore::clone(&store),
            chat,
            op,
            thread: Some(thread),
            rt,
        };
        h.sync();
        h
    }

    pub fn sync(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.send(EngineEvent::Sync(tx));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("engine answers sync");
    }

    pub fn say(&self, user: &str, roles: &[RoleId], text: &str) -> String {
        self.say_in(user, roles, "ops", text)
    }

    pub fn say_in(&self, user: &str, roles: &[RoleId], channel: &str, text: &str) -> String {
        self.handle.chat(ChatEvent::Message {
            actor: actor(user, roles),
            origin: Origin::channel(channel),
            text: text.into(),
        });
        self.sync();
        self.chat.last()
    }

    /// Sends `event` and waits until the engine has acted on it.
    pub fn event(&self, event: ChatEvent) {
        self.handle.chat(event);
        self.sync();
    }

    pub fn react(&self, user: &str, roles: &[RoleId], job: u64, emoji: &str, added: bool) {
        self.handle.chat(ChatEvent::Reaction {
            actor: actor(user, roles),
            origin: Origin::channel("ops"),
            message_id: MessageId(format!("msg-{job}")),
            emoji: emoji.into(),
            added,
        });
        self.sync();
    }

    /// The `!status` reply for a job, with its audit trail.
    pub fn status(&self, job: u64) -> String {
        self.say("observer", &[], &format!("!status {job}"));
        self.chat.last_reply()
    }

    /// Polls `!status` until the job shows `state` (bounded).
    pub fn wait_for(&self, job: u64, state: &str) -> String {
        for _ in 0..500 {
            let s = self.status(job);
            if s.lines()
                .next()
                .unwrap_or("")
                .contains(&format!("· {state} ·"))
            {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("job {job} never became {state}: {}", self.status(job));
    }

    /// Stops the engine but leaves cloud tasks unfinished, as a crash would.
    pub fn crash(mut self) {
        self.handle.send(EngineEvent::Shutdown);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.rt.shutdown_background();
    }

    pub fn stop(mut self) {
        self.handle.send(EngineEvent::Shutdown);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

pub fn actor(user: &str, roles: &[RoleId]) -> Actor {
    Actor {
        id: user.into(),
        name: user.into(),
        roles: roles.to_vec(),
    }
}

pub const ONCALL: RoleId = RoleId(10);
pub const DBA: RoleId = RoleId(20);
pub const ADMIN: RoleId = RoleId(40);
pub const GUEST: RoleId = RoleId(50);
