//! Driving the built `opsgate` binary: the emulator as its own process (it must outlive the
//! bot in crash tests), and the shell with piped stdin.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

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

/// A shell kept open, to be fed line by line and killed mid-flight.
pub struct LiveShell {
    child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl LiveShell {
    pub fn start(config: &Path, data: &Path) -> LiveShell {
        let mut child = shell_command(config, data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
}
