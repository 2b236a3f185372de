//! Operations declared in the config, in process against the cloud emulator on 127.0.0.1:
//! each authentication through a declaration (the emulator verifies Huawei's AK/SK
//! signature and IAM token, Alibaba's ACS3 signature, SCNet's token, and a team API's bearer
//! token and API key header), outcomes by evidence (accepted, refused by the table, retried
//! only where declared, indeterminate -> reconcile read or `unknown`, never re-sent), the
//! dry run as the request sent, and injection attempts refused by the parser before
//! anything could be sent.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opsgate::cloud::Registry;
use opsgate::command::{parse, Command};
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{self, demo, EmulatorOptions, RunningEmulator};
use opsgate::ports::cloud::{
    CloudOperation, Operations, PollOutcome, ReconcileOutcome, SubmitOutcome,
};
use serde_json::{json, Value};
use support::emulated::{calls, fault, indeterminate, refused};

const RDS_OPS: &str = include_str!("../operations/huawei-rds-restart.toml");
const ECS_OPS: &str = include_str!("../operations/huawei-ecs-reboot.toml");
const RDS: &str = "0123456789abcdef0123456789abcdefin01";
const SERVER: &str = "3e2a5b4c-1d2e-4f60-8a9b-0c1d2e3f4a5b";

async fn start(job: Duration) -> RunningEmulator {
    let opts = EmulatorOptions {
        job_duration: job,
        ..EmulatorOptions::default()
    };
    emulator::start(opts, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// Writes each secret into `dir` and returns `key_file = "path"` lines.
fn secrets(dir: &Path, pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        let path = dir.join(format!("{}-{key}", fastrand::u64(..)));
        std::fs::write(&path, value).unwrap();
        out.push_str(&format!("{key}_file = {:?}\n", path.display().to_string()));
    }
    out
}

/// Accounts of every kind against `base`, and the declarations: the examples of
/// `operations/`, and one per further authentication.
fn config_text(base: &str, dir: &Path) -> String {
    let hw_aksk = secrets(
        dir,
        &[
            ("access_key", demo::ACCESS_KEY),
            ("secret_key", demo::SECRET_KEY),
        ],
    );
    let hw_pw = secrets(dir, &[("password", demo::PASSWORD)]);
    let ali = secrets(
        dir,
        &[
            ("access_key", demo::ALIBABA_ACCESS_KEY),
            ("secret_key", demo::ALIBABA_SECRET_KEY),
        ],
    );
    let sc = secrets(dir, &[("password", demo::SCNET_PASSWORD)]);
    let team = secrets(dir, &[("token", demo::TEAM_TOKEN)]);
    let project = demo::PROJECT_ID;
    format!(
        r#"
[roles]
oncall = "1"

[accounts.hw]
provider = "huawei"
region = "cn-north-4"
project_id = "{project}"
default = true
auth = "aksk"
{hw_aksk}
poll_interval = "100ms"
request_timeout = "1s"
endpoints = {{ iam = "{base}", rds = "{base}", ecs = "{base}" }}

[accounts.hw-token]
provider = "huawei"
region = "cn-north-4"
project_id = "{project}"
auth = "password"
iam_user = "{iam_user}"
iam_domain = "{iam_domain}"
{hw_pw}
poll_interval = "100ms"
request_timeout = "1s"
endpoints = {{ iam = "{base}", rds = "{base}", ecs = "{base}" }}

[accounts.ali]
provider = "alibaba"
region = "cn-hangzhou"
default = true
auth = "aksk"
{ali}
request_timeout = "2s"
endpoints = {{ sae = "{base}" }}

[accounts.sc]
provider = "scnet"
default = true
scnet_user = "{sc_user}"
org_id = "{sc_org}"
cluster_id = "{sc_cluster}"
auth = "password"
{sc}
request_timeout = "2s"
endpoints = {{ token = "{base}", ac = "{base}" }}

[accounts.team-bearer]
provider = "http"
default = true
auth = "bearer"
{team}
poll_interval = "100ms"
request_timeout = "2s"
endpoints = {{ api = "{base}/ops/v1" }}

[accounts.team-header]
provider = "http"
auth = "header"
auth_header = "X-Api-Key"
{team}
poll_interval = "100ms"
request_timeout = "2s"
endpoints = {{ api = "{base}/ops/v1" }}

[accounts.team-open]
provider = "http"
auth = "none"
poll_interval = "100ms"
request_timeout = "2s"
endpoints = {{ api = "{base}/ops/v1/public" }}

{RDS_OPS}

{ECS_OPS}

# Alibaba ACS3: SAE's RestartInstances, declared.
[[operations]]
id = "sae.bounce"
verb = "bounce"
service = "sae"
provider = "alibaba"
endpoint = "sae"
action = "RestartInstances"
version = "2019-05-06"
method = "PUT"
path = "/pop/v1/sam/app/restartInstances"
query = {{ AppId = "{{app_id}}", InstanceIds = "{{instance}}" }}
accepted = {{ status = [200], id = "/Data/ChangeOrderId" }}
errors = {{ code = "/Code", message = "/Message" }}
[[operations.params]]
name = "app_id"
pattern = "^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$"
[[operations.params]]
name = "instance"
role = "arg"
pattern = "^[a-z0-9][a-z0-9-]{{1,98}}[a-z0-9]$"

# SCNet's cluster token: the container restart, declared.
[[operations]]
id = "scnet.bounce"
verb = "bounce"
service = "scnet"
provider = "scnet"
endpoint = "ai"
method = "POST"
path = "/ai/openapi/v2/instance-service/task/actions/restart"
query = {{ instanceServiceId = "{{id}}" }}
accepted = {{ status = [200], id = "/data" }}
[[operations.params]]
name = "id"
pattern = "^[0-9a-f]{{32}}$"

# A team's own API: bearer, header and none are the account's to choose.
[[operations]]
verb = "restart"
service = "svc"
provider = "http"
auth = "bearer"
endpoint = "api"
method = "POST"
path = "/services/{{name}}/restart"
body = {{ reason = "{{reason}}", drain = true, wait = "{{wait}}" }}
accepted = {{ status = [202], id = "/operation/id" }}
errors = {{ code = "/code", message = "/message", refused = [{{ status = 400 }}, {{ status = 401 }}] }}
[operations.poll]
path = "/operations/{{job_id}}"
state = "/state"
running = ["running"]
succeeded = ["done"]
[[operations.params]]
name = "name"
pattern = "^.+$"
[[operations.params]]
name = "reason"
role = "arg"
values = ["deploy", "incident"]
[[operations.params]]
name = "wait"
role = "arg"
integer = {{ min = 0, max = 600 }}

[[operations]]
id = "svc.restart-key"
verb = "restart"
service = "svc-key"
provider = "http"
auth = "header"
endpoint = "api"
method = "POST"
path = "/services/{{name}}/restart"
accepted = {{ status = [202], id = "/operation/id" }}
[operations.poll]
path = "/operations/{{job_id}}"
state = "/state"
running = ["running"]
succeeded = ["done"]
[[operations.params]]
name = "name"
pattern = "^[a-z0-9-]{{1,63}}$"

[[operations]]
id = "svc.restart-open"
verb = "restart"
service = "svc-open"
provider = "http"
auth = "none"
endpoint = "api"
method = "POST"
path = "/services/{{name}}/restart"
accepted = {{ status = [202], id = "/operation/id" }}
[operations.poll]
path = "/operations/{{job_id}}"
state = "/state"
running = ["running"]
succeeded = ["done"]
[[operations.params]]
name = "name"
pattern = "^[a-z0-9-]{{1,63}}$"
"#,
        iam_user = demo::IAM_USER,
        iam_domain = demo::IAM_DOMAIN,
        sc_user = demo::SCNET_USER,
        sc_org = demo::SCNET_ORG_ID,
        sc_cluster = demo::SCNET_CLUSTER_ID,
    )
}

fn config(base: &str, dir: &Path) -> Config {
    let text = config_text(base, dir);
    Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins())
        .unwrap_or_else(|p| panic!("{p}"))
}

fn spec(op: &str, account: &str, params: &[(&str, &str)]) -> JobSpec {
    JobSpec {
        operation: op.into(),
        account: account.into(),
        target: params[0].1.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn op(config: &Config, id: &str, account: &str) -> Arc<dyn CloudOperation> {
    Registry::from_config(config)
        .get(id, account)
        .unwrap_or_else(|e| panic!("{id} on {account}: {e}"))
}

fn accepted(outcome: SubmitOutcome) -> (Value, Option<String>) {
    match outcome {
        SubmitOutcome::Accepted {
            handle, cloud_ref, ..
        } => (handle, cloud_ref),
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// Polls at the operation's own pace until a final outcome; bounded by count, not time.
async fn poll_to_end(op: &dyn CloudOperation, spec: &JobSpec, handle: Value) -> PollOutcome {
    for _ in 0..400 {
        tokio::time::sleep(op.poll_policy().interval).await;
        match op.poll(spec, &handle).await {
            PollOutcome::InProgress { .. } | PollOutcome::Transient(_) => {}
            done => return done,
        }
    }
    panic!("the job never finished");
}

#[tokio::test]
async fn each_authentication_through_a_declaration_passes_the_emulators_checks() {
    let emu = start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&emu.base_url(), dir.path());
    let cases: Vec<(&str, &str, JobSpec, &str)> = vec![
        (
            "huawei AK/SK",
            "rds.restart",
            spec("rds.restart", "hw", &[("instance_id", RDS)]),
            "rds.restart",
        ),
        (
            "huawei IAM token",
            "ecs.reboot",
            spec(
                "ecs.reboot",
                "hw-token",
                &[("server_id", SERVER), ("mode", "hard")],
            ),
            "ecs.reboot",
        ),
        (
            "bearer",
            "svc.restart",
            spec(
                "svc.restart",
                "team-bearer",
                &[("name", "checkout"), ("reason", "deploy"), ("wait", "30")],
            ),
            "team.restart",
        ),
        (
            "header",
            "svc.restart-key",
            spec("svc.restart-key", "team-header", &[("name", "checkout")]),
            "team.restart",
        ),
        (
            "none",
            "svc.restart-open",
            spec("svc.restart-open", "team-open", &[("name", "checkout")]),
            "team.restart",
        ),
    ];
    for (what, id, spec, counted) in cases {
        let before = calls(&emu, counted).await;
        let op = op(&config, id, &spec.account);
        let (handle, job) = accepted(op.submit(&spec).await);
        assert!(job.is_some(), "{what}: the job ID at the declared pointer");
        let done = poll_to_end(op.as_ref(), &spec, handle).await;
        assert!(
            matches!(done, PollOutcome::Succeeded(_)),
            "{what}: {done:?}"
        );
        assert_eq!(calls(&emu, counted).await, before + 1, "{what}: sent once");
    }
    // Alibaba ACS3 and SCNet's token: submit only (their declarations poll nothing).
    let sae = spec(
        "sae.bounce",
        "ali",
        &[("app_id", demo::SAE_APP), ("instance", "web-1")],
    );
    let (_, order) = accepted(op(&config, "sae.bounce", "ali").submit(&sae).await);
    assert!(order.is_some());
    let sc = spec("scnet.bounce", "sc", &[("id", demo::SCNET_INSTANCE)]);
    accepted(op(&config, "scnet.bounce", "sc").submit(&sc).await);
    assert_eq!(calls(&emu, "sae.restart").await, 1);
    assert_eq!(calls(&emu, "scnet.restart").await, 1);

    // The ECS body: the mode word sent as the API's value, the ID as a JSON string.
    let sent = emu.requests();
    let ecs = sent
        .iter()
        .find(|r| r.path_and_query.ends_with("/cloudservers/action"))
        .unwrap();
    let body: Value = serde_json::from_str(&ecs.body).unwrap();
    assert_eq!(
        body,
        json!({"reboot": {"type": "HARD", "servers": [{"id": SERVER}]}})
    );
    // The team API's body: typed values (a JSON number from an integer parameter).
    let team = sent
        .iter()
        .find(|r| r.path_and_query == "/ops/v1/services/checkout/restart" && !r.body.is_empty())
        .unwrap();
    let body: Value = serde_json::from_str(&team.body).unwrap();
    assert_eq!(body, json!({"reason": "deploy", "drain": true, "wait": 30}));
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_the_emulator_not_waved_through() {
    let emu = start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&emu.base_url(), dir.path())
        .replace(demo::SECRET_KEY, "not-the-secret")
        .replace(demo::TEAM_TOKEN, "not-the-token");
    // The secrets are in files: rewrite them.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let v = std::fs::read_to_string(&path).unwrap();
        if v == demo::SECRET_KEY || v == demo::TEAM_TOKEN {
            std::fs::write(&path, "wrong").unwrap();
        }
    }
    let config = Config::parse(&text, Path::new("t.toml"), &opsgate::cloud::builtins()).unwrap();
    let rds = spec("rds.restart", "hw", &[("instance_id", RDS)]);
    let out = op(&config, "rds.restart", "hw").submit(&rds).await;
    assert!(
        !matches!(out, SubmitOutcome::Accepted { .. }),
        "a bad signature must not pass: {out:?}"
    );
    let svc = spec(
        "svc.restart",
        "team-bearer",
        &[("name", "x"), ("reason", "deploy"), ("wait", "1")],
    );
    let err = refused(op(&config, "svc.restart", "team-bearer").submit(&svc).await);
    assert_eq!(err.http_status, Some(401), "{err:?}");
}

#[tokio::test]
async fn answers_are_read_by_evidence_and_nothing_is_sent_twice() {
    // Jobs outlast the 1 s request timeout, so a lost answer leaves the reboot visible.
    let emu = start(Duration::from_millis(2500)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&emu.base_url(), dir.path());
    let rds = spec("rds.restart", "hw", &[("instance_id", RDS)]);
    let op = op(&config, "rds.restart", "hw");

    // A refusal-table entry: refused with RDS's own code and message, sent once.
    fault(
        &emu,
        json!({"operation": "rds.restart", "status": 409,
               "body": {"error_code": "DBS.200019", "error_msg": "Another operation is being performed."}}),
    )
    .await;
    let err = refused(op.submit(&rds).await);
    assert_eq!(err.code.as_deref(), Some("DBS.200019"));
    assert!(err.message.contains("Another operation"), "{err:?}");
    assert_eq!(calls(&emu, "rds.restart").await, 1);

    // 429 is declared `retry = true`: sent again, then accepted.
    fault(
        &emu,
        json!({"operation": "rds.restart", "status": 429,
               "body": {"error_code": "APIGW.0308", "error_msg": "throttled"}}),
    )
    .await;
    let (handle, _) = accepted(op.submit(&rds).await);
    assert_eq!(calls(&emu, "rds.restart").await, 3);
    assert!(matches!(
        poll_to_end(op.as_ref(), &rds, handle).await,
        PollOutcome::Succeeded(_)
    ));

    // A 500 is in no table: indeterminate, and not sent again.
    fault(
        &emu,
        json!({"operation": "rds.restart", "status": 500, "body": {"error_code": "X", "error_msg": "oops"}}),
    )
    .await;
    indeterminate(op.submit(&rds).await);
    assert_eq!(calls(&emu, "rds.restart").await, 4);

    // A 200 without the job ID at the declared pointer proves nothing either.
    fault(
        &emu,
        json!({"operation": "rds.restart", "status": 200, "body": {"jobid": "x"}}),
    )
    .await;
    indeterminate(op.submit(&rds).await);
    assert_eq!(calls(&emu, "rds.restart").await, 5);

    // The answer is lost after the reboot started: the reconcile read sees it REBOOTING
    // and follows it, without a second request.
    fault(
        &emu,
        json!({"operation": "rds.restart", "execute": true, "delay_ms": 1500}),
    )
    .await;
    indeterminate(op.submit(&rds).await);
    match op.reconcile(&rds).await {
        ReconcileOutcome::Running { handle, .. } => {
            assert!(matches!(
                poll_to_end(op.as_ref(), &rds, handle).await,
                PollOutcome::Succeeded(_)
            ));
        }
        other => panic!("expected Running, got {other:?}"),
    }
    assert_eq!(calls(&emu, "rds.restart").await, 6);

    // Settled before the read: unknown, never re-sent.
    match op.reconcile(&rds).await {
        ReconcileOutcome::Unknown(why) => assert!(why.contains("not re-sent"), "{why}"),
        other => panic!("expected Unknown, got {other:?}"),
    }
    // Without a declared reconcile read (ECS): unknown at once.
    let ecs = spec(
        "ecs.reboot",
        "hw",
        &[("server_id", SERVER), ("mode", "soft")],
    );
    let ecs_op = self::op(&config, "ecs.reboot", "hw");
    assert!(matches!(
        ecs_op.reconcile(&ecs).await,
        ReconcileOutcome::Unknown(_)
    ));
    assert_eq!(calls(&emu, "rds.restart").await, 6);
    assert_eq!(calls(&emu, "ecs.reboot").await, 0);
}

#[tokio::test]
async fn a_declared_dry_run_is_the_request_it_sends() {
    let emu = start(Duration::from_millis(300)).await;
    let base = emu.base_url();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&base, dir.path());
    let cases = [
        spec("rds.restart", "hw", &[("instance_id", RDS)]),
        spec(
            "ecs.reboot",
            "hw",
            &[("server_id", SERVER), ("mode", "soft")],
        ),
        spec(
            "svc.restart",
            "team-bearer",
            &[
                ("name", "checkout-2"),
                ("reason", "incident"),
                ("wait", "0"),
            ],
        ),
    ];
    for spec in cases {
        let op = op(&config, &spec.operation, &spec.account);
        let described = op.describe(&spec).unwrap();
        accepted(op.submit(&spec).await);
        let sent = emu.requests().pop().unwrap();
        assert_eq!(described.method, sent.method);
        assert_eq!(described.url, format!("{base}{}", sent.path_and_query));
        assert_eq!(described.body.unwrap_or_default(), sent.body);
        assert!(!described.auth.contains(demo::SECRET_KEY));
        assert!(!described.auth.contains(demo::TEAM_TOKEN));
    }
}

/// What people might type to get a value into a URL, a body or an argv where it does not
/// belong: each must be refused by the parser, so no job is ever made of it.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "a;b",
        "$(id)",
        "`id`",
        "../x",
        "..",
        ".",
        "a/b",
        "a%2Fb",
        "%2e%2e",
        "a?b=1",
        "a#b",
        "a\nb",
        "a\rb",
        "a\0b",
        "--flag=x",
        "-x",
        "a\u{202e}b",
        "a\u{2066}b",
        "a\u{200b}b",
        "a\u{feff}b",
        "é",
        "a b",
        "a'b",
        "a\"b",
        "a|b",
        "a&b",
        "a>b",
        "*",
        "a\\b",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(129));
    v.push("x".repeat(5000));
    v
}

#[test]
fn injection_attempts_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text("http://127.0.0.1:9", dir.path());
    text.push_str(
        r#"
[[operations]]
verb = "rollout"
service = "deployment"
provider = "local"
program = "/usr/local/bin/kubectl"
argv = ["rollout", "restart", "deployment", "{name}", "--namespace", "{namespace}"]
[[operations.params]]
name = "namespace"
values = ["shop"]
[[operations.params]]
name = "name"
# As loose as a team might write it: the guards still hold.
pattern = "^.+$"
"#,
    );
    let config = Config::parse(&text, Path::new("t.toml"), &opsgate::cloud::builtins())
        .unwrap_or_else(|p| panic!("{p}"));
    let ok = |line: &str| {
        matches!(
            parse(line, "!", &config.targets, &config.catalog),
            Ok(Some(Command::Operation(_)))
        )
    };
    // The loose patterns accept plain values.
    assert!(ok("!restart svc checkout deploy 30"));
    assert!(ok("!rollout deployment shop checkout"));
    assert!(ok(&format!("!restart rds {RDS}")));
    for bad in hostile() {
        for line in [
            format!("!restart svc {bad} deploy 30"),
            format!("!restart svc checkout deploy {bad}"),
            format!("!rollout deployment shop {bad}"),
            format!("!restart rds {bad}"),
            format!("!reboot ecs {bad}"),
        ] {
            // `-x` is a harmless URL segment (the loose name pattern may take it); as an
            // argv element it would read as an option, and is refused there.
            if bad == "-x" && line.starts_with("!restart svc -x") {
                continue;
            }
            assert!(!ok(&line), "accepted: {line:?}");
        }
    }
    // Integers: only the declared range, decimal.
    for bad in ["601", "-1", "0x10", "1e3", "+5", "3.0"] {
        assert!(!ok(&format!("!restart svc checkout deploy {bad}")), "{bad}");
    }
}
