//! End to end: the built binary in shell mode, piped stdin, the cloud emulator on 127.0.0.1.

#[path = "support/process.rs"]
mod process;

use process::*;

fn setup(expires: &str) -> (tempfile::TempDir, Emulator, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("500ms");
    let config = write_config(dir.path(), &emu.url, expires);
    (dir, emu, config)
}

#[test]
fn a_soft_restart_with_no_approval_runs_and_completes() {
    let (dir, emu, config) = setup("30m");
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n!status 1\n/wait 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        !out.contains("timed out"),
        "a second /wait on the finished job answers from the store at once: {out}"
    );
    assert!(
        out.contains("[#ops] 🔄 job 1 · submitting · restart ddm orders-db soft"),
        "{out}"
    );
    assert!(out.contains("(edit job-1) ✅ job 1 · succeeded"), "{out}");
    assert!(
        out.contains("accepted: "),
        "the audit shows the cloud's answer: {out}"
    );
    assert_eq!(emu.calls("ddm.restart"), 1);
}

#[test]
fn a_hard_restart_needs_an_approver_and_runs_exactly_once() {
    let (dir, emu, config) = setup("30m");
    let input =
        "!restart ddm orders-db hard\n/as bob dba\n/react 1 ✅\n/wait 1\n!approve 1\n/react 1 ✅\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    assert!(
        out.contains("⏳ job 1 · awaiting approval · restart ddm orders-db hard"),
        "{out}"
    );
    assert!(out.contains("approvals 1/1 (bob)"), "{out}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert!(out.contains("Job 1 has already succeeded"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 1);
}

#[test]
fn self_approval_is_refused() {
    let (dir, emu, config) = setup("30m");
    let input = "/as alice dba\n!restart ddm orders-db hard\n/react 1 ✅\n!approve 1\n!status 1\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    assert_eq!(
        out.matches("you requested it; someone else must decide")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("awaiting approval") && out.contains("approvals 0/1"),
        "{out}"
    );
    assert_eq!(emu.calls("ddm.restart"), 0);
}

#[test]
fn a_non_approver_is_refused_and_the_count_stays() {
    let (dir, emu, config) = setup("30m");
    let input =
        "!restart ddm orders-db hard\n/as mallory oncall\n/react 1 ✅\n!approve 1\n!status 1\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    assert!(
        out.contains("mallory: you cannot approve job 1: it needs the role dba"),
        "{out}"
    );
    assert!(out.contains("approvals 0/1"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 0);
}

#[test]
fn a_deny_ends_the_request() {
    let (dir, emu, config) = setup("30m");
    let input = "!restart ddm orders-db hard\n/as bob dba\n!deny 1 change freeze\n/as carol dba\n/react 1 ✅\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    assert!(
        out.contains("🚫 job 1 · denied") && out.contains("denied by bob: change freeze"),
        "{out}"
    );
    assert!(out.contains("Job 1 was already denied"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 0);
}

#[test]
fn expiry_ends_the_request() {
    let (dir, emu, config) = setup("1s");
    let input = "!restart ddm orders-db hard\n/sleep 1500ms\n/as bob dba\n!approve 1\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    assert!(out.contains("⌛ job 1 · expired"), "{out}");
    assert!(out.contains("Job 1 has already expired"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 0);
}

#[test]
fn a_bad_command_gets_one_clear_reply_and_the_shell_goes_on() {
    let (dir, _emu, config) = setup("30m");
    let input = "!restart ddm ../etc/passwd\n!restart ddm orders-db\n/wait 1\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    let first: Vec<&str> = out.lines().take_while(|l| !l.contains("job 1")).collect();
    assert_eq!(first.len(), 1, "{out}");
    assert!(
        first[0].contains("Usage: !restart ddm <target> [soft|hard]"),
        "{out}"
    );
    assert!(out.contains("succeeded"), "{out}");
}

#[test]
fn sigkill_while_awaiting_approval_then_approve_after_restart() {
    let (dir, emu, config) = setup("30m");
    let data = dir.path().join("data");
    let mut shell = LiveShell::start(&config, &data);
    shell.send("!restart ddm orders-db hard");
    shell.expect("awaiting approval");
    shell.kill();

    let input = "/as bob dba\n/react 1 ✅\n/wait 1\n";
    let (out, err, ok) = run_shell(&config, &data, input);
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 1);
}

#[test]
fn sigkill_while_running_then_polling_resumes_and_nothing_is_resent() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("3s");
    let config = write_config(dir.path(), &emu.url, "30m");
    let data = dir.path().join("data");
    let mut shell = LiveShell::start(&config, &data);
    shell.send("!restart ddm orders-db");
    shell.expect("· running ·");
    shell.kill();

    let (out, err, ok) = run_shell(&config, &data, "/wait 1\n!status 1\n");
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(
        emu.calls("ddm.restart"),
        1,
        "the restart was sent exactly once"
    );
}

#[test]
fn a_second_shell_on_the_same_data_gets_a_clear_error() {
    let (dir, _emu, config) = setup("30m");
    let data = dir.path().join("data");
    let mut first = LiveShell::start(&config, &data);
    first.send("!jobs");
    first.expect("No pending or running jobs");
    let (_, err, ok) = run_shell(&config, &data, "!jobs\n");
    assert!(!ok);
    assert!(
        err.contains("already in use by another opsgate process"),
        "{err}"
    );
    first.kill();
}

#[test]
fn a_vendor_error_reaches_the_user_verbatim_with_the_http_status() {
    let (dir, emu, config) = setup("30m");
    emu.fault(r#"{"operation":"ddm.restart","status":400,"body":"{\"errCode\":\"DBS.280001\",\"externalMessage\":\"Parameter error.\"}","times":1}"#);
    let (out, _, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n",
    );
    assert!(ok);
    assert!(
        out.contains(
            "❌ job 1 was refused by the cloud; nothing was started: HTTP 400 DBS.280001: Parameter error."
        ),
        "{out}"
    );
    assert_eq!(emu.calls("ddm.restart"), 1, "a refusal is not retried");
}

#[test]
fn a_line_that_is_not_utf8_gets_an_answer_and_the_shell_goes_on() {
    use std::io::Write;
    let (dir, _emu, config) = setup("30m");
    let mut child = std::process::Command::new(BIN)
        .args(["shell", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\xff\xfe not text\n!whoami\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("that line was not UTF-8 text"), "{out}");
    assert!(
        out.contains("roles: oncall"),
        "the next line is still read: {out}"
    );
}

#[test]
fn two_accounts_on_one_project_share_the_lock_of_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("500ms");
    let extra = format!(
        r#"
[accounts.huawei-aksk]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
auth = "aksk"
access_key_env = "{PASSWORD_VAR}"
secret_key_env = "{PASSWORD_VAR}"
endpoints = {{ ddm = "{url}", gaussdb = "{url}" }}
"#,
        url = emu.url
    );
    let config = write_config_with(dir.path(), &emu.url, "30m", &extra);
    let instance = "28e8841d0b9c4f6a9a30742ee60e1068in09";
    let input =
        format!("!restart ddm {instance} hard\n!restart ddm {instance} soft account=huawei-aksk\n");
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), &input);
    assert!(ok, "{err}");
    assert!(out.contains("is busy: job 1"), "{out}");
    assert_eq!(emu.calls("ddm.restart"), 0, "{out}");
}

#[test]
fn directives_answer_at_once_and_unknown_channels_and_jobs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = write_config(dir.path(), &emu.url, "30m");
    let (out, _, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "/wait 99\n/wait\n/as\n/as bob dba\n/in\n/in nowhere\n/in ops\n/wiat 1\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("[shell] no job 99"), "{out}");
    assert!(!out.contains("timed out"), "{out}");
    assert!(out.contains("[shell] usage: /wait JOB"), "{out}");
    assert!(out.contains("[shell] usage: /as NAME [ROLE,...]"), "{out}");
    assert!(
        out.contains("[shell] you are bob (roles dba) in #ops"),
        "{out}"
    );
    assert!(out.contains("[shell] usage: /in CHANNEL"), "{out}");
    assert!(
        out.contains("[shell] unknown channel `nowhere` (configured: ops)"),
        "{out}"
    );
    assert!(
        out.contains("unknown directive `/wiat`; did you mean `/wait`?"),
        "{out}"
    );
}

#[test]
fn bidi_and_invisible_characters_never_come_back_in_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = write_config(dir.path(), &emu.url, "30m");
    let (out, _, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!rest\u{202E}art ddm orders-db\n/as mal\u{202E}lory oncall\n!restart ddm orders-db hard\n/as bob dba\n!deny 1 no\u{2066}pe\u{200B}\n",
    );
    assert!(ok, "{out}");
    for c in ['\u{202E}', '\u{2066}', '\u{200B}'] {
        assert!(!out.contains(c), "{c:?} echoed in:\n{out}");
    }
    assert!(out.contains("nope"), "{out}");
    assert!(out.contains("mallory"), "{out}");
}
