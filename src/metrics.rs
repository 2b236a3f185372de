//! Prometheus metrics, served at `/metrics`.
//!
//! One `Metrics` value is shared by the engine (commands, approvals, jobs, gauges) and the
//! cloud tasks (call latency). Updating a metric is an atomic add: no lock on the hot path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub verb: String,
    /// `accepted`, `refused`, `invalid`
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApprovalLabels {
    /// `granted`, `denied`, `expired`
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub provider: &'static str,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub provider: &'static str,
    /// e.g. `ddm.restart/submit`
    pub operation: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.5, 12))
}

fn approval_histogram() -> Histogram {
    // 1 s .. ~2.3 days
    Histogram::new(exponential_buckets(1.0, 3.0, 12))
}

pub struct Metrics {
    registry: Registry,
    pub commands: Family<CommandLabels, Counter>,
    pub approvals: Family<ApprovalLabels, Counter>,
    pub jobs_finished: Family<JobLabels, Counter>,
    pub cloud_latency: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub approval_wait: Histogram,
    pub pending: Gauge,
    pub running: Gauge,
    pub discord: DiscordMetrics,
    pub leader: LeaderMetrics,
}

/// Who leads, with a store shared by replicas (PostgreSQL); a replica on sled always leads.
#[derive(Clone, Debug, Default)]
pub struct LeaderMetrics {
    /// 1 while this replica leads, 0 while it stands by.
    pub leader: Gauge,
    /// The epoch this replica leads in (0 before it leads).
    pub epoch: Gauge,
    /// Times this replica took the lead over from another one.
    pub takeovers: Counter,
    /// Renewals of the lease that failed (the database did not answer).
    pub renewals_failed: Counter,
}

impl LeaderMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "leader",
            "1 while this replica leads, 0 while it stands by",
            self.leader.clone(),
        );
        registry.register(
            "leader_epoch",
            "The epoch this replica leads in (0 before it leads)",
            self.epoch.clone(),
        );
        registry.register(
            "leader_takeovers",
            "Times this replica took the lead over from another one",
            self.takeovers.clone(),
        );
        registry.register(
            "lease_renewals_failed",
            "Renewals of the leader's lease that failed",
            self.renewals_failed.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscordCallLabels {
    /// `post_card`, `edit_card`, `message`, `interaction`, `reaction`, `gateway_probe`
    pub call: &'static str,
    /// `permission`, `not_found`, `rate_limited`, `server`, `timeout`, `transport`, `other`
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscordEventLabels {
    /// e.g. `foreign_guild`, `member_unknown`, `stale_interaction`, `throttled_refusal`
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscordMessageLabels {
    /// `reply`, `notice`, `incident`, `card`, `thread_line`, `last_words`, `interaction`
    pub kind: &'static str,
}

/// What the Discord adapter counts: failed REST calls, rate limits, connection trouble and
/// events it drops.
#[derive(Clone, Debug, Default)]
pub struct DiscordMetrics {
    pub call_failures: Family<DiscordCallLabels, Counter>,
    pub rate_limited: Counter,
    pub connect_failures: Counter,
    pub reconnects: Counter,
    pub dropped: Family<DiscordEventLabels, Counter>,
    pub connected: Gauge,
    /// Interactions that reached opsgate after Discord's 3 s window, by what was done.
    pub late_interactions: Family<DiscordEventLabels, Counter>,
    /// Messages given up on after their retries, by kind.
    pub messages_dropped: Family<DiscordMessageLabels, Counter>,
}

impl DiscordMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "discord_call_failures",
            "Discord REST calls that failed, by call and reason",
            self.call_failures.clone(),
        );
        registry.register(
            "discord_rate_limited",
            "Discord REST calls that hit a rate limit (429)",
            self.rate_limited.clone(),
        );
        registry.register(
            "discord_connect_failures",
            "Attempts to reach Discord that failed (retried with backoff)",
            self.connect_failures.clone(),
        );
        registry.register(
            "discord_reconnects",
            "Gateway sessions resumed or identified again after the first",
            self.reconnects.clone(),
        );
        registry.register(
            "discord_dropped_events",
            "Discord events ignored, by reason",
            self.dropped.clone(),
        );
        registry.register(
            "discord_connected",
            "1 while the Discord gateway session is ready",
            self.connected.clone(),
        );
        registry.register(
            "discord_late_interactions",
            "Interactions too late for Discord's 3 s window: slash_dropped, autocomplete_dropped, button_unanswered (its vote counted), expired_on_answer (Discord said 10062)",
            self.late_interactions.clone(),
        );
        registry.register(
            "discord_messages_dropped",
            "Messages opsgate gave up sending to Discord (refused, or still failing after its retries), by kind",
            self.messages_dropped.clone(),
        );
    }

    pub fn call_failed(&self, call: &'static str, reason: &'static str) {
        self.call_failures
            .get_or_create(&DiscordCallLabels { call, reason })
            .inc();
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped
            .get_or_create(&DiscordEventLabels { reason })
            .inc();
    }

    pub fn message_dropped(&self, kind: &'static str) {
        self.messages_dropped
            .get_or_create(&DiscordMessageLabels { kind })
            .inc();
    }

    pub fn late_interaction(&self, reason: &'static str) {
        self.late_interactions
            .get_or_create(&DiscordEventLabels { reason })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("opsgate");
        let commands = Family::<CommandLabels, Counter>::default();
        let approvals = Family::<ApprovalLabels, Counter>::default();
        let jobs_finished = Family::<JobLabels, Counter>::default();
        let cloud_latency =
            Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let approval_wait = approval_histogram();
        let pending = Gauge::default();
        let running = Gauge::default();
        registry.register(
            "commands",
            "Chat commands by verb and outcome",
            commands.clone(),
        );
        registry.register(
            "approvals",
            "Approval decisions by outcome",
            approvals.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs that reached a final state, by provider and state",
            jobs_finished.clone(),
        );
        registry.register(
            "cloud_call_seconds",
            "Cloud API call latency by provider and operation",
            cloud_latency.clone(),
        );
        registry.register(
            "approval_wait_seconds",
            "Time from a request to its approval",
            approval_wait.clone(),
        );
        registry.register("jobs_pending", "Jobs awaiting approval", pending.clone());
        registry.register(
            "jobs_running",
            "Jobs approved, submitting or running",
            running.clone(),
        );
        let discord = DiscordMetrics::default();
        discord.register(&mut registry);
        let leader = LeaderMetrics::default();
        leader.register(&mut registry);
        Metrics {
            registry,
            commands,
            approvals,
            jobs_finished,
            cloud_latency,
            approval_wait,
            pending,
            running,
            discord,
            leader,
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn command(&self, verb: &str, outcome: &'static str) {
        self.commands
            .get_or_create(&CommandLabels {
                verb: verb.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn approval(&self, outcome: &'static str) {
        self.approvals
            .get_or_create(&ApprovalLabels { outcome })
            .inc();
    }

    pub fn job_finished(&self, provider: &'static str, state: &'static str) {
        self.jobs_finished
            .get_or_create(&JobLabels { provider, state })
            .inc();
    }

    pub fn cloud_call(&self, provider: &'static str, operation: String, seconds: f64) {
        self.cloud_latency
            .get_or_create(&CallLabels {
                provider,
                operation,
            })
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_labels() {
        let m = Metrics::new();
        m.command("restart", "accepted");
        m.approval("granted");
        m.job_finished("huawei", "succeeded");
        m.cloud_call("huawei", "ddm.restart/submit".into(), 0.012);
        m.pending.set(2);
        let text = m.render();
        assert!(
            text.contains(r#"opsgate_commands_total{verb="restart",outcome="accepted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"opsgate_approvals_total{outcome="granted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"opsgate_jobs_finished_total{provider="huawei",state="succeeded"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"opsgate_cloud_call_seconds_count{provider="huawei",operation="ddm.restart/submit"} 1"#), "{text}");
        assert!(text.contains("opsgate_jobs_pending 2"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
