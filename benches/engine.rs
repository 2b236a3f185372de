//! In-process benchmarks of the bot's own overhead (criterion):
//! - parse + permission check of one command;
//! - one durable job transition (sled batch, flush, fdatasync, seal);
//! - the engine handling N commands under a rule that needs no approval.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use opsgate::chat::{Actor, ChatEvent, ChatOut, MessageId, Origin, Outgoing};
use opsgate::cloud::{
    CloudOperation, JobSpec, PollOutcome, PollPolicy, ReconcileOutcome, Registry, SubmitOutcome,
};
use opsgate::config::Config;
use opsgate::engine::{Engine, EngineEvent};
use opsgate::store::{Store, WriteBatch};

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
    Config::parse(CONFIG, Path::new("bench.toml")).expect("bench config")
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
}

fn parse_and_check(c: &mut Criterion) {
    let config = config();
    let roles = [10u64];
    let text = format!("!restart ddm {} hard", instance(7));
    c.bench_function("parse + permission check", |b| {
        b.iter(|| {
            let cmd = opsgate::command::parse(&text, "!", &config.targets)
                .unwrap()
                .unwrap();
            let opsgate::command::Command::Operation(req) = cmd else {
                unreachable!()
            };
            let rule = opsgate::policy::check_request(
                &config,
                &roles,
                "ops",
                &req.op.key(),
                req.mode.as_deref(),
            );
            criterion::black_box(rule.is_ok())
        })
    });
}

fn durable_transition(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Build a real job through the engine once, then rewrite it durably in the loop.
    let (engine, handle, rx) = Engine::new(
        Arc::new(config()),
        store.clone(),
        Arc::new(Registry::default()),
        Arc::new(NullChat),
        None,
        rt.handle().clone(),
    )
    .unwrap();
    let t = std::thread::spawn(move || {
        engine
            .run(rx)
            .expect("the engine stopped on a storage error")
    });
    handle.chat(ChatEvent::Message {
        actor: Actor {
            id: "alice".into(),
            name: "alice".into(),
            roles: vec![10],
        },
        origin: Origin::channel("ops"),
        text: "!restart ddm orders-db".into(),
    });
    let (tx, done) = std::sync::mpsc::sync_channel(1);
    handle.send(EngineEvent::Sync(tx));
    done.recv().unwrap();
    handle.send(EngineEvent::Shutdown);
    t.join().unwrap();
    let mut job = store.job(1).unwrap().expect("job 1");
    c.bench_function("one durable job transition (sled flush + syncs)", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::default();
            batch.put_job(&mut job, None);
            store.commit(&mut batch).unwrap();
            store.flush().unwrap();
        })
    });
}

fn engine_commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine: N commands, no approval");
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
                    let mut registry = Registry::default();
                    registry.insert("ddm.restart", "acct", Arc::new(InstantOp));
                    let (engine, handle, rx) = Engine::new(
                        Arc::new(config()),
                        Store::open(dir.path()).unwrap(),
                        Arc::new(registry),
                        Arc::new(NullChat),
                        None,
                        rt.handle().clone(),
                    )
                    .unwrap();
                    let t = std::thread::spawn(move || {
                        engine
                            .run(rx)
                            .expect("the engine stopped on a storage error")
                    });
                    let actor = Actor {
                        id: "alice".into(),
                        name: "alice".into(),
                        roles: vec![10],
                    };
                    let start = Instant::now();
                    for i in 0..n {
                        handle.chat(ChatEvent::Message {
                            actor: actor.clone(),
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
    engine_commands
);
criterion_main!(benches);
