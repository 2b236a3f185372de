//! End to end for SAE and SCNet: the built binary in shell mode, piped stdin, the cloud
//! emulator as its own process on 127.0.0.1.

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};

use process::*;

const APP: &str = "1daa7236-3844-4f36-b39a-605b0cc0aaaa";
const SCNET_ID: &str = "4c1f43ddb030483e89b55413bee6c004";

/// A config with an Alibaba and an SCNet account on `emulator`; secrets in files.
fn write_cloud_config(dir: &Path, emulator: &str, request_timeout: &str) -> PathBuf {
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    let ak = secret("ali-ak", opsgate::emulator::demo::ALIBABA_ACCESS_KEY);
    let sk = secret("ali-sk", opsgate::emulator::demo::ALIBABA_SECRET_KEY);
    let pw = secret("scnet-pw", opsgate::emulator::demo::SCNET_PASSWORD);
    let text = format!(
        r#"
[roles]
oncall = "10"
[channels]
ops = "ops"
[accounts.ali]
provider = "alibaba"
region = "cn-hangzhou"
default = true
access_key_file = "{ak}"
secret_key_file = "{sk}"
poll_interval = "100ms"
request_timeout = "{request_timeout}"
endpoints = {{ sae = "{emulator}" }}
[accounts.sc]
provider = "scnet"
default = true
scnet_user = "{user}"
org_id = "{org}"
cluster_id = "{cluster}"
password_file = "{pw}"
poll_interval = "100ms"
request_timeout = "{request_timeout}"
endpoints = {{ ac = "{emulator}" }}
[targets.checkout]
service = "sae"
app_id = "{APP}"
[targets.notebook]
service = "scnet"
instance_service_id = "{SCNET_ID}"
[[rules]]
command = "restart sae"
request_roles = ["oncall"]
channels = ["ops"]
[[rules]]
command = "restart scnet"
request_roles = ["oncall"]
channels = ["ops"]
"#,
        user = opsgate::emulator::demo::SCNET_USER,
        org = opsgate::emulator::demo::SCNET_ORG_ID,
        cluster = opsgate::emulator::demo::SCNET_CLUSTER_ID,
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn setup(job_duration: &str, request_timeout: &str) -> (tempfile::TempDir, Emulator, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(job_duration);
    let config = write_cloud_config(dir.path(), &emu.url, request_timeout);
    (dir, emu, config)
}

#[test]
fn both_operations_run_to_success() {
    let (dir, emu, config) = setup("500ms", "5s");
    let input = "!restart sae checkout mysae-a-x7k2p,mysae-a-b9q4z\n/wait 1\n\
                 !restart scnet notebook\n/wait 2\n!status 2\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    assert!(
        out.contains("✅ job 1 · succeeded · restart sae checkout mysae-a-x7k2p,mysae-a-b9q4z"),
        "{out}"
    );
    assert!(
        out.contains("✅ job 2 · succeeded · restart scnet notebook"),
        "{out}"
    );
    assert!(
        out.contains(&format!("container instance {SCNET_ID} is Running")),
        "{out}"
    );
    assert_eq!(emu.calls("sae.restart"), 1);
    assert_eq!(emu.calls("scnet.restart"), 1);
    assert_eq!(emu.calls("scnet.token"), 1);
    assert_eq!(emu.calls("scnet.center"), 1);
}

#[test]
fn raw_ids_and_bad_input() {
    let (dir, emu, config) = setup("300ms", "5s");
    let input = format!(
        "!restart sae {APP} inst-a,inst-a\n!restart sae {APP} Inst-A\n!restart scnet ../x\n\
         !restart sae {APP} inst-a\n/wait 1\n"
    );
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), &input);
    assert!(ok, "{err}");
    assert!(out.contains("Instance inst-a is listed twice."), "{out}");
    assert!(
        out.contains("is not valid for <instance>[,<instance>...]"),
        "{out}"
    );
    assert!(
        out.contains("Usage: !restart scnet <instance-service-id>"),
        "{out}"
    );
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(emu.calls("sae.restart"), 1);
}

#[test]
fn a_vendor_error_is_shown_in_the_channel_verbatim() {
    let (dir, emu, config) = setup("500ms", "5s");
    emu.fault(r#"{"operation":"sae.restart","status":400,"body":{"Code":"InvalidApplication.NotFound","Message":"The current application does not exist.","Success":false}}"#);
    emu.fault(r#"{"operation":"scnet.restart","status":200,"body":{"code":"716868","msg":"启动任务错误","data":null}}"#);
    // The SCNet answer is not in its (short) refusal table: the chat says what was seen and
    // that it is being checked; the shell's drain waits for that check, not for the watch.
    let input = "!restart sae checkout inst-a\n/wait 1\n!restart scnet notebook\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    assert!(
        out.contains("❌ job 1 was refused by the cloud; nothing was started: HTTP 400 InvalidApplication.NotFound: The current application does not exist."),
        "{out}"
    );
    assert!(
        out.contains("⏳ job 2: SCNet answered HTTP 200 716868: 启动任务错误; checking whether the restart started (it will not be re-sent)"),
        "{out}"
    );
    assert_eq!(emu.calls("sae.restart"), 1);
    assert_eq!(emu.calls("scnet.restart"), 1);
}

#[test]
fn throttling_is_retried_and_the_job_succeeds() {
    let (dir, emu, config) = setup("300ms", "5s");
    emu.fault(r#"{"operation":"sae.restart","status":400,"body":{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}}"#);
    let (out, err, ok) = run_shell(
        &config,
        &dir.path().join("data"),
        "!restart sae checkout inst-a\n/wait 1\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert_eq!(emu.calls("sae.restart"), 2, "one throttled, one accepted");
}

#[test]
fn no_second_submit_after_a_timeout_after_send() {
    let (dir, emu, config) = setup("4s", "1s");
    emu.fault(r#"{"operation":"sae.restart","delay_ms":3000,"execute":true}"#);
    emu.fault(r#"{"operation":"scnet.restart","delay_ms":3000,"execute":true}"#);
    let input = "!restart sae checkout inst-a\n!restart scnet notebook\n/wait 1\n/wait 2\n\
                 !status 1\n!status 2\n";
    let (out, err, ok) = run_shell(&config, &dir.path().join("data"), input);
    assert!(ok, "{err}");
    assert!(
        out.contains("reconciled: found one unfinished restart change order"),
        "{out}"
    );
    assert!(out.contains("reconciled: container instance"), "{out}");
    assert!(out.contains("✅ job 1 · succeeded"), "{out}");
    assert!(out.contains("✅ job 2 · succeeded"), "{out}");
    assert_eq!(emu.calls("sae.restart"), 1, "never re-sent");
    assert_eq!(emu.calls("scnet.restart"), 1, "never re-sent");
}

#[test]
fn an_expired_scnet_token_is_renewed_once_and_the_restart_goes_through() {
    let (dir, emu, config) = setup("300ms", "5s");
    let mut shell = LiveShell::start(&config, &dir.path().join("data"));
    shell.send("!restart scnet notebook");
    shell.expect("✅ job 1 · succeeded");
    assert_eq!(emu.calls("scnet.token"), 1, "the token is cached");
    emu.revoke_tokens();
    shell.send("!restart scnet notebook");
    shell.expect("✅ job 2 · succeeded");
    assert_eq!(
        emu.calls("scnet.token"),
        2,
        "exactly one renewal after code 10008"
    );
    assert!(
        shell.seen.iter().all(|l| !l.contains("failed")),
        "{:?}",
        shell.seen
    );
    shell.kill();
}
