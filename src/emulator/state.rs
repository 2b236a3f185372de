//! Everything the emulator remembers: credentials, issued tokens, instances, jobs, queued
//! faults, call counts and the log of mutating calls. One mutex, never held across an await.
//!
//! Instance and job progress is computed from timestamps when asked, not by background
//! tasks, so the emulator's answers depend only on the clock and on requests received.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::faults::Fault;
use super::{demo, EmulatorOptions};

/// Upper bounds on settings, so that no input can overflow a clock computation.
pub const MAX_JOB_DURATION: Duration = Duration::from_secs(24 * 3600);
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Issued tokens kept before expired ones are pruned.
const MAX_TOKENS: usize = 10_000;

pub struct IssuedToken {
    pub expires: Instant,
    pub revoked: bool,
}

#[derive(Default)]
pub struct Instance {
    /// A status set through the admin API (e.g. `ERROR`), until the next restart.
    pub forced: Option<String>,
    pub restarting_until: Option<Instant>,
}

impl Instance {
    pub fn status(&self, now: Instant) -> String {
        if let Some(s) = &self.forced {
            return s.clone();
        }
        match self.restarting_until {
            Some(until) if now < until => "RESTARTING".to_string(),
            _ => "RUNNING".to_string(),
        }
    }
}

pub struct Job {
    pub instance_id: String,
    pub started: Instant,
    pub duration: Duration,
    pub created: OffsetDateTime,
}

impl Job {
    /// `(status, process, end_time)` as the DDM job API reports them.
    pub fn progress(&self, now: Instant) -> (&'static str, Option<String>, Option<OffsetDateTime>) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.duration {
            let end = time::Duration::try_from(self.duration)
                .ok()
                .and_then(|d| self.created.checked_add(d))
                .unwrap_or(self.created);
            return ("Completed", None, Some(end));
        }
        let pct = (elapsed.as_millis() * 100)
            .checked_div(self.duration.as_millis())
            .unwrap_or(0)
            .min(99);
        ("Running", Some(format!("{pct}%")), None)
    }
}

/// One entry of `GET /_emulator/calls/log`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoggedCall {
    pub operation: &'static str,
    /// The resource acted on as the request names it: an instance ID, or IDs joined by `/`
    /// (TaurusDB `instance/proxy`, SAE `app/instances`).
    pub target: String,
}

pub struct State {
    pub job_duration: Duration,
    pub token_ttl: Duration,
    /// (domain, user) -> password.
    pub users: HashMap<(String, String), String>,
    /// AK -> SK.
    pub keys: HashMap<String, String>,
    pub tokens: HashMap<String, IssuedToken>,
    pub instances: HashMap<String, Instance>,
    pub jobs: HashMap<String, Job>,
    pub faults: Vec<Fault>,
    pub calls: BTreeMap<String, u64>,
    /// Every mutating call in arrival order, with the resource it names, so a test can
    /// check that each job reached the cloud at most once.
    pub call_log: Vec<LoggedCall>,
    /// When each restart arrived (operation, target ID, time), for latency benchmarks.
    pub arrivals: Vec<(&'static str, String, Instant)>,
    /// TaurusDB proxies and their jobs.
    pub taurus: super::taurus::Taurus,
    pub rds: super::rds::Rds,
    pub ecs: super::ecs::Ecs,
    /// Every request as it arrived, headers aside.
    pub requests: Vec<super::Received>,
}

impl State {
    pub fn new(opts: &EmulatorOptions) -> State {
        let mut users = HashMap::new();
        users.insert(
            (demo::IAM_DOMAIN.to_string(), demo::IAM_USER.to_string()),
            demo::PASSWORD.to_string(),
        );
        let mut keys = HashMap::new();
        keys.insert(demo::ACCESS_KEY.to_string(), demo::SECRET_KEY.to_string());
        State {
            job_duration: opts.job_duration.min(MAX_JOB_DURATION),
            token_ttl: opts.token_ttl.min(MAX_TOKEN_TTL),
            users,
            keys,
            tokens: HashMap::new(),
            instances: HashMap::new(),
            jobs: HashMap::new(),
            faults: Vec::new(),
            calls: BTreeMap::new(),
            call_log: Vec::new(),
            arrivals: Vec::new(),
            taurus: Default::default(),
            rds: Default::default(),
            ecs: Default::default(),
            requests: Vec::new(),
        }
    }

    /// Records the arrival of a request that acts on `target` (bounded, oldest dropped).
    pub fn arrived(&mut self, operation: &'static str, target: &str, at: Instant) {
        const KEEP: usize = 100_000;
        if self.arrivals.len() >= KEEP {
            self.arrivals.drain(..KEEP / 2);
        }
        self.arrivals.push((operation, target.to_string(), at));
    }

    pub fn count(&mut self, operation: &str) {
        *self.calls.entry(operation.to_string()).or_default() += 1;
    }

    /// Logs a mutating call on `target` (bounded like the arrivals, oldest dropped).
    pub fn log_call(&mut self, operation: &'static str, target: String) {
        const KEEP: usize = 100_000;
        if self.call_log.len() >= KEEP {
            self.call_log.drain(..KEEP / 2);
        }
        self.call_log.push(LoggedCall { operation, target });
    }

    /// The first queued fault for `operation`, used up by one.
    pub fn take_fault(&mut self, operation: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| f.operation == operation)?;
        let fault = self.faults[i].clone();
        self.faults[i].times = self.faults[i].times.saturating_sub(1);
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }

    pub fn issue_token(&mut self, now: Instant) -> String {
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.retain(|_, t| t.expires > now);
        }
        // Real tokens are long base64 blobs starting with "MII"; length matters for clients
        // that size buffers, so make these long too.
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(256)
            .collect();
        let token = format!("MIIemu{token}");
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                expires: now.checked_add(self.token_ttl).unwrap_or(now),
                revoked: false,
            },
        );
        token
    }

    pub fn instance(&mut self, id: &str) -> &mut Instance {
        self.instances.entry(id.to_string()).or_default()
    }
}

/// The shared state behind the router.
pub struct Shared(Mutex<State>);

impl Shared {
    pub fn new(state: State) -> Shared {
        Shared(Mutex::new(state))
    }

    /// A poisoned lock only means a handler panicked mid-update; the emulator keeps serving
    /// rather than turning one bug into every later request failing.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A random job ID in the UUID layout DDM uses.
pub fn new_job_id() -> String {
    let hex = |n: usize| -> String {
        std::iter::repeat_with(|| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .take(n)
            .collect()
    };
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::faults::FaultSpec;

    #[test]
    fn job_progress_runs_then_completes() {
        let start = Instant::now();
        let job = Job {
            instance_id: "i".into(),
            started: start,
            duration: Duration::from_secs(10),
            created: OffsetDateTime::now_utc(),
        };
        assert_eq!(job.progress(start).0, "Running");
        assert_eq!(
            job.progress(start + Duration::from_secs(4)).1.as_deref(),
            Some("40%")
        );
        assert_eq!(job.progress(start + Duration::from_secs(10)).0, "Completed");
        let instant_job = Job {
            duration: Duration::ZERO,
            ..job
        };
        assert_eq!(instant_job.progress(start).0, "Completed");
    }

    #[test]
    fn faults_are_used_up_in_order() {
        let mut s = State::new(&EmulatorOptions::default());
        let spec = |status: u16, times: u32| FaultSpec {
            operation: "ddm.restart".into(),
            status: Some(status),
            body: None,
            delay_ms: 0,
            times,
            execute: false,
        };
        s.faults.push(spec(429, 2).validate().unwrap());
        s.faults.push(spec(409, 1).validate().unwrap());
        let statuses: Vec<_> = std::iter::from_fn(|| s.take_fault("ddm.restart"))
            .map(|f| f.status.map(|c| c.as_u16()))
            .collect();
        assert_eq!(statuses, [Some(429), Some(429), Some(409)]);
        assert!(s.take_fault("ddm.job").is_none());
    }

    #[test]
    fn instance_status_follows_the_restart_window() {
        let now = Instant::now();
        let mut i = Instance::default();
        assert_eq!(i.status(now), "RUNNING");
        i.restarting_until = Some(now + Duration::from_secs(1));
        assert_eq!(i.status(now), "RESTARTING");
        assert_eq!(i.status(now + Duration::from_secs(1)), "RUNNING");
        i.forced = Some("ERROR".into());
        assert_eq!(i.status(now), "ERROR");
    }
}
