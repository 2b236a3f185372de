//! Helpers for the provider client tests: the cloud emulator on 127.0.0.1 and its admin API.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use opsgate::cloud::Registry;
use opsgate::config::Config;
use opsgate::domain::JobSpec;
use opsgate::emulator::{self, demo, EmulatorOptions, RunningEmulator};
use opsgate::ports::cloud::{CloudError, CloudOperation, Operations, PollOutcome, SubmitOutcome};
use serde_json::Value;

/// Where the test configs' Huawei accounts read their secrets: the emulator's demo
/// credentials, and wrong ones for the refusals.
pub const PASSWORD_VAR: &str = "OPSGATE_TEST_HUAWEI_PASSWORD";
pub const BAD_PASSWORD_VAR: &str = "OPSGATE_TEST_HUAWEI_BAD_PASSWORD";
pub const AK_VAR: &str = "OPSGATE_TEST_HUAWEI_AK";
pub const SK_VAR: &str = "OPSGATE_TEST_HUAWEI_SK";
pub const BAD_SK_VAR: &str = "OPSGATE_TEST_HUAWEI_BAD_SK";

/// Sets the variables above once, before any test reads the environment.
pub fn huawei_secrets() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(PASSWORD_VAR, demo::PASSWORD);
        std::env::set_var(BAD_PASSWORD_VAR, "not-the-password");
        std::env::set_var(AK_VAR, demo::ACCESS_KEY);
        std::env::set_var(SK_VAR, demo::SECRET_KEY);
        std::env::set_var(BAD_SK_VAR, "not-the-secret-key");
    });
}

/// How a test's Huawei account signs in: a password (IAM token) or AK/SK, each from the
/// variable named.
pub enum HuaweiAuth {
    Password(&'static str),
    AkSk(&'static str),
}

/// A config with one Huawei account `acct` on the emulator, for `services` (endpoint keys,
/// e.g. `ddm` or `gaussdb`), polled every 100 ms.
pub fn huawei_config(
    emu: &RunningEmulator,
    auth: HuaweiAuth,
    request_timeout: &str,
    services: &[&str],
) -> Config {
    huawei_secrets();
    let base = emu.base_url();
    let auth = match auth {
        HuaweiAuth::Password(var) => format!(
            "auth = \"password\"\niam_user = \"{}\"\niam_domain = \"{}\"\npassword_env = \"{var}\"",
            demo::IAM_USER,
            demo::IAM_DOMAIN
        ),
        HuaweiAuth::AkSk(sk_var) => {
            format!("auth = \"aksk\"\naccess_key_env = \"{AK_VAR}\"\nsecret_key_env = \"{sk_var}\"")
        }
    };
    let endpoints: Vec<String> = (["iam"].iter().chain(services))
        .map(|s| format!("{s} = \"{base}\""))
        .collect();
    let text = format!(
        r#"
[roles]
oncall = "1"

[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "{project}"
{auth}
poll_interval = "100ms"
request_timeout = "{request_timeout}"
endpoints = {{ {endpoints} }}
"#,
        project = demo::PROJECT_ID,
        endpoints = endpoints.join(", ")
    );
    Config::parse(&text, Path::new("test.toml"), &opsgate::cloud::builtins()).unwrap()
}

/// The operation `id` of `account` as the engine gets it.
pub fn operation(config: &Config, id: &str, account: &str) -> Arc<dyn CloudOperation> {
    Registry::from_config(config).get(id, account).unwrap()
}

/// An emulator whose cloud jobs take `job_duration`, on a free port of 127.0.0.1.
pub async fn start(job_duration: Duration) -> RunningEmulator {
    let opts = EmulatorOptions {
        job_duration,
        ..EmulatorOptions::default()
    };
    emulator::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Posts to the emulator's admin API (`faults`, `tokens/revoke`, `settings`, ...).
pub async fn admin(emu: &RunningEmulator, path: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/{path}", emu.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "admin {path}: {}",
        resp.status()
    );
}

/// Queues one fault for the next matching request.
pub async fn fault(emu: &RunningEmulator, fault: Value) {
    admin(emu, "faults", fault).await;
}

/// How many `operation` requests the emulator has received.
pub async fn calls(emu: &RunningEmulator, operation: &str) -> u64 {
    let counts: BTreeMap<String, u64> = reqwest::get(format!("{}/_emulator/calls", emu.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    counts.get(operation).copied().unwrap_or(0)
}

/// The vendor error of an answer that proves nothing started.
pub fn refused(outcome: SubmitOutcome) -> CloudError {
    match outcome {
        SubmitOutcome::Refused(e) => e,
        other => panic!("expected Refused, got {other:?}"),
    }
}

/// Why nothing was sent.
pub fn not_sent(outcome: SubmitOutcome) -> String {
    match outcome {
        SubmitOutcome::NotSent(why) => why,
        other => panic!("expected NotSent, got {other:?}"),
    }
}

/// What was seen, for an answer that proves nothing either way.
pub fn indeterminate(outcome: SubmitOutcome) -> String {
    match outcome {
        SubmitOutcome::Indeterminate(seen) => seen,
        other => panic!("expected Indeterminate, got {other:?}"),
    }
}

/// Polls at the operation's own pace until a final outcome. The bound is on the number of
/// polls, not on time.
pub async fn poll_to_end(
    op: &dyn CloudOperation,
    spec: &JobSpec,
    mut handle: Value,
) -> PollOutcome {
    for _ in 0..600 {
        tokio::time::sleep(op.poll_policy().interval).await;
        match op.poll(spec, &handle).await {
            PollOutcome::InProgress {
                handle: Some(h), ..
            } => handle = h,
            PollOutcome::InProgress { .. } | PollOutcome::Transient(_) => {}
            done => return done,
        }
    }
    panic!("the operation never finished");
}

/// What an accepted submit returned.
pub struct Accepted {
    pub handle: Value,
    pub cloud_ref: Option<String>,
    pub answer: String,
}

/// The submit's outcome, which the test expects to be an acceptance.
pub fn accepted(outcome: SubmitOutcome) -> Accepted {
    match outcome {
        SubmitOutcome::Accepted {
            handle,
            cloud_ref,
            answer,
        } => Accepted {
            handle,
            cloud_ref,
            answer,
        },
        other => panic!("expected Accepted, got {other:?}"),
    }
}
