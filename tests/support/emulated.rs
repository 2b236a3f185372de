//! Helpers for the provider client tests: the cloud emulator on 127.0.0.1 and its admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use opsgate::domain::JobSpec;
use opsgate::emulator::{self, EmulatorOptions, RunningEmulator};
use opsgate::ports::cloud::{CloudError, CloudOperation, PollOutcome, SubmitOutcome};
use serde_json::Value;

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
