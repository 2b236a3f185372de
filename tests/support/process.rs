//! Driving the built `opsgate` binary: the emulator as its own process (it must outlive the
//! bot in crash tests), and the shell with piped stdin.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use regex::Regex;

pub const BIN: &str = env!("CARGO_BIN_EXE_opsgate");
pub const PASSWORD_VAR: &str = "OPSGATE_E2E_IAM_PASSWORD";
pub const DEMO_PASSWORD: &str = "demo-password";

pub struct Emulator {
    child: Child,
    pub url: String,
}

impl Emulator {
    pub fn start(job_duration: &str) -> Emulator {
        let mut child = Command::new(BIN)
            .args([
                "emulator",
                "--listen",
                "127.0.0.1:0",
                "--job-duration",
                job_duration,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("emulator prints its address");
        let url = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        Emulator { child, url }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> String {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect emulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// How many requests the emulator received for `operation` (e.g. `ddm.restart`).
    pub fn calls(&self, operation: &str) -> u64 {
        let body = self.request("GET", "/_emulator/calls", "");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v.get(operation).and_then(|n| n.as_u64()).unwrap_or(0)
    }

    /// Invalidates every token the emulator issued (IAM and SCNet), as an expiry would.
    pub fn revoke_tokens(&self) {
        self.request("POST", "/_emulator/tokens/revoke", "{}");
    }

    pub fn fault(&self, json: &str) {
        self.request("POST", "/_emulator/faults", json);
    }

    /// Every mutating call the emulator received, in order, as (operation, target).
    pub fn call_log(&self) -> Vec<(String, String)> {
        let body = self.request("GET", "/_emulator/calls/log", "");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let field = |c: &serde_json::Value, key: &str| {
            c.get(key)
                .and_then(|s| s.as_str())
                .unwrap_or_else(|| panic!("call log entry without {key}: {body}"))
                .to_string()
        };
        v.as_array()
            .unwrap_or_else(|| panic!("the call log is not an array: {body}"))
            .iter()
            .map(|c| (field(c, "operation"), field(c, "target")))
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the shell against `emulator`, with rules like the example's.
pub fn write_config(dir: &Path, emulator: &str, hard_expires: &str) -> PathBuf {
    let text = format!(
        r#"
[bot]
admin_roles = ["admin"]
[roles]
oncall = "10"
dba = "20"
admin = "40"
[channels]
ops = "ops"
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
[targets.orders-db]
service = "ddm"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"
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
expires = "{hard_expires}"
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// [`write_config`] with more TOML appended (targets, rules, further accounts).
#[allow(dead_code)] // not every test binary that includes this file uses it
pub fn write_config_with(dir: &Path, emulator: &str, hard_expires: &str, extra: &str) -> PathBuf {
    let path = write_config(dir, emulator, hard_expires);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    path
}

fn shell_command(config: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["shell", "--config"])
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
            "--wait-timeout",
            "30s",
            "--drain-timeout",
            "30s",
        ])
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs the shell on `input` to the end and returns (stdout, stderr, success).
pub fn run_shell(config: &Path, data: &Path, input: &str) -> (String, String, bool) {
    let mut child = shell_command(config, data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// What a bounded shell run left behind; `status` is `None` if it had to be killed.
pub struct ShellRun {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<std::process::ExitStatus>,
}

/// [`run_shell`] that cannot hang: the shell is killed after `timeout`.
pub fn run_shell_bounded(config: &Path, data: &Path, input: &str, timeout: Duration) -> ShellRun {
    let mut child = shell_command(config, data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shell");
    // Stdin, stdout and stderr each get a thread so that no full pipe can stall the shell.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ShellRun {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        status,
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A shell kept open, to be fed line by line and killed mid-flight.
pub struct LiveShell {
    child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl LiveShell {
    pub fn start(config: &Path, data: &Path) -> LiveShell {
        LiveShell::spawn(shell_command(config, data).stderr(Stdio::null()))
    }

    /// [`start`](Self::start) with more arguments (e.g. `--http ADDR`) and stderr written
    /// to `stderr`, to be read after the shell is gone.
    pub fn start_logged(config: &Path, data: &Path, args: &[&str], stderr: &Path) -> LiveShell {
        let file = std::fs::File::create(stderr).expect("create the shell's stderr file");
        LiveShell::spawn(shell_command(config, data).args(args).stderr(file))
    }

    fn spawn(cmd: &mut Command) -> LiveShell {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn shell");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LiveShell {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for an output line containing `needle`.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line containing {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Writes `text` as it is, in one write (several lines at once make a burst). An error
    /// means the shell is gone.
    pub fn write_raw(&mut self, text: &str) -> std::io::Result<()> {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    /// Like [`expect`](Self::expect), but `None` (instead of a panic) when `timeout` passes
    /// or the shell's output ends first, so the caller can say what it was doing.
    pub fn try_expect(
        &mut self,
        timeout: Duration,
        found: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if found(&line) {
                return Some(line);
            }
        }
        None
    }

    /// Moves every line printed so far into `seen`, without waiting.
    pub fn take_available(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Closes stdin (the end of input) and waits at most `timeout` for the shell to exit;
    /// `None` if it had to be killed. What it printed meanwhile is added to `seen`.
    pub fn finish(mut self, timeout: Duration) -> (Option<std::process::ExitStatus>, Vec<String>) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.drain_output();
        (status, self.seen)
    }

    /// SIGKILL, then everything the shell had printed before it died, with `seen`.
    pub fn kill_and_collect(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.drain_output();
        self.seen
    }

    /// Reads stdout to its end (the reader thread stops at end of file).
    fn drain_output(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
    }
}

/// An address on 127.0.0.1 that was free a moment ago, for `--http`.
pub fn free_local_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().to_string()
}

/// `GET path` from `addr` (`IP:PORT`): (status code, body). `None` if nothing answered.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Job states as the chat and the job API name them, and the legal moves between them
/// (ARCHITECTURE.md, "Legal moves only"). Kept here rather than taken from the crate so the
/// tests state the contract on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    AwaitingApproval,
    Approved,
    Submitting,
    Running,
    Succeeded,
    Failed,
    Denied,
    Expired,
    Cancelled,
    Unknown,
}

/// (state, chat label, JSON name)
const STATE_NAMES: [(JobState, &str, &str); 10] = [
    (
        JobState::AwaitingApproval,
        "awaiting approval",
        "awaiting_approval",
    ),
    (JobState::Approved, "approved", "approved"),
    (JobState::Submitting, "submitting", "submitting"),
    (JobState::Running, "running", "running"),
    (JobState::Succeeded, "succeeded", "succeeded"),
    (JobState::Failed, "failed", "failed"),
    (JobState::Denied, "denied", "denied"),
    (JobState::Expired, "expired", "expired"),
    (JobState::Cancelled, "cancelled", "cancelled"),
    (JobState::Unknown, "unknown", "unknown"),
];

impl JobState {
    pub fn from_label(label: &str) -> Option<JobState> {
        STATE_NAMES.iter().find(|n| n.1 == label).map(|n| n.0)
    }

    pub fn from_json(name: &str) -> Option<JobState> {
        STATE_NAMES.iter().find(|n| n.2 == name).map(|n| n.0)
    }

    pub fn moves(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            AwaitingApproval => &[Approved, Denied, Expired, Cancelled],
            Approved => &[Submitting, Cancelled],
            Submitting => &[Running, Failed, Unknown],
            Running => &[Succeeded, Failed, Unknown],
            _ => &[],
        }
    }

    pub fn is_final(self) -> bool {
        self.moves().is_empty()
    }

    /// Whether `later` is this state or follows it by legal moves (the graph is acyclic).
    pub fn reaches(self, later: JobState) -> bool {
        self == later || self.moves().iter().any(|m| m.reaches(later))
    }
}

/// One announcement in the chat: a card (new or edited), a `!status` reply or a `!jobs` row.
pub struct Announcement {
    pub job: u64,
    pub state: JobState,
    /// The target of the `restart ddm` the job does (the tests use no other operation).
    pub target: String,
}

/// Recognises [`Announcement`]s in the shell's output.
pub struct Announcements {
    card: Regex,
    row: Regex,
}

impl Default for Announcements {
    fn default() -> Self {
        Announcements::new()
    }
}

impl Announcements {
    pub fn new() -> Announcements {
        let labels = STATE_NAMES.map(|n| n.1).join("|");
        Announcements {
            // `[#ops] (edit job-3) 🔄 job 3 · running · restart ddm <id> soft · ...`
            card: Regex::new(&format!(
                r"^\[#\w+\] (?:\(edit job-\d+\) )?\S+ job (\d+) · ({labels}) · restart ddm (\S+) "
            ))
            .unwrap(),
            // `[#ops]   #3 🔄 running · restart ddm <id> soft · by alice · ...` (`!jobs`)
            row: Regex::new(&format!(
                r"^\[#\w+\]\s+#(\d+) \S+ ({labels}) · restart ddm (\S+) "
            ))
            .unwrap(),
        }
    }

    pub fn parse(&self, line: &str) -> Option<Announcement> {
        let c = self
            .card
            .captures(line)
            .or_else(|| self.row.captures(line))?;
        Some(Announcement {
            job: c[1].parse().ok()?,
            state: JobState::from_label(&c[2])?,
            target: c[3].to_string(),
        })
    }
}
