//! Output: [`DiscordChat`] queues what the engine asks for and returns at once; a dispatcher
//! task routes each item to a lane, a task that does the network work in order:
//!
//! * one lane per job: post the card (report its ID to the engine, add ✅/❌), then edits,
//!   coalesced to at most one per `edit_interval` and always ending on the latest state;
//! * one lane per channel: replies, notices and incident notifications, in order;
//! * one lane per interaction (`answers.rs`): the response (or deferral), then follow-ups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ChannelId, MessageId as DiscordMessageId, ReactionType};
use serenity::builder::{CreateAllowedMentions, CreateMessage, EditMessage};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::answers::{IxOp, PostOutcome};
use super::deliver::{self, Kind};
use super::messages::{edit_message, post_one, say, say_until, snowflake};
use super::render::{self, post_failure_text, APPROVE_EMOJI, DENY_EMOJI};
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
