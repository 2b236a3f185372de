//! The SAE restart operation against the in-process emulator over loopback HTTP: ACS3
//! signing, the change order table, verbatim vendor errors, throttling retries, "no second
//! submit after a timeout", reconcile, and the per-account call budget.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use opsgate::cloud::alibaba::sae::SaeRestart;
use opsgate::cloud::alibaba::signer;
use opsgate::cloud::alibaba::AlibabaClient;
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{demo, RunningEmulator};
use opsgate::ports::cloud::{CloudOperation, PollOutcome, ReconcileOutcome};
use serde_json::{json, Value};
use support::emulated::{
    self, accepted, calls, fault, indeterminate, poll_to_end, refused, Accepted,
};

const APP: &str = "1daa7236-3844-4f36-b39a-605b0cc0aaaa";
const APP2: &str = "2daa7236-3844-4f36-b39a-605b0cc0bbbb";
const INSTANCES: &str = "mysae-1daa7236-x7k2p,mysae-1daa7236-b9q4z";
const AK_VAR: &str = "OPSGATE_SAE_TEST_AK";
const SK_VAR: &str = "OPSGATE_SAE_TEST_SK";
const BAD_SK_VAR: &str = "OPSGATE_SAE_TEST_BAD_SK";

fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(AK_VAR, demo::ALIBABA_ACCESS_KEY);
        std::env::set_var(SK_VAR, demo::ALIBABA_SECRET_KEY);
        std::env::set_var(BAD_SK_VAR, "not-the-secret");
    });
}

async fn start_emulator(job_duration: Duration) -> RunningEmulator {
    init_env();
    emulated::start(job_duration).await
}

fn config(emu: &RunningEmulator, sk_var: &str, timeout: &str, budget: u32) -> Config {
    let text = format!(
        r#"
[accounts.ali]
provider = "alibaba"
region = "cn-hangzhou"
auth = "aksk"
access_key_env = "{AK_VAR}"
secret_key_env = "{sk_var}"
calls_per_minute = {budget}
poll_interval = "100ms"
request_timeout = "{timeout}"
endpoints = {{ sae = "{}" }}
"#,
        emu.base_url()
    );
    Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins()).unwrap()
}

fn registry_op(config: &Config) -> Arc<dyn CloudOperation> {
    emulated::operation(config, "sae.restart", "ali")
}

fn fast(mut op: SaeRestart) -> SaeRestart {
    op.retry.throttled_base = Duration::from_millis(5);
    op.retry.busy_base = Duration::from_millis(5);
    op.retry.unreachable_base = Duration::from_millis(5);
    op.retry.max_delay = Duration::from_millis(20);
    op
}

fn client(config: &Config) -> Arc<AlibabaClient> {
    Arc::new(AlibabaClient::new(
        config.accounts["ali"].clone(),
        reqwest::Client::new().into(),
    ))
}

fn spec(app: &str) -> JobSpec {
    JobSpec {
        operation: "sae.restart".into(),
        account: "ali".into(),
        target: app.into(),
        params: BTreeMap::from([
            ("app_id".to_string(), app.to_string()),
            ("instance_ids".to_string(), INSTANCES.to_string()),
        ]),
    }
}

fn order_body(status: i64, sub_status: i64, error: &str) -> Value {
    json!({"operation": "sae.changeorder", "status": 200, "body": {
        "RequestId": "r", "Code": "200", "Success": true, "Message": "success",
        "Data": {"ChangeOrderId": "x", "Status": status, "SubStatus": sub_status, "ErrorMessage": error}
    }})
}

#[tokio::test]
async fn restart_is_signed_submitted_and_polled_to_success() {
    let emu = start_emulator(Duration::from_millis(400)).await;
    let op = registry_op(&config(&emu, SK_VAR, "5s", 60));
    let Accepted {
        handle, cloud_ref, ..
    } = accepted(op.submit(&spec(APP)).await);
    let order = cloud_ref.expect("a change order ID");
    assert_eq!(handle["change_order_id"], json!(order));
    assert_eq!(handle["instance_ids"], json!(INSTANCES));
    let done = poll_to_end(op.as_ref(), &spec(APP), handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains(&order)),
        "{done:?}"
    );
    assert_eq!(calls(&emu, "sae.restart").await, 1);
    assert!(calls(&emu, "sae.changeorder").await >= 1);
}

#[tokio::test]
async fn vendor_error_is_verbatim_with_the_http_status_and_not_retried() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, SK_VAR, "5s", 60));
    fault(
        &emu,
        json!({"operation": "sae.restart", "status": 400, "body": {
        "RequestId": "r", "Code": "InvalidApplication.NotFound",
        "Message": "The current application does not exist.", "Success": false,
        "ErrorCode": "InvalidApplication.NotFound"}}),
    )
    .await;
    let e = refused(op.submit(&spec(APP)).await);
    assert_eq!(
        e.to_string(),
        "HTTP 400 InvalidApplication.NotFound: The current application does not exist."
    );
    assert_eq!(calls(&emu, "sae.restart").await, 1);
}

#[tokio::test]
async fn wrong_secret_is_refused_by_the_signature_check_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, BAD_SK_VAR, "5s", 60));
    let e = refused(op.submit(&spec(APP)).await);
    assert_eq!(e.http_status, Some(400));
    assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
    assert_eq!(calls(&emu, "sae.restart").await, 1);
}

#[tokio::test]
async fn throttling_backs_off_then_succeeds() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let cfg = config(&emu, SK_VAR, "5s", 60);
    let op = fast(SaeRestart::new(client(&cfg)).unwrap());
    fault(
        &emu,
        json!({"operation": "sae.restart", "status": 400, "times": 2, "body": {
        "Code": "Throttling.User", "Message": "Request was denied due to user flow control."}}),
    )
    .await;
    accepted(op.submit(&spec(APP)).await);
    assert_eq!(calls(&emu, "sae.restart").await, 3);
}

#[tokio::test]
async fn busy_app_is_retried_and_a_running_change_order_shows() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let cfg = config(&emu, SK_VAR, "5s", 60);
    let op = fast(SaeRestart::new(client(&cfg)).unwrap());
    accepted(op.submit(&spec(APP)).await);
    // The emulator refuses a second restart while the first order runs; retries give up
    // with SAE's own error.
    let e = refused(op.submit(&spec(APP)).await);
    assert_eq!(e.code.as_deref(), Some("Application.ChangerOrderRunning"));
}

#[tokio::test]
async fn undocumented_success_is_unconfirmed_and_reconcile_reads_the_change_orders() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, SK_VAR, "5s", 60));
    // Nothing ran: an HTML page with 200, then an empty body. Neither is acceptance.
    for body in ["<html><body>maintenance</body></html>", ""] {
        fault(
            &emu,
            json!({"operation": "sae.restart", "status": 200, "body": body}),
        )
        .await;
        let seen = indeterminate(op.submit(&spec(APP)).await);
        assert!(seen.contains("SAE answered HTTP 200"), "{seen}");
        match op.reconcile(&spec(APP)).await {
            ReconcileOutcome::Unknown(m) => assert!(m.contains("no restart change order"), "{m}"),
            other => panic!("expected Unknown, got {other:?}"),
        }
    }
    // A 500 after the restart ran: unconfirmed, then found through ListChangeOrders.
    fault(
        &emu,
        json!({"operation": "sae.restart", "status": 500, "execute": true,
               "body": {"Code": "InternalError", "Message": "oops"}}),
    )
    .await;
    let seen = indeterminate(op.submit(&spec(APP)).await);
    assert!(
        seen.contains("SAE answered HTTP 500 InternalError: oops"),
        "{seen}"
    );
    assert!(matches!(
        op.reconcile(&spec(APP)).await,
        ReconcileOutcome::Running { .. }
    ));
    assert_eq!(
        calls(&emu, "sae.restart").await,
        3,
        "each sent once, none re-sent"
    );
}

#[tokio::test]
async fn timeout_after_send_is_indeterminate_with_one_submit_and_reconcile_finds_the_order() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, SK_VAR, "1s", 60));
    fault(
        &emu,
        json!({"operation": "sae.restart", "delay_ms": 3000, "execute": true}),
    )
    .await;
    let seen = indeterminate(op.submit(&spec(APP)).await);
    assert!(seen.contains("no answer from SAE"), "{seen}");
    assert_eq!(calls(&emu, "sae.restart").await, 1);
    match op.reconcile(&spec(APP)).await {
        ReconcileOutcome::Running { handle, note } => {
            assert!(handle["change_order_id"].is_string(), "{handle}");
            assert!(note.contains("unfinished restart change order"), "{note}");
        }
        other => panic!("expected Running, got {other:?}"),
    }
    // Another app has no restart order: honest Unknown saying what to check.
    match op.reconcile(&spec(APP2)).await {
        ReconcileOutcome::Unknown(why) => assert!(why.contains("ListChangeOrders"), "{why}"),
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert_eq!(calls(&emu, "sae.restart").await, 1);
}

#[tokio::test]
async fn waiting_for_a_person_is_needs_attention_and_failures_are_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, SK_VAR, "5s", 60));
    let handle = accepted(op.submit(&spec(APP)).await).handle;
    fault(&emu, order_body(8, 0, "")).await;
    match op.poll(&spec(APP), &handle).await {
        PollOutcome::NeedsAttention(m) => assert!(m.contains("manual confirmation"), "{m}"),
        other => panic!("expected NeedsAttention, got {other:?}"),
    }
    fault(&emu, order_body(1, 1, "batch 1: health check failed")).await;
    match op.poll(&spec(APP), &handle).await {
        PollOutcome::InProgress {
            progress: Some(p), ..
        } => {
            assert!(
                p.contains("DEGRADED") && p.contains("health check failed"),
                "{p}"
            )
        }
        other => panic!("expected degraded progress, got {other:?}"),
    }
    fault(
        &emu,
        order_body(3, 0, "instance mysae-1daa7236-x7k2p failed to start"),
    )
    .await;
    match op.poll(&spec(APP), &handle).await {
        PollOutcome::Failed(e) => {
            assert_eq!(e.message, "instance mysae-1daa7236-x7k2p failed to start")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn one_budget_is_shared_by_every_sae_job_of_the_account() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let cfg = config(&emu, SK_VAR, "5s", 3);
    let shared = client(&cfg);
    let job_a = SaeRestart::new(shared.clone()).unwrap();
    let job_b = SaeRestart::new(shared.clone()).unwrap();
    let handle_a = accepted(job_a.submit(&spec(APP)).await).handle;
    accepted(job_b.submit(&spec(APP2)).await);
    assert!(matches!(
        job_a.poll(&spec(APP), &handle_a).await,
        PollOutcome::InProgress { .. }
    ));
    assert_eq!(
        shared.limiter.total_granted(),
        3,
        "two submits and one poll"
    );
    assert_eq!(shared.limiter.available().await, 0);
    assert_eq!(calls(&emu, "sae.restart").await, 2);
    assert_eq!(calls(&emu, "sae.changeorder").await, 1);
    // A fourth call waits for the window (about a minute): it has not gone out.
    let waiting = tokio::spawn(async move { job_b.poll(&spec(APP2), &Value::Null).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls(&emu, "sae.changeorders").await + calls(&emu, "sae.changeorder").await,
        1
    );
    assert!(!waiting.is_finished());
    waiting.abort();
}

/// A request signed by hand, to check the emulator's own refusals.
async fn signed_put(emu: &RunningEmulator, date: &str, nonce: &str) -> (u16, Value) {
    let base = emu.base_url();
    let host = base.trim_start_matches("http://").to_string();
    let path = "/pop/v1/sam/app/restartInstances";
    let query = [("AppId", APP), ("InstanceIds", "inst-a,inst-b")];
    let hash = signer::hex_sha256(b"");
    let headers = [
        ("host", host.as_str()),
        ("x-acs-action", "RestartInstances"),
        ("x-acs-content-sha256", hash.as_str()),
        ("x-acs-date", date),
        ("x-acs-signature-nonce", nonce),
        ("x-acs-version", "2019-05-06"),
    ];
    let input = signer::SigningInput {
        method: "PUT",
        path,
        query: &query,
        headers: &headers,
        payload_hash: &hash,
    };
    let signed = signer::sign(demo::ALIBABA_ACCESS_KEY, demo::ALIBABA_SECRET_KEY, &input);
    let mut req = reqwest::Client::new()
        .put(format!("{base}{path}?{}", signer::canonical_query(&query)))
        .header("authorization", signed.authorization);
    for (k, v) in headers.iter().skip(1) {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn emulator_refuses_nonce_replay_and_clock_skew() {
    let emu = start_emulator(Duration::from_millis(50)).await;
    let now = signer::acs_date(time::OffsetDateTime::now_utc());
    let (status, body) = signed_put(&emu, &now, "nonce-1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = signed_put(&emu, &now, "nonce-1").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("SignatureNonceUsed"))
    );
    let old = signer::acs_date(time::OffsetDateTime::now_utc() - time::Duration::minutes(20));
    let (status, body) = signed_put(&emu, &old, "nonce-2").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("InvalidTimeStamp.Expired"))
    );
}
