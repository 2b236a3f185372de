//! The DDM restart operation against the in-process cloud emulator, over loopback HTTP:
//! token and AK/SK auth, retries of refusals only, verbatim vendor errors, malformed
//! answers, the one-time token renewal, "no second submit after a timeout", and reconcile.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opsgate::cloud::huawei::ddm::DdmRestart;
use opsgate::cloud::huawei::HuaweiClient;
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{demo, RunningEmulator};
use opsgate::ports::cloud::{CloudError, CloudOperation, PollOutcome, ReconcileOutcome};
use serde_json::{json, Value};
use support::emulated::{
    self, accepted, admin, calls, fault, huawei_config, indeterminate, not_sent, poll_to_end,
    refused, Accepted, HuaweiAuth, AK_VAR, BAD_PASSWORD_VAR, BAD_SK_VAR, PASSWORD_VAR, SK_VAR,
};

const INSTANCE: &str = "28e8841d0b9c4f6a9a30742ee60e1068in09";
async fn start_emulator(job_duration: Duration) -> RunningEmulator {
    emulated::start(job_duration).await
}

fn config(emu: &RunningEmulator, auth: HuaweiAuth, request_timeout: &str) -> Config {
    huawei_config(emu, auth, request_timeout, &["ddm"])
}

/// The operation as the engine gets it.
fn registry_op(config: &Config) -> Arc<dyn CloudOperation> {
    emulated::operation(config, "ddm.restart", "acct")
}

/// The same operation with retry waits shrunk to milliseconds.
fn fast_op(config: &Config) -> DdmRestart {
    let client = HuaweiClient::new(
        config.accounts["acct"].clone(),
        reqwest::Client::new().into(),
    );
    let mut op = DdmRestart::new(Arc::new(client)).unwrap();
    op.retry.throttled_base = Duration::from_millis(5);
    op.retry.busy_base = Duration::from_millis(5);
    op.retry.unreachable_base = Duration::from_millis(5);
    op.retry.max_delay = Duration::from_millis(20);
    op
}

fn spec(mode: &str) -> JobSpec {
    JobSpec {
        operation: "ddm.restart".into(),
        account: "acct".into(),
        target: INSTANCE.into(),
        params: BTreeMap::from([
            ("instance_id".to_string(), INSTANCE.to_string()),
            ("mode".to_string(), mode.to_string()),
        ]),
    }
}

#[tokio::test]
async fn soft_restart_is_submitted_and_polled_to_success() {
    let emu = start_emulator(Duration::from_millis(300)).await;
    let config = config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s");
    let op = registry_op(&config);
    assert_eq!(op.poll_policy().interval, Duration::from_millis(100));

    let Accepted {
        handle, cloud_ref, ..
    } = accepted(op.submit(&spec("soft")).await);
    let job_id = cloud_ref.expect("the emulator returns a jobId");
    assert_eq!(handle["job_id"], json!(job_id));
    assert_eq!(handle["instance_id"], json!(INSTANCE));
    assert_eq!(handle["seen_restarting"], json!(false));

    let done = poll_to_end(op.as_ref(), &spec("soft"), handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains(&job_id)),
        "{done:?}"
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
    assert_eq!(calls(&emu, "iam.token").await, 1, "the token is cached");
    assert!(calls(&emu, "ddm.job").await >= 1);
    // What the benchmark reads off the emulator: when the restart of this instance arrived.
    assert_eq!(emu.arrival_count("ddm.restart"), 1);
    assert!(emu.arrival_of("ddm.restart", INSTANCE).is_some());
    assert!(emu.arrival_of("ddm.restart", "another-instance").is_none());
}

#[tokio::test]
async fn documented_refusal_reaches_the_user_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.restart", "status": 400,
               "body": r#"{"errCode":"DBS.280001","externalMessage":"Parameter error."}"#}),
    )
    .await;
    let e = refused(op.submit(&spec("hard")).await);
    assert_eq!(
        e,
        CloudError::new(Some(400), Some("DBS.280001".into()), "Parameter error.")
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 1, "a 400 is not retried");
}

#[tokio::test]
async fn throttled_answer_is_retried_then_accepted() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = fast_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.restart", "status": 429,
               "body": r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute"}"#}),
    )
    .await;
    accepted(op.submit(&spec("soft")).await);
    assert_eq!(calls(&emu, "ddm.restart").await, 2);
}

#[tokio::test]
async fn busy_instance_is_retried_then_accepted() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = fast_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.restart", "status": 409, "times": 2,
               "body": r#"{"errCode":"DBS.200019","externalMessage":"Another operation is being performed on the instance."}"#}),
    )
    .await;
    accepted(op.submit(&spec("soft")).await);
    assert_eq!(calls(&emu, "ddm.restart").await, 3);
}

#[tokio::test]
async fn busy_retries_end_with_the_vendor_error() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let mut op = fast_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    op.retry.max_attempts = 3;
    // The first restart really runs; every later one meets a RESTARTING instance.
    accepted(op.submit(&spec("soft")).await);
    let e = refused(op.submit(&spec("soft")).await);
    assert_eq!(e.http_status, Some(409));
    assert_eq!(e.code.as_deref(), Some("DBS.200019"));
    assert_eq!(
        e.message,
        "Another operation is being performed on the instance."
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 1 + 3);
}

#[tokio::test]
async fn malformed_error_body_is_unconfirmed_without_panic() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.restart", "status": 500, "body": "{\"errCode\": \"DBS.2004<html>oops"}),
    )
    .await;
    let seen = indeterminate(op.submit(&spec("soft")).await);
    assert!(seen.starts_with("DDM answered HTTP 500"), "{seen}");
    assert!(seen.contains("oops"), "{seen}");
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
}

#[tokio::test]
async fn undocumented_success_bodies_are_unconfirmed_and_never_resent() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    for body in [
        "<html><body>OK</body></html>",
        "",
        "{\"jobId\":",
        "{\"result\":\"ok\"}",
    ] {
        fault(
            &emu,
            json!({"operation": "ddm.restart", "status": 200, "body": body, "execute": false}),
        )
        .await;
        let seen = indeterminate(op.submit(&spec("soft")).await);
        assert!(seen.contains("DDM answered HTTP 200"), "{seen}");
        assert!(seen.contains("not the documented answer"), "{seen}");
    }
    assert_eq!(
        calls(&emu, "ddm.restart").await,
        4,
        "each sent once, none re-sent"
    );
}

#[tokio::test]
async fn truncated_success_after_the_restart_ran_is_confirmed_by_the_instance() {
    let emu = start_emulator(Duration::from_secs(1)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    // The restart happens for real, but the answer is cut off.
    fault(
        &emu,
        json!({"operation": "ddm.restart", "status": 200, "body": "{\"jobId\":", "execute": true}),
    )
    .await;
    indeterminate(op.submit(&spec("soft")).await);
    let handle = match op.reconcile(&spec("soft")).await {
        ReconcileOutcome::Running { handle, .. } => handle,
        other => panic!("expected Running, got {other:?}"),
    };
    assert_eq!(handle["seen_restarting"], json!(true));
    let done = poll_to_end(op.as_ref(), &spec("soft"), handle).await;
    assert!(matches!(done, PollOutcome::Succeeded(_)), "{done:?}");
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
}

#[tokio::test]
async fn gateway_timeout_after_execution_is_unconfirmed_not_refused() {
    let emu = start_emulator(Duration::from_secs(1)).await;
    let op = fast_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    for (status, body) in [
        (
            504,
            r#"{"error_code":"APIG.0201","error_msg":"Backend timeout."}"#,
        ),
        (
            500,
            r#"{"errCode":"DBS.200412","externalMessage":"server error"}"#,
        ),
        (502, "<html>Bad Gateway</html>"),
    ] {
        fault(
            &emu,
            json!({"operation": "ddm.restart", "status": status, "body": body, "execute": true}),
        )
        .await;
        let seen = indeterminate(op.submit(&spec("soft")).await);
        assert!(
            seen.contains(&format!("DDM answered HTTP {status}")),
            "{seen}"
        );
        // The restart did run: reconcile sees it and polling confirms it.
        let handle = match op.reconcile(&spec("soft")).await {
            ReconcileOutcome::Running { handle, .. } => handle,
            other => panic!("expected Running, got {other:?}"),
        };
        let done = poll_to_end(&op, &spec("soft"), handle).await;
        assert!(matches!(done, PollOutcome::Succeeded(_)), "{done:?}");
    }
    assert_eq!(calls(&emu, "ddm.restart").await, 3, "never re-sent");
}

#[tokio::test]
async fn job_api_not_found_falls_back_to_instance_status() {
    let emu = start_emulator(Duration::from_secs(1)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.job", "status": 404, "times": 1000,
               "body": r#"{"errCode":"DBS.280001","externalMessage":"not found"}"#}),
    )
    .await;
    let handle = accepted(op.submit(&spec("hard")).await).handle;
    let done = poll_to_end(op.as_ref(), &spec("hard"), handle).await;
    assert!(
        matches!(&done, PollOutcome::Succeeded(m) if m.contains("RUNNING again")),
        "{done:?}"
    );
}

#[tokio::test]
async fn revoked_token_is_renewed_once_and_the_restart_goes_through() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    // Get a token cached by looking at the instance.
    assert!(matches!(
        op.reconcile(&spec("soft")).await,
        ReconcileOutcome::Running { .. }
    ));
    assert_eq!(calls(&emu, "iam.token").await, 1);
    admin(&emu, "tokens/revoke", json!({})).await;

    accepted(op.submit(&spec("soft")).await);
    assert_eq!(calls(&emu, "iam.token").await, 2, "exactly one renewal");
    assert_eq!(
        calls(&emu, "ddm.restart").await,
        2,
        "refused once, re-sent once"
    );
}

#[tokio::test]
async fn wrong_password_is_not_sent_with_the_iam_message() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(BAD_PASSWORD_VAR), "5s"));
    let why = not_sent(op.submit(&spec("soft")).await);
    assert!(
        why.contains("IAM refused a token for account `acct`"),
        "{why}"
    );
    assert!(
        why.contains("HTTP 401 The username or password is wrong."),
        "{why}"
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 0);
}

#[tokio::test]
async fn aksk_signed_requests_are_accepted() {
    let emu = start_emulator(Duration::from_millis(300)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::AkSk(SK_VAR), "5s"));
    let handle = accepted(op.submit(&spec("soft")).await).handle;
    // Polling signs GETs too.
    let done = poll_to_end(op.as_ref(), &spec("soft"), handle).await;
    assert!(matches!(done, PollOutcome::Succeeded(_)), "{done:?}");
    assert_eq!(calls(&emu, "iam.token").await, 0);
}

#[tokio::test]
async fn wrong_secret_key_is_rejected_verbatim() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::AkSk(BAD_SK_VAR), "5s"));
    let e = refused(op.submit(&spec("soft")).await);
    assert_eq!(e.http_status, Some(401));
    assert_eq!(e.code.as_deref(), Some("APIGW.0301"));
    assert_eq!(
        e.message,
        "Incorrect IAM authentication information: verify aksk signature fail"
    );
    assert_eq!(
        calls(&emu, "ddm.restart").await,
        1,
        "a bad signature is not retried"
    );
}

#[tokio::test]
async fn answer_lost_after_the_restart_started_is_indeterminate_and_never_resent() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "1s"));
    fault(
        &emu,
        json!({"operation": "ddm.restart", "delay_ms": 3000, "execute": true}),
    )
    .await;
    let seen = indeterminate(op.submit(&spec("soft")).await);
    assert!(seen.contains("no answer from DDM"), "{seen}");
    assert_eq!(calls(&emu, "ddm.restart").await, 1);

    // After a crash, reconcile finds the restart under way without re-sending it.
    match op.reconcile(&spec("soft")).await {
        ReconcileOutcome::Running { handle, .. } => {
            assert_eq!(handle["seen_restarting"], json!(true));
            assert_eq!(handle["job_id"], Value::Null);
        }
        other => panic!("expected Running, got {other:?}"),
    }
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
}

#[tokio::test]
async fn reconcile_watches_a_running_instance_and_never_claims_success() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let mut op = fast_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    op.settle = Duration::from_millis(1500);
    // RUNNING all along: watched for the settle window, then unknown, never a success.
    let handle = match op.reconcile(&spec("soft")).await {
        ReconcileOutcome::Running { handle, note } => {
            assert!(note.contains("watching"), "{note}");
            handle
        }
        other => panic!("expected Running, got {other:?}"),
    };
    assert_eq!(handle["seen_restarting"], json!(false));
    let done = poll_to_end(&op, &spec("soft"), handle).await;
    assert!(
        matches!(&done, PollOutcome::Unknown(m) if m.contains("never seen RESTARTING")),
        "{done:?}"
    );

    admin(
        &emu,
        "instances",
        json!({"instance_id": INSTANCE, "status": "RESTARTING"}),
    )
    .await;
    let handle = match op.reconcile(&spec("soft")).await {
        ReconcileOutcome::Running { handle, .. } => handle,
        other => panic!("expected Running, got {other:?}"),
    };
    // The restart finishes; polling the reconciled handle sees it through.
    admin(
        &emu,
        "instances",
        json!({"instance_id": INSTANCE, "status": "RUNNING"}),
    )
    .await;
    let done = poll_to_end(&op, &spec("soft"), handle).await;
    assert!(matches!(done, PollOutcome::Succeeded(_)), "{done:?}");
    assert_eq!(calls(&emu, "ddm.restart").await, 0, "reconcile never sends");
}

#[tokio::test]
async fn instance_in_error_fails_the_job() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let op = registry_op(&config(&emu, HuaweiAuth::Password(PASSWORD_VAR), "5s"));
    fault(
        &emu,
        json!({"operation": "ddm.job", "status": 404, "times": 1000, "body": ""}),
    )
    .await;
    let handle = accepted(op.submit(&spec("hard")).await).handle;
    admin(
        &emu,
        "instances",
        json!({"instance_id": INSTANCE, "status": "ERROR"}),
    )
    .await;
    let done = poll_to_end(op.as_ref(), &spec("hard"), handle).await;
    assert!(
        matches!(&done, PollOutcome::Failed(e) if e.message.contains("ERROR")),
        "{done:?}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_not_sent_not_indeterminate() {
    emulated::huawei_secrets();
    // A port that refuses connections: bind, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = format!(
        r#"
[roles]
oncall = "1"
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "{}"
auth = "aksk"
access_key_env = "{AK_VAR}"
secret_key_env = "{SK_VAR}"
endpoints = {{ ddm = "http://127.0.0.1:{port}" }}
"#,
        demo::PROJECT_ID
    );
    let config = Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins()).unwrap();
    let op = fast_op(&config);
    let why = not_sent(op.submit(&spec("soft")).await);
    assert!(why.contains("could not connect"), "{why}");
}

#[tokio::test]
async fn emulator_answers_garbage_requests_without_falling_over() {
    let emu = start_emulator(Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let base = emu.base_url();
    let cases: Vec<(reqwest::Method, String, Vec<u8>)> = vec![
        (
            reqwest::Method::POST,
            "/v3/auth/tokens".into(),
            b"\xff\xfe".to_vec(),
        ),
        (
            reqwest::Method::POST,
            "/v3/auth/tokens".into(),
            b"{}".to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/p/instances/{INSTANCE}/action"),
            b"{}".to_vec(),
        ),
        (
            reqwest::Method::GET,
            "/v1/%FF/instances/%00".into(),
            Vec::new(),
        ),
        (reqwest::Method::DELETE, "/v1/x".into(), Vec::new()),
        (
            reqwest::Method::POST,
            "/_emulator/faults".into(),
            b"[".to_vec(),
        ),
        (
            reqwest::Method::POST,
            "/_emulator/settings".into(),
            br#"{"job_duration_ms":18446744073709551615}"#.to_vec(),
        ),
    ];
    for (method, path, body) in cases {
        let resp = http
            .request(method.clone(), format!("{base}{path}"))
            .header("authorization", "SDK-HMAC-SHA256 Access=x")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(
            (200..500).contains(&status),
            "{method} {path} answered {status}"
        );
    }
    let health = reqwest::get(format!("{base}/_emulator/healthz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
}
