//! The driver: runs the engine, and does what the engine decided, in an order that keeps
//! "persist, then act".
//!
//! It runs on a thread of its own. Each turn it takes every event that is waiting (a
//! *group*), hands each to the engine, then commits the group's writes to the store and
//! makes them durable, and only then lets the group's effects out: chat messages, cloud
//! submits, polls, observer notifications. So nothing a user sees and nothing the cloud
//! receives can get ahead of what a restart would find. If the store fails, the group's
//! effects are dropped and the driver stops (fail-stop).

mod cloud_tasks;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::domain::time::now_ms;
use crate::domain::ChannelId;
use crate::engine::{Effect, Engine, Step};
use crate::metrics::Metrics;
use crate::ports::chat::{ChatOut, FlowOut, Outgoing};
use crate::ports::cloud::Operations;
use crate::ports::inbox::{EngineEvent, EngineHandle, JobObserver};
use crate::ports::store::{is_newer, History, ReadMarks, StorageError, Store};

/// Most events handled in one group before its writes are flushed and its effects released.
/// Small on purpose: a group's writes and effects stay in memory until its sync, and sled
/// holds the nodes a group dirtied until its flush. The price is more syncs in a burst
/// (BENCHMARKS.md). Normal traffic forms groups of one or two events.
const MAX_GROUP: usize = 16;

/// What the driver drives the engine with.
pub struct Seams {
    pub store: Arc<dyn Store>,
    /// The same store, read by the engine while it decides.
    pub history: Arc<dyn History>,
    pub operations: Arc<dyn Operations>,
    pub chat: Arc<dyn ChatOut>,
    /// Told about every job state change once it is durable (the terminal's `/wait`).
    pub observer: Option<Arc<dyn JobObserver>>,
    /// Where cloud tasks run.
    pub runtime: tokio::runtime::Handle,
    pub metrics: Arc<Metrics>,
    /// Whether this process surely still leads (a PostgreSQL replica's lease, by its own
    /// clock; always true on sled). Asked again just before a cloud request leaves, since a
    /// replica paused between its commit and its submit may no longer lead when it runs.
    pub leads: Arc<dyn Fn() -> bool + Send + Sync>,
}

pub struct Driver {
    engine: Engine,
    config: Arc<Config>,
    seams: Seams,
    tx: Sender<EngineEvent>,
    /// Submits and reconciles whose answer has not been recorded yet.
    in_flight: usize,
    /// Set while draining: stop once nothing is in flight, or at this instant.
    drain_until: Option<Instant>,
    /// Called first when storage fails (the health endpoint starts failing).
    storage_failure_hook: Option<Box<dyn Fn() + Send>>,
    /// The newest message read in each channel, as stored and as this group adds to it.
    read: ReadMarks,
    /// The marks of this group, written with its writes.
    newly_read: ReadMarks,
}

impl Driver {
    /// Loads what the store holds and hands it to a new engine, which decides what each
    /// active job needs after the restart; those decisions are carried out first thing in
    /// [`run`](Self::run).
    pub fn new(
        config: Arc<Config>,
        seams: Seams,
    ) -> Result<(Driver, EngineHandle, Receiver<EngineEvent>), StorageError> {
        let (tx, rx) = mpsc::channel();
        let stored = seams.store.load()?;
        let read = seams.store.read_marks()?;
        let engine = Engine::new(
            config.clone(),
            stored,
            seams.history.clone(),
            seams.operations.clone(),
            seams.metrics.clone(),
            now_ms(),
        );
        let driver = Driver {
            engine,
            config,
            seams,
            tx: tx.clone(),
            in_flight: 0,
            drain_until: None,
            storage_failure_hook: None,
            read,
            newly_read: ReadMarks::new(),
        };
        Ok((driver, EngineHandle::new(tx), rx))
    }

    /// `hook` runs first when storage fails, before anything is said in chat.
    pub fn on_storage_failure(&mut self, hook: Box<dyn Fn() + Send>) {
        self.storage_failure_hook = Some(hook);
    }

    /// Runs until `Shutdown`, a finished drain, or every handle dropped (`Ok`), or until
    /// storage fails (`Err`): then the failed group's effects are dropped, the channels it
    /// came from and the incident channels are told that opsgate is stopping, and the caller
    /// must end the process. Nothing is retried on a store that failed.
    pub fn run(mut self, rx: Receiver<EngineEvent>) -> Result<(), StorageError> {
        if let Err(e) = self.finish_group() {
            return Err(self.storage_failed(e, &[]));
        }
        let mut stop = false;
        let mut channels = Vec::new();
        while !stop {
            let mut next = match rx_wait(&rx, self.next_wake()) {
                Ok(event) => Some(event),
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
                        self.engine.start_draining();
                        self.drain_until = Some(Instant::now() + timeout);
                    }
                    EngineEvent::Sync(ack) => syncs.push(ack),
                    EngineEvent::PendingApprovals(reply) => {
                        let _ = reply.send(self.engine.pending_approvals());
                    }
                    EngineEvent::Chat(event) => {
                        channels.extend(event.channel().cloned());
                        self.engine.on_chat(event, now_ms());
                    }
                    EngineEvent::Read {
                        event,
                        channel,
                        message,
                    } => {
                        if let Some(event) = event {
                            channels.extend(event.channel().cloned());
                            self.engine.on_chat(event, now_ms());
                        }
                        self.mark_read(channel, message);
                    }
                    EngineEvent::Cloud { job, update } => {
                        channels.extend(self.engine.channel_of(job));
                        if update.ends_a_call() {
                            self.in_flight = self.in_flight.saturating_sub(1);
                        }
                        self.engine.on_cloud(job, update, now_ms());
                    }
                }
                if let Some(e) = self.engine.read_failure() {
                    return Err(self.storage_failed(e, &channels));
                }
                handled += 1;
                // An approval card ends the group: its message ID must be known before any
                // later event (a reaction on that very message) is handled.
                if handled < MAX_GROUP && !stop && !self.engine.ends_group() {
                    next = rx.try_recv().ok();
                }
            }
            self.engine.tick(now_ms());
            self.engine.update_gauges();
            if let Err(e) = self.finish_group() {
                return Err(self.storage_failed(e, &channels));
            }
            for ack in syncs {
                let _ = ack.try_send(());
            }
            stop |= self.drained();
        }
        if let Err(e) = self.seams.store.close() {
            return Err(self.storage_failed(e, &[]));
        }
        tracing::info!("engine stopped");
        Ok(())
    }

    /// How long to wait for the next event: until the engine has something to do with time
    /// (an approval lapses, a retention pass), or the drain ends, or (neither) for ever.
    fn next_wake(&self) -> Option<Duration> {
        let deadline = (self.engine.next_deadline())
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        let drain = (self.drain_until).map(|until| until.saturating_duration_since(Instant::now()));
        [deadline, drain].into_iter().flatten().min()
    }

    /// Whether a drain is over: nothing in flight, or out of time.
    fn drained(&self) -> bool {
        let Some(until) = self.drain_until else {
            return false;
        };
        if self.in_flight == 0 {
            return true;
        }
        if Instant::now() < until {
            return false;
        }
        tracing::warn!(
            in_flight = self.in_flight,
            "drain timed out; those jobs are reconciled on the next start"
        );
        true
    }

    /// Notes that `message` was read, unless a newer message of its channel already was.
    fn mark_read(&mut self, channel: ChannelId, message: crate::domain::MessageId) {
        if self
            .read
            .get(&channel)
            .is_some_and(|read| !is_newer(&message, read))
        {
            return;
        }
        self.read.insert(channel.clone(), message.clone());
        self.newly_read.insert(channel, message);
    }

    /// Commit and flush the group's writes, then release its effects.
    fn finish_group(&mut self) -> Result<(), StorageError> {
        let Step {
            mut writes,
            effects,
        } = self.engine.take();
        writes.read_marks.append(&mut self.newly_read);
        if !writes.is_empty() {
            self.seams.store.commit(writes)?;
        }
        // Flushed even with nothing written: a store may have more to confirm before any
        // effect leaves (a replicated store, that it still leads). Otherwise it costs
        // nothing.
        self.seams.store.flush()?;
        // Cloud work first: it is already durable, and a stdout or network write for chat
        // should not delay a request to the cloud. Chat output keeps its own order.
        let (cloud, chat): (Vec<Effect>, Vec<Effect>) =
            effects.into_iter().partition(Effect::is_cloud_work);
        let mut learned_ids = false;
        for effect in cloud.into_iter().chain(chat) {
            learned_ids |= self.apply(effect);
        }
        let late = self.engine.take_writes();
        if !late.is_empty() {
            self.seams.store.commit(late)?;
        }
        if learned_ids {
            // A pending job's message ID maps reactions to it, so it must survive a restart.
            self.seams.store.flush()?;
        }
        Ok(())
    }

    /// Returns true when a message ID was learned that must be flushed (a pending job's, or
    /// a reposted card's).
    fn apply(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Chat(out) => {
                let card_job = match &out {
                    Outgoing::Card { card, .. } => Some(card.job),
                    _ => None,
                };
                let posted = self.seams.chat.send(out);
                if let (Some(job), Some(message_id)) = (card_job, posted) {
                    return self.engine.message_posted(job, message_id);
                }
            }
            Effect::Flow(mut out) => {
                // A thread hangs on the card, whose ID may have been learned in this group.
                if let FlowOut::ThreadLine {
                    job, card_message, ..
                } = &mut out
                {
                    if card_message.is_none() {
                        *card_message = self.engine.card_message(*job);
                    }
                }
                self.seams.chat.send_flow(out);
            }
            Effect::Submit(id) => self.spawn_submit(id),
            Effect::Reconcile(id) => self.spawn_reconcile(id),
            Effect::Poll(id) => self.spawn_poll(id),
            Effect::Observe(id, state) => {
                if let Some(o) = &self.seams.observer {
                    o.job_changed(id, state);
                }
            }
        }
        false
    }

    /// Drops the failed group's effects and says, once, where it still can, that opsgate is
    /// stopping. Returns `error` for the caller, which ends the process.
    fn storage_failed(&mut self, error: StorageError, channels: &[ChannelId]) -> StorageError {
        if let Some(hook) = &self.storage_failure_hook {
            hook();
        }
        if error.is_lost_lead() {
            // Another replica serves chat now: this one says nothing there.
            tracing::error!(error = %error, "this replica no longer leads: nothing from this step is acted on; stopping");
            drop(self.engine.take());
            return error;
        }
        tracing::error!(error = %error, "storage failed: nothing from this step is acted on; stopping");
        drop(self.engine.take());
        let mut tell: Vec<ChannelId> = Vec::new();
        for channel in channels.iter().chain(self.config.incidents.all_channels()) {
            if !tell.contains(channel) {
                tell.push(channel.clone());
            }
        }
        let text = format!(
            "⛔ opsgate is stopping: its storage failed ({error}). Nothing from the last step was acted on; it restarts from what is on disk once the disk is fixed."
        );
        self.seams.chat.last_words(&tell, &text);
        error
    }
}

fn rx_wait(
    rx: &Receiver<EngineEvent>,
    wait: Option<Duration>,
) -> Result<EngineEvent, RecvTimeoutError> {
    match wait {
        Some(w) => rx.recv_timeout(w),
        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
    }
}
