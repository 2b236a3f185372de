//! Approvals given while the bot was away: on every READY, read the ✅/❌ reactions on each
//! pending job's message and feed them to the engine as reactions. The engine applies role
//! checks, self-approval, "counts once" and expiry, as for live reactions; its replies to
//! these replays are dropped (nobody is waiting for them).

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{ChannelId, MessageId, ReactionType, User, UserId};

use super::render::{APPROVE_EMOJI, DENY_EMOJI};
use super::sender::{snowflake, CATCH_UP};
use super::Shared;
use crate::chat::{ChatEvent, Origin};
use crate::engine::EngineEvent;

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
                job = p.job,
                "cannot tell the guild of the job's channel; its reactions are not read"
            );
            continue;
        };
        // Denials first: a ❌ given while offline must not lose to a ✅ replayed before it.
        for emoji in [DENY_EMOJI, APPROVE_EMOJI] {
            let users = match reactors(&shared, channel, message, emoji).await {
                Ok(users) => users,
                Err(Gone) => {
                    // Deleted while opsgate was away: the engine posts it again.
                    shared.report_lost(p.job, message);
                    break;
                }
            };
            for user in users {
                if user.bot || shared.is_me(user.id.get()) {
                    continue;
                }
                let member = match shared.http.get_member(guild.into(), user.id).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(job = p.job, user = user.id.get(), error = %e, "cannot read a reacting user's roles");
                        continue;
                    }
                };
                let actor = super::handler::actor_of(&member.user, &member.roles);
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
    }
}

/// The card's message no longer exists (10008).
struct Gone;

/// Everyone who reacted with `emoji`, page by page (bounded).
async fn reactors(
    shared: &Shared,
    channel: u64,
    message: u64,
    emoji: &str,
) -> Result<Vec<User>, Gone> {
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
                return Err(Gone);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read reactions (Read Message History permission?)");
                break;
            }
        };
        let full = page.len() >= PAGE as usize;
        after = page.last().map(|u| u.id);
        all.extend(page);
        if !full || after.is_none() {
            break;
        }
    }
    Ok(all)
}
