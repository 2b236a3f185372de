//! In-process benchmarks of the bot's own overhead (criterion):
//! - parse + permission check of one command;
//! - one durable job transition (sled batch, flush, fdatasync, seal);
//! - the engine alone deciding N commands (no store, no runtime);
//! - the driver running N commands through the engine and sled, under a rule that needs no
//!   approval.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use opsgate::cloud::Registry;
use opsgate::config::Config;
use opsgate::domain::{Actor, ChannelId, JobId, JobSpec, MessageId, RoleId};
use opsgate::driver::{Driver, Seams};
use opsgate::engine::Engine;
use opsgate::job::{AuditEntry, Job};
use opsgate::metrics::Metrics;
use opsgate::ports::chat::{ChatEvent, ChatOut, Origin, Outgoing};
use opsgate::ports::cloud::{
    CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};
use opsgate::ports::inbox::EngineEvent;
use opsgate::ports::store::{History, StorageError, Stored, Writes};
use opsgate::store::SledStore;

const CONFIG: &str = r#"
[roles]
oncall = "10"
[channels]
ops = "ops"
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_BENCH_UNSET"
[targets.orders-db]
service = "ddm"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"
[[rules]]
command = "restart ddm"
request_roles = ["oncall"]
channels = ["ops"]
"#;

fn config() -> Config {
    Config::parse(CONFIG, Path::new("bench.toml"), &opsgate::cloud::builtins())
        .expect("bench config")
}

/// Distinct raw instance IDs, so the per-target lock never refuses.
fn instance(i: u64) -> String {
    format!("{:032x}in09", i + 1)
}

struct NullChat;
impl ChatOut for NullChat {
    fn send(&self, _out: Outgoing) -> Option<MessageId> {
        None
    }
}

/// Accepts at once and succeeds on the first poll, so only the engine's work is measured.
struct InstantOp;
#[async_trait]
impl CloudOperation for InstantOp {
    fn poll_policy(&self) -> PollPolicy {
        PollPolicy {
            initial_delay: Duration::from_millis(1),
            interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(1),
            timeout: Duration::from_secs(60),
        }
    }
    async fn submit(&self, _spec: &JobSpec) -> SubmitOutcome {
        SubmitOutcome::Accepted {
            handle: serde_json::Value::Null,
            cloud_ref: None,
            answer: String::new(),
        }
    }
    async fn poll(&self, _spec: &JobSpec, _h: &serde_json::Value) -> PollOutcome {
        PollOutcome::Succeeded(String::new())
    }
    async fn reconcile(&self, _spec: &JobSpec) -> ReconcileOutcome {
        ReconcileOutcome::Unknown(String::new())
    }
    fn describe(&self, _spec: &JobSpec) -> Result<Described, String> {
        Err("not described".into())
    }
}

/// Nothing stored: the engine alone, without a store.
struct NoHistory;
impl History for NoHistory {
    fn job(&self, _id: JobId) -> Result<Option<Job>, StorageError> {
        Ok(None)
    }
    fn job_for_message(&self, _message_id: &str) -> Result<Option<JobId>, StorageError> {
        Ok(None)
    }
    fn recent_jobs(
        &self,
        _limit: usize,
        _scan: usize,
        _keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        Ok(Vec::new())
    }
    fn audit(&self, _id: JobId) -> Result<Vec<AuditEntry>, StorageError> {
        Ok(Vec::new())
    }
    fn ops_events(&self, _limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        Ok(Vec::new())
    }
    fn oldest_jobs(
        &self,
        _limit: usize,
        _scan: usize,
        _keep: &dyn Fn(&Job) -> bool,
    ) -> Result<Vec<Job>, StorageError> {
        Ok(Vec::new())
    }
}

fn alice() -> Actor {
    Actor {
        id: "alice".into(),
        name: "alice".into(),
        roles: vec![RoleId(10)],
    }
}

/// A driver on a sled store in `dir`, with `op` as every `ddm.restart` of account `acct`.
fn driver(
    dir: &Path,
    op: Arc<dyn CloudOperation>,
    rt: &tokio::runtime::Runtime,
) -> (
    std::thread::JoinHandle<()>,
    opsgate::ports::inbox::EngineHandle,
) {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let mut registry = Registry::default();
    registry.insert("ddm.restart", "acct", op);
    let seams = Seams {
        store: store.clone(),
        history: store,
        operations: Arc::new(registry),
        chat: Arc::new(NullChat),
        observer: None,
        runtime: rt.handle().clone(),
        metrics: Arc::new(Metrics::new()),
        leads: Arc::new(|| true),
    };
    let (driver, handle, rx) = Driver::new(Arc::new(config()), seams).unwrap();
    let t = std::thread::spawn(move || {
        driver
            .run(rx)
            .expect("the engine stopped on a storage error")
    });
    (t, handle)
}

fn parse_and_check(c: &mut Criterion) {
    let config = config();
    let roles = [RoleId(10)];
    let ops = ChannelId::from("ops");
    let text = format!("!restart ddm {} hard", instance(7));
    c.bench_function("parse + permission check", |b| {
        b.iter(|| {
            let cmd = opsgate::command::parse(&text, "!", &config.targets, &config.catalog)
                .unwrap()
                .unwrap();
            let opsgate::command::Command::Operation(req) = cmd else {
                unreachable!()
            };
            let rule = opsgate::policy::check_request(
                &config.policy,
                &roles,
                &ops,
                &req.op.key(),
                req.mode.as_deref(),
            );
            criterion::black_box(rule.is_ok())
        })
    });
}

fn durable_transition(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Build a real job through the engine once, then rewrite it durably in the loop.
    let (t, handle) = driver(dir.path(), Arc::new(InstantOp), &rt);
    handle.chat(ChatEvent::Message {
        actor: alice(),
        origin: Origin::channel("ops"),
        text: "!restart ddm orders-db".into(),
    });
    let (tx, done) = std::sync::mpsc::sync_channel(1);
    handle.send(EngineEvent::Sync(tx));
    done.recv().unwrap();
    handle.send(EngineEvent::Shutdown);
    t.join().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut job = store.job(JobId(1)).unwrap().expect("job 1");
    c.bench_function("one durable job transition (sled flush + syncs)", |b| {
        b.iter(|| {
            let mut writes = Writes::default();
            writes.put_job(&mut job, None);
            store.commit(&writes).unwrap();
            store.flush().unwrap();
        })
    });
}

fn engine_alone(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine alone: N commands decided, no IO");
    let config = Arc::new(config());
    for n in [100u64, 1000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let stored = Stored {
                    next_job_id: JobId(1),
                    chat_freeze: None,
                    next_ops_seq: 0,
                    active: Vec::new(),
                };
                let mut engine = Engine::new(
                    config.clone(),
                    stored,
                    Arc::new(NoHistory),
                    Arc::new(Registry::default()),
                    Arc::new(Metrics::new()),
                    0,
                );
                for i in 0..n {
                    let text = format!("!restart ddm {}", instance(i));
                    let origin = Origin::channel("ops");
                    let event = ChatEvent::Message {
                        actor: alice(),
                        origin,
                        text,
                    };
                    engine.on_chat(event, i);
                    criterion::black_box(engine.take());
                }
            })
        });
    }
    group.finish();
}

fn engine_commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("driver: N commands through the engine and sled");
    group.sample_size(10);
    for n in [100u64, 1000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .unwrap();
                    let (t, handle) = driver(dir.path(), Arc::new(InstantOp), &rt);
                    let start = Instant::now();
                    for i in 0..n {
                        handle.chat(ChatEvent::Message {
                            actor: alice(),
                            origin: Origin::channel("ops"),
                            text: format!("!restart ddm {}", instance(i)),
                        });
                    }
                    let (tx, done) = std::sync::mpsc::sync_channel(1);
                    handle.send(EngineEvent::Sync(tx));
                    done.recv().unwrap();
                    total += start.elapsed();
                    handle.send(EngineEvent::Shutdown);
                    t.join().unwrap();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    parse_and_check,
    durable_transition,
    engine_alone,
    engine_commands
);
criterion_main!(benches);
