//! Commands typed while no opsgate read the channel (a restart, or a switch of leader):
//! on the first READY, each served channel is read back from the last message handled
//! there (the stored read mark; at most [`LOOK_BACK`] ago), and each command found is
//! answered once with [`ANSWER`]: it is never run late, since whoever typed it may have
//! moved on. Its place is recorded as read (durably, before the answer leaves), so a later
//! start does not answer it again; a message the gateway also delivered is handled by
//! whichever path claims it first (`Shared::claim`), never by both.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ChannelId, GetMessages, Message, MessageId};

use super::events::message_event;
use super::{lock, sync_engine, Shared};
use crate::domain;
use crate::ports::chat::{Origin, Outgoing};
use crate::ports::store::ReadMarks;

pub const ANSWER: &str =
    "opsgate was switching over when this arrived; nothing was done — send it again";
/// How far back a channel is read: older commands are left unanswered.
pub const LOOK_BACK: Duration = Duration::from_secs(10 * 60);
/// Pages of 100 messages read per channel at most.
const MAX_PAGES: usize = 5;
/// Lets the gateway deliver what was typed right after READY first: those are handled,
/// not answered as missed.
const SETTLE: Duration = Duration::from_secs(1);
/// Discord's epoch (2015-01-01) in Unix milliseconds, the zero of snowflake times.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What the gap read-back needs: where each channel was read up to.
#[derive(Default)]
pub(crate) struct Gap {
    /// Taken by the first READY; `None` after (read once per process).
    marks: Option<ReadMarks>,
    /// Messages handed to the engine while the read-back runs, by ID; `None` when none runs.
    claimed: Option<std::collections::HashSet<u64>>,
}

impl Shared {
    /// Where to read each channel back from, on the first READY.
    pub fn read_back_from(&self, marks: ReadMarks) {
        let mut gap = lock(&self.gap);
        gap.marks = Some(marks);
        gap.claimed = Some(Default::default());
    }

    /// Claims message `id` for handling: false if the read-back (or the gateway) already
    /// has it.
    pub fn claim(&self, id: u64) -> bool {
        match lock(&self.gap).claimed.as_mut() {
            Some(claimed) => claimed.insert(id),
            None => true,
        }
    }
}

/// The snowflake of the moment `ms` (Unix milliseconds).
fn snowflake_at(ms: u64) -> u64 {
    ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(marks) = lock(&shared.gap).marks.take() else {
        return;
    };
    tokio::time::sleep(SETTLE).await;
    let floor = snowflake_at(domain::time::now_ms().saturating_sub(LOOK_BACK.as_millis() as u64));
    let served: Vec<domain::ChannelId> = shared.config.policy.channels.values().cloned().collect();
    for channel in served {
        let Some(mark) = marks.get(&channel).and_then(|m| m.parse::<u64>().ok()) else {
            continue;
        };
        let Some(id) = channel.parse::<u64>().ok().filter(|c| *c > 0) else {
            continue;
        };
        let missed = missed(&shared, ChannelId::new(id), mark.max(floor)).await;
        answer(&shared, &channel, missed).await;
    }
    lock(&shared.gap).claimed = None;
}

/// Commands in `channel` after message `after`, oldest first, that nobody handled.
async fn missed(shared: &Shared, channel: ChannelId, after: u64) -> Vec<Message> {
    let mut found: Vec<Message> = Vec::new();
    let mut from = after;
    for _ in 0..MAX_PAGES {
        let page = GetMessages::new()
            .after(MessageId::new(from.max(1)))
            .limit(100);
        let messages = match channel.messages(&shared.http, page).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "cannot read back the channel; commands typed while opsgate was switching over there are not answered");
                break;
            }
        };
        let full = messages.len() == 100;
        from = messages.iter().map(|m| m.id.get()).max().unwrap_or(from);
        found.extend(messages);
        if !full {
            break;
        }
    }
    found.sort_by_key(|m| m.id);
    found.dedup_by_key(|m| m.id);
    found
        .into_iter()
        .filter(|m| !shared.is_me(m.author.id.get()))
        .filter(|m| message_event(m, &shared.config.prefix).is_some())
        .filter(|m| shared.claim(m.id.get()))
        .collect()
}

/// The command as typed, short and without backticks, to say which one is meant.
fn quoted(text: &str) -> String {
    let clean: String = text.trim().chars().filter(|c| *c != '`').take(80).collect();
    clean
}

/// Records each missed command as read, waits until that is durable, then answers each.
async fn answer(shared: &Shared, channel: &domain::ChannelId, missed: Vec<Message>) {
    if missed.is_empty() {
        return;
    }
    let Some(engine) = shared.engine() else {
        return;
    };
    for m in &missed {
        engine.read(None, channel.clone(), m.id.get().to_string().into());
    }
    sync_engine(&engine).await;
    tracing::info!(channel = %channel, count = missed.len(), "answered commands typed while opsgate was switching over");
    for m in &missed {
        let reply = Outgoing::Reply {
            to: Origin::channel(channel.clone()),
            text: format!("{ANSWER} ({}: `{}`)", m.author.name, quoted(&m.content)),
            private: false,
        };
        if shared.out.send(super::sender::Item::Out(reply)).is_err() {
            return;
        }
    }
}
