//! One plain message posted or edited through the send path (`deliver`): the calls the
//! channel, thread and interaction lanes build on.

use serenity::builder::{CreateAllowedMentions, CreateMessage, EditMessage};

use super::deliver::{self, Call, Kind, Refused, Repeat};
use super::render::{self, MESSAGE_LIMIT};
use super::rest::Failure;
use super::Shared;

/// A positive snowflake, or `None` (Discord IDs are never 0; serenity panics on 0).
pub(crate) fn snowflake(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|v| *v > 0)
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
pub(crate) async fn post_one(shared: &Shared, channel: &str, text: &str) -> Option<u64> {
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
