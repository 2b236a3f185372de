//! The engine: the only place that decides, and it does no IO.
//!
//! Given its state, one event and the time, it decides: it changes the jobs it holds in
//! memory and gathers what must be written ([`Writes`]) and what must then happen
//! ([`Effect`]s: chat messages, cloud submits, polls). The driver (`driver/`) commits the
//! writes, waits until they are durable, and only then carries out the effects. The engine
//! never reads the clock (the time comes with each call) and reads stored history only
//! through [`History`], overlaid with the writes it has not handed over yet.

mod cards;
mod chat_events;
mod cloud_results;
mod confirmations;
mod dry_run;
mod freezes;
mod help;
mod history;
mod incidents;
mod lifecycle;
mod recovery;
mod requests;
mod retention;
mod reviews;
mod views;
mod votes;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::Config;
use crate::domain::{ChannelId, JobId, MessageId};
use crate::freeze::ChatFreeze;
use crate::job::{Job, JobState};
use crate::metrics::Metrics;
use crate::ports::chat::{ChatEvent, FlowOut, Outgoing};
use crate::ports::cloud::Operations;
use crate::ports::inbox::{CloudUpdate, PendingApproval};
use crate::ports::store::{History, StorageError, Stored, Writes};

/// What must happen once the writes that allow it are durable.
// Effects live briefly in one Vec per group; boxing the chat variant would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Effect {
    Chat(Outgoing),
    Flow(FlowOut),
    Submit(JobId),
    Reconcile(JobId),
    Poll(JobId),
    /// A job changed state (for observers such as the terminal's `/wait`).
    Observe(JobId, JobState),
}

impl Effect {
    /// Work for the cloud (it goes out before chat output: a stdout or network write for
    /// chat should not delay a request to the cloud).
    pub fn is_cloud_work(&self) -> bool {
        matches!(
            self,
            Effect::Submit(_) | Effect::Reconcile(_) | Effect::Poll(_)
        )
    }
}

/// What the engine decided since it was last asked: the writes, and the effects they allow.
pub struct Step {
    pub writes: Writes,
    pub effects: Vec<Effect>,
}

pub struct Engine {
    config: Arc<Config>,
    history: Arc<dyn History>,
    /// What the operations would send, for `--dry-run` (described, never sent).
    operations: Arc<dyn Operations>,
    metrics: Arc<Metrics>,
    /// Every job that is not final, by ID. Boxed: a `Job` is ~460 bytes, and a map of them
    /// holds every spare slot at that size and, while it grows, two tables at once.
    active: HashMap<JobId, Box<Job>>,
    /// Per-target lock: lock key -> the pending or running job holding it.
    locks: HashMap<String, JobId>,
    /// Approval deadlines of pending jobs.
    expiries: BTreeSet<(u64, JobId)>,
    next_id: JobId,
    writes: Writes,
    effects: Vec<Effect>,
    /// Refusal replies so far (the command metric tells refusals apart by this).
    refusals: u64,
    /// Set once the process is stopping: commands are answered, not run.
    draining: bool,
    /// Requests waiting for typed confirmation (memory only: nothing is stored for them).
    confirmations: confirmations::Confirmations,
    /// The freeze set with `!freeze`, as stored.
    chat_freeze: Option<ChatFreeze>,
    /// The number of the next event that belongs to no job.
    ops_seq: u64,
    /// The first failed read of the history: the driver stops on it.
    read_failure: Option<StorageError>,
    /// When the next retention pass is due (`retention.rs`).
    next_prune_ms: u64,
}

impl Engine {
    /// Takes over what a restart found in the store and decides what each active job needs
    /// (see `recovery.rs`); the decisions wait in the first [`Step`].
    pub fn new(
        config: Arc<Config>,
        stored: Stored,
        history: Arc<dyn History>,
        operations: Arc<dyn Operations>,
        metrics: Arc<Metrics>,
        now: u64,
    ) -> Engine {
        let mut engine = Engine {
            config,
            history,
            operations,
            metrics,
            active: HashMap::new(),
            locks: HashMap::new(),
            expiries: BTreeSet::new(),
            next_id: stored.next_job_id,
            writes: Writes::default(),
            effects: Vec::new(),
            refusals: 0,
            draining: false,
            confirmations: Default::default(),
            chat_freeze: stored.chat_freeze,
            ops_seq: stored.next_ops_seq,
            read_failure: None,
            next_prune_ms: now + retention::FIRST_PASS_AFTER_MS,
        };
        engine.recover(stored.active, now);
        engine
    }

    /// Something happened in chat.
    pub fn on_chat(&mut self, event: ChatEvent, now: u64) {
        if self.draining {
            self.refuse_while_draining(event);
        } else {
            self.chat_event(event, now);
        }
    }

    /// A cloud task reported on a job.
    pub fn on_cloud(&mut self, job: JobId, update: CloudUpdate, now: u64) {
        self.cloud_result(job, update, now);
    }

    /// Time has passed: approvals whose deadline has passed expire, and finished jobs past
    /// the retention time are removed.
    pub fn tick(&mut self, now: u64) {
        self.expire(now);
        self.prune(now);
    }

    /// The next time [`tick`](Self::tick) has something to do: an approval lapses, or a
    /// retention pass is due.
    pub fn next_deadline(&self) -> Option<u64> {
        let expiry = self.expiries.first().map(|(at, _)| *at);
        [expiry, self.next_prune()].into_iter().flatten().min()
    }

    /// Ends every approval whose deadline has passed.
    pub(super) fn expire(&mut self, now: u64) {
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if self
                .active
                .get(&id)
                .is_some_and(|j| j.state == JobState::AwaitingApproval)
            {
                let why = "no quorum before the deadline".to_string();
                self.finish(id, JobState::Expired, None, "expired", why, now);
            }
        }
    }

    /// What was decided since the last call: the writes and the effects they allow.
    pub fn take(&mut self) -> Step {
        Step {
            writes: std::mem::take(&mut self.writes),
            effects: std::mem::take(&mut self.effects),
        }
    }

    /// Whether the group should end here: an approval card is about to be posted, and its
    /// message ID must be known before any later event (a reaction on that very message) is
    /// decided.
    pub fn ends_group(&self) -> bool {
        self.effects.iter().any(|e| {
            matches!(e, Effect::Chat(Outgoing::Card { card, .. }) if card.state == JobState::AwaitingApproval)
        })
    }

    /// Commands are answered, not run, from now on (the process is stopping).
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Where a job's card is, once known (a thread hangs on it).
    pub fn card_message(&self, id: JobId) -> Option<MessageId> {
        self.active.get(&id).and_then(|j| j.message_id.clone())
    }

    /// The channel of an active job, where people hear about it.
    pub fn channel_of(&self, id: JobId) -> Option<ChannelId> {
        self.active.get(&id).map(|j| j.channel.clone())
    }

    /// The first failed read of the store's history, if there was one.
    pub fn read_failure(&mut self) -> Option<StorageError> {
        self.read_failure.take()
    }

    /// Every job awaiting approval whose card is known, by job number.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        let mut pending: Vec<PendingApproval> = self
            .active
            .values()
            .filter(|j| j.state == JobState::AwaitingApproval)
            .filter_map(|j| {
                Some(PendingApproval {
                    job: j.id,
                    channel: j.channel.clone(),
                    message_id: j.message_id.clone()?,
                    reaction_approvers: j
                        .approvals
                        .iter()
                        .filter(|a| a.by_reaction)
                        .map(|a| a.by.clone())
                        .collect(),
                })
            })
            .collect();
        pending.sort_by_key(|p| p.job);
        pending
    }

    /// Sets the pending and running gauges.
    pub fn update_gauges(&self) {
        let pending = self
            .active
            .values()
            .filter(|j| j.state == JobState::AwaitingApproval)
            .count();
        self.metrics.pending.set(pending as i64);
        self.metrics
            .running
            .set((self.active.len() - pending) as i64);
    }

    /// A job's card was posted and chat told its message ID. Returns whether that must be
    /// made durable before the next event is decided: a pending job's card maps reactions
    /// to it, and a reposted card replaces the old one.
    pub fn message_posted(&mut self, id: JobId, message_id: MessageId) -> bool {
        let Some(job) = self.active.get_mut(&id) else {
            return false;
        };
        if job.message_id.as_deref() == Some(message_id.as_str()) {
            return false;
        }
        // A card posted again after the first was deleted: the old ID leads nowhere.
        let replaced = job.message_id.is_some();
        job.message_id = Some(message_id.clone());
        let pending = job.state == JobState::AwaitingApproval;
        if pending {
            self.writes.index_message(&message_id, id);
        }
        if pending || replaced {
            self.writes.put_job(job, None);
        }
        // Other jobs keep a first ID in memory; it is written with their next change.
        pending || replaced
    }
}

/// What a cloud task needs of a job.
pub struct CloudWork {
    pub spec: Arc<crate::domain::JobSpec>,
    /// The operation's record of submitted work, for polls.
    pub handle: serde_json::Value,
    /// When the cloud accepted the work (polls time out from there).
    pub started_ms: Option<u64>,
}

impl Engine {
    /// What a submit, reconcile or poll of an active job works from.
    pub fn cloud_work(&self, id: JobId) -> Option<CloudWork> {
        let job = self.active.get(&id)?;
        Some(CloudWork {
            spec: job.spec.clone(),
            handle: job.handle.clone().unwrap_or(serde_json::Value::Null),
            started_ms: job.started_ms,
        })
    }

    /// The writes decided since the last [`take`](Self::take) (message IDs learned while
    /// effects were carried out); the effects stay for the next step.
    pub fn take_writes(&mut self) -> Writes {
        std::mem::take(&mut self.writes)
    }

    /// The provider of a job's operation, for metric labels.
    pub fn provider_of(&self, operation: &str) -> &'static str {
        (self.config.catalog.by_id(operation)).map_or("unknown", |op| op.provider.name())
    }
}
