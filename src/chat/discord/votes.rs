//! What the adapter knows about votes by reaction: which messages are open cards (so a
//! reaction removal elsewhere costs no member lookup), who put ✅ on each (so a moderator's
//! "remove all reactions" withdraws those approvals), and when a refusal was last posted to a
//! user about a job (so toggling ✅ does not flood the channel).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{lock, Shared};
use crate::domain::Actor;
use crate::domain::JobId;
use crate::ports::chat::ChatEvent;

/// A refusal to the same user about the same card is posted at most once per this.
pub const REFUSAL_EVERY: Duration = Duration::from_secs(600);

/// The interaction key that marks a reply as answering a reaction (`reaction:user:message`).
pub const REACTION_KEY: &str = "reaction:";

#[derive(Default)]
pub(crate) struct Votes {
    /// Open cards: message -> job.
    open: HashMap<u64, JobId>,
    /// True once the engine's pending cards are known (before that any message may be one).
    loaded: bool,
    /// Card message -> users whose ✅ the adapter saw, with who they are.
    approvers: HashMap<u64, HashMap<u64, Actor>>,
    /// (reaction key) -> when a refusal was last posted for it.
    refused: HashMap<String, Instant>,
}

impl Shared {
    pub fn card_opened(&self, message: u64, job: JobId) {
        lock(&self.state).votes.open.insert(message, job);
    }

    pub fn card_closed(&self, message: u64) {
        let mut state = lock(&self.state);
        state.votes.open.remove(&message);
        state.votes.approvers.remove(&message);
    }

    pub fn cards_loaded(&self) {
        lock(&self.state).votes.loaded = true;
    }

    /// Whether a reaction on `message` may be a vote (an open card, or not yet known).
    pub fn may_be_card(&self, message: u64) -> bool {
        let state = lock(&self.state);
        !state.votes.loaded || state.votes.open.contains_key(&message)
    }

    /// Remembers (or forgets) a ✅ on a card.
    pub fn saw_approval(&self, message: u64, actor: &Actor, added: bool) {
        let Ok(user) = actor.id.parse::<u64>() else {
            return;
        };
        let mut state = lock(&self.state);
        let voters = state.votes.approvers.entry(message).or_default();
        if added {
            voters.insert(user, actor.clone());
        } else {
            voters.remove(&user);
        }
    }

    /// ✅ reactions were cleared from `message` (all reactions, or that emoji): each approval
    /// given by one of them is withdrawn (approvals given with a button or a command stay).
    pub fn approvals_cleared(&self, channel: u64, message: u64) {
        let voters = lock(&self.state).votes.approvers.remove(&message);
        for actor in voters.into_iter().flat_map(|v| v.into_values()) {
            self.feed(ChatEvent::CheckMarkGone {
                actor,
                channel: channel.to_string().into(),
                message_id: message.to_string().into(),
            });
        }
    }

    /// Whether a refusal answering the reaction `key` may be posted now.
    pub fn refusal_allowed(&self, key: &str) -> bool {
        let mut state = lock(&self.state);
        let now = Instant::now();
        state
            .votes
            .refused
            .retain(|_, at| now.duration_since(*at) < REFUSAL_EVERY);
        if state.votes.refused.contains_key(key) {
            return false;
        }
        state.votes.refused.insert(key.to_string(), now);
        true
    }
}

/// The key a reaction's replies carry.
pub fn reaction_key(user: u64, message: u64) -> String {
    format!("{REACTION_KEY}{user}:{message}")
}
