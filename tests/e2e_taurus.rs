//! End to end for the TaurusDB proxy commands: the built binary in shell mode, piped stdin,
//! the `opsgate emulator` process on 127.0.0.1.

#[path = "support/process.rs"]
mod process;

use process::*;

const INSTANCE: &str = "61a4ea66210545909d74a05c27a7179ein07";
const PROXY: &str = "151c14381ac14ecfb9703a745b992677po01";

/// Targets and rules for TaurusDB, and a second Huawei account with a 1 s request timeout
/// (its own proxy) for the lost-answer test.
fn extra(emulator: &str) -> String {
    format!(
        r#"
[targets.orders-proxy]
service = "taurus-proxy"
instance_id = "{INSTANCE}"
proxy_id = "{PROXY}"

[targets.slow-proxy]
service = "taurus-proxy"
account = "huawei-slow"
instance_id = "0123456789abcdef0123456789abcdefin07"
proxy_id = "0123456789abcdef0123456789abcdefpo01"

[accounts.huawei-slow]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
auth = "password"
iam_user = "opsgate-demo"
iam_domain = "opsgate-demo"
password_env = "{PASSWORD_VAR}"
poll_interval = "100ms"
request_timeout = "1s"
endpoints = {{ iam = "{emulator}", gaussdb = "{emulator}" }}

[[rules]]
command = "restart taurus-proxy"
request_roles = ["oncall", "dba"]
channels = ["ops"]
approvals = 0

[[rules]]
command = "upgrade taurus-proxy"
request_roles = ["oncall", "dba"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
"#
    )
}

fn setup() -> (tempfile::TempDir, Emulator, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("500ms");
    let config = write_config_with(dir.path(), &emu.url, "30m", &extra(&emu.url));
    (dir, emu, config)
}

#[test]
fn a_proxy_restart_runs_to_success() {
    let (dir, emu, config) = setup();
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart taurus-proxy orders-proxy\n/wait 1\n!status 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("🔄 job 1 · submitting · restart taurus-proxy orders-proxy"),
        "{out}"
    );
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert!(out.contains("TaurusDB proxy restart job"), "{out}");
    assert_eq!(emu.calls("taurus.restart"), 1);
    assert!(emu.calls("taurus.job") >= 1);
}

#[test]
fn raw_ids_and_the_service_alias_work_too() {
    let (dir, emu, config) = setup();
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        &format!("!restart gaussdb-proxy {INSTANCE} {PROXY}\n/wait 1\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(emu.calls("taurus.restart"), 1);
}

#[test]
fn a_kernel_upgrade_needs_an_approval_and_runs_to_success() {
    let (dir, emu, config) = setup();
    let input = "!upgrade taurus-proxy orders-proxy 2.23.12.000 2.24.03.000\n\
                 !restart taurus-proxy orders-proxy\n\
                 /as bob dba\n!approve 1\n/wait 1\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "⏳ job 1 · awaiting approval · upgrade taurus-proxy orders-proxy 2.23.12.000 2.24.03.000"
        ),
        "{out}"
    );
    // One lock covers both operations on the proxy.
    assert!(out.contains("orders-proxy is busy: job 1"), "{out}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert!(out.contains("TaurusDB proxy kernel upgrade job"), "{out}");
    assert_eq!(emu.calls("taurus.upgrade"), 1);
    assert_eq!(emu.calls("taurus.restart"), 0);
}

#[test]
fn a_target_below_the_source_is_refused_by_the_parser_and_nothing_is_sent() {
    let (dir, emu, config) = setup();
    let (out, _, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!upgrade taurus-proxy orders-proxy 2.24.03.000 2.23.12.000\n!jobs all\n",
    );
    assert!(ok);
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.contains(
            "The target version 2.23.12.000 is lower than the source version 2.24.03.000"
        ) && first.contains("Usage: !upgrade taurus-proxy <instance> <proxy>"),
        "{out}"
    );
    assert!(!out.contains("job 1"), "nothing was stored: {out}");
    assert_eq!(emu.calls("taurus.upgrade"), 0);
}

#[test]
fn a_vendor_error_is_shown_in_the_channel_verbatim() {
    let (dir, emu, config) = setup();
    emu.fault(r#"{"operation":"taurus.restart","status":400,"body":"{\"error_code\":\"DBS.200823\",\"error_msg\":\"The proxy instance does not exist.\"}"}"#);
    let (out, _, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart taurus-proxy orders-proxy\n/wait 1\n",
    );
    assert!(ok);
    // DBS.200823 is not in Huawei's refusal table: it proves nothing, so the chat says what
    // was seen, the proxy is read, and the job ends unknown without a second request.
    assert!(
        out.contains(
            "⏳ job 1: TaurusDB answered HTTP 400 DBS.200823: The proxy instance does not exist.; checking whether the restart started (it will not be re-sent)"
        ),
        "{out}"
    );
    assert!(out.contains("⚠️ job 1 ended unknown, and it was not re-sent: TaurusDB answered HTTP 400 DBS.200823: The proxy instance does not exist.; then the proxy restart request may or may not have reached TaurusDB"), "{out}");
    assert_eq!(emu.calls("taurus.restart"), 1, "never re-sent");
}

#[test]
fn an_upgrade_reject_reaches_the_channel() {
    let (dir, emu, config) = setup();
    // The emulator's proxy runs 2.23.12.000, so this source version is wrong.
    let input =
        "!upgrade taurus-proxy orders-proxy 2.23.11.000 2.24.03.000\n/as bob dba\n!approve 1\n/wait 1\n";
    let (out, _, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok);
    assert!(
        out.contains("❌ job 1 was refused by the cloud; nothing was started: REJECT: The source version 2.23.11.000 does not match"),
        "{out}"
    );
    assert_eq!(emu.calls("taurus.upgrade"), 1);
}

#[test]
fn a_throttled_restart_is_retried_then_succeeds() {
    let (dir, emu, config) = setup();
    emu.fault(r#"{"operation":"taurus.restart","status":429,"body":"{\"error_code\":\"APIGW.0308\",\"error_msg\":\"The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute\"}"}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart taurus-proxy orders-proxy\n/wait 1\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(
        emu.calls("taurus.restart"),
        2,
        "refused once, then accepted"
    );
}

#[test]
fn no_second_submit_after_a_timeout_after_send() {
    let (dir, emu, config) = setup();
    // The restart takes effect, but the answer comes after the 1 s request timeout.
    emu.fault(r#"{"operation":"taurus.restart","delay_ms":3000,"execute":true}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart taurus-proxy slow-proxy\n/wait 1\n!status 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("job 1 ended unknown, and it was not re-sent"),
        "{out}"
    );
    assert!(
        out.contains("task center"),
        "reconcile says what to check: {out}"
    );
    assert_eq!(emu.calls("taurus.restart"), 1, "sent exactly once");
}

#[test]
fn an_expired_iam_token_is_renewed_once_and_the_restart_goes_through() {
    let (dir, emu, config) = setup();
    let mut shell = LiveShell::start(&config, &dir.path().join("data"));
    shell.send("!restart taurus-proxy orders-proxy");
    shell.expect("✅ job 1 · succeeded");
    assert_eq!(emu.calls("iam.token"), 1, "the token is cached");
    emu.revoke_tokens();
    shell.send("!restart taurus-proxy orders-proxy");
    shell.expect("✅ job 2 · succeeded");
    assert_eq!(
        emu.calls("iam.token"),
        2,
        "exactly one renewal after the 401"
    );
    shell.kill();
}
