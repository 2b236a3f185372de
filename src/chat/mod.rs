//! The chat seam: adapters (terminal, Discord) turn what happens in chat into [`ChatEvent`]s
//! and carry out the engine's [`Outgoing`] messages through [`ChatOut`]. No adapter type
//! crosses into the engine.

pub mod card;
pub mod discord;
pub mod shell;

pub use card::JobCard;

use crate::command::JobId;

pub type MessageId = String;

/// Who did something in chat. Authorization uses `roles` (IDs), never names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub name: String,
    pub roles: Vec<u64>,
}

/// Where an event came from, and how to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The channel whose rules apply: for a thread or forum post, its parent channel.
    pub channel: String,
    /// An interaction to answer (Discord slash commands and buttons); replies to it may be
    /// private. `None` for plain messages.
    pub interaction: Option<String>,
    /// The thread (or forum post) it happened in, where answers and the job's card go.
    pub thread: Option<String>,
}

impl Origin {
    pub fn channel(channel: impl Into<String>) -> Origin {
        Origin {
            channel: channel.into(),
            interaction: None,
            thread: None,
        }
    }

    /// Where answers go: the thread if there is one, else the channel.
    pub fn answer_channel(&self) -> &str {
        self.thread.as_deref().unwrap_or(&self.channel)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    Approve,
    Deny,
}

impl Vote {
    /// ✅ approves and ❌ denies, exactly as the card says (with or without the emoji
    /// variation selector); every other emoji, 👍 included, is conversation, not a vote.
    pub fn from_emoji(emoji: &str) -> Option<Vote> {
        match emoji.trim_end_matches('\u{fe0f}') {
            "✅" => Some(Vote::Approve),
            "❌" => Some(Vote::Deny),
            _ => None,
        }
    }
}

#[cfg(test)]
mod vote_tests {
    use super::Vote;

    #[test]
    fn only_the_cards_two_emoji_are_votes() {
        assert_eq!(Vote::from_emoji("✅"), Some(Vote::Approve));
        assert_eq!(Vote::from_emoji("❌\u{fe0f}"), Some(Vote::Deny));
        for chat in ["👍", "👎", "✔", "☑", "✖", "✔\u{fe0f}", "🚀"] {
            assert_eq!(Vote::from_emoji(chat), None, "{chat}");
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// A message that may be a command.
    Message {
        actor: Actor,
        origin: Origin,
        text: String,
    },
    /// A reaction added to (or removed from) a message.
    Reaction {
        actor: Actor,
        origin: Origin,
        message_id: MessageId,
        emoji: String,
        added: bool,
    },
    /// An Approve/Deny button on a job's message.
    Button {
        actor: Actor,
        origin: Origin,
        job: JobId,
        /// The nonce in the button's ID (`None` on cards from before nonces).
        nonce: Option<u64>,
        /// The message the button is on.
        message_id: MessageId,
        vote: Vote,
    },
    /// The adapter learned the ID of a job's message after posting it.
    MessagePosted { job: JobId, message_id: MessageId },
    /// A job's message is gone from chat (deleted by someone): the engine posts the job's
    /// card again if the job is still active and `message_id` is its current card.
    CardLost { job: JobId, message_id: MessageId },
    /// `actor`'s ✅ is no longer on a card and no live removal said so (a moderator cleared
    /// the reactions, or it was removed while the bot was away): an approval they gave with
    /// ✅ is withdrawn; one given with a button or a command stays. Nobody is answered.
    CheckMarkGone {
        actor: Actor,
        channel: String,
        message_id: MessageId,
    },
    /// A decision made on a job's card: a button, or the modal a button opened (Deny asks
    /// for a reason). Counts only on the job's own card, as [`ChatEvent::Button`] does.
    CardAction {
        actor: Actor,
        origin: Origin,
        job: JobId,
        nonce: Option<u64>,
        message_id: MessageId,
        action: CardAction,
    },
}

/// What a card's button asks for. Approve and Deny are for approvers; Cancel for the
/// requester or an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardAction {
    Approve,
    /// The reason typed into the Deny modal (stored in the audit log, shown on the card).
    Deny {
        reason: Option<String>,
    },
    Cancel,
}

impl ChatEvent {
    /// The channel the event happened in, if it came from a person.
    pub fn channel(&self) -> Option<&str> {
        match self {
            ChatEvent::Message { origin, .. }
            | ChatEvent::Reaction { origin, .. }
            | ChatEvent::Button { origin, .. }
            | ChatEvent::CardAction { origin, .. } => Some(&origin.channel),
            ChatEvent::CheckMarkGone { channel, .. } => Some(channel),
            ChatEvent::MessagePosted { .. } | ChatEvent::CardLost { .. } => None,
        }
    }
}

/// What the engine asks chat to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// An answer to one event: help, refusals, listings. `private` asks for an ephemeral reply
    /// where the chat supports it.
    Reply {
        to: Origin,
        text: String,
        private: bool,
    },
    /// A job's message (approval request and live status), posted once per job.
    Card {
        channel: String,
        card: JobCard,
        /// Roles to ping, only when the config asks for it.
        mention_roles: Vec<u64>,
    },
    /// Replace a job's message with its new state.
    UpdateCard {
        channel: String,
        message_id: Option<MessageId>,
        card: JobCard,
    },
    /// A notification in an incident channel, linking to the job's message.
    Incident {
        channel: String,
        job: JobId,
        severity: crate::config::Severity,
        text: String,
        /// Where the job's own message is, for a link.
        job_channel: String,
        message_id: Option<MessageId>,
    },
    /// A new message about a job, e.g. that it finished.
    Notice {
        channel: String,
        job: Option<JobId>,
        text: String,
    },
}

/// Approval-flow messages an adapter may show natively (a thread on the card, a modal);
/// [`FlowOut::fallback`] says what they are as plain messages.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowOut {
    /// A line for a job's thread (jobs whose rule or channel asks for threads): progress,
    /// audit entries, follow-ups. The thread hangs on the job's card (`card_message`, once
    /// known) in `channel`.
    ThreadLine {
        channel: String,
        job: JobId,
        card_message: Option<MessageId>,
        text: String,
    },
    /// The requester must confirm a request by typing `expected` (the target's name) within
    /// the deadline: `!confirm <number> <expected>`, or a modal where the chat has them.
    /// Nothing is stored until then.
    ConfirmPrompt {
        to: Origin,
        number: u64,
        expected: String,
        expires_ms: u64,
        text: String,
    },
}

impl FlowOut {
    /// The same thing as an ordinary message, for adapters without threads or modals.
    pub fn fallback(self) -> Outgoing {
        match self {
            FlowOut::ThreadLine {
                channel, job, text, ..
            } => Outgoing::Notice {
                channel,
                job: Some(job),
                text: format!("[job {job}] {text}"),
            },
            FlowOut::ConfirmPrompt { to, text, .. } => Outgoing::Reply {
                to,
                text,
                private: true,
            },
        }
    }
}

/// The engine's only view of chat. Calls must not block on the network: an adapter that
/// talks to a remote service queues the work and reports message IDs back as
/// [`ChatEvent::MessagePosted`].
pub trait ChatOut: Send + Sync {
    /// Carries out `out`. Returns the new message's ID when it is known at once (the terminal).
    fn send(&self, out: Outgoing) -> Option<MessageId>;

    /// Carries out an approval-flow message; by default as the plain message it stands for.
    fn send_flow(&self, out: FlowOut) -> Option<MessageId> {
        self.send(out.fallback())
    }

    /// Says `text` in each of `channels` before the process stops (storage failed): at once,
    /// past any queue, and returning only when it went out or could not (bounded).
    fn last_words(&self, channels: &[String], text: &str) {
        for channel in channels {
            self.send(Outgoing::Notice {
                channel: channel.clone(),
                job: None,
                text: text.to_string(),
            });
        }
    }
}
