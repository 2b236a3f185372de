//! A thread per job: the job's thread lines go to a thread on its card, made the first time
//! one is needed (`POST /channels/{channel}/messages/{card}/threads`). Where Discord will not
//! make it (no Create Public Threads permission, the card not posted) or will not take a
//! line, the line goes to the channel as `[job 7] ...`, and the failure is counted under
//! `opsgate_discord_call_failures_total{call="create_thread"|"thread_message"}`.

use serenity::all::{AutoArchiveDuration, ChannelId, MessageId as DiscordMessageId};
use serenity::builder::CreateThread;

use super::deliver::Kind;
use super::messages::{post_text, say, snowflake};
use super::render::truncate;
use super::rest::{self, Failure};
use super::{lock, Shared};
use crate::domain::JobId;

/// Discord: "A thread has already been created for this message".
const THREAD_EXISTS: isize = 160004;
/// Discord's limit on a thread's name.
const NAME_LIMIT: usize = 100;

/// Posts `text` in the thread on `card` (in `channel`), making the thread if there is none
/// yet; in the channel when that cannot be done.
pub(crate) async fn line(
    shared: &Shared,
    channel: &str,
    card: Option<&str>,
    job: JobId,
    name: &str,
    text: &str,
) {
    if let Some(thread) = match card.and_then(snowflake) {
        Some(card) => thread_on(shared, channel, card, name).await,
        None => None,
    } {
        // Failed tries count as `thread_message` failures; the line then goes to the channel.
        let deadline = shared.send_deadline();
        match post_text(
            shared,
            &thread.to_string(),
            text,
            "thread_message",
            deadline,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(channel, thread, error = %e, "the thread did not take the job's line; it goes to the channel")
            }
        }
    }
    say(
        shared,
        channel,
        &format!("[job {job}] {text}"),
        Kind::ThreadLine,
    )
    .await;
}

/// The thread on card message `card`: known, made now, or `None`.
async fn thread_on(shared: &Shared, channel: &str, card: u64, name: &str) -> Option<u64> {
    if let Some(known) = lock(&shared.state).threads.get(&card) {
        return *known;
    }
    let parent = snowflake(channel)?;
    let builder = CreateThread::new(truncate(name, NAME_LIMIT))
        .auto_archive_duration(AutoArchiveDuration::OneDay);
    let made = ChannelId::new(parent)
        .create_thread_from_message(&*shared.http, DiscordMessageId::new(card), builder)
        .await;
    let thread = match made {
        Ok(t) => Some(t.id.get()),
        // Made before (by an earlier run): a thread on a message has the message's ID.
        Err(e) if rest::code_of(&e) == Some(THREAD_EXISTS) => Some(card),
        Err(e) => {
            let failure = Failure::of(&e);
            shared.call_failed("create_thread", failure);
            tracing::warn!(channel, card, error = %e, "could not make the job's thread (Create Public Threads permission?); its lines go to the channel");
            if failure.transient() {
                // Not remembered: the next line tries again.
                return None;
            }
            None
        }
    };
    // Remembered either way: a refusal for good (permissions) is not asked again per line.
    lock(&shared.state).threads.insert(card, thread);
    if let Some(t) = thread {
        // Commands typed in the thread follow the channel's rules.
        shared.learn_parent(t, Some(parent));
    }
    thread
}
