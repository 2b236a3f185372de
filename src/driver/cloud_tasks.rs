//! Cloud work runs as tasks on the async runtime and reports back as engine events, so the
//! driver's thread never waits on the network.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use super::Driver;
use crate::domain::time::now_ms;
use crate::domain::{JobId, JobSpec};
use crate::metrics::Metrics;
use crate::ports::cloud::{CloudOperation, PollOutcome, ReconcileOutcome};
use crate::ports::inbox::{CloudUpdate, EngineEvent};

fn report(tx: &Sender<EngineEvent>, job: JobId, update: CloudUpdate) {
    // A closed channel means the engine stopped; the job resumes from disk on the next start.
    let _ = tx.send(EngineEvent::Cloud { job, update });
}

/// One cloud call (submit, poll or reconcile), timed for the latency histogram. The bound on
/// requests in flight is per request, in the provider's HTTP client (`cloud::http::Http`),
/// so backoff sleeps hold no slot.
struct CloudCall {
    metrics: Arc<Metrics>,
    provider: &'static str,
    operation: String,
}

impl CloudCall {
    fn new(driver: &Driver, spec: &JobSpec) -> CloudCall {
        CloudCall {
            metrics: driver.seams.metrics.clone(),
            provider: driver.engine.provider_of(&spec.operation),
            operation: spec.operation.clone(),
        }
    }

    /// Makes and awaits the call.
    async fn time<T, F: std::future::Future<Output = T>>(
        &self,
        call: &str,
        make: impl FnOnce() -> F,
    ) -> T {
        let start = std::time::Instant::now();
        let out = make().await;
        let label = format!("{}/{call}", self.operation);
        self.metrics
            .cloud_call(self.provider, label, start.elapsed().as_secs_f64());
        out
    }
}

/// The operation for a job, or why it cannot be had (e.g. a missing secret).
type OperationOrWhy = Result<Arc<dyn CloudOperation>, String>;

/// `d` +/- 10 %, so many jobs polling one provider do not fall into step.
fn jitter(d: Duration) -> Duration {
    let factor = 0.9 + fastrand::f64() * 0.2;
    d.mul_f64(factor)
}

impl Driver {
    fn operation_for(&self, id: JobId) -> Option<(OperationOrWhy, Arc<JobSpec>)> {
        let work = self.engine.cloud_work(id)?;
        let op = (self.seams.operations).get(&work.spec.operation, &work.spec.account);
        Some((op, work.spec))
    }

    pub(super) fn spawn_submit(&mut self, id: JobId) {
        let Some((op, spec)) = self.operation_for(id) else {
            return;
        };
        self.in_flight += 1;
        let tx = self.tx.clone();
        match op {
            Err(why) => report(&tx, id, CloudUpdate::Unavailable(why)),
            Ok(op) => {
                let span = tracing::info_span!("job", job = id.0);
                let timer = CloudCall::new(self, &spec);
                let leads = self.seams.leads.clone();
                self.seams.runtime.spawn(tracing::Instrument::instrument(
                    async move {
                        if !leads() {
                            // The job is durably `submitting`: whoever leads next reconciles
                            // it with the cloud. This process is about to end (lease lost).
                            tracing::error!(operation = %spec.operation, "this replica may no longer lead: the request is not sent");
                            return;
                        }
                        tracing::info!(operation = %spec.operation, "submitting");
                        let outcome = timer.time("submit", || op.submit(&spec)).await;
                        report(&tx, id, CloudUpdate::Submitted(outcome));
                    },
                    span,
                ));
            }
        }
    }

    pub(super) fn spawn_reconcile(&mut self, id: JobId) {
        let Some((op, spec)) = self.operation_for(id) else {
            return;
        };
        self.in_flight += 1;
        let tx = self.tx.clone();
        match op {
            Err(why) => report(
                &tx,
                id,
                CloudUpdate::Reconciled(ReconcileOutcome::Unknown(why)),
            ),
            Ok(op) => {
                let timer = CloudCall::new(self, &spec);
                let span = tracing::info_span!("job", job = id.0);
                self.seams.runtime.spawn(tracing::Instrument::instrument(
                    async move {
                        let outcome = timer.time("reconcile", || op.reconcile(&spec)).await;
                        report(&tx, id, CloudUpdate::Reconciled(outcome));
                    },
                    span,
                ));
            }
        }
    }

    pub(super) fn spawn_poll(&mut self, id: JobId) {
        let Some((op, spec)) = self.operation_for(id) else {
            return;
        };
        let Some(work) = self.engine.cloud_work(id) else {
            return;
        };
        let handle = work.handle;
        let started = work.started_ms.unwrap_or_else(now_ms);
        let tx = self.tx.clone();
        match op {
            Err(why) => report(&tx, id, CloudUpdate::Unknown(why)),
            Ok(op) => {
                let span = tracing::info_span!("job", job = id.0);
                let timer = CloudCall::new(self, &spec);
                self.seams.runtime.spawn(tracing::Instrument::instrument(
                    poll_until_done(op, spec, handle, started, id, tx, timer),
                    span,
                ));
            }
        }
    }
}

async fn poll_until_done(
    op: Arc<dyn CloudOperation>,
    spec: Arc<JobSpec>,
    mut handle: serde_json::Value,
    started_ms: u64,
    id: JobId,
    tx: Sender<EngineEvent>,
    timer: CloudCall,
) {
    let policy = op.poll_policy();
    let deadline = started_ms + policy.timeout.as_millis() as u64;
    let mut delay = policy.initial_delay;
    let mut last_progress: Option<String> = None;
    let mut last_attention: Option<String> = None;
    loop {
        tokio::time::sleep(jitter(delay)).await;
        match timer.time("poll", || op.poll(&spec, &handle)).await {
            PollOutcome::InProgress {
                progress,
                handle: new_handle,
            } => {
                delay = policy.interval;
                let handle_changed = new_handle.as_ref().is_some_and(|h| *h != handle);
                if let Some(h) = new_handle {
                    handle = h;
                }
                if handle_changed || (progress.is_some() && progress != last_progress) {
                    last_progress.clone_from(&progress);
                    let update = CloudUpdate::Progress {
                        progress,
                        handle: handle_changed.then(|| handle.clone()),
                    };
                    report(&tx, id, update);
                }
            }
            PollOutcome::NeedsAttention(what) => {
                delay = policy.interval;
                if last_attention.as_ref() != Some(&what) {
                    last_attention = Some(what.clone());
                    report(&tx, id, CloudUpdate::NeedsAttention(what));
                }
            }
            PollOutcome::Succeeded(detail) => {
                return report(&tx, id, CloudUpdate::Finished(Ok(detail)))
            }
            PollOutcome::Failed(err) => return report(&tx, id, CloudUpdate::Finished(Err(err))),
            PollOutcome::Unknown(why) => return report(&tx, id, CloudUpdate::Unknown(why)),
            PollOutcome::Transient(why) => {
                tracing::warn!(job = id.0, error = %why, "poll failed; backing off");
                delay = (delay * 2).min(policy.max_interval).max(policy.interval);
            }
        }
        if now_ms() > deadline {
            let why = format!(
                "no final answer from the cloud after {}; check the cloud console before \
                 requesting it again",
                humantime::format_duration(policy.timeout)
            );
            return report(&tx, id, CloudUpdate::Unknown(why));
        }
    }
}
