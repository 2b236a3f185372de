//! Production concerns end to end: the health/metrics endpoint in shell mode, graceful
//! SIGTERM, `opsgate jobs`/`audit`, and no secret in a full run's logs.

#[path = "support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use process::*;

/// A shell with stdin open and both output streams captured line by line.
struct Bot {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    seen: Vec<String>,
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line containing {needle:?}; saw:\n{}", seen.join("\n"));
}

impl Bot {
    fn start(config: &Path, data: &Path, extra: &[&str]) -> Bot {
        let mut child = Command::new(BIN)
            .args(["shell", "--config"])
            .arg(config)
            .arg("--data")
            .arg(data)
            .args(["--user", "alice", "--roles", "oncall", "--channel", "ops"])
            .args(extra)
            .env(PASSWORD_VAR, DEMO_PASSWORD)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shell");
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        Bot {
            child,
            out,
            err,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn expect(&mut self, needle: &str) -> String {
        wait_line(&self.out, &mut self.seen, needle)
    }

    fn expect_err(&mut self, needle: &str) -> String {
        wait_line(&self.err, &mut self.seen, needle)
    }

    /// The address the endpoint bound (the shell prints it on stderr).
    fn http_addr(&mut self) -> String {
        let line = self.expect_err("http endpoint listening on");
        line.rsplit(' ').next().unwrap().to_string()
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The endpoint listens before the shell reads input, so `/readyz` may answer 503 ("chat not
/// connected") for a moment; poll it the way an orchestrator's probe would.
fn wait_until_ready(addr: &str) -> u16 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(addr, "/readyz");
        if status == 200 || std::time::Instant::now() > deadline {
            return status;
        }
        assert_eq!(
            (status, body.as_str()),
            (503, "chat not connected\n"),
            "only the chat side may lag at start-up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn health_readiness_and_metrics_answer_in_shell_mode_and_metrics_move() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = write_config(dir.path(), &emu.url, "30m");
    let mut bot = Bot::start(
        &config,
        &dir.path().join("data"),
        &["--http", "127.0.0.1:0"],
    );
    let addr = bot.http_addr();
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(wait_until_ready(&addr), 200);
    let (status, before) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &before,
            r#"opsgate_commands_total{verb="restart",outcome="accepted"}"#
        ),
        0.0
    );

    bot.send("!restart ddm orders-db");
    bot.send("!restart ddm ../x");
    bot.send("/wait 1");
    bot.send("!jobs");
    bot.expect("No pending or running jobs");
    let (_, after) = http_get(&addr, "/metrics");
    assert_eq!(
        metric(
            &after,
            r#"opsgate_commands_total{verb="restart",outcome="accepted"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"opsgate_commands_total{verb="restart",outcome="invalid"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"opsgate_jobs_finished_total{provider="huawei",state="succeeded"}"#
        ),
        1.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"opsgate_cloud_call_seconds_count{provider="huawei",operation="ddm.restart/submit"}"#
        ) >= 1.0,
        "{after}"
    );
    assert_eq!(metric(&after, "opsgate_jobs_running "), 0.0, "{after}");

    // While the bot holds the data directory, `opsgate jobs` asks it over HTTP.
    let text =
        std::fs::read_to_string(&config).unwrap() + &format!("\n[http]\nlisten = \"{addr}\"\n");
    let via_http = dir.path().join("via-http.toml");
    std::fs::write(&via_http, text).unwrap();
    let out = Command::new(BIN)
        .args(["jobs", "--filter", "all", "--config"])
        .arg(&via_http)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("succeeded") && listing.contains("restart ddm orders-db soft"),
        "{listing}"
    );
    bot.child.stdin.take();
    assert!(bot.child.wait().unwrap().success());
}

#[test]
fn sigterm_during_a_running_job_exits_cleanly_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("3s");
    let config = write_config(dir.path(), &emu.url, "30m");
    let data = dir.path().join("data");
    let mut bot = Bot::start(&config, &data, &[]);
    bot.send("!restart ddm orders-db");
    bot.expect("· running ·");
    let pid = bot.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = bot.child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM must end with exit 0, got {status:?}"
    );

    let (out, err, ok) = run_shell(&config, &data, "/wait 1\n");
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(
        emu.calls("ddm.restart"),
        1,
        "resumed by polling, never re-sent"
    );

    // And with the bot stopped, `opsgate audit` reads the data directory directly.
    let out = Command::new(BIN)
        .args(["audit", "1", "--json", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"requested") && events.contains(&"succeeded"),
        "{events:?}"
    );
}

#[test]
fn no_configured_secret_appears_in_a_full_runs_logs() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    // Password auth, through a fully traced run.
    let config = write_config(dir.path(), &emu.url, "30m");
    let out = Command::new(BIN)
        .args(["--log-format", "json", "shell", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--roles", "oncall,dba"])
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"!restart ddm orders-db\n/wait 1\n!restart ddm orders-db hard\n/as bob dba\n!approve 2\n/wait 2\n!status 2\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let chat = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(chat.contains("job 2 · succeeded"), "{chat}");
    assert!(logs.lines().count() > 20, "expected a real trace: {logs}");
    // One job's whole story, engine and cloud task alike, is filterable by its span.
    let job2: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["job"] == 2))
        })
        .collect();
    let targets: Vec<&str> = job2.iter().filter_map(|v| v["target"].as_str()).collect();
    assert!(
        targets.iter().any(|t| t.starts_with("opsgate::engine")),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|t| t.starts_with("opsgate::cloud")),
        "{targets:?}"
    );
    assert!(
        !logs.contains(DEMO_PASSWORD),
        "the IAM password appears in the logs"
    );
    assert!(
        !chat.contains(DEMO_PASSWORD),
        "the IAM password appears in chat"
    );

    // AK/SK signing, through a fully traced run.
    let aksk = std::fs::read_to_string(&config).unwrap().replace(
        &format!("auth = \"password\"\niam_user = \"opsgate-demo\"\niam_domain = \"opsgate-demo\"\npassword_env = \"{PASSWORD_VAR}\""),
        "auth = \"aksk\"\naccess_key_env = \"OPSGATE_E2E_AK\"\nsecret_key_env = \"OPSGATE_E2E_SK\"",
    );
    assert!(aksk.contains("aksk"), "config rewrite");
    let aksk_path = dir.path().join("aksk.toml");
    std::fs::write(&aksk_path, aksk).unwrap();
    let (ak, sk) = ("DEMOACCESSKEYID00000", "demo-secret-access-key");
    let out = Command::new(BIN)
        .args(["--log-format", "json", "shell", "--config"])
        .arg(&aksk_path)
        .arg("--data")
        .arg(dir.path().join("data-aksk"))
        .env("OPSGATE_E2E_AK", ak)
        .env("OPSGATE_E2E_SK", sk)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"!restart ddm orders-db\n/wait 1\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains("job 1 · succeeded"));
    assert!(!logs.contains(sk), "the secret key appears in the logs");
}
