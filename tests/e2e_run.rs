//! `opsgate run` as a process: the built binary against the fake Discord on 127.0.0.1.
//! Readiness follows the gateway, a command is answered, SIGTERM ends it with status 0, and
//! fatal setup problems end it non-zero with a message that says what to fix.

#[path = "support/fake_discord.rs"]
mod fake_discord;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fake_discord::*;

const BIN: &str = env!("CARGO_BIN_EXE_opsgate");
const TOKEN_VAR: &str = "OPSGATE_E2E_RUN_DISCORD_TOKEN";
/// `run` refuses to start with an account secret it cannot read; no job here reaches a cloud.
const PASSWORD_VAR: &str = "OPSGATE_E2E_RUN_PASSWORD";

fn write_config(dir: &Path, discord: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[roles]
oncall = "{ONCALL_ROLE}"
dba = "{DBA_ROLE}"
[channels]
ops = "{OPS}"
[discord]
token_env = "{TOKEN_VAR}"
guilds = ["{GUILD}"]
api_base = "{discord}"
[accounts.huawei]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "{PASSWORD_VAR}"
[[rules]]
command = "restart ddm"
request_roles = ["oncall"]
"#
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn http_status(addr: &str, path: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_connects_answers_and_stops_cleanly_on_sigterm() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base());
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--http", "127.0.0.1:0"])
        .env(TOKEN_VAR, "fake-token-run")
        .env(PASSWORD_VAR, "unused")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("http endpoint listening on") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the bot exited early"
        );
    }
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    std::thread::spawn(move || for _ in stderr.lines() {});

    fake.wait("READY", |i| (i.readies > 0).then_some(())).await;
    let ready = {
        let mut status = 0;
        for _ in 0..250 {
            status = http_status(&addr, "/readyz");
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status
    };
    assert_eq!(ready, 200, "/readyz once the gateway is ready");
    assert_eq!(http_status(&addr, "/healthz"), 200);

    fake.say(ALICE, OPS, "!whoami");
    fake.wait("a reply to !whoami", |i| {
        i.in_channel(OPS)
            .into_iter()
            .find(|(_, m)| m.text().contains("roles: oncall"))
    })
    .await;

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "SIGTERM ends `opsgate run` with 0, got {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_a_token_says_what_to_set() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base());
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env_remove(TOKEN_VAR)
        .env(PASSWORD_VAR, "unused")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(TOKEN_VAR), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_ends_the_process_non_zero_saying_so() {
    let fake = FakeDiscord::start().await;
    fake.lock().close_on_identify = Some(4004);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake.base());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(dir.path().join("data"))
            .env(TOKEN_VAR, "fake-but-wrong-token")
            .env(PASSWORD_VAR, "unused")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("token"), "{err}");
    assert!(
        !err.contains("fake-but-wrong-token"),
        "the token must not be printed"
    );
}
