//! `opsgate run` stops on SIGTERM whatever the gateway is doing (Discord unreachable, or
//! reachable over REST while the gateway refuses), after draining, and a token that cannot be
//! a bot token is refused at start-up without any network. The built binary, 127.0.0.1 only;
//! every wait is bounded (60 s cap) and nothing is timed.

#[path = "support/fake_discord.rs"]
mod fake_discord;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_discord::*;

const BIN: &str = env!("CARGO_BIN_EXE_opsgate");
const TOKEN_VAR: &str = "OPSGATE_DISCORD_SHUTDOWN_TOKEN";
/// The cloud account's password: start-up refuses an unset secret, and no job runs here.
const PASSWORD_VAR: &str = "OPSGATE_DISCORD_SHUTDOWN_PASSWORD";

fn write_config(dir: &Path, api_base: Option<&str>) -> std::path::PathBuf {
    let base = api_base.map_or(String::new(), |b| format!("api_base = \"{b}\""));
    let text = format!(
        r#"
[roles]
oncall = "{ONCALL_ROLE}"
[channels]
ops = "{OPS}"
[discord]
token_env = "{TOKEN_VAR}"
guilds = ["{GUILD}"]
{base}
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
    std::fs::write(&path, text).expect("config");
    path
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A running `opsgate run` with its stderr collected.
struct Bot {
    child: Child,
    http: String,
    log: Arc<Mutex<String>>,
}

impl Bot {
    fn start(config: &Path, data: &Path, token: &str) -> Bot {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .arg("--data")
            .arg(data)
            .args(["--http", "127.0.0.1:0"])
            .env(TOKEN_VAR, token)
            .env(PASSWORD_VAR, "not-used")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while !line.contains("http endpoint listening on") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).expect("read") > 0,
                "the bot exited early"
            );
        }
        let http = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Bot { child, http, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until the log contains `text`.
    fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (at most 60 s) for the exit.
    fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the log thread read the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("SIGTERM did not end the bot:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn sigterm_ends_the_bot_while_discord_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("http://127.0.0.1:{}", closed_port());
    let config = write_config(dir.path(), Some(&base));
    let bot = Bot::start(&config, &dir.path().join("data"), "fake-token");
    // The outage is visible: in the log, on /readyz and in the metrics.
    bot.wait_log("cannot reach Discord; retrying");
    assert_eq!(get(&bot.http, "/readyz").0, 503);
    let (_, metrics) = get(&bot.http, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("opsgate_discord_connect_failures_total ")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    let (status, log) = bot.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_bot_while_the_gateway_refuses_connections() {
    // REST answers but the websocket is refused: serenity keeps re-queueing the shard and its
    // shutdown returns at once, because no shard runner exists.
    let fake = FakeDiscord::start().await;
    fake.lock().gateway_down = true;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), Some(&fake.base()));
    let data = dir.path().join("data");
    let bot = tokio::task::spawn_blocking(move || {
        let bot = Bot::start(&config, &data, "fake-token");
        bot.wait_log("connecting to Discord");
        bot
    })
    .await
    .expect("start");
    fake.wait("the gateway URL asked for", |i| {
        (!i.calls_to("GET", "/api/v10/gateway").is_empty()).then_some(())
    })
    .await;
    let (status, log) = tokio::task::spawn_blocking(move || bot.terminate())
        .await
        .expect("terminate");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    assert_eq!(fake.lock().readies, 0);
}

#[test]
fn a_token_not_in_discords_format_is_refused_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No api_base: this would be the real Discord, and nothing may reach it.
    let config = write_config(dir.path(), None);
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env(TOKEN_VAR, "not a discord token")
        .env(PASSWORD_VAR, "not-used")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not in Discord's format"), "{err}");
    assert!(err.contains(TOKEN_VAR), "{err}");
    assert!(
        !err.contains("not a discord token"),
        "the token leaked: {err}"
    );
    assert!(!err.contains("connecting"), "{err}");
}
