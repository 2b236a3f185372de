//! Replicas of `opsgate run` (the built binary, each its own process) sharing one
//! PostgreSQL database, with the fake Discord (in the test) and the cloud emulator (a
//! process of its own, so it outlives every replica). Each replica gets a Discord token of
//! its own, so the fake's log says which replica made each call.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fake_discord::*;
use super::postgres_cluster::{database_of, Postgres};
use super::process::{http_get, Emulator, BIN, DEMO_PASSWORD, PASSWORD_VAR};

pub const TOKEN_VAR: &str = "OPSGATE_REPLICA_DISCORD_TOKEN";
pub const URL_VAR: &str = "OPSGATE_REPLICA_DATABASE_URL";
/// A short lease, so failover runs stay fast (production's default is 15 s).
pub const LEASE: &str = "1s";
/// The longest any wait in these tests may take: a bound against hanging, not a timing
/// claim (the takeover figures are in BENCHMARKS.md).
pub const BOUND: Duration = Duration::from_secs(60);

pub struct World {
    pub pg: Option<Postgres>,
    /// The database's connection string and name (PostgreSQL worlds).
    pub url: String,
    pub db: String,
    pub emu: Emulator,
    pub fake: FakeDiscord,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    spawned: usize,
}

/// A config for `run` against the fake and the emulator: soft DDM restarts run at once,
/// hard ones need a dba's approval within `expires`.
fn config_text(discord: &str, emulator: &str, store: &str, expires: &str) -> String {
    format!(
        r#"
[roles]
oncall = "{ONCALL_ROLE}"
dba = "{DBA_ROLE}"
[channels]
ops = "{OPS}"
incidents = "{INCIDENTS}"
[incidents]
default = "incidents"
[discord]
token_env = "{TOKEN_VAR}"
guilds = ["{GUILD}"]
api_base = "{discord}"
edit_interval = "100ms"
[accounts.huawei]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
auth = "password"
iam_user = "opsgate-demo"
iam_domain = "opsgate-demo"
password_env = "{PASSWORD_VAR}"
poll_interval = "100ms"
request_timeout = "5s"
endpoints = {{ iam = "{emulator}", ddm = "{emulator}", gaussdb = "{emulator}" }}
[[rules]]
command = "restart ddm"
modes = ["soft"]
request_roles = ["oncall", "dba"]
channels = ["ops"]
[[rules]]
command = "restart ddm"
modes = ["hard"]
request_roles = ["oncall", "dba"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
expires = "{expires}"
{store}
"#
    )
}

impl World {
    /// A world on a new PostgreSQL cluster, or `None` when PostgreSQL is absent and may be
    /// skipped (`support/postgres.rs`).
    pub async fn postgres(job_duration: &str, expires: &str) -> Option<World> {
        World::postgres_with_lease(job_duration, expires, LEASE).await
    }

    /// The same with a lease of `lease` (the benchmarks measure takeovers with longer ones).
    pub async fn postgres_with_lease(
        job_duration: &str,
        expires: &str,
        lease: &str,
    ) -> Option<World> {
        let pg = Postgres::start()?;
        let url = pg.database();
        let store = format!(
            "[store]\nbackend = \"postgres\"\nurl_env = \"{URL_VAR}\"\nlease = \"{lease}\""
        );
        let mut world = World::new(job_duration, expires, &store).await;
        world.db = database_of(&url).to_string();
        world.url = url;
        world.pg = Some(pg);
        Some(world)
    }

    /// A world on sled: one process at a time on `dir/data`.
    pub async fn sled(job_duration: &str, expires: &str) -> World {
        World::new(job_duration, expires, "").await
    }

    async fn new(job_duration: &str, expires: &str, store: &str) -> World {
        let emu = Emulator::start(job_duration);
        let fake = FakeDiscord::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("run.toml");
        std::fs::write(&config, config_text(&fake.base(), &emu.url, store, expires)).unwrap();
        World {
            pg: None,
            url: String::new(),
            db: String::new(),
            emu,
            fake,
            dir,
            config,
            spawned: 0,
        }
    }

    pub fn pg(&self) -> &Postgres {
        self.pg.as_ref().expect("a PostgreSQL world")
    }

    /// Starts one more replica (as a standby, if another leads).
    pub fn spawn(&mut self) -> Replica {
        self.spawned += 1;
        let token = format!("fake-token-replica-{}", self.spawned);
        let mut command = Command::new(BIN);
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .arg("--data")
            .arg(self.dir.path().join("data"))
            .args(["--http", "127.0.0.1:0"])
            .env(TOKEN_VAR, &token)
            .env(URL_VAR, &self.url)
            .env(PASSWORD_VAR, DEMO_PASSWORD)
            .env("RUST_LOG", "info,serenity=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Replica::start(command, token, self.spawned)
    }

    /// Waits (bounded) until exactly one of `replicas` leads (its `/readyz` says so: the
    /// lease is its own and its gateway is ready) and returns its index.
    pub async fn leader(&self, replicas: &[Replica]) -> usize {
        let deadline = Instant::now() + BOUND;
        loop {
            let leading: Vec<usize> = (0..replicas.len())
                .filter(|i| replicas[*i].role().as_deref() == Some("leader"))
                .collect();
            match leading.as_slice() {
                [one] => return *one,
                [] if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                [] => panic!(
                    "no replica leads; logs:\n{}",
                    replicas
                        .iter()
                        .map(Replica::log)
                        .collect::<Vec<_>>()
                        .join("\n---\n")
                ),
                many => panic!("{} replicas lead at once: {many:?}", many.len()),
            }
        }
    }

    /// Calls to the fake made with `token`, of `method` on paths containing `path`.
    pub fn calls_by(&self, token: &str, method: &str, path: &str) -> Vec<Call> {
        let auth = format!("Bot {token}");
        self.fake
            .lock()
            .calls
            .iter()
            .filter(|c| c.auth == auth && c.method == method && c.path.contains(path))
            .cloned()
            .collect()
    }

    /// Bot messages in #ops whose text contains `needle`.
    pub fn replies(&self, needle: &str) -> usize {
        (self.fake.lock().in_channel(OPS).iter())
            .filter(|(_, m)| m.text().contains(needle))
            .count()
    }

    /// Waits (bounded) until at least `n` bot messages in #ops contain `needle`.
    pub async fn wait_replies(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + BOUND;
        while self.replies(needle) < n {
            assert!(
                Instant::now() < deadline,
                "never {n} replies with `{needle}` (got {}): {:?}",
                self.replies(needle),
                self.fake
                    .lock()
                    .in_channel(OPS)
                    .iter()
                    .map(|(_, m)| m.text())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The job numbers whose card names `target`, from the cards posted.
    pub fn jobs_on(&self, target: &str) -> Vec<u64> {
        let inner = self.fake.lock();
        let mut jobs: Vec<u64> = (inner.messages.values())
            .filter(|m| m.text().contains(target))
            .filter_map(|m| {
                let title = m.title();
                let rest = title.split("Job ").nth(1)?;
                rest.split(' ').next()?.parse().ok()
            })
            .collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }

    /// One line of SQL in the world's database.
    pub fn sql(&self, sql: &str) -> String {
        self.pg().sql(&self.db, sql)
    }
}

pub struct Replica {
    child: Child,
    pub token: String,
    pub number: usize,
    /// Where its HTTP endpoint listens.
    pub http: String,
    log: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

impl Replica {
    fn start(mut command: Command, token: String, number: usize) -> Replica {
        let mut child = command.spawn().expect("spawn opsgate run");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("http endpoint listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let http = rx.recv_timeout(BOUND).unwrap_or_else(|_| {
            panic!(
                "replica {number} never served HTTP: {:?}",
                log.lock().unwrap()
            )
        });
        Replica {
            child,
            token,
            number,
            http,
            log,
            status: None,
        }
    }

    /// What `/readyz` says (`leader`, `standby`) when it answers 200.
    pub fn role(&self) -> Option<String> {
        match http_get(&self.http, "/readyz") {
            Some((200, body)) => Some(body.trim().to_string()),
            _ => None,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The value of the metric `name` (a line `name value` of `/metrics`).
    pub fn metric(&self, name: &str) -> Option<String> {
        let (_, body) = http_get(&self.http, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(|v| v.trim().to_string())
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(self.pid(), signal) };
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// Its exit status once it has ended, waiting (bounded) for that.
    pub async fn ended(&mut self) -> ExitStatus {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.status.or_else(|| self.child.try_wait().ok().flatten()) {
                self.status = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not end: {}",
                self.number,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its exit code, once it has ended.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.has_ended();
        self.status.and_then(|s| s.code())
    }

    /// Whether it has ended (without waiting).
    pub fn has_ended(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
