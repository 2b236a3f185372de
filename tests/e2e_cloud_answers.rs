//! End to end: cloud answers that prove nothing, through the built binary in shell mode and
//! the `opsgate emulator` process on 127.0.0.1. Each test checks the job's outcome in the
//! chat and the emulator's call counts: exactly one mutating call, none after an answer
//! that proved nothing.

#[path = "support/process.rs"]
mod process;

use process::*;

const TAURUS_INSTANCE: &str = "61a4ea66210545909d74a05c27a7179ein07";
const TAURUS_PROXY: &str = "151c14381ac14ecfb9703a745b992677po01";

fn setup(extra: &str) -> (tempfile::TempDir, Emulator, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("500ms");
    let config = write_config_with(dir.path(), &emu.url, "30m", extra);
    (dir, emu, config)
}

#[test]
fn a_restart_answered_200_with_an_html_page_ends_unknown_not_succeeded() {
    let (dir, emu, config) = setup("");
    // A proxy in front of DDM answers 200 with a page; nothing reaches DDM.
    emu.fault(r#"{"operation":"ddm.restart","status":200,"body":"<html><body>Service maintenance</body></html>"}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("⏳ job 1: DDM answered HTTP 200 with `<html><body>Service maintenance</body></html>`, not the documented answer"),
        "{out}"
    );
    assert!(
        out.contains("checking whether the restart started (it will not be re-sent)"),
        "{out}"
    );
    assert!(
        out.contains("⚠️ job 1 ended unknown, and it was not re-sent: DDM answered HTTP 200 with `<html><body>Service maintenance</body></html>`, not the documented answer (a JSON object with `jobId`, or the older empty `{}`); then instance 28e8841d0b9c4f6a9a30742ee60e1068in09 stayed RUNNING"),
        "{out}"
    );
    assert!(!out.contains("succeeded"), "{out}");
    assert_eq!(emu.call_log().len(), 1, "exactly one mutating call");
}

#[test]
fn an_unknown_outcome_names_the_clouds_answer_and_what_was_seen_after_it() {
    let (dir, emu, config) = setup("[incidents]\ndefault = \"ops\"\n");
    emu.fault(r#"{"operation":"ddm.restart","status":503,"body":"{\"error_code\":\"DBS.200412\",\"error_msg\":\"Service unavailable.\"}"}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n!status 1\n",
    );
    assert!(ok, "{err}");
    let answer = "DDM answered HTTP 503 DBS.200412: Service unavailable.";
    let seen = "then instance 28e8841d0b9c4f6a9a30742ee60e1068in09 stayed RUNNING";
    let last = out
        .lines()
        .find(|l| l.contains("⚠️ job 1 ended unknown, and it was not re-sent"))
        .unwrap_or_else(|| panic!("no last word: {out}"));
    assert!(last.contains(answer) && last.contains(seen), "{last}");
    // The card, as `!status` shows it, and the incident notice say the same.
    let card = out
        .lines()
        .find(|l| l.contains("job 1 · unknown"))
        .unwrap_or_else(|| panic!("no card: {out}"));
    assert!(card.contains(answer) && card.contains(seen), "{card}");
    let incident = out
        .lines()
        .find(|l| l.contains("job 1 ended unknown: restart ddm"))
        .unwrap_or_else(|| panic!("no incident notice: {out}"));
    assert!(
        incident.contains(answer) && incident.contains(seen),
        "{incident}"
    );
    assert_eq!(emu.calls("ddm.restart"), 1, "never re-sent");
}

#[test]
fn a_gateway_timeout_after_the_restart_ran_is_checked_and_confirmed_once() {
    let (dir, emu, config) = setup("");
    emu.fault(r#"{"operation":"ddm.restart","status":504,"execute":true,"body":"{\"error_code\":\"APIG.0201\",\"error_msg\":\"Backend timeout.\"}"}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n!status 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("⏳ job 1: DDM answered HTTP 504 APIG.0201: Backend timeout.; checking whether the restart started (it will not be re-sent)"),
        "{out}"
    );
    assert!(!out.contains("refused"), "a 504 proves nothing: {out}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert!(
        out.contains("RESTARTING: the restart is under way"),
        "{out}"
    );
    assert_eq!(emu.calls("ddm.restart"), 1, "never re-sent");
}

#[test]
fn a_documented_refusal_says_nothing_was_started() {
    let (dir, emu, config) = setup("");
    emu.fault(r#"{"operation":"ddm.restart","status":409,"times":100,"body":"{\"errCode\":\"DBS.280001\",\"externalMessage\":\"Parameter error.\"}"}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart ddm orders-db\n/wait 1\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("❌ job 1 was refused by the cloud; nothing was started: HTTP 409 DBS.280001: Parameter error."),
        "{out}"
    );
    assert_eq!(emu.calls("ddm.restart"), 1);
}

/// More throttled DDM restarts than the provider has request slots: a TaurusDB restart on
/// the same provider still goes through, submitted and polled to success, while every DDM
/// restart is still backing off.
#[test]
fn throttled_restarts_do_not_stall_other_operations_of_the_provider() {
    let extra = format!(
        r#"
[targets.orders-proxy]
service = "taurus-proxy"
instance_id = "{TAURUS_INSTANCE}"
proxy_id = "{TAURUS_PROXY}"

[[rules]]
command = "restart taurus-proxy"
request_roles = ["oncall"]
channels = ["ops"]
"#
    );
    let (dir, emu, config) = setup(&extra);
    emu.fault(r#"{"operation":"ddm.restart","status":429,"times":1000,"body":"{\"error_code\":\"APIGW.0308\",\"error_msg\":\"The throttling threshold has been reached\"}"}"#);
    let mut shell = LiveShell::start(&config, &dir.path().join("data"));
    const THROTTLED: usize = 20;
    for n in 0..THROTTLED {
        shell.send(&format!("!restart ddm {n:032x}in09"));
        shell.expect(&format!("job {} · submitting", n + 1));
    }
    let taurus = THROTTLED + 1;
    shell.send("!restart taurus-proxy orders-proxy");
    shell.expect(&format!("✅ job {taurus} · succeeded"));
    let ended_ddm: Vec<&String> = shell
        .seen
        .iter()
        .filter(|l| l.contains("refused") || l.contains("ended unknown"))
        .collect();
    assert!(
        ended_ddm.is_empty(),
        "every DDM restart was still backing off: {ended_ddm:?}"
    );
    assert!(emu.calls("taurus.job") >= 1, "the TaurusDB job was polled");
    assert!(emu.calls("ddm.restart") >= THROTTLED as u64);
    assert_eq!(emu.calls("taurus.restart"), 1);
    shell.kill();
}
