//! The bot as the whole-process benchmarks drive it: `opsgate shell` on piped stdin, against
//! the cloud emulator, under a `restart ddm` rule that needs no approval.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use opsgate::emulator::{self, EmulatorOptions, RunningEmulator};

const BIN: &str = env!("CARGO_BIN_EXE_opsgate");
const PASSWORD_VAR: &str = "OPSGATE_BENCH_IAM_PASSWORD";

/// A runtime of one worker with the cloud emulator on it, its jobs taking 200 ms. The
/// runtime must outlive the emulator.
pub fn emulator() -> (tokio::runtime::Runtime, RunningEmulator) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt
        .block_on(emulator::start(
            EmulatorOptions {
                job_duration: Duration::from_millis(200),
                ..Default::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .expect("emulator");
    (rt, emu)
}

/// A distinct DDM instance ID for each `i`, so the per-target lock never refuses.
pub fn instance(i: usize) -> String {
    format!("{:032x}in09", i + 1)
}

/// The bench's config; `poll` paces the job polls (`60s` keeps them out of the way).
pub fn write_config(dir: &Path, url: &str, poll: &str) -> PathBuf {
    let text = format!(
        r#"
[roles]
oncall = "10"
[channels]
ops = "ops"
[accounts.huawei]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "{user}"
iam_domain = "{domain}"
password_env = "{PASSWORD_VAR}"
poll_interval = "{poll}"
request_timeout = "30s"
endpoints = {{ iam = "{url}", ddm = "{url}" }}
[[rules]]
command = "restart ddm"
request_roles = ["oncall"]
[[rules]]
command = "reboot ddm"
request_roles = ["oncall"]
{DECLARED_DDM}
"#,
        user = emulator::demo::IAM_USER,
        domain = emulator::demo::IAM_DOMAIN,
    );
    let path = dir.join(format!("bench-{poll}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The built-in DDM restart's request, declared (`!reboot ddm <instance>`): the same API,
/// signer, client and answers, so the bench compares what the declaration costs.
const DECLARED_DDM: &str = r#"
[[operations]]
verb = "reboot"
service = "ddm"
summary = "restart a DDM instance (declared; the bench compares it with the built-in)"
provider = "huawei"
endpoint = "ddm"
method = "POST"
path = "/v1/{project_id}/instances/{instance_id}/action"
body = { restart = { type = "soft" } }
accepted = { status = [200], id = "/jobId" }
[operations.errors]
code = "/errCode"
message = "/externalMessage"
refused = [{ status = 400 }, { status = 409 }, { status = 429, retry = true }]
[operations.poll]
path = "/v3/{project_id}/jobs/{job_id}"
state = "/job/status"
running = ["Running"]
succeeded = ["Completed"]
failed = ["Failed"]
[[operations.params]]
name = "instance_id"
pattern = "^[0-9a-zA-Z]{32}in09$"
"#;

/// [`write_config`] with `extra` more declarations (HTTP calls on a team API account), for
/// what loading them adds to start-up.
pub fn write_config_declaring(dir: &Path, url: &str, poll: &str, extra: usize) -> PathBuf {
    let path = write_config(dir, url, poll);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[accounts.team]\nprovider = \"http\"\nauth = \"none\"\nendpoints = {{ api = \"{url}\" }}\n"
    ));
    for i in 0..extra {
        text.push_str(&format!(
            r#"
[[operations]]
verb = "restart"
service = "svc{i}"
provider = "http"
auth = "none"
endpoint = "api"
method = "POST"
path = "/ops/v1/public/services/{{name}}/restart"
body = {{ reason = "{{reason}}", drain = true }}
accepted = {{ status = [202], id = "/operation/id" }}
errors = {{ code = "/code", message = "/message", refused = [{{ status = 400 }}] }}
[operations.poll]
path = "/ops/v1/public/operations/{{job_id}}"
state = "/state"
running = ["running"]
succeeded = ["done"]
[[operations.params]]
name = "name"
pattern = "^[a-z0-9-]{{1,63}}$"
[[operations.params]]
name = "reason"
role = "arg"
values = ["deploy", "incident"]
"#
        ));
    }
    let path = dir.join(format!("bench-{poll}-{extra}-declared.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Shell {
    pub child: Child,
    pub stdin: ChildStdin,
    pub lines: Receiver<(Instant, String)>,
}

impl Shell {
    pub fn start(config: &Path, data: &Path) -> (Shell, Instant) {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(["shell", "--config"])
            .arg(config)
            .arg("--data")
            .arg(data)
            .args([
                "--user",
                "alice",
                "--roles",
                "oncall",
                "--channel",
                "ops",
                "--drain-timeout",
                "1s",
            ])
            .env(PASSWORD_VAR, emulator::demo::PASSWORD)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsgate shell");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        (
            Shell {
                child,
                stdin,
                lines,
            },
            started,
        )
    }

    pub fn send(&mut self, line: &str) -> Instant {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        Instant::now()
    }

    pub fn wait_for(&self, needle: &str) -> Instant {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("bot output");
            if line.contains(needle) {
                return at;
            }
        }
    }

    pub fn proc_status(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        self.proc_status("VmRSS:")
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status("VmHWM:")
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may contain spaces.
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        ticks / 100.0
    }

    /// Waits until `count` more lines containing `needle` have been printed.
    pub fn wait_count(&self, needle: &str, count: usize) {
        let mut seen = 0;
        while seen < count {
            let (_, line) = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .expect("bot output");
            if line.contains(needle) {
                seen += 1;
            }
        }
    }

    pub fn finish(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// The `p` quantile of durations sorted ascending.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Waits (bounded) until the emulator has received `count` DDM restarts.
pub fn wait_posts(emu: &RunningEmulator, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    // Polling stays cheap (a count under the emulator's lock, no copies) so the bench does
    // not compete with the bot for the machine's two cores.
    while emu.arrival_count("ddm.restart") < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} restarts arrived",
            emu.arrival_count("ddm.restart")
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
