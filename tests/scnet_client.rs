//! The SCNet container restart against the in-process emulator over loopback HTTP: tokens
//! by password and by AK/SK, the AI URL from the center API (or the config), the envelope
//! code checked on HTTP 200, one renewal on 10008 or expiry, "no second submit after a
//! timeout", reconcile, and the status rules.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use opsgate::cloud::scnet::restart::ScnetRestart;
use opsgate::cloud::scnet::ScnetClient;
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{demo, RunningEmulator};
use opsgate::ports::cloud::{CloudOperation, PollOutcome, ReconcileOutcome};
use serde_json::json;
use support::emulated::{self, accepted, admin, calls, indeterminate, not_sent, poll_to_end};

const ID: &str = "4c1f43ddb030483e89b55413bee6c004";
const ID2: &str = "0f513e96be6d47aa8a15c09f910f05f4";
const PW_VAR: &str = "OPSGATE_SCNET_TEST_PASSWORD";
const BAD_PW_VAR: &str = "OPSGATE_SCNET_TEST_BAD_PASSWORD";
const AK_VAR: &str = "OPSGATE_SCNET_TEST_AK";
const SK_VAR: &str = "OPSGATE_SCNET_TEST_SK";

fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(PW_VAR, demo::SCNET_PASSWORD);
        std::env::set_var(BAD_PW_VAR, "not-the-password");
        std::env::set_var(AK_VAR, demo::SCNET_ACCESS_KEY);
        std::env::set_var(SK_VAR, demo::SCNET_SECRET_KEY);
    });
}

async fn start_emulator(job_duration: Duration) -> RunningEmulator {
    init_env();
    emulated::start(job_duration).await
}

enum Auth {
    Password(&'static str),
    AkSk,
}

fn config(emu: &RunningEmulator, auth: Auth, timeout: &str, endpoints: &str) -> Config {
    let auth = match auth {
        Auth::Password(var) => format!("auth = \"password\"\npassword_env = \"{var}\""),
        Auth::AkSk => {
            format!("auth = \"aksk\"\naccess_key_env = \"{AK_VAR}\"\nsecret_key_env = \"{SK_VAR}\"")
        }
    };
    let base = emu.base_url();
    let endpoints = endpoints.replace("BASE", &base);
    let text = format!(
        r#"
[accounts.sc]
provider = "scnet"
scnet_user = "{user}"
org_id = "{org}"
cluster_name = "{cluster}"
{auth}
poll_interval = "100ms"
request_timeout = "{timeout}"
endpoints = {endpoints}
"#,
        user = demo::SCNET_USER,
        org = demo::SCNET_ORG_ID,
        cluster = demo::SCNET_CLUSTER_NAME,
    );
    Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins()).unwrap()
}

const AC_ONLY: &str = "{ ac = \"BASE\" }";

fn registry_op(config: &Config) -> Arc<dyn CloudOperation> {
    emulated::operation(config, "scnet.restart", "sc")
}

fn spec(id: &str) -> JobSpec {
    JobSpec {
        operation: "scnet.restart".into(),
        account: "sc".into(),
        target: id.into(),
        params: BTreeMap::from([("instance_service_id".to_string(), id.to_string())]),
    }
}

#[tokio::test]
async fn password_token_center_restart_and_detail_to_success() {
    let emu = start_emulator(Duration::from_millis(600)).await;
    let op = registry_op(&config(&emu, Auth::Password(PW_VAR), "5s", AC_ONLY));
    let handle = accepted(op.submit(&spec(ID)).await).handle;
    assert_eq!(handle["instance_service_id"], json!(ID));
    let done = poll_to_end(op.as_ref(), &spec(ID), handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains("Running")),
        "{done:?}"
    );
    assert_eq!(calls(&emu, "scnet.token").await, 1, "the token is cached");
    assert_eq!(calls(&emu, "scnet.center").await, 1, "the AI URL is cached");
    assert_eq!(calls(&emu, "scnet.restart").await, 1);
    assert!(calls(&emu, "scnet.detail").await >= 1);
}

#[tokio::test]
async fn aksk_token_and_configured_ai_url_skip_the_center() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let cfg = config(
        &emu,
        Auth::AkSk,
        "5s",
        "{ token = \"BASE\", ai = \"BASE/ai/\" }",
    );
    accepted(registry_op(&cfg).submit(&spec(ID)).await);
    assert_eq!(calls(&emu, "scnet.token").await, 1);
    assert_eq!(calls(&emu, "scnet.center").await, 0);
    assert_eq!(calls(&emu, "scnet.restart").await, 1);
}

#[tokio::test]
async fn wrong_password_is_not_sent_and_names_what_to_fix() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, Auth::Password(BAD_PW_VAR), "5s", AC_ONLY));
    let why = not_sent(op.submit(&spec(ID)).await);
    assert!(why.contains("SCNet refused a token for account"), "{why}");
    assert!(why.contains("HTTP 200 10001: 用户名或密码错误"), "{why}");
    assert_eq!(calls(&emu, "scnet.restart").await, 0);
}

#[tokio::test]
async fn envelope_error_outside_the_table_is_unconfirmed_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, Auth::Password(PW_VAR), "5s", AC_ONLY));
    admin(
        &emu,
        "faults",
        json!({"operation": "scnet.restart", "status": 200,
        "body": {"code": "716868", "msg": "启动任务错误", "data": null}}),
    )
    .await;
    // SCNet publishes no error table: a code it does not explain proves nothing either way.
    let seen = indeterminate(op.submit(&spec(ID)).await);
    assert_eq!(seen, "SCNet answered HTTP 200 716868: 启动任务错误");
    assert_eq!(calls(&emu, "scnet.restart").await, 1, "not retried");
}

#[tokio::test]
async fn revoked_token_gets_10008_then_one_renewal_and_one_resend() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, Auth::Password(PW_VAR), "5s", AC_ONLY));
    accepted(op.submit(&spec(ID)).await);
    admin(&emu, "tokens/revoke", json!({})).await;
    accepted(op.submit(&spec(ID2)).await);
    assert_eq!(calls(&emu, "scnet.token").await, 2, "renewed once");
    assert_eq!(
        calls(&emu, "scnet.restart").await,
        3,
        "refused once, sent again once"
    );
}

#[tokio::test]
async fn a_token_near_its_expire_time_is_renewed_before_use() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    admin(&emu, "settings", json!({"token_ttl_ms": 400})).await;
    let op = registry_op(&config(&emu, Auth::Password(PW_VAR), "5s", AC_ONLY));
    accepted(op.submit(&spec(ID)).await);
    // Renewal is due at half of a short lifetime; wait past the whole of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    accepted(op.submit(&spec(ID2)).await);
    assert_eq!(calls(&emu, "scnet.token").await, 2);
    assert_eq!(calls(&emu, "scnet.restart").await, 2, "no call was refused");
}

#[tokio::test]
async fn timeout_after_send_is_indeterminate_with_one_submit_and_reconcile_sees_it() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, Auth::Password(PW_VAR), "1s", AC_ONLY));
    admin(
        &emu,
        "faults",
        json!({"operation": "scnet.restart", "delay_ms": 3000, "execute": true}),
    )
    .await;
    let seen = indeterminate(op.submit(&spec(ID)).await);
    assert!(seen.contains("no answer from SCNet"), "{seen}");
    assert_eq!(calls(&emu, "scnet.restart").await, 1);
    match op.reconcile(&spec(ID)).await {
        ReconcileOutcome::Running { handle, .. } => {
            assert_eq!(handle["seen_transitional"], json!(true))
        }
        other => panic!("expected Running, got {other:?}"),
    }
    // An instance nobody restarted is Running: that proves nothing either way, so it is
    // watched (and would end unknown), never taken as a success.
    match op.reconcile(&spec(ID2)).await {
        ReconcileOutcome::Running { handle, note } => {
            assert_eq!(handle["seen_transitional"], json!(false));
            assert!(note.contains("watching"), "{note}");
        }
        other => panic!("expected Running, got {other:?}"),
    }
    assert_eq!(calls(&emu, "scnet.restart").await, 1);
}

#[tokio::test]
async fn failed_and_terminated_end_the_job_and_the_status_field_is_configurable() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let cfg = config(&emu, Auth::Password(PW_VAR), "5s", AC_ONLY);
    let client = Arc::new(ScnetClient::new(
        cfg.accounts["sc"].clone(),
        reqwest::Client::new().into(),
    ));
    let mut op = ScnetRestart::new(client).unwrap();
    let handle = accepted(op.submit(&spec(ID)).await).handle;
    for (status, field) in [("TERMINATED", "status"), ("Failed", "instanceStatus")] {
        admin(
            &emu,
            "faults",
            json!({"operation": "scnet.detail", "status": 200,
            "body": {"code": "0", "msg": "success", "data": {field: status}}}),
        )
        .await;
        // Right after the restart a final status may be the old one: still in progress.
        assert!(matches!(
            op.poll(&spec(ID), &handle).await,
            PollOutcome::InProgress { .. }
        ));
    }
    op.settle = Duration::ZERO;
    admin(
        &emu,
        "faults",
        json!({"operation": "scnet.detail", "status": 200,
        "body": {"code": "0", "msg": "success", "data": {"instanceStatus": "Failed"}}}),
    )
    .await;
    match op.poll(&spec(ID), &handle).await {
        PollOutcome::Failed(e) => assert!(e.message.contains("Failed"), "{e}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    admin(
        &emu,
        "faults",
        json!({"operation": "scnet.detail", "status": 200,
        "body": {"code": "0", "msg": "success", "data": {"phase": "Running"}}}),
    )
    .await;
    match op.poll(&spec(ID), &handle).await {
        PollOutcome::Transient(why) => assert!(why.contains("status_field"), "{why}"),
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[test]
fn config_problems_for_alibaba_and_scnet_accounts_name_their_keys() {
    let text = r#"
[accounts.ali]
provider = "alibaba"
region = "cn-north-4x"
auth = "password"
password_env = "X"
cluster_id = "1"
calls_per_minute = 0

[accounts.sc]
provider = "scnet"
auth = "password"
password_env = "X"
cluster_id = "1"
cluster_name = "east"
status_field = "a b"
calls_per_minute = 5
"#;
    let problems = Config::parse(text, Path::new("c.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    for expected in [
        "accounts.ali.region: must be an Alibaba region",
        "accounts.ali.auth: Alibaba accounts use auth = \"aksk\"",
        "accounts.ali.cluster_id: only for scnet accounts",
        "accounts.ali.calls_per_minute: must be between 1 and 600",
        "accounts.sc.scnet_user: missing",
        "accounts.sc.org_id: missing",
        "accounts.sc.cluster_id: set cluster_id or cluster_name, not both",
        "accounts.sc.status_field: must be",
        "accounts.sc.calls_per_minute: only for alibaba accounts",
        "accounts.sc.endpoints: SCNet needs endpoints.ac",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
    // A minimal valid SCNet account needs no region; Alibaba defaults to aksk.
    let ok = r#"
[accounts.sc]
provider = "scnet"
scnet_user = "u"
auth = "aksk"
access_key_env = "A"
secret_key_env = "S"
cluster_name = "华东一区【昆山】"
endpoints = { token = "https://api.example.cn", ai = "https://ai.example.cn" }
[accounts.ali]
provider = "alibaba"
region = "cn-hangzhou"
access_key_env = "A"
secret_key_env = "S"
"#;
    let cfg = Config::parse(ok, Path::new("c.toml"), &opsgate::cloud::builtins()).unwrap();
    assert_eq!(cfg.accounts["ali"].auth, opsgate::config::AuthMethod::AkSk);
    let summary = opsgate::config::summary(&cfg);
    assert!(summary.contains("scnet - (aksk auth)"), "{summary}");
    assert!(summary.contains("60 calls/min (default)"), "{summary}");
}
