//! What an operator meets before the first command: configs that cannot work are refused at
//! `check-config` and start-up (exit 78, one line per problem), JSON logs are JSON on every
//! line, the job API asks for its token, and the small tools (`health`, `completions`,
//! `OPSGATE_CONFIG`, the quiet demo) do what they say.

#[path = "support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use process::*;

const TOKEN_VAR: &str = "OPSGATE_OPERATOR_TEST_API_TOKEN";
const TOKEN: &str = "operator-test-api-token-1234";

fn opsgate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("OPSGATE_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().expect("run opsgate")
}

/// Lines that state a problem; the indented line after one shows the config line it is about.
fn problem_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| !l.starts_with(' ')).count()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A valid shell config without cloud endpoints: the checks here never reach a cloud.
const SMALL: &str = r#"
[roles]
oncall = "10"
[channels]
ops = "ops"
[accounts.huawei]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_OPERATOR_TEST_UNSET_PASSWORD"
[[rules]]
command = "restart ddm"
request_roles = ["oncall"]
"#;

#[test]
fn check_config_refuses_an_unset_secret_variable_and_no_secrets_skips_only_that() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", SMALL);
    let path = config.to_str().unwrap();
    let out = opsgate(&["check-config", path], &[]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = text(&out.stderr);
    assert_eq!(problem_lines(&err), 1, "one line per problem: {err}");
    assert!(
        err.contains("accounts.huawei.password_env: environment variable OPSGATE_OPERATOR_TEST_UNSET_PASSWORD is not set"),
        "{err}"
    );
    assert!(err.starts_with(path), "the line names the file: {err}");

    let out = opsgate(&["check-config", "--no-secrets", path], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("is valid"));

    let out = opsgate(
        &["check-config", path],
        &[("OPSGATE_OPERATOR_TEST_UNSET_PASSWORD", "x")],
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_missing_or_empty_secret_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty-secret", "\n");
    let missing = SMALL.replace(
        "password_env = \"OPSGATE_OPERATOR_TEST_UNSET_PASSWORD\"",
        "password_file = \"no-such-secret\"",
    );
    let empty = SMALL.replace(
        "password_env = \"OPSGATE_OPERATOR_TEST_UNSET_PASSWORD\"",
        "password_file = \"empty-secret\"",
    );
    for (name, body, why) in [
        ("missing.toml", missing, "does not exist"),
        ("empty.toml", empty, "is empty"),
    ] {
        let config = write(dir.path(), name, &body);
        let out = opsgate(&["check-config", config.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(78), "{out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("accounts.huawei.password_file: file "),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn an_empty_config_and_a_region_typo_are_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.toml", "");
    let out = opsgate(&["check-config", empty.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(text(&out.stderr).contains("rules: no [[rules]]"), "{out:?}");

    let typo = write(
        dir.path(),
        "typo.toml",
        &SMALL.replace("cn-north-4", "cn-noth-4"),
    );
    let out = opsgate(
        &["check-config", "--no-secrets", typo.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "accounts.huawei.region: region `cn-noth-4` is not in opsgate's endpoint table"
        ),
        "{err}"
    );
    assert!(err.contains("did you mean `cn-north-4`?"), "{err}");

    // With endpoints the region needs no table entry (private clouds, the emulator).
    let private = write(
        dir.path(),
        "private.toml",
        &SMALL.replace(
            "region = \"cn-north-4\"",
            "region = \"xx-private-1\"\nendpoints = { iam = \"https://iam.example\", ddm = \"https://ddm.example\" }",
        ),
    );
    let out = opsgate(
        &["check-config", "--no-secrets", private.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn shell_and_run_refuse_what_check_config_refuses_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", SMALL);
    let data = dir.path().join("data");
    let out = opsgate(
        &[
            "shell",
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(text(&out.stderr).contains("password_env"), "{out:?}");
    assert!(!data.exists(), "nothing was opened");

    // `run` also needs guilds and the Discord token.
    let with_discord = write(
        dir.path(),
        "d.toml",
        &format!("{SMALL}\n[discord]\ntoken_env = \"OPSGATE_OPERATOR_TEST_UNSET_TOKEN\"\n"),
    );
    let out = opsgate(
        &[
            "run",
            "--config",
            with_discord.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &[("OPSGATE_OPERATOR_TEST_UNSET_PASSWORD", "x")],
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("discord.guilds: missing"), "{err}");
    assert!(
        err.contains(
            "discord.token_env: environment variable OPSGATE_OPERATOR_TEST_UNSET_TOKEN is not set"
        ),
        "{err}"
    );
    assert_eq!(problem_lines(&err), 2, "{err}");
}

#[test]
fn opsgate_config_names_the_file_when_no_argument_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", SMALL);
    let out = opsgate(
        &["check-config", "--no-secrets"],
        &[("OPSGATE_CONFIG", config.to_str().unwrap())],
    );
    assert!(out.status.success(), "{out:?}");
    let help = text(&opsgate(&["shell", "--help"], &[]).stdout);
    assert!(help.contains("OPSGATE_CONFIG"), "{help}");
    assert!(help.contains("The config file"), "{help}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = opsgate(&["completions", shell], &[]);
        assert!(out.status.success(), "{out:?}");
        assert!(text(&out.stdout).contains("check-config"), "{shell}");
    }
}

/// A shell on `config` with the job API token set, its stderr lines on a channel.
struct Bot {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Bot {
    fn start(args: &[&str], config: &Path, data: &Path, envs: &[(&str, &str)]) -> Bot {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["shell", "--config"])
            .arg(config)
            .arg("--data")
            .arg(data)
            .env_remove("RUST_LOG")
            .env(PASSWORD_VAR, DEMO_PASSWORD);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shell");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Bot {
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    fn wait_err(&mut self, needle: &str) -> String {
        loop {
            match self.stderr.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{needle}` on stderr; saw {:?}", self.seen),
            }
        }
    }

    /// Ends the input and returns every stderr line.
    fn finish(mut self, input: &str) -> Vec<String> {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        self.seen.extend(self.stderr.try_iter());
        self.seen
    }
}

#[test]
fn the_job_api_needs_its_token_and_the_cli_sends_it_while_probes_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("200ms");
    let addr = free_local_addr();
    let config = write_config_with(
        dir.path(),
        &emu.url,
        "30m",
        &format!("[http]\nlisten = \"{addr}\"\napi_token_env = \"{TOKEN_VAR}\"\n"),
    );
    let data = dir.path().join("data");
    let mut bot = Bot::start(&[], &config, &data, &[(TOKEN_VAR, TOKEN)]);
    bot.wait_err("http endpoint listening on");

    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&addr, "/metrics").unwrap().0, 200);
    for path in [
        "/api/jobs",
        "/api/jobs/1",
        "/api/jobs/1/audit",
        "/api/backup",
    ] {
        assert_eq!(
            http_get(&addr, path).unwrap().0,
            401,
            "{path} without a token"
        );
    }

    let store = [
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let jobs = |envs: &[(&str, &str)]| {
        let mut args = vec!["jobs", "--filter", "all"];
        args.extend(store);
        opsgate(&args, envs)
    };
    let out = jobs(&[(TOKEN_VAR, TOKEN)]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("(no jobs)"), "{out:?}");
    let out = jobs(&[(TOKEN_VAR, "a-wrong-token")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refused the job API token"),
        "{out:?}"
    );
    assert!(!text(&out.stderr).contains("a-wrong-token"));

    let mut args = vec!["audit", "99"];
    args.extend(store);
    let out = opsgate(&args, &[(TOKEN_VAR, TOKEN)]);
    assert!(text(&out.stderr).contains("no job 99"), "{out:?}");

    let backup = dir.path().join("b.backup");
    let mut args = vec!["backup", backup.to_str().unwrap()];
    args.extend(store);
    let out = opsgate(&args, &[(TOKEN_VAR, TOKEN)]);
    assert!(out.status.success(), "{out:?}");
    assert!(backup.exists());

    // `opsgate health` against the same endpoint: the container HEALTHCHECK.
    let out = opsgate(&["health", "--config", config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{out:?}");
    bot.finish("");

    let out = opsgate(&["health", "--http", &addr], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing listens any more: {out:?}"
    );
}

#[test]
fn with_json_logs_every_stderr_line_is_json_and_a_failed_job_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("200ms");
    emu.fault(r#"{"operation":"ddm.restart","status":400,"body":"{\"error_code\":\"DBS.280001\",\"error_msg\":\"Invalid instance.\"}"}"#);
    let listen = format!("[http]\nlisten = \"{}\"\n", free_local_addr());
    let config = write_config_with(dir.path(), &emu.url, "30m", &listen);
    let data = dir.path().join("data");
    let mut bot = Bot::start(
        &["--log-format", "json"],
        &config,
        &data,
        &[("RUST_LOG", "info")],
    );
    bot.wait_err("http endpoint listening on");
    let lines = bot.finish("!restart ddm orders-db\n/wait 1\n");
    assert!(!lines.is_empty());
    let mut failed_at = None;
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nall: {lines:#?}"));
        if value["fields"]["state"] == "failed" {
            failed_at = value["level"].as_str().map(str::to_string);
        }
    }
    assert_eq!(failed_at.as_deref(), Some("WARN"), "{lines:#?}");
}

#[test]
fn a_config_error_with_json_logs_is_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "");
    let out = opsgate(
        &[
            "--log-format",
            "json",
            "check-config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    for line in text(&out.stderr).lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect(line);
        assert_eq!(value["level"], "ERROR");
    }
}

#[test]
fn the_demo_shows_only_the_chat_unless_rust_log_asks() {
    let run = |rust_log: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("demo").env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"!help\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let quiet = run(None);
    assert!(quiet.status.success());
    assert!(text(&quiet.stdout).contains("restart"), "{quiet:?}");
    assert_eq!(text(&quiet.stderr), "", "no logs by default");
    let loud = run(Some("info"));
    assert!(text(&loud.stderr).contains("shell ready"), "{loud:?}");
}
