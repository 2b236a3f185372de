//! End to end through the built binary: operations declared in the config (a file of
//! `[bot] operations_dir`, as a team would ship them) against the emulator on 127.0.0.1 and
//! local scripts: the request signed and sent once after its approval, its job polled to
//! the final card, the audit entry with what was sent and the declaration's hash; commands
//! killed at their timeout with their process group, failures with their output's tail and
//! secrets redacted, a command that was running when opsgate was SIGKILLed `unknown` after
//! the restart and never run again; and injection attempts refused before anything is sent.

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use process::*;

const RDS: &str = "0123456789abcdef0123456789abcdefin01";
const SECRET_VAR: &str = "OPSGATE_E2E_DECLARED_SECRET";
const SECRET: &str = "s3cr3t-value-never-shown";

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The shell's config (Huawei with AK/SK against the emulator) with `operations_dir`
/// holding the RDS example and the commands below.
fn setup(job: &str) -> (tempfile::TempDir, Emulator, PathBuf) {
    setup_with(job, false)
}

fn setup_with(job: &str, with_secret: bool) -> (tempfile::TempDir, Emulator, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(job);
    let d = dir.path();
    std::fs::write(d.join("ak"), "DEMOACCESSKEYID00000").unwrap();
    std::fs::write(d.join("sk"), "demo-secret-access-key").unwrap();
    let ops = d.join("operations");
    std::fs::create_dir(&ops).unwrap();
    std::fs::write(
        ops.join("rds.toml"),
        include_str!("../operations/huawei-rds-restart.toml"),
    )
    .unwrap();
    let hang = script(
        d,
        "hang.sh",
        // A child in its group that would outlive the script if only the script died.
        "/bin/sleep 600 &\necho $! > \"$1\"\necho started\nwait",
    );
    let fail = script(
        d,
        "fail.sh",
        "echo \"using $TOKEN for $1 in $(pwd) with ${HOME:-no home}\"\necho oops >&2\nexit 3",
    );
    let count = script(
        d,
        "count.sh",
        "echo $$ > \"$1.pid\"\necho run >> \"$1\"\nexec /bin/sleep 600",
    );
    let p = |path: &Path| format!("{:?}", path.display().to_string());
    let pidfile = p(&d.join("hang.pid"));
    let counter = p(&d.join("count"));
    std::fs::write(
        ops.join("commands.toml"),
        format!(
            r#"
[[operations]]
verb = "hang"
service = "job"
provider = "local"
program = {hang}
argv = [{pidfile}, "{{name}}"]
timeout = "1s"
[[operations.params]]
name = "name"
pattern = "^[a-z]+$"

[[operations]]
verb = "count"
service = "job"
provider = "local"
program = {count}
argv = [{counter}, "{{name}}"]
timeout = "10m"
[[operations.params]]
name = "name"
pattern = "^[a-z]+$"
"#,
            hang = p(&hang),
            count = p(&count),
        ),
    )
    .unwrap();
    // Its secret comes from opsgate's environment, which only one test sets: the others
    // would refuse to start without it.
    if with_secret {
        std::fs::write(
            ops.join("secret.toml"),
            format!(
                r#"
[[operations]]
verb = "fail"
service = "job"
provider = "local"
program = {fail}
argv = ["{{name}}"]
env = {{ LANG = "C" }}
secret_env = {{ TOKEN = "{SECRET_VAR}" }}
workdir = {workdir}
[[operations.params]]
name = "name"
pattern = "^[a-z]+$"
"#,
                fail = p(&fail),
                workdir = p(d),
            ),
        )
        .unwrap();
    }
    let text = format!(
        r#"
[bot]
admin_roles = ["admin"]
operations_dir = "operations"
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
auth = "aksk"
access_key_file = "ak"
secret_key_file = "sk"
poll_interval = "100ms"
request_timeout = "5s"
endpoints = {{ iam = "{url}", rds = "{url}" }}
[targets.orders-rds]
service = "rds"
instance_id = "{RDS}"
[targets.billing-rds]
service = "rds"
instance_id = "fedcba9876543210fedcba9876543210in03"
# Typed confirmation and break-glass, scoped to this target (it beats the rule below).
[[rules]]
command = "restart rds"
targets = ["billing-rds"]
request_roles = ["oncall", "admin"]
approvals = 1
approver_roles = ["dba"]
confirm = true
break_glass = true
break_glass_roles = ["admin"]
[[rules]]
command = "restart rds"
request_roles = ["oncall"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
[[rules]]
command = "hang job"
request_roles = ["oncall"]
{fail_rule}[[rules]]
command = "count job"
request_roles = ["oncall"]
"#,
        url = emu.url,
        fail_rule = if with_secret {
            "[[rules]]\ncommand = \"fail job\"\nrequest_roles = [\"oncall\"]\n"
        } else {
            ""
        },
    );
    let config = d.join("config.toml");
    std::fs::write(&config, text).unwrap();
    (dir, emu, config)
}

#[test]
fn a_declared_http_operation_is_approved_signed_sent_once_polled_and_audited() {
    let (dir, emu, config) = setup("500ms");
    let input = "!restart rds orders-rds --dry-run\n!restart rds orders-rds\n/as bob dba\n\
                 /react 1 ✅\n/wait 1\n!status 1\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    let path = format!("/v3/0123456789abcdef0123456789abcdef/instances/{RDS}/action");
    // The dry run shows the exact request; nothing was sent for it.
    assert!(
        out.contains(&format!("would send: POST {}{path}", emu.url)),
        "{out}"
    );
    assert!(out.contains("body: {\"restart\":{}}"), "{out}");
    assert!(
        out.contains("⏳ job 1 · awaiting approval · restart rds orders-rds"),
        "{out}"
    );
    assert!(out.contains("approvals 1/1 (bob)"), "{out}");
    assert!(
        out.contains("✅ job 1 · succeeded") && out.contains("rds.restart says Completed"),
        "{out}"
    );
    // The audit: the request as sent, and which declaration (file and full hash) sent it.
    assert!(
        out.contains(&format!("submitting: sending POST {}{path}", emu.url)),
        "{out}"
    );
    assert!(out.contains("operations/rds.toml, sha256 "), "{out}");
    assert!(!out.contains("demo-secret-access-key"), "{out}");
    // Signed with AK/SK (the emulator refuses a bad signature), sent once, its job polled.
    assert_eq!(emu.calls("rds.restart"), 1);
    assert!(emu.calls("rds.job") >= 1);
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout_with_its_process_group() {
    let (dir, _emu, config) = setup("500ms");
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), "!hang job x\n/wait 1\n");
    assert!(ok, "{err}");
    assert!(
        out.contains("❌ job 1 · failed") && out.contains("killed after its 1s timeout"),
        "{out}"
    );
    assert!(out.contains("output: started"), "{out}");
    // The child it left in its group is gone too (or a zombie awaiting its reaper).
    let pid = std::fs::read_to_string(dir.path().join("hang.pid")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    if let Ok(stat) = stat {
        let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
        assert_eq!(state, Some('Z'), "the sleep survived: {stat}");
    }
}

#[test]
fn a_failing_command_shows_its_output_tail_without_secrets_in_a_cleared_environment() {
    let (dir, _emu, config) = setup_with("500ms", true);
    // The secret comes from opsgate's environment, so this run sets it.
    let out = std::process::Command::new(BIN)
        .args(["shell", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--user", "alice", "--roles", "oncall", "--channel", "ops"])
        .env(SECRET_VAR, SECRET)
        .env("HOME", "/root-should-not-leak")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"!fail job x\n/wait 1\n!status 1\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("❌ job 1 · failed"), "{text}");
    assert!(text.contains("exit status 3"), "{text}");
    assert!(
        text.contains(&format!(
            "using <redacted> for x in {} with no home",
            dir.path().display()
        )),
        "{text}"
    );
    assert!(text.contains("oops"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn a_command_running_when_opsgate_is_killed_is_unknown_after_restart_and_never_run_again() {
    let (dir, _emu, config) = setup("500ms");
    let data = dir.path().join("data");
    let counter = dir.path().join("count");
    let mut shell = LiveShell::start(&config, &data);
    shell.send("!count job x");
    shell.expect("job 1 · running");
    // Bounded by count: the script writes its line as soon as it starts.
    for _ in 0..500 {
        if counter.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(counter.exists(), "the command never started");
    shell.kill_and_collect();
    // The command outlives opsgate (its own process group); end it here.
    let pid = std::fs::read_to_string(dir.path().join("count.pid")).unwrap();
    let _ = std::process::Command::new("/bin/kill")
        .args(["-KILL", pid.trim()])
        .status();

    let (out, err, ok) = run_shell(&config, &data, "/wait 1\n!status 1\n");
    assert!(ok, "{err}");
    assert!(
        out.contains("❓ job 1 · unknown") || out.contains("job 1 · unknown"),
        "{out}"
    );
    assert!(out.contains("never run again"), "{out}");
    let runs = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(runs.lines().count(), 1, "run again after the restart");
}

#[test]
fn injection_attempts_in_chat_are_refused_before_anything_is_sent() {
    let (dir, emu, config) = setup("500ms");
    let attempts = [
        "a;b",
        "$(id)",
        "`id`",
        "../x",
        "a%2Fb",
        "a?b",
        "a#b",
        "--flag=x",
        "-x",
        "a\u{202e}b",
        "a\u{200b}b",
        &"x".repeat(300),
    ];
    let mut input = String::new();
    for a in attempts {
        input.push_str(&format!(
            "!restart rds {a}\n!count job {a}\n!hang job {a}\n"
        ));
    }
    input.push_str("!jobs all\n");
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), &input);
    assert!(ok, "{err}");
    assert!(!out.contains("job 1"), "a job was made: {out}");
    assert_eq!(emu.calls("rds.restart"), 0);
    assert!(!dir.path().join("count").exists(), "a command ran");
    assert!(!dir.path().join("hang.pid").exists(), "a command ran");
}

#[test]
fn the_lock_freezes_and_the_rules_hold_for_a_declared_operation() {
    let (dir, emu, config) = setup("500ms");
    // Two requests for one RDS instance: the second waits for the first (the lock is the
    // operation and its target parameters); by raw ID it is the same resource.
    let input = format!(
        "!restart rds orders-rds\n!restart rds {RDS}\n/as mallory nobody\n!restart rds orders-rds\n\
         /as root admin\n!freeze 1h maintenance\n/as alice oncall\n!cancel 1\n!restart rds orders-rds\n\
         !jobs all\n"
    );
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), &input);
    assert!(ok, "{err}");
    println!("{out}");
    assert!(out.contains("is busy: job 1"), "{out}");
    assert!(
        out.contains("no rule lets you") || out.contains("not allowed") || out.contains("may not"),
        "a role without a rule is refused: {out}"
    );
    assert!(out.contains("maintenance"), "the freeze refuses it: {out}");
    assert!(!out.contains("job 2 ·"), "no second job: {out}");
    assert_eq!(emu.calls("rds.restart"), 0);
}

#[test]
fn typed_confirmation_and_break_glass_hold_for_a_declared_operation() {
    let (dir, emu, config) = setup("500ms");
    let mut shell = LiveShell::start(&config, &dir.path().join("data"));
    shell.send("/as root admin");
    shell.send("!restart rds billing-rds --break-glass \"billing is down\"");
    let prompt = shell.expect("needs your confirmation: type `!confirm ");
    let number = prompt
        .split("!confirm ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    // Nothing is stored or sent before the target's name is typed.
    assert_eq!(emu.calls("rds.restart"), 0);
    shell.send(&format!("!confirm {number} billing-rds"));
    shell.expect("job 1 · succeeded");
    shell.send("!status 1");
    shell.expect("review pending");
    let (_, seen) = shell.finish(Duration::from_secs(30));
    let out = seen.join("\n");
    assert!(
        !out.contains("awaiting approval"),
        "break-glass skipped it: {out}"
    );
    assert_eq!(emu.calls("rds.restart"), 1);
}
