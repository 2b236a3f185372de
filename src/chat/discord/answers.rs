//! One lane per interaction: its first answer (a message, a deferral or an acknowledgement)
//! within Discord's 3 s, then follow-ups; the "Posted job N" summary once the engine is done
//! with its event.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::InteractionId;
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse,
};
use tokio::sync::{mpsc, oneshot};

use super::deliver::{self, Call, Kind, Refused, Repeat};
use super::messages::say;
use super::render::{self, post_failure_text, MESSAGE_LIMIT};
use super::rest::{self, Failure};
use super::{lock, Shared};
use crate::domain::JobId;

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
