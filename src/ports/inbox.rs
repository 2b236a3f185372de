//! The engine's inbox: what chat adapters, cloud tasks and signals send it, and what the
//! engine tells observers. The driver owns the receiving end.

use std::sync::mpsc::Sender;
use std::time::Duration;

use super::chat::ChatEvent;
use super::cloud::{CloudError, ReconcileOutcome, SubmitOutcome};
use crate::domain::{ChannelId, JobId, MessageId, Person};
use crate::job::JobState;

pub enum EngineEvent {
    Chat(ChatEvent),
    /// A chat message with its place in its channel: its event, if it is one for the
    /// engine, is handled as by `Chat`, and the message is recorded as read in the writes of
    /// the same group (`Writes::read_marks`), so whoever starts next knows where to read the
    /// channel back from.
    Read {
        event: Option<ChatEvent>,
        channel: ChannelId,
        message: MessageId,
    },
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

/// What the cloud tasks report back about a job.
#[derive(Debug)]
pub enum CloudUpdate {
    Submitted(SubmitOutcome),
    Reconciled(ReconcileOutcome),
    /// Progress text changed, or the operation updated its handle.
    Progress {
        progress: Option<String>,
        handle: Option<serde_json::Value>,
    },
    /// The cloud is waiting for a person (e.g. a manual batch confirmation).
    NeedsAttention(String),
    Finished(Result<String, CloudError>),
    /// Watching ended without evidence either way, or polling ran out of time.
    Unknown(String),
    /// The operation could not even be built (missing secret, unknown account).
    Unavailable(String),
}

impl CloudUpdate {
    /// The first answer to a submit or a reconcile: the end of a call in flight.
    pub fn ends_a_call(&self) -> bool {
        matches!(
            self,
            CloudUpdate::Submitted(_) | CloudUpdate::Reconciled(_) | CloudUpdate::Unavailable(_)
        )
    }
}

/// A job awaiting approval and where its message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingApproval {
    pub job: JobId,
    pub channel: ChannelId,
    pub message_id: MessageId,
    /// Who approved it with ✅ (not a button or a command): if their ✅ is gone from the
    /// card, the adapter reports it (`ChatEvent::CheckMarkGone`).
    pub reaction_approvers: Vec<Person>,
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
    pub fn new(tx: Sender<EngineEvent>) -> EngineHandle {
        EngineHandle { tx }
    }

    /// Returns false once the engine has stopped.
    pub fn send(&self, event: EngineEvent) -> bool {
        self.tx.send(event).is_ok()
    }

    pub fn chat(&self, event: ChatEvent) -> bool {
        self.send(EngineEvent::Chat(event))
    }

    /// `event` (if any), and message `message` of `channel` recorded as read with it.
    pub fn read(&self, event: Option<ChatEvent>, channel: ChannelId, message: MessageId) -> bool {
        self.send(EngineEvent::Read {
            event,
            channel,
            message,
        })
    }
}
