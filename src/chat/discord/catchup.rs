//! Approvals given while the bot was away: on every READY, read the ✅/❌ reactions on each
//! pending job's message and feed them to the engine as reactions. The engine applies role
//! checks, self-approval, "counts once" and expiry, as for live reactions; its replies to
//! these replays are dropped (nobody is waiting for them). An approver the engine lists as
//! having approved with ✅ whose ✅ is no longer there (in a list read completely) is
//! reported as `CheckMarkGone`; a card that no longer exists (10008) is reported lost.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ChannelId, MessageId, ReactionType, User, UserId};

use super::messages::snowflake;
use super::render::{APPROVE_EMOJI, DENY_EMOJI};
use super::sender::CATCH_UP;
use super::Shared;
use crate::domain::Actor;
use crate::ports::chat::{ChatEvent, Origin};
use crate::ports::inbox::EngineEvent;

const PAGE: u8 = 100;
const MAX_PAGES: usize = 10;

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(engine) = shared.engine() else {
        return;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if !engine.send(EngineEvent::PendingApprovals(tx)) {
        return;
    }
    let pending = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(p)) => p,
        _ => {
            tracing::warn!("the engine did not list pending approvals; reactions given while offline are not applied");
            return;
        }
    };
    for p in &pending {
        if let Some(m) = snowflake(&p.message_id) {
            shared.card_opened(m, p.job);
            shared.card_live(m, p.job);
        }
    }
    shared.cards_loaded();
    if !pending.is_empty() {
        tracing::info!(
            count = pending.len(),
            "reading reactions on pending requests"
        );
    }
    for p in pending {
        let (Some(channel), Some(message)) = (snowflake(&p.channel), snowflake(&p.message_id))
        else {
            continue;
        };
        let Some(guild) = shared.guild_of(&p.channel).await else {
            tracing::warn!(
                job = p.job.0,
                "cannot tell the guild of the job's channel; its reactions are not read"
            );
            continue;
        };
        // Denials first: a ❌ given while offline must not lose to a ✅ replayed before it.
        let mut check_marks: Option<Vec<u64>> = None;
        for emoji in [DENY_EMOJI, APPROVE_EMOJI] {
            let (users, complete) = match reactors(&shared, channel, message, emoji).await {
                Reactors::All(users) => (users, true),
                Reactors::Partial(users) => (users, false),
                Reactors::Gone => {
                    // Deleted while opsgate was away: the engine posts it again.
                    shared.report_lost(p.job, message);
                    break;
                }
            };
            if emoji == APPROVE_EMOJI && complete {
                check_marks = Some(users.iter().map(|u| u.id.get()).collect());
            }
            for user in users {
                if user.bot || shared.is_me(user.id.get()) {
                    continue;
                }
                let member = match shared.http.get_member(guild.into(), user.id).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(job = p.job.0, user = user.id.get(), error = %e, "cannot read a reacting user's roles");
                        continue;
                    }
                };
                let actor = super::events::actor_of(&member.user, &member.roles);
                if emoji == APPROVE_EMOJI {
                    shared.saw_approval(message, &actor, true);
                }
                shared.feed(ChatEvent::Reaction {
                    actor,
                    origin: Origin {
                        channel: p.channel.clone(),
                        interaction: Some(CATCH_UP.to_string()),
                        thread: None,
                    },
                    message_id: p.message_id.clone(),
                    emoji: emoji.to_string(),
                    added: true,
                });
            }
        }
        // ✅ removed while opsgate was away: only a complete list of who has ✅ proves it.
        let Some(present) = check_marks else {
            continue;
        };
        for gone in &p.reaction_approvers {
            if gone
                .id
                .parse::<u64>()
                .is_ok_and(|id| !present.contains(&id))
            {
                shared.feed(ChatEvent::CheckMarkGone {
                    actor: Actor {
                        id: gone.id.clone(),
                        name: gone.name.clone(),
                        roles: Vec::new(),
                    },
                    channel: p.channel.clone(),
                    message_id: p.message_id.clone(),
                });
            }
        }
    }
}

/// Who reacted with an emoji, as far as could be read.
enum Reactors {
    All(Vec<User>),
    /// A read failed or the list is longer than opsgate reads: absence proves nothing.
    Partial(Vec<User>),
    /// The card's message no longer exists (10008).
    Gone,
}

/// Everyone who reacted with `emoji`, page by page (bounded).
async fn reactors(shared: &Shared, channel: u64, message: u64, emoji: &str) -> Reactors {
    let reaction = ReactionType::Unicode(emoji.to_string());
    let mut all: Vec<User> = Vec::new();
    let mut after: Option<UserId> = None;
    for _ in 0..MAX_PAGES {
        let page = match shared
            .http
            .get_reaction_users(
                ChannelId::new(channel),
                MessageId::new(message),
                &reaction,
                PAGE,
                after.map(|u| u.get()),
            )
            .await
        {
            Ok(p) => p,
            Err(e) if super::rest::code_of(&e) == Some(super::rest::UNKNOWN_MESSAGE) => {
                return Reactors::Gone;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read reactions (Read Message History permission?)");
                return Reactors::Partial(all);
            }
        };
        let full = page.len() >= PAGE as usize;
        after = page.last().map(|u| u.id);
        all.extend(page);
        if !full || after.is_none() {
            return Reactors::All(all);
        }
    }
    Reactors::Partial(all)
}
