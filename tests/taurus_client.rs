//! The TaurusDB proxy operations (restart, kernel upgrade) against the in-process cloud
//! emulator, over loopback HTTP: job tracking through `GET /v3/{pid}/jobs?id=` with the
//! not-found grace, upgrade ACCEPT/REJECT, verbatim vendor errors, retries of refusals only,
//! the one-time token renewal, and "no second submit after a timeout".

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opsgate::cloud::huawei::taurus_restart::TaurusProxyRestart;
use opsgate::cloud::huawei::HuaweiClient;
use opsgate::cloud::Registry;
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{demo, RunningEmulator};
use opsgate::ports::cloud::Operations;
use opsgate::ports::cloud::{CloudError, CloudOperation, PollOutcome, ReconcileOutcome};
use serde_json::{json, Value};
use support::emulated::{
    self, accepted, admin, calls, fault, huawei_config, indeterminate, not_sent, refused, Accepted,
    HuaweiAuth, AK_VAR, PASSWORD_VAR, SK_VAR,
};

const INSTANCE: &str = "61a4ea66210545909d74a05c27a7179ein07";
const PROXY: &str = "151c14381ac14ecfb9703a745b992677po01";
async fn start_emulator(job_duration: Duration) -> RunningEmulator {
    emulated::start(job_duration).await
}

fn config(emu: &RunningEmulator, aksk: bool, request_timeout: &str) -> Config {
    let auth = if aksk {
        HuaweiAuth::AkSk(SK_VAR)
    } else {
        HuaweiAuth::Password(PASSWORD_VAR)
    };
    huawei_config(emu, auth, request_timeout, &["gaussdb"])
}

fn registry_op(config: &Config, operation: &str) -> Arc<dyn CloudOperation> {
    emulated::operation(config, operation, "acct")
}

fn client(config: &Config) -> Arc<HuaweiClient> {
    Arc::new(HuaweiClient::new(
        config.accounts["acct"].clone(),
        reqwest::Client::new().into(),
    ))
}

/// The restart with retry waits shrunk to milliseconds.
fn fast_restart(config: &Config) -> TaurusProxyRestart {
    let mut op = TaurusProxyRestart::new(client(config)).unwrap();
    op.retry.throttled_base = Duration::from_millis(5);
    op.retry.busy_base = Duration::from_millis(5);
    op.retry.unreachable_base = Duration::from_millis(5);
    op.retry.max_delay = Duration::from_millis(20);
    op
}

fn restart_spec() -> JobSpec {
    JobSpec {
        operation: "taurus-proxy.restart".into(),
        account: "acct".into(),
        target: "orders-proxy".into(),
        params: BTreeMap::from([
            ("instance_id".to_string(), INSTANCE.to_string()),
            ("proxy_id".to_string(), PROXY.to_string()),
        ]),
    }
}

fn upgrade_spec(source: &str, target: &str) -> JobSpec {
    let mut spec = restart_spec();
    spec.operation = "taurus-proxy.upgrade".into();
    spec.params
        .insert("source_version".to_string(), source.to_string());
    spec.params
        .insert("target_version".to_string(), target.to_string());
    spec
}

/// Polls at the operation's own pace until a final outcome, collecting the progress texts.
/// The bound is on the number of polls, not on time.
async fn poll_to_end(
    op: &dyn CloudOperation,
    spec: &JobSpec,
    handle: Value,
) -> (PollOutcome, Vec<String>) {
    let mut seen = Vec::new();
    for _ in 0..600 {
        tokio::time::sleep(op.poll_policy().interval).await;
        match op.poll(spec, &handle).await {
            PollOutcome::InProgress { progress, .. } => seen.extend(progress),
            PollOutcome::Transient(why) => seen.push(format!("transient: {why}")),
            done => return (done, seen),
        }
    }
    panic!("the job never finished; saw {seen:?}");
}

#[tokio::test]
async fn restart_is_followed_through_the_job_api_to_success() {
    let emu = start_emulator(Duration::from_millis(1500)).await;
    let config = config(&emu, false, "5s");
    let op = registry_op(&config, "taurus-proxy.restart");
    assert_eq!(op.poll_policy().interval, Duration::from_millis(100));
    assert_eq!(op.poll_policy().initial_delay, Duration::from_millis(100));

    let Accepted {
        handle,
        cloud_ref,
        answer,
    } = accepted(op.submit(&restart_spec()).await);
    let job_id = cloud_ref.expect("the restart answers a job_id");
    assert_eq!(handle["job_id"], json!(job_id));
    assert_eq!(handle["proxy_id"], json!(PROXY));
    assert!(handle["submitted_at"].as_i64().unwrap() > 0);
    assert!(answer.contains(PROXY), "{answer}");

    let (done, seen) = poll_to_end(op.as_ref(), &restart_spec(), handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains(&job_id)),
        "{done:?}"
    );
    // The emulator hides a new job for its first second: that is pending, not a failure.
    assert!(
        seen.iter().any(|s| s.contains("not visible yet")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.starts_with("job Running, ")),
        "progress shows `process`: {seen:?}"
    );
    assert!(!seen.iter().any(|s| s.starts_with("transient")), "{seen:?}");
    assert_eq!(calls(&emu, "taurus.restart").await, 1);
    assert_eq!(calls(&emu, "iam.token").await, 1, "the token is cached");
}

#[tokio::test]
async fn upgrade_accept_is_tracked_through_its_workflow_to_success() {
    let emu = start_emulator(Duration::from_millis(300)).await;
    // AK/SK signing covers the POST body and the job query string.
    let config = config(&emu, true, "5s");
    let op = registry_op(&config, "taurus-proxy.upgrade");
    let spec = upgrade_spec("2.23.12.000", "2.24.03.000");
    let Accepted {
        handle,
        cloud_ref,
        answer,
    } = accepted(op.submit(&spec).await);
    let workflow = cloud_ref.expect("ACCEPT carries a workflow_id");
    assert_eq!(handle["job_id"], json!(workflow));
    assert!(answer.contains("2.24.03.000"), "{answer}");
    let (done, _) = poll_to_end(op.as_ref(), &spec, handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains(&workflow)),
        "{done:?}"
    );
    assert_eq!(calls(&emu, "taurus.upgrade").await, 1);
    assert_eq!(calls(&emu, "iam.token").await, 0);

    // The proxy now runs the target: the same upgrade again is REJECTed by the cloud.
    let e = refused(op.submit(&upgrade_spec("2.24.03.000", "2.24.03.000")).await);
    assert_eq!(e.code.as_deref(), Some("REJECT"));
    assert!(e.message.contains("already at the target version"), "{e}");
}

#[tokio::test]
async fn upgrade_reject_message_reaches_the_user() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.upgrade");
    // The emulator's proxy runs 2.23.12.000; a wrong source version is refused.
    let e = refused(op.submit(&upgrade_spec("2.23.11.000", "2.24.03.000")).await);
    assert_eq!(e.code.as_deref(), Some("REJECT"));
    assert_eq!(
        e.message,
        "The source version 2.23.11.000 does not match the current version 2.23.12.000 of the proxy instance."
    );

    // The documented REJECT shape, verbatim.
    fault(
        &emu,
        json!({"operation": "taurus.upgrade", "status": 200,
               "body": {"update_result": [{"workflow_id": "", "state": "REJECT",
                        "error_message": "Upgrade failed due to insufficient subnet ip"}]}}),
    )
    .await;
    let e = refused(op.submit(&upgrade_spec("2.23.12.000", "2.24.03.000")).await);
    assert_eq!(
        e.to_string(),
        "REJECT: Upgrade failed due to insufficient subnet ip"
    );
    assert_eq!(
        calls(&emu, "taurus.upgrade").await,
        2,
        "a REJECT is not retried"
    );
}

#[tokio::test]
async fn a_downgrade_is_refused_before_anything_is_sent() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.upgrade");
    let why = not_sent(op.submit(&upgrade_spec("2.24.03.000", "2.23.12.000")).await);
    assert!(why.contains("lower than the source version"), "{why}");
    assert_eq!(calls(&emu, "taurus.upgrade").await, 0);
}

#[tokio::test]
async fn documented_refusals_are_refused_and_other_codes_unconfirmed_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.restart");
    fault(
        &emu,
        json!({"operation": "taurus.restart", "status": 400,
               "body": r#"{"error_code":"DBS.280001","error_msg":"Parameter error."}"#}),
    )
    .await;
    let e = refused(op.submit(&restart_spec()).await);
    assert_eq!(
        e,
        CloudError::new(Some(400), Some("DBS.280001".into()), "Parameter error.")
    );
    // A code outside Huawei's refusal table proves nothing: it is shown as it came.
    fault(
        &emu,
        json!({"operation": "taurus.restart", "status": 400,
               "body": r#"{"error_code":"DBS.200823","error_msg":"The proxy instance does not exist."}"#}),
    )
    .await;
    let seen = indeterminate(op.submit(&restart_spec()).await);
    assert_eq!(
        seen,
        "TaurusDB answered HTTP 400 DBS.200823: The proxy instance does not exist."
    );
    assert_eq!(
        calls(&emu, "taurus.restart").await,
        2,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn throttled_answer_is_retried_then_accepted() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = fast_restart(&config(&emu, false, "5s"));
    fault(
        &emu,
        json!({"operation": "taurus.restart", "status": 429,
               "body": r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute"}"#}),
    )
    .await;
    accepted(op.submit(&restart_spec()).await);
    assert_eq!(calls(&emu, "taurus.restart").await, 2);
}

#[tokio::test]
async fn busy_proxy_is_retried_and_ends_with_the_vendor_error() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let mut op = fast_restart(&config(&emu, false, "5s"));
    // Canned "busy" answers are retried until the real answer comes.
    fault(
        &emu,
        json!({"operation": "taurus.restart", "status": 409, "times": 2,
               "body": r#"{"error_code":"DBS.201014","error_msg":"Another operation is in progress."}"#}),
    )
    .await;
    accepted(op.submit(&restart_spec()).await);
    assert_eq!(calls(&emu, "taurus.restart").await, 3);

    // The restart now runs for a minute: every later request meets the emulator's own 409.
    op.retry.max_attempts = 3;
    let e = refused(op.submit(&restart_spec()).await);
    assert_eq!(e.http_status, Some(409));
    assert_eq!(e.code.as_deref(), Some("DBS.200019"));
    assert_eq!(
        e.message,
        "Another operation is being performed on the proxy instance. Try again later."
    );
    assert_eq!(calls(&emu, "taurus.restart").await, 3 + 3);
}

#[tokio::test]
async fn revoked_token_is_renewed_once_and_the_restart_goes_through() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.restart");
    // Get a token cached through a harmless look (reconcile never sends the restart).
    assert!(matches!(
        op.reconcile(&restart_spec()).await,
        ReconcileOutcome::Unknown(_)
    ));
    assert_eq!(calls(&emu, "iam.token").await, 1);
    admin(&emu, "tokens/revoke", json!({})).await;

    accepted(op.submit(&restart_spec()).await);
    assert_eq!(calls(&emu, "iam.token").await, 2, "exactly one renewal");
    assert_eq!(
        calls(&emu, "taurus.restart").await,
        2,
        "refused once, re-sent once"
    );
}

#[tokio::test]
async fn answer_lost_after_the_restart_started_is_indeterminate_and_never_resent() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "1s"), "taurus-proxy.restart");
    fault(
        &emu,
        json!({"operation": "taurus.restart", "delay_ms": 3000, "execute": true}),
    )
    .await;
    let seen = indeterminate(op.submit(&restart_spec()).await);
    assert!(seen.contains("no answer from TaurusDB"), "{seen}");
    assert_eq!(calls(&emu, "taurus.restart").await, 1);

    // Reconcile cannot find a job without its ID: it says so, with what it saw, and what
    // to check. It sends nothing.
    match op.reconcile(&restart_spec()).await {
        ReconcileOutcome::Unknown(m) => {
            assert!(m.contains("was not re-sent"), "{m}");
            assert!(m.contains("reports status RESTARTING"), "{m}");
            assert!(m.contains("task center"), "{m}");
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert_eq!(calls(&emu, "taurus.restart").await, 1);
    assert_eq!(calls(&emu, "taurus.proxies").await, 1);
}

#[tokio::test]
async fn failed_job_reports_the_fail_reason() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.restart");
    let Accepted {
        handle, cloud_ref, ..
    } = accepted(op.submit(&restart_spec()).await);
    let job_id = cloud_ref.unwrap();
    fault(
        &emu,
        json!({"operation": "taurus.job", "status": 200, "times": 1000,
               "body": {"job": {"id": job_id, "name": "RestartProxy", "status": "Failed",
                        "fail_reason": "The proxy node is abnormal."}}}),
    )
    .await;
    let (done, _) = poll_to_end(op.as_ref(), &restart_spec(), handle).await;
    assert!(
        matches!(&done, PollOutcome::Failed(e) if e.message == "The proxy node is abnormal."),
        "{done:?}"
    );
}

#[tokio::test]
async fn restart_answer_without_a_job_id_is_not_guessed() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, false, "5s"), "taurus-proxy.restart");
    fault(
        &emu,
        json!({"operation": "taurus.restart", "status": 200, "body": "{\"job_id\":", "execute": true}),
    )
    .await;
    let seen = indeterminate(op.submit(&restart_spec()).await);
    assert!(seen.contains("not the documented answer"), "{seen}");
    assert_eq!(calls(&emu, "taurus.restart").await, 1);
}

#[tokio::test]
async fn wrong_host_is_never_used_for_taurus() {
    // Only the ddm endpoint is overridden: TaurusDB calls must not go there.
    emulated::huawei_secrets();
    let text = format!(
        r#"
[roles]
oncall = "1"
[accounts.acct]
provider = "huawei"
region = "xx-nowhere-1"
project_id = "{}"
auth = "aksk"
access_key_env = "{AK_VAR}"
secret_key_env = "{SK_VAR}"
endpoints = {{ ddm = "http://127.0.0.1:9" }}
"#,
        demo::PROJECT_ID
    );
    let config = Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins()).unwrap();
    let err = Registry::from_config(&config)
        .get("taurus-proxy.restart", "acct")
        .err()
        .unwrap();
    assert!(err.contains("endpoints.gaussdb"), "{err}");
}
