//! Output: [`DiscordChat`] queues what the engine asks for and returns at once; a dispatcher
//! task routes each item to a lane, a task that does the network work in order:
//!
//! * one lane per job: post the card (report its ID to the engine, add ✅/❌), then edits,
//!   coalesced to at most one per `edit_interval` and always ending on the latest state;
//! * one lane per channel: replies, notices and incident notifications, in order;
//! * one lane per interaction: the response (or deferral), then follow-ups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ChannelId, InteractionId, MessageId as DiscordMessageId, ReactionType};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    EditInteractionResponse, EditMessage,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::deliver::{self, Call, Kind, Refused, Repeat};
use super::render::{self, APPROVE_EMOJI, DENY_EMOJI, MESSAGE_LIMIT};
use super::rest::{self, Failure};
use super::{lock, votes, Shared};
use crate::domain::MessageId;
use crate::domain::Severity;
use crate::domain::{self, JobId};
use crate::ports::chat::{ChatEvent, ChatOut, FlowOut, JobCard, Outgoing};

/// Whether `key` names an interaction opsgate answers (not a replayed or live reaction's
/// stand-in key).
fn is_live_interaction(key: &str) -> bool {
    key != CATCH_UP && !key.starts_with(votes::REACTION_KEY)
}

/// Replies to events with this interaction key are dropped: they answer reactions replayed
/// after a restart (e.g. "you already approved"), which nobody is waiting for.
pub(crate) const CATCH_UP: &str = "catch-up";

/// How long an incident waits for its job's card to be posted, for the link.
const LINK_WAIT: Duration = Duration::from_secs(10);

// Items live briefly in the queue; boxing the common variant would cost an allocation per
// message for no gain.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    Out(Outgoing),
    /// The engine has handled this interaction's event: answer it if nothing did.
    Complete(String),
    /// A job's card was deleted in chat (MESSAGE_DELETE).
    CardGone {
        job: JobId,
        message: u64,
    },
    /// A typed-confirmation prompt answering an interaction: private, with a "Confirm…"
    /// button that opens the form (`FlowOut::ConfirmPrompt`).
    Prompt {
        to: crate::ports::chat::Origin,
        number: u64,
        text: String,
    },
    /// A line for the thread on a job's card (`FlowOut::ThreadLine`).
    Thread {
        channel: String,
        job: JobId,
        card_message: Option<MessageId>,
        text: String,
    },
}

/// The engine's view of Discord: never blocks.
pub(crate) struct DiscordChat {
    shared: Arc<Shared>,
}

impl DiscordChat {
    pub fn new(shared: Arc<Shared>) -> DiscordChat {
        DiscordChat { shared }
    }
}

impl ChatOut for DiscordChat {
    fn send(&self, out: Outgoing) -> Option<MessageId> {
        if self.shared.out.send(Item::Out(out)).is_err() {
            tracing::warn!("discord output stopped; message dropped");
        }
        None
    }

    fn send_flow(&self, out: FlowOut) -> Option<MessageId> {
        let item = match out {
            FlowOut::ThreadLine {
                channel,
                job,
                card_message,
                text,
            } => Item::Thread {
                channel: channel.to_string(),
                job,
                card_message,
                text,
            },
            FlowOut::ConfirmPrompt {
                to, number, text, ..
            } if to.interaction.as_deref().is_some_and(is_live_interaction) => {
                Item::Prompt { to, number, text }
            }
            other => Item::Out(other.fallback()),
        };
        if self.shared.out.send(item).is_err() {
            tracing::warn!("discord output stopped; message dropped");
        }
        None
    }

    fn last_words(&self, channels: &[domain::ChannelId], text: &str) {
        let shared = &self.shared;
        // The engine's thread is not one of the runtime's, so it may block on it. Every
        // channel's notice shares the one deadline; one not sent by then is given up on
        // (counted and logged).
        self.shared.runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + LAST_WORDS_WAIT;
            for channel in channels {
                say_until(shared, channel, text, Kind::LastWords, deadline).await;
            }
        });
    }
}

/// How long the notice that opsgate is stopping may take to reach Discord.
const LAST_WORDS_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IxKind {
    Slash,
    Button,
}

pub(crate) enum IxOp {
    Reply {
        text: String,
        private: bool,
        /// Buttons under the reply's last part (a confirmation prompt's).
        buttons: Vec<CreateActionRow>,
    },
    /// A job card for this interaction's request is being posted; the outcome follows.
    Posting(JobId, oneshot::Receiver<PostOutcome>),
    /// Acknowledge now if nothing answered yet (a button at once; a slash command when its
    /// 3 s near).
    Defer,
    Complete,
}

/// An interaction waiting for the engine.
pub(crate) struct InteractionEntry {
    pub lane: mpsc::UnboundedSender<IxOp>,
    pub channel: String,
    pub actor_name: String,
}

pub(crate) struct IxTarget {
    pub id: InteractionId,
    pub token: String,
    pub kind: IxKind,
    pub channel: String,
    /// Whether the answer is for the channel (a slash command's deferral must say so).
    pub public: bool,
    /// How old the interaction was when it arrived (from its ID).
    pub age: Duration,
}

/// Registers an interaction under `key` and starts its lane; returns the lane.
pub(crate) fn open_interaction(
    shared: &Arc<Shared>,
    key: &str,
    target: IxTarget,
    actor_name: &str,
) -> mpsc::UnboundedSender<IxOp> {
    let (tx, rx) = mpsc::unbounded_channel();
    lock(&shared.interactions).insert(
        key.to_string(),
        InteractionEntry {
            lane: tx.clone(),
            channel: target.channel.clone(),
            actor_name: actor_name.to_string(),
        },
    );
    shared
        .runtime
        .spawn(run_interaction(shared.clone(), target, rx));
    tx
}

/// Whether a card went out: the requester hears "Posted" only after it did.
pub(crate) type PostOutcome = Result<(), Failure>;

/// How long an interaction's answer waits for its card's post (retries included).
const POST_WAIT: Duration = Duration::from_secs(45);

enum JobOp {
    Post {
        card: JobCard,
        mention_roles: Vec<domain::RoleId>,
        /// Interactions waiting to hear how the post went.
        reports: Vec<oneshot::Sender<PostOutcome>>,
    },
    Update(JobCard),
    /// A line for the thread on the card, after the card (and what came before) went out.
    Thread(String),
    /// This message, if it is the card, is gone: the next `Post` posts it again.
    Lost(MessageId),
}

enum IdSource {
    Known(MessageId),
    Wait(watch::Receiver<Option<MessageId>>),
}

enum ChanOp {
    Text(String, Kind),
    Incident {
        job: JobId,
        severity: Severity,
        text: String,
        job_channel: domain::ChannelId,
        id: Option<IdSource>,
    },
}

struct JobLane {
    tx: mpsc::UnboundedSender<JobOp>,
    ids: watch::Receiver<Option<MessageId>>,
}

/// A positive snowflake, or `None` (Discord IDs are never 0; serenity panics on 0).
pub(crate) fn snowflake(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|v| *v > 0)
}

/// Routes queued items to lanes. Runs until the [`DiscordChat`] and every handler are gone.
pub(crate) async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut jobs: HashMap<JobId, JobLane> = HashMap::new();
    let mut channels: HashMap<String, mpsc::UnboundedSender<ChanOp>> = HashMap::new();
    while let Some(item) = rx.recv().await {
        match item {
            Item::Out(Outgoing::Card {
                channel,
                card,
                mention_roles,
            }) => {
                let mut reports = Vec::new();
                for entry in lock(&shared.interactions).values() {
                    if entry.channel == channel.as_str() && entry.actor_name == card.requester {
                        let (tx, rx) = oneshot::channel();
                        if entry.lane.send(IxOp::Posting(card.job, rx)).is_ok() {
                            reports.push(tx);
                        }
                    }
                }
                let lane = job_lane(&shared, &mut jobs, card.job, &channel, None);
                let _ = lane.send(JobOp::Post {
                    card,
                    mention_roles,
                    reports,
                });
            }
            Item::Out(Outgoing::UpdateCard {
                channel,
                message_id,
                card,
            }) => {
                let (job, last) = (card.job, card.state.is_final());
                if let Some(m) = message_id.as_deref().and_then(snowflake) {
                    if card.is_open() {
                        shared.card_opened(m, job);
                    } else {
                        shared.card_closed(m);
                    }
                    if !last {
                        shared.card_live(m, job);
                    }
                }
                if last {
                    shared.card_finished(job);
                }
                let lane = job_lane(&shared, &mut jobs, job, &channel, message_id);
                let _ = lane.send(JobOp::Update(card));
                if last {
                    // The lane flushes its last edit and ends.
                    jobs.remove(&job);
                }
            }
            Item::Out(Outgoing::Reply { to, text, private }) => match to.interaction.clone() {
                Some(key) if key == CATCH_UP => {
                    tracing::debug!(%text, "reply to a replayed reaction dropped");
                }
                Some(key) if key.starts_with(votes::REACTION_KEY) => {
                    if shared.refusal_allowed(&key) {
                        channel_lane(&shared, &mut channels, to.answer_channel())
                            .send(ChanOp::Text(text, Kind::Reply))
                            .ok();
                    } else {
                        shared.metrics.discord.dropped("throttled_refusal");
                        tracing::debug!(%text, "repeated refusal for a reaction not posted");
                    }
                }
                Some(key) => {
                    let lane = lock(&shared.interactions).get(&key).map(|e| e.lane.clone());
                    match lane {
                        Some(lane) => {
                            let _ = lane.send(IxOp::Reply {
                                text,
                                private,
                                buttons: Vec::new(),
                            });
                        }
                        None if !private => {
                            channel_lane(&shared, &mut channels, to.answer_channel())
                                .send(ChanOp::Text(text, Kind::Reply))
                                .ok();
                        }
                        None => {
                            tracing::debug!(%text, "private reply to a finished interaction dropped")
                        }
                    }
                }
                None => {
                    channel_lane(&shared, &mut channels, to.answer_channel())
                        .send(ChanOp::Text(text, Kind::Reply))
                        .ok();
                }
            },
            Item::Out(Outgoing::Notice { channel, text, .. }) => {
                channel_lane(&shared, &mut channels, &channel)
                    .send(ChanOp::Text(text, Kind::Notice))
                    .ok();
            }
            Item::Out(Outgoing::Incident {
                channel,
                job,
                severity,
                text,
                job_channel,
                message_id,
            }) => {
                let id = match message_id {
                    Some(m) => Some(IdSource::Known(m)),
                    None => jobs.get(&job).map(|l| IdSource::Wait(l.ids.clone())),
                };
                channel_lane(&shared, &mut channels, &channel)
                    .send(ChanOp::Incident {
                        job,
                        severity,
                        text,
                        job_channel,
                        id,
                    })
                    .ok();
            }
            Item::Complete(key) => {
                if let Some(entry) = lock(&shared.interactions).remove(&key) {
                    let _ = entry.lane.send(IxOp::Complete);
                }
            }
            Item::Prompt { to, number, text } => {
                let key = to.interaction.unwrap_or_default();
                match lock(&shared.interactions).get(&key) {
                    Some(entry) => {
                        let _ = entry.lane.send(IxOp::Reply {
                            text,
                            private: true,
                            buttons: vec![render::confirm_button(number)],
                        });
                    }
                    None => {
                        tracing::debug!(%text, "confirmation prompt for a finished interaction dropped")
                    }
                }
            }
            Item::Thread {
                channel,
                job,
                card_message,
                text,
            } => match jobs.get(&job).filter(|l| !l.tx.is_closed()) {
                Some(lane) => {
                    let _ = lane.tx.send(JobOp::Thread(text));
                }
                None => {
                    // A finished job's lane is gone (a review of it, say): this one line
                    // needs no lane of its own.
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let name = format!("job {job}");
                        super::threads::line(
                            &shared,
                            &channel,
                            card_message.as_deref(),
                            job,
                            &name,
                            &text,
                        )
                        .await;
                    });
                }
            },
            Item::CardGone { job, message } => {
                // The lane forgets the card before the engine can ask for it again.
                if let Some(lane) = jobs.get(&job) {
                    let _ = lane.tx.send(JobOp::Lost(message.to_string().into()));
                }
                shared.report_lost(job, message);
            }
        }
    }
}

fn job_lane(
    shared: &Arc<Shared>,
    jobs: &mut HashMap<JobId, JobLane>,
    job: JobId,
    channel: &str,
    message_id: Option<MessageId>,
) -> mpsc::UnboundedSender<JobOp> {
    if let Some(lane) = jobs.get(&job).filter(|l| !l.tx.is_closed()) {
        return lane.tx.clone();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (ids_tx, ids_rx) = watch::channel(message_id.clone());
    shared.runtime.spawn(run_job(
        shared.clone(),
        job,
        channel.to_string(),
        message_id,
        ids_tx,
        rx,
    ));
    jobs.insert(
        job,
        JobLane {
            tx: tx.clone(),
            ids: ids_rx,
        },
    );
    tx
}

fn channel_lane(
    shared: &Arc<Shared>,
    channels: &mut HashMap<String, mpsc::UnboundedSender<ChanOp>>,
    channel: &str,
) -> mpsc::UnboundedSender<ChanOp> {
    if let Some(tx) = channels.get(channel).filter(|t| !t.is_closed()) {
        return tx.clone();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    shared
        .runtime
        .spawn(run_channel(shared.clone(), channel.to_string(), rx));
    channels.insert(channel.to_string(), tx.clone());
    tx
}

/// A job's message: post, report the ID, then coalesced edits.
async fn run_job(
    shared: Arc<Shared>,
    job: JobId,
    channel: String,
    mut message: Option<MessageId>,
    ids: watch::Sender<Option<MessageId>>,
    mut rx: mpsc::UnboundedReceiver<JobOp>,
) {
    let interval = shared.config.discord.edit_interval;
    let mut latest: Option<JobCard> = None;
    let mut last_write: Option<Instant> = None;
    // Set while the card is lost (deleted in chat) and until it is posted again.
    let mut lost = false;
    // The thread's name, from the card: `job 7 · restart ddm orders-db hard`.
    let mut thread_name = format!("job {job}");
    loop {
        let due = match (&latest, &message) {
            (Some(_), Some(_)) => Some(last_write.map_or_else(Instant::now, |t| t + interval)),
            _ => None,
        };
        tokio::select! {
            op = rx.recv() => match op {
                Some(JobOp::Post { card, mention_roles, reports }) => {
                    if message.is_some() {
                        latest = Some(card);
                        for r in reports {
                            let _ = r.send(Ok(()));
                        }
                        continue;
                    }
                    // Edits queued before this post are older than the card it posts.
                    latest = None;
                    thread_name = format!("job {job} · {}", card.action);
                    let posted = post_card(&shared, &channel, &card, &mention_roles).await;
                    if let Err(Failure::Permission) = posted {
                        if reports.is_empty() {
                            tell_incidents(&shared, &card, &channel).await;
                        }
                    }
                    for r in reports {
                        let _ = r.send(posted.as_ref().map(|_| ()).map_err(|f| *f));
                    }
                    if let Ok(id) = posted {
                        last_write = Some(Instant::now());
                        message = Some(id.clone());
                        ids.send_replace(Some(id.clone()));
                        if let Some(m) = snowflake(&id) {
                            if card.is_open() {
                                shared.card_opened(m, job);
                            }
                            if !card.state.is_final() {
                                shared.card_live(m, job);
                            }
                        }
                        shared.feed(ChatEvent::MessagePosted { job, message_id: id.clone() });
                        if card.is_open() {
                            add_votes(&shared, &channel, &id).await;
                        }
                        if std::mem::take(&mut lost) {
                            super::lost::relink(&shared, job, &channel, &id).await;
                        }
                    }
                }
                Some(JobOp::Update(card)) => latest = Some(card),
                Some(JobOp::Thread(text)) => {
                    super::threads::line(&shared, &channel, message.as_deref(), job, &thread_name, &text)
                        .await;
                }
                Some(JobOp::Lost(gone)) => {
                    if message.as_deref() == Some(gone.as_str()) {
                        message = None;
                        ids.send_replace(None);
                        lost = true;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                if let (Some(card), Some(id)) = (latest.take(), message.clone()) {
                    let edited = edit_card(&shared, &channel, &id, &card).await;
                    last_write = Some(Instant::now());
                    if edited == Edited::Gone {
                        // Deleted in chat: wait for the engine to post it again.
                        message = None;
                        ids.send_replace(None);
                        lost = true;
                        if let Some(m) = snowflake(&id) {
                            shared.report_lost(job, m);
                        }
                    }
                }
            }
        }
    }
    if let (Some(card), Some(id)) = (latest.take(), message.as_deref()) {
        if let Some(t) = last_write {
            tokio::time::sleep_until(t + interval).await;
        }
        let _ = edit_card(&shared, &channel, id, &card).await;
    }
}

async fn post_card(
    shared: &Shared,
    channel: &str,
    card: &JobCard,
    mention_roles: &[domain::RoleId],
) -> Result<MessageId, Failure> {
    // Nothing the bot posts pings anyone unless the config asks for it.
    let mention_roles: Vec<u64> = if shared.config.discord.mention_approvers {
        mention_roles.iter().map(|r| r.0).collect()
    } else {
        Vec::new()
    };
    let mention_roles = mention_roles.as_slice();
    let Some(ch) = snowflake(channel) else {
        tracing::warn!(
            channel,
            job = card.job.0,
            "not a Discord channel ID; card not posted"
        );
        return Err(Failure::NotFound);
    };
    let prefix = &shared.config.prefix;
    let mut msg = CreateMessage::new()
        .embed(render::card_embed(card, prefix))
        .components(render::card_buttons(card))
        .allowed_mentions(render::card_mentions(card, mention_roles));
    if let Some(content) = render::card_content(card, mention_roles) {
        msg = msg.content(content);
    }
    // One nonce for every try of this post: if a try reached Discord but its answer was lost
    // (timeout, reset), Discord returns that message instead of posting a second card.
    match deliver::post(shared, ch, msg, "post_card", shared.send_deadline()).await {
        Ok(id) => Ok(id.to_string().into()),
        Err(why) => {
            deliver::gave_up(shared, Kind::Card, channel, &why);
            Err(why.failure)
        }
    }
}

/// The words for a card that could not be posted in `channel`.
fn post_failure_text(job: JobId, channel: &str, failure: Failure, prefix: &str) -> String {
    let why = match failure {
        Failure::Permission => "opsgate may not post there (it needs View Channel, Send Messages, Send Messages in Threads and Embed Links)",
        Failure::NotFound => "that channel is gone or opsgate cannot see it",
        _ => "Discord did not take it",
    };
    format!(
        "⚠️ Job {job}'s card could not be posted in <#{channel}>: {why}. The request is recorded and waits for approval; approvers can use {prefix}approve {job} or /approve."
    )
}

/// A card refused for permissions with nobody waiting on an interaction: say so in the
/// incident channel, if there is one.
async fn tell_incidents(shared: &Shared, card: &JobCard, channel: &str) {
    let text = post_failure_text(
        card.job,
        channel,
        Failure::Permission,
        &shared.config.prefix,
    );
    match shared.config.incidents.default.as_deref() {
        Some(incidents) if incidents != channel => {
            say(shared, incidents, &text, Kind::Incident).await;
        }
        _ => tracing::error!(job = card.job.0, channel, "the job's card could not be posted (permissions) and there is no other channel to say so"),
    }
}

async fn add_votes(shared: &Shared, channel: &str, id: &str) {
    let (Some(ch), Some(m)) = (snowflake(channel), snowflake(id)) else {
        return;
    };
    for emoji in [APPROVE_EMOJI, DENY_EMOJI] {
        let r = ReactionType::Unicode(emoji.to_string());
        if let Err(e) = shared
            .http
            .create_reaction(ChannelId::new(ch), DiscordMessageId::new(m), &r)
            .await
        {
            tracing::warn!(error = %e, "could not add {emoji} to the job's message (Add Reactions permission?)");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Edited {
    Done,
    /// Discord has no such message (10008): someone deleted the card.
    Gone,
    Failed,
}

/// Edits the card.
async fn edit_card(shared: &Shared, channel: &str, id: &str, card: &JobCard) -> Edited {
    let (Some(ch), Some(m)) = (snowflake(channel), snowflake(id)) else {
        return Edited::Done;
    };
    let edit = EditMessage::new()
        .embed(render::card_embed(card, &shared.config.prefix))
        .components(render::card_buttons(card))
        .allowed_mentions(CreateAllowedMentions::new());
    match edit_message(shared, ch, m, &edit, "edit_card").await {
        Ok(()) => Edited::Done,
        Err(why) if why.code == Some(rest::UNKNOWN_MESSAGE) => Edited::Gone,
        Err(why) => {
            tracing::warn!(job = card.job.0, error = %why, "could not edit the job's message");
            Edited::Failed
        }
    }
}

/// Edits message `message` in `channel` (an edit may be repeated: retried like a message).
pub(crate) async fn edit_message(
    shared: &Shared,
    channel: u64,
    message: u64,
    edit: &EditMessage,
    label: &'static str,
) -> Result<(), Refused> {
    let body = serde_json::to_value(edit).ok();
    let call = Call {
        method: reqwest::Method::PATCH,
        path: format!("/channels/{channel}/messages/{message}"),
        bucket: format!("edits:{channel}"),
        body,
        label,
        repeat: Repeat::Always,
    };
    deliver::call(shared, &call, shared.send_deadline())
        .await
        .map(|_| ())
}

/// Posts `text` (one message: incident texts are cut to fit) and returns its ID.
async fn post_one(shared: &Shared, channel: &str, text: &str) -> Option<u64> {
    let msg = CreateMessage::new()
        .content(render::truncate(text, MESSAGE_LIMIT))
        .allowed_mentions(CreateAllowedMentions::new());
    let posted = match snowflake(channel) {
        Some(ch) => deliver::post(shared, ch, msg, "message", shared.send_deadline()).await,
        None => Err(not_a_channel()),
    };
    match posted {
        Ok(id) => Some(id),
        Err(why) => {
            deliver::gave_up(shared, Kind::Incident, channel, &why);
            None
        }
    }
}

fn not_a_channel() -> Refused {
    Refused::new(Failure::NotFound, "not a Discord channel ID", 0)
}

/// Posts `text` in `channel` (split to fit) within the send budget; false when Discord did
/// not take it (then it is counted and logged as a dropped `kind`).
pub(crate) async fn say(shared: &Shared, channel: &str, text: &str, kind: Kind) -> bool {
    say_until(shared, channel, text, kind, shared.send_deadline()).await
}

/// [`say`], given up on at `deadline`.
pub(crate) async fn say_until(
    shared: &Shared,
    channel: &str,
    text: &str,
    kind: Kind,
    deadline: tokio::time::Instant,
) -> bool {
    match post_text(shared, channel, text, "message", deadline).await {
        Ok(()) => true,
        Err(why) => {
            deliver::gave_up(shared, kind, channel, &why);
            false
        }
    }
}

/// Posts `text` in `channel` (split to fit, each part with its own nonce); failed tries are
/// counted under `label`. The caller decides what a failure means.
pub(crate) async fn post_text(
    shared: &Shared,
    channel: &str,
    text: &str,
    label: &'static str,
    deadline: tokio::time::Instant,
) -> Result<(), Refused> {
    let Some(ch) = snowflake(channel) else {
        return Err(not_a_channel());
    };
    for part in render::split_message(text, MESSAGE_LIMIT) {
        if part.trim().is_empty() {
            continue;
        }
        let msg = CreateMessage::new()
            .content(part)
            .allowed_mentions(CreateAllowedMentions::new());
        deliver::post(shared, ch, msg, label, deadline).await?;
    }
    Ok(())
}

async fn run_channel(
    shared: Arc<Shared>,
    channel: String,
    mut rx: mpsc::UnboundedReceiver<ChanOp>,
) {
    while let Some(op) = rx.recv().await {
        match op {
            ChanOp::Text(text, kind) => {
                say(&shared, &channel, &text, kind).await;
            }
            ChanOp::Incident {
                job,
                severity,
                text,
                job_channel,
                id,
            } => {
                let id = match id {
                    Some(IdSource::Known(id)) => Some(id),
                    Some(IdSource::Wait(mut rx)) => {
                        match tokio::time::timeout(LINK_WAIT, rx.wait_for(|v| v.is_some())).await {
                            Ok(Ok(v)) => v.clone(),
                            _ => None,
                        }
                    }
                    None => None,
                };
                let link = match id {
                    Some(id) => shared
                        .guild_of(&job_channel)
                        .await
                        .map(|g| render::message_link(g, &job_channel, &id)),
                    None => None,
                };
                let body =
                    render::incident_text(severity, &text, job, link.as_deref(), &job_channel);
                let posted = post_one(&shared, &channel, &body).await;
                if let (Some(message), Some(channel), true) =
                    (posted, snowflake(&channel), link.is_some())
                {
                    // Kept so the link can follow the card if it is deleted and reposted.
                    let post = super::lost::IncidentPost {
                        channel,
                        message,
                        severity,
                        text,
                        job_channel,
                    };
                    shared.incident_linked(job, post);
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IxState {
    /// Nothing sent yet.
    Fresh,
    /// Acknowledged by a deferral; a slash command's "thinking" message waits for its text.
    Deferred,
    /// The first answer is out; more text goes as follow-ups.
    Responded,
    /// Discord no longer knows the interaction (10062): nothing more can go to it.
    Expired,
}

/// What a failed first answer means for the interaction.
fn after_ack_error(shared: &Shared, e: &Refused, acked: IxState) -> (IxState, bool) {
    match e.code {
        // An earlier try went through and only its answer was lost: acknowledged.
        Some(rest::ALREADY_ACKNOWLEDGED) => (acked, true),
        Some(rest::UNKNOWN_INTERACTION) => {
            shared.metrics.discord.late_interaction("expired_on_answer");
            tracing::warn!("Discord no longer knows an interaction (its 3 s passed before opsgate answered); the answer is not sent");
            (IxState::Expired, true)
        }
        _ => (acked, false),
    }
}

/// Discord's first answer to `t` (a message, a deferral, an acknowledgement), with what an
/// error means: returns the state afterwards and the error that still needs reporting.
async fn first_answer(
    shared: &Shared,
    t: &IxTarget,
    response: CreateInteractionResponse,
    acked: IxState,
) -> (IxState, Result<(), Refused>) {
    match callback(shared, t.id, &t.token, &response).await {
        Ok(()) => (acked, Ok(())),
        Err(e) => match after_ack_error(shared, &e, acked) {
            (state, true) => (state, Ok(())),
            (state, false) => (state, Err(e)),
        },
    }
}

/// An interaction's first answer. A repeat after a lost answer is harmless: Discord refuses
/// it with 40060 (already acknowledged), which the caller takes as done.
async fn callback(
    shared: &Shared,
    id: InteractionId,
    token: &str,
    response: &CreateInteractionResponse,
) -> Result<(), Refused> {
    let call = Call {
        method: reqwest::Method::POST,
        path: format!("/interactions/{id}/{token}/callback"),
        bucket: format!("interaction:{id}"),
        body: serde_json::to_value(response).ok(),
        label: "interaction",
        repeat: Repeat::Always,
    };
    deliver::call(shared, &call, shared.send_deadline())
        .await
        .map(|_| ())
}

/// A call through interaction `t`'s token (`/webhooks/{application}/{token}...`).
fn webhook_call(
    shared: &Shared,
    t: &IxTarget,
    method: reqwest::Method,
    tail: &str,
    body: Option<serde_json::Value>,
    repeat: Repeat,
) -> Result<Call, Refused> {
    let Some(app) = shared.http.application_id() else {
        let why = "the application ID is not known yet";
        return Err(Refused::new(Failure::Other, why, 0));
    };
    Ok(Call {
        method,
        path: format!("/webhooks/{app}/{}{tail}", t.token),
        bucket: format!("webhook:{}", t.id),
        body,
        label: "interaction",
        repeat,
    })
}

fn message(text: &str, private: bool) -> CreateInteractionResponseMessage {
    CreateInteractionResponseMessage::new()
        .content(text)
        .ephemeral(private)
        .allowed_mentions(CreateAllowedMentions::new())
}

/// One message of a reply, with the buttons under it (if any).
struct Part<'a> {
    text: &'a str,
    private: bool,
    rows: Vec<CreateActionRow>,
}

/// A follow-up message. Discord has no nonce for these, so one is repeated only when
/// Discord cannot have taken it (429, 502, 503, no connection): never posted twice.
async fn follow_up(shared: &Shared, t: &IxTarget, part: Part<'_>) -> Result<(), Refused> {
    let body = CreateInteractionResponseFollowup::new()
        .content(part.text)
        .ephemeral(part.private)
        .components(part.rows)
        .allowed_mentions(CreateAllowedMentions::new());
    let call = webhook_call(
        shared,
        t,
        reqwest::Method::POST,
        "",
        serde_json::to_value(&body).ok(),
        Repeat::IfNotTaken,
    )?;
    deliver::call(shared, &call, shared.send_deadline())
        .await
        .map(|_| ())
}

async fn edit_original(
    shared: &Shared,
    t: &IxTarget,
    text: &str,
    rows: Vec<CreateActionRow>,
) -> Result<(), Refused> {
    let mut edit = EditInteractionResponse::new()
        .content(text)
        .allowed_mentions(CreateAllowedMentions::new());
    if !rows.is_empty() {
        edit = edit.components(rows);
    }
    let call = webhook_call(
        shared,
        t,
        reqwest::Method::PATCH,
        "/messages/@original",
        serde_json::to_value(&edit).ok(),
        Repeat::Always,
    )?;
    deliver::call(shared, &call, shared.send_deadline())
        .await
        .map(|_| ())
}

/// Sends one part of a reply to `t` given what was sent before; returns the new state.
async fn reply_part(
    shared: &Shared,
    t: &IxTarget,
    state: IxState,
    part: Part<'_>,
) -> (IxState, Result<(), Refused>) {
    let private = part.private;
    match state {
        IxState::Fresh => {
            let response = CreateInteractionResponse::Message(
                message(part.text, private).components(part.rows),
            );
            first_answer(shared, t, response, IxState::Responded).await
        }
        IxState::Deferred if t.kind == IxKind::Slash && private != t.public => (
            IxState::Responded,
            edit_original(shared, t, part.text, part.rows).await,
        ),
        IxState::Deferred if t.kind == IxKind::Slash => {
            // Deferred with the other visibility (the answer is not the usual one for this
            // command): the "thinking" message cannot change it, so it goes and a follow-up
            // with the right visibility takes its place.
            if let Err(e) = shared
                .http
                .delete_original_interaction_response(&t.token)
                .await
            {
                tracing::debug!(error = %e, "could not remove a deferred answer");
            }
            (IxState::Responded, follow_up(shared, t, part).await)
        }
        IxState::Deferred | IxState::Responded => {
            (IxState::Responded, follow_up(shared, t, part).await)
        }
        IxState::Expired => {
            // The interaction cannot carry it; public text still reaches the channel.
            if private {
                tracing::debug!(
                    text = part.text,
                    "private answer to an expired interaction dropped"
                );
            } else {
                say(shared, &t.channel, part.text, Kind::Interaction).await;
            }
            (IxState::Expired, Ok(()))
        }
    }
}

async fn run_interaction(shared: Arc<Shared>, t: IxTarget, mut rx: mpsc::UnboundedReceiver<IxOp>) {
    let mut state = IxState::Fresh;
    let mut replied = false;
    let mut posting: Vec<(JobId, oneshot::Receiver<PostOutcome>)> = Vec::new();
    while let Some(op) = rx.recv().await {
        let result = match op {
            IxOp::Posting(job, outcome) => {
                posting.push((job, outcome));
                Ok(())
            }
            IxOp::Reply {
                text,
                private,
                mut buttons,
            } => {
                replied = true;
                let mut result = Ok(());
                let parts = render::split_message(&text, MESSAGE_LIMIT);
                let last = parts.len().saturating_sub(1);
                for (n, part) in parts.into_iter().enumerate() {
                    let rows = if n == last {
                        std::mem::take(&mut buttons)
                    } else {
                        Vec::new()
                    };
                    let reply = Part {
                        text: &part,
                        private,
                        rows,
                    };
                    let (next, sent) = reply_part(&shared, &t, state, reply).await;
                    state = next;
                    result = sent;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            IxOp::Defer if state == IxState::Fresh => {
                let (next, result) =
                    first_answer(&shared, &t, deferral(&t), IxState::Deferred).await;
                state = next;
                result
            }
            IxOp::Defer => Ok(()),
            IxOp::Complete => {
                let result = if replied || state == IxState::Expired {
                    Ok(())
                } else {
                    complete(&shared, &t, &mut state, &mut posting).await
                };
                if let Err(e) = result {
                    deliver::gave_up(&shared, Kind::Interaction, &t.channel, &e);
                }
                break;
            }
        };
        if let Err(e) = result {
            deliver::gave_up(&shared, Kind::Interaction, &t.channel, &e);
        }
    }
}

/// The engine acted on the interaction's event without a reply: say how the cards it asked
/// for were posted (or just "Done."), or for a button, acknowledge it if nothing did.
async fn complete(
    shared: &Shared,
    t: &IxTarget,
    state: &mut IxState,
    posting: &mut Vec<(JobId, oneshot::Receiver<PostOutcome>)>,
) -> Result<(), Refused> {
    if *state == IxState::Fresh && !posting.is_empty() {
        // The post may take a while (retries): keep the interaction alive.
        let (next, result) = first_answer(shared, t, deferral(t), IxState::Deferred).await;
        *state = next;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not defer an interaction");
        }
    }
    let mut posted: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (job, outcome) in posting.drain(..) {
        match tokio::time::timeout(POST_WAIT, outcome).await {
            Ok(Ok(Ok(()))) => posted.push(job.to_string()),
            Ok(Ok(Err(f))) => {
                failed.push(post_failure_text(job, &t.channel, f, &shared.config.prefix))
            }
            _ => failed.push(format!(
                "Job {job}'s card is not posted yet; check <#{}> in a moment.",
                t.channel
            )),
        }
    }
    let mut lines = failed;
    if !posted.is_empty() {
        lines.insert(
            0,
            format!(
                "Posted job {} in <#{}>: approve or deny it there.",
                posted.join(", "),
                t.channel
            ),
        );
    }
    let summary = if lines.is_empty() {
        "Done.".to_string()
    } else {
        lines.join("\n")
    };
    match (*state, t.kind) {
        (IxState::Fresh, IxKind::Slash) => {
            let response = CreateInteractionResponse::Message(message(&summary, true));
            let (next, result) = first_answer(shared, t, response, IxState::Responded).await;
            *state = next;
            result
        }
        (IxState::Fresh, IxKind::Button) => {
            let response = CreateInteractionResponse::Acknowledge;
            let (next, result) = first_answer(shared, t, response, IxState::Deferred).await;
            *state = next;
            result
        }
        (IxState::Deferred, IxKind::Slash) => edit_original(shared, t, &summary, Vec::new()).await,
        _ => Ok(()),
    }
}

/// The deferral for `t`: a button's is a deferred update (nothing shown; the card's edit
/// shows the vote), a slash command's a "thinking" message with its answer's visibility.
fn deferral(t: &IxTarget) -> CreateInteractionResponse {
    match t.kind {
        IxKind::Slash => CreateInteractionResponse::Defer(
            CreateInteractionResponseMessage::new()
                .ephemeral(!t.public)
                .allowed_mentions(CreateAllowedMentions::new()),
        ),
        IxKind::Button => CreateInteractionResponse::Acknowledge,
    }
}

/// Answers an interaction at once with an ephemeral message (errors before the engine).
pub(crate) async fn answer_now(
    shared: &Shared,
    id: InteractionId,
    token: &str,
    channel: &str,
    text: &str,
) {
    let msg = CreateInteractionResponseMessage::new()
        .content(render::truncate(text, MESSAGE_LIMIT))
        .ephemeral(true)
        .allowed_mentions(CreateAllowedMentions::new());
    let response = CreateInteractionResponse::Message(msg);
    match callback(shared, id, token, &response).await {
        Ok(()) => {}
        Err(e) if e.code == Some(rest::ALREADY_ACKNOWLEDGED) => {}
        Err(e) => deliver::gave_up(shared, Kind::Interaction, channel, &e),
    }
}
