//! The engine: the only place that decides.
//!
//! It runs on one thread of its own (`app/engine_loop.rs`) and owns all job
//! state. Each turn it takes every event that is waiting (a group), applies them to the
//! in-memory jobs while gathering the writes into one [`WriteBatch`], commits and flushes
//! that batch (one fsync for the group), and only then lets the group's effects out: chat
//! messages, cloud submits, polls. So nothing a user sees and nothing the cloud receives can
//! get ahead of what a restart would find on disk.

mod approval_flows;
mod cloud_tasks;
mod commands;
mod confirmations;
pub mod dry_run;
mod incidents;
mod updates;
mod views;

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::chat::{ChatEvent, ChatOut, FlowOut, JobCard, Outgoing};
use crate::cloud::Registry;
use crate::command::JobId;
use crate::config::Config;
use crate::job::{Job, JobState};
use crate::metrics::Metrics;
use crate::store::{AuditEntry, Store, StoreError, WriteBatch};

pub use approval_flows::ChatFreeze;
pub use updates::CloudUpdate;

/// Most events handled in one group before its writes are flushed and its effects released.
/// Small on purpose: a group's writes and effects stay in memory until its sync, and sled
/// holds the nodes a group dirtied until its flush: in a burst of 1,000 commands a cap of 512
/// peaked at ~32 MiB RSS and 16 at ~19 MiB. The price is more syncs in a burst
/// (BENCHMARKS.md). Normal traffic forms groups of one or two events.
const MAX_GROUP: usize = 16;

pub enum EngineEvent {
    Chat(ChatEvent),
    Cloud {
        job: JobId,
        update: CloudUpdate,
    },
    /// Answered with every job awaiting approval whose message is known, so a chat adapter
    /// can apply reactions given while the bot was away.
    PendingApprovals(tokio::sync::oneshot::Sender<Vec<PendingApproval>>),
    /// Answered once every event sent before it has been handled, made durable and acted on.
    Sync(std::sync::mpsc::SyncSender<()>),
    /// Make everything durable and stop.
    Shutdown,
    /// Graceful stop (SIGTERM): take no new commands, wait up to `timeout` for submits and
    /// reconciles in flight to record the cloud's answer, then flush and stop. Polls are not
    /// waited for: a running job is already at a safe recorded point and resumes on start.
    Drain {
        timeout: Duration,
    },
}

/// A job awaiting approval and where its message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingApproval {
    pub job: JobId,
    pub channel: String,
    pub message_id: String,
    /// Who approved it with ✅ (not a button or a command): if their ✅ is gone from the
    /// card, the adapter reports it (`ChatEvent::CheckMarkGone`).
    pub reaction_approvers: Vec<crate::job::Person>,
}

/// Told about every job state change once it is durable (the terminal's `/wait` uses it).
pub trait JobObserver: Send + Sync {
    fn job_changed(&self, job: JobId, state: JobState);
}

/// A cheap, cloneable way to feed the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<EngineEvent>,
}

impl EngineHandle {
    /// Returns false once the engine has stopped.
    pub fn send(&self, event: EngineEvent) -> bool {
        self.tx.send(event).is_ok()
    }

    pub fn chat(&self, event: ChatEvent) -> bool {
        self.send(EngineEvent::Chat(event))
    }
}

// Effects live briefly in one Vec per group; boxing the chat variant would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
enum Effect {
    Chat(Outgoing),
    Flow(FlowOut),
    Submit(JobId),
    Reconcile(JobId),
    Poll(JobId),
    Observe(JobId, JobState),
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct Engine {
    config: Arc<Config>,
    store: Store,
    registry: Arc<Registry>,
    chat: Arc<dyn ChatOut>,
    observer: Option<Arc<dyn JobObserver>>,
    runtime: tokio::runtime::Handle,
    tx: Sender<EngineEvent>,
    /// Every job that is not final, by ID. Boxed: a `Job` is ~460 bytes, and a map of them
    /// holds every spare slot at that size and, while it grows, two tables at once (~1 MiB
    /// of a burst's peak RSS with a thousand jobs in flight).
    active: HashMap<JobId, Box<Job>>,
    /// Per-target lock: lock key -> the pending or running job holding it.
    locks: HashMap<String, JobId>,
    /// Approval deadlines of pending jobs.
    expiries: BTreeSet<(u64, JobId)>,
    next_id: JobId,
    batch: WriteBatch,
    effects: Vec<Effect>,
    metrics: Arc<Metrics>,
    /// Refusal replies so far (see `commands.rs`).
    refusals: u64,
    /// Submits and reconciles whose answer has not been recorded yet.
    in_flight: usize,
    /// Set while draining: stop once nothing is in flight, or at this instant.
    drain_until: Option<std::time::Instant>,
    /// Called first when storage fails (the health endpoint starts failing).
    storage_failure_hook: Option<Box<dyn Fn() + Send>>,
    /// Requests waiting for typed confirmation (memory only: nothing is stored for them).
    confirmations: confirmations::Confirmations,
    /// The freeze set with `!freeze`, as stored.
    chat_freeze: Option<ChatFreeze>,
    /// The number of the next event that belongs to no job.
    ops_seq: u64,
}

impl Engine {
    /// Loads the active jobs from `store` and decides what each needs after a restart.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        registry: Arc<Registry>,
        chat: Arc<dyn ChatOut>,
        observer: Option<Arc<dyn JobObserver>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Engine, EngineHandle, Receiver<EngineEvent>), StoreError> {
        let (tx, rx) = mpsc::channel();
        let next_id = store.next_job_id()?;
        let chat_freeze = store.chat_freeze()?;
        let ops_seq = store.next_ops_seq()?;
        let mut engine = Engine {
            config,
            store,
            registry,
            chat,
            observer,
            runtime,
            tx: tx.clone(),
            active: HashMap::new(),
            locks: HashMap::new(),
            expiries: BTreeSet::new(),
            next_id,
            batch: WriteBatch::default(),
            effects: Vec::new(),
            metrics: Arc::new(Metrics::new()),
            refusals: 0,
            in_flight: 0,
            drain_until: None,
            storage_failure_hook: None,
            confirmations: Default::default(),
            chat_freeze,
            ops_seq,
        };
        engine.recover(now_ms())?;
        Ok((engine, EngineHandle { tx }, rx))
    }

    /// Shares `metrics` with whoever serves `/metrics`.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = metrics;
    }

    /// `hook` runs first when storage fails, before anything is said in chat.
    pub fn on_storage_failure(&mut self, hook: Box<dyn Fn() + Send>) {
        self.storage_failure_hook = Some(hook);
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn update_gauges(&self) {
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

    fn recover(&mut self, now: u64) -> Result<(), StoreError> {
        let jobs = self.store.active_jobs()?;
        if !jobs.is_empty() {
            tracing::info!(count = jobs.len(), "resuming unfinished jobs");
        }
        for mut job in jobs {
            let id = job.id;
            self.next_id = self.next_id.max(id + 1);
            if job.state.is_final() {
                // Written in one batch with its index entry, so only a store from before
                // batches were atomic can hold this: take it out of the index, lock nothing.
                tracing::warn!(
                    job = id,
                    state = job.state.label(),
                    "a finished job was still in the active index; removed"
                );
                self.batch.put_job(&mut job, None);
                continue;
            }
            self.locks.insert(job.lock_key(&self.config), id);
            match job.state {
                JobState::AwaitingApproval => {
                    self.expiries.insert((job.expires_ms, id));
                    // A crash between posting the card and recording its ID leaves approvers
                    // nothing to react on: post it again.
                    if job.message_id.is_none() {
                        let card = self.card(&job);
                        self.effects.push(Effect::Chat(Outgoing::Card {
                            channel: job.channel.clone(),
                            card,
                            mention_roles: Vec::new(),
                        }));
                    }
                }
                // Approved but never marked submitting: provably not sent, so send it now.
                JobState::Approved => self.effects.push(Effect::Submit(id)),
                // May or may not have reached the cloud: ask, never re-send.
                JobState::Submitting => self.effects.push(Effect::Reconcile(id)),
                JobState::Running => self.effects.push(Effect::Poll(id)),
                _ => {}
            }
            self.effects.push(Effect::Observe(id, job.state));
            self.active.insert(id, Box::new(job));
        }
        for id in self.take_reconciles() {
            self.audit_only(id, "restart", "the bot restarted while this job was being submitted; asking the cloud whether it arrived (it is never re-sent)", now);
        }
        self.fire_expiries(now);
        Ok(())
    }

    fn posts_approval_card(&self) -> bool {
        self.effects.iter().any(|e| {
            matches!(e, Effect::Chat(Outgoing::Card { card, .. }) if card.state == JobState::AwaitingApproval)
        })
    }

    fn take_reconciles(&self) -> Vec<JobId> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reconcile(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Runs until `Shutdown`, a finished drain, or every handle dropped (`Ok`), or until
    /// storage fails (`Err`): then the failed group's effects are dropped, the channels it
    /// came from and the incident channels are told that opsgate is stopping, and the caller
    /// must end the process. Nothing is retried on a store that failed.
    pub fn run(mut self, rx: Receiver<EngineEvent>) -> Result<(), StoreError> {
        if let Err(e) = self.finish_group() {
            return Err(self.storage_failed(e, &[]));
        }
        let mut stop = false;
        let mut channels = Vec::new();
        while !stop {
            let expiry_wait = self
                .expiries
                .first()
                .map(|(at, _)| Duration::from_millis(at.saturating_sub(now_ms())));
            let drain_wait = self
                .drain_until
                .map(|until| until.saturating_duration_since(std::time::Instant::now()));
            let wait = [expiry_wait, drain_wait].into_iter().flatten().min();
            let first = match wait {
                Some(w) => rx.recv_timeout(w),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut next = match first {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    stop = true;
                    None
                }
            };
            let mut syncs = Vec::new();
            let mut handled = 0;
            channels.clear();
            while let Some(event) = next.take() {
                match event {
                    EngineEvent::Shutdown => stop = true,
                    EngineEvent::Drain { timeout } => {
                        tracing::info!(in_flight = self.in_flight, "draining: no new commands");
                        self.drain_until = Some(std::time::Instant::now() + timeout);
                    }
                    EngineEvent::Sync(ack) => syncs.push(ack),
                    event => {
                        channels.extend(self.channel_of(&event));
                        self.handle(event, now_ms());
                    }
                }
                handled += 1;
                // An approval card ends the group: its message ID must be known before any
                // later event (a reaction on that very message) is handled.
                if handled < MAX_GROUP && !stop && !self.posts_approval_card() {
                    next = rx.try_recv().ok();
                }
            }
            self.fire_expiries(now_ms());
            self.update_gauges();
            if let Err(e) = self.finish_group() {
                return Err(self.storage_failed(e, &channels));
            }
            for ack in syncs {
                let _ = ack.try_send(());
            }
            if let Some(until) = self.drain_until {
                if self.in_flight == 0 || std::time::Instant::now() >= until {
                    if self.in_flight > 0 {
                        tracing::warn!(
                            in_flight = self.in_flight,
                            "drain timed out; those jobs are reconciled on the next start"
                        );
                    }
                    stop = true;
                }
            }
        }
        if let Err(e) = self.store.close() {
            return Err(self.storage_failed(e, &[]));
        }
        tracing::info!("engine stopped");
        Ok(())
    }

    /// Where people would hear about `event`: its chat channel, or its job's channel.
    fn channel_of(&self, event: &EngineEvent) -> Option<String> {
        match event {
            EngineEvent::Chat(chat) => chat.channel().map(str::to_string),
            EngineEvent::Cloud { job, .. } => self.active.get(job).map(|j| j.channel.clone()),
            _ => None,
        }
    }

    /// Drops the failed group's effects and says, once, where it still can, that opsgate is
    /// stopping. Returns `error` for the caller, which ends the process.
    fn storage_failed(&mut self, error: StoreError, channels: &[String]) -> StoreError {
        if let Some(hook) = &self.storage_failure_hook {
            hook();
        }
        tracing::error!(error = %error, "storage failed: nothing from this step is acted on; stopping");
        self.effects.clear();
        let mut tell: Vec<String> = Vec::new();
        for channel in channels.iter().chain(self.config.incidents.all_channels()) {
            if !tell.contains(channel) {
                tell.push(channel.clone());
            }
        }
        let text = format!(
            "⛔ opsgate is stopping: its storage failed ({error}). Nothing from the last step was acted on; it restarts from what is on disk once the disk is fixed."
        );
        self.chat.last_words(&tell, &text);
        error
    }

    fn handle(&mut self, event: EngineEvent, now: u64) {
        match event {
            EngineEvent::Chat(ev) if self.drain_until.is_some() => self.refuse_while_draining(ev),
            EngineEvent::Chat(ev) => self.on_chat(ev, now),
            EngineEvent::Cloud { job, update } => self.on_cloud(job, update, now),
            EngineEvent::PendingApprovals(reply) => {
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
                let _ = reply.send(pending);
            }
            EngineEvent::Shutdown | EngineEvent::Drain { .. } | EngineEvent::Sync(_) => {}
        }
    }

    /// While draining nothing new starts; commands get a reply saying why. Reactions are left
    /// alone: the chat adapter reads them again when the bot is back.
    fn refuse_while_draining(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Message { origin, text, .. }
                if text.trim_start().starts_with(self.config.prefix.as_str()) =>
            {
                self.reply(
                    &origin,
                    "opsgate is restarting and takes no new commands; try again in a minute.",
                    true,
                );
            }
            ChatEvent::Button { origin, .. } | ChatEvent::CardAction { origin, .. } => {
                self.reply(&origin, "opsgate is restarting; decide again in a minute (reactions are picked up after the restart).", true);
            }
            ChatEvent::MessagePosted { job, message_id } => {
                self.record_message_id(job, message_id);
            }
            _ => {}
        }
    }

    /// Makes this group's writes visible to reads of the store. Durability still waits for the
    /// flush in `finish_group`, and so do all effects. A failure here poisons the store, so
    /// that flush fails too and the group's effects never leave.
    fn publish_writes(&mut self) {
        if let Err(e) = self.store.commit(&mut self.batch) {
            tracing::error!(error = %e, "could not apply pending writes");
        }
    }

    /// Commit and flush the group's writes, then release its effects.
    fn finish_group(&mut self) -> Result<(), StoreError> {
        // Flushed even when the batch is empty: `publish_writes` may have committed part
        // of the group already, and that part must be durable before any effect goes out.
        // A flush with nothing new costs nothing.
        self.store.commit(&mut self.batch)?;
        self.store.flush()?;
        let mut effects = std::mem::take(&mut self.effects);
        // Cloud work first: it is already durable, and a stdout or network write for chat
        // should not delay a request to the cloud. Chat output keeps its own order.
        let (cloud, rest): (Vec<Effect>, Vec<Effect>) = effects.drain(..).partition(|e| {
            matches!(
                e,
                Effect::Submit(_) | Effect::Reconcile(_) | Effect::Poll(_)
            )
        });
        let mut learned_ids = false;
        for effect in cloud.into_iter().chain(rest) {
            learned_ids |= self.apply_effect(effect);
        }
        self.store.commit(&mut self.batch)?;
        if learned_ids {
            // A pending job's message ID maps reactions to it, so it must survive a restart.
            self.store.flush()?;
        }
        Ok(())
    }

    /// Returns true when a message ID was learned that must be flushed (a pending job's, or
    /// a reposted card's).
    fn apply_effect(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Chat(out) => {
                let card_job = match &out {
                    Outgoing::Card { card, .. } => Some(card.job),
                    _ => None,
                };
                let posted = self.chat.send(out);
                if let (Some(job), Some(message_id)) = (card_job, posted) {
                    return self.record_message_id(job, message_id);
                }
            }
            Effect::Flow(mut out) => {
                // A thread hangs on the card, whose ID may have been learned in this group.
                if let FlowOut::ThreadLine {
                    job, card_message, ..
                } = &mut out
                {
                    if card_message.is_none() {
                        *card_message = self.active.get(job).and_then(|j| j.message_id.clone());
                    }
                }
                self.chat.send_flow(out);
            }
            Effect::Submit(id) => self.spawn_submit(id),
            Effect::Reconcile(id) => self.spawn_reconcile(id),
            Effect::Poll(id) => self.spawn_poll(id),
            Effect::Observe(id, state) => {
                if let Some(o) = &self.observer {
                    o.job_changed(id, state);
                }
            }
        }
        false
    }

    fn record_message_id(&mut self, id: JobId, message_id: String) -> bool {
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
            self.batch.index_message(&message_id, id);
        }
        if pending || replaced {
            self.batch.put_job(job, None);
        }
        // Other jobs keep a first ID in memory; it is written with their next change.
        pending || replaced
    }

    fn fire_expiries(&mut self, now: u64) {
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
                self.finish(
                    id,
                    JobState::Expired,
                    None,
                    "expired",
                    "no quorum before the deadline".into(),
                    now,
                );
            }
        }
    }

    // ---- helpers shared by the handlers ----

    fn reply(&mut self, to: &crate::chat::Origin, text: impl Into<String>, private: bool) {
        self.effects.push(Effect::Chat(Outgoing::Reply {
            to: to.clone(),
            text: text.into(),
            private,
        }));
    }

    fn notice(&mut self, channel: &str, job: Option<JobId>, text: String) {
        self.effects.push(Effect::Chat(Outgoing::Notice {
            channel: channel.to_string(),
            job,
            text,
        }));
    }

    fn card(&self, job: &Job) -> JobCard {
        JobCard::from_job(
            job,
            crate::policy::describe_roles(&self.config, &job.requirement.approver_roles),
        )
    }

    /// Persist `job` (with an audit entry) and queue an update of its message.
    fn save(&mut self, id: JobId, actor: Option<String>, event: &str, detail: String, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        job.updated_ms = now;
        views::log_step(id, event, job.state, &detail);
        let thread_text = job
            .thread
            .then(|| views::audit_line(event, actor.as_deref(), &detail));
        let entry = AuditEntry {
            at_ms: now,
            actor,
            event: event.to_string(),
            detail,
        };
        self.batch.put_job(job, Some(entry));
        let card = JobCard::from_job(
            job,
            crate::policy::describe_roles(&self.config, &job.requirement.approver_roles),
        );
        let (channel, message_id, state) = (job.channel.clone(), job.message_id.clone(), job.state);
        self.effects.push(Effect::Chat(Outgoing::UpdateCard {
            channel,
            message_id,
            card,
        }));
        if let Some(text) = thread_text {
            self.thread_line(id, text);
        }
        self.effects.push(Effect::Observe(id, state));
    }

    /// Append to a job's audit log without changing what chat shows.
    fn audit_only(&mut self, id: JobId, event: &str, detail: &str, now: u64) {
        if let Some(job) = self.active.get_mut(&id) {
            let entry = AuditEntry {
                at_ms: now,
                actor: None,
                event: event.to_string(),
                detail: detail.to_string(),
            };
            self.batch.put_job(job, Some(entry));
            if job.thread {
                self.thread_line(id, views::audit_line(event, None, detail));
            }
        }
    }

    /// Move a job to `state` if that move is legal; returns whether it moved.
    fn transition(&mut self, id: JobId, state: JobState) -> bool {
        match self.active.get_mut(&id) {
            Some(job) if job.state.can_become(state) => {
                job.state = state;
                true
            }
            Some(job) => {
                tracing::warn!(job = id, from = ?job.state, to = ?state, "illegal transition refused");
                false
            }
            None => false,
        }
    }

    /// Move a job to a final state, release its lock, persist, and drop it from memory.
    fn finish(
        &mut self,
        id: JobId,
        state: JobState,
        actor: Option<String>,
        event: &str,
        detail: String,
        now: u64,
    ) {
        if !self.transition(id, state) {
            return;
        }
        if let Some(job) = self.active.get_mut(&id) {
            job.finished_ms = Some(now);
            job.outcome = Some(detail.clone());
        }
        self.incident_on_finish(id, state, &detail);
        if let Some(job) = self.active.get(&id) {
            let provider = crate::command::catalog::operation_by_id(&job.spec.operation)
                .map_or("unknown", |op| op.provider.name());
            self.metrics.job_finished(provider, state.label_metric());
            match state {
                JobState::Denied => self.metrics.approval("denied"),
                JobState::Expired => self.metrics.approval("expired"),
                _ => {}
            }
        }
        let outcome_line = self.active.get(&id).filter(|j| j.thread).map(|j| {
            format!(
                "{} job {id} {}: {} · {detail}",
                state.icon(),
                state.label(),
                j.action()
            )
        });
        self.save(id, actor, event, detail, now);
        // A threaded job's channel shows its card; its outcome is said there too. Failures
        // and unknown outcomes get their notice from `updates.rs` already.
        if let (Some(text), false) = (
            outcome_line,
            matches!(state, JobState::Failed | JobState::Unknown),
        ) {
            if let Some(channel) = self.active.get(&id).map(|j| j.channel.clone()) {
                self.notice(&channel, Some(id), text);
            }
        }
        if let Some(job) = self.active.remove(&id) {
            let lock = job.lock_key(&self.config);
            if self.locks.get(&lock) == Some(&id) {
                self.locks.remove(&lock);
            }
            self.expiries.remove(&(job.expires_ms, id));
        }
    }
}
