//! The chat seam: adapters (terminal, Discord) turn what happens in chat into [`ChatEvent`]s
//! and carry out the engine's [`Outgoing`] messages through [`ChatOut`]. No adapter type
//! crosses into the engine.

use std::fmt::Write;

use crate::domain::time::{format_duration_ms, format_utc};
use crate::domain::{Actor, ChannelId, JobId, MessageId, RoleId, Severity};
use crate::job::JobState;

/// Where an event came from, and how to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The channel whose rules apply: for a thread or forum post, its parent channel.
    pub channel: ChannelId,
    /// An interaction to answer (Discord slash commands and buttons); replies to it may be
    /// private. `None` for plain messages.
    pub interaction: Option<String>,
    /// The thread (or forum post) it happened in, where answers and the job's card go.
    pub thread: Option<ChannelId>,
}

impl Origin {
    pub fn channel(channel: impl Into<ChannelId>) -> Origin {
        Origin {
            channel: channel.into(),
            interaction: None,
            thread: None,
        }
    }

    /// Where answers go: the thread if there is one, else the channel.
    pub fn answer_channel(&self) -> &ChannelId {
        self.thread.as_ref().unwrap_or(&self.channel)
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
        channel: ChannelId,
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
    pub fn channel(&self) -> Option<&ChannelId> {
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
        channel: ChannelId,
        card: JobCard,
        /// Roles to notify where the chat can: the approvers, on a new approval request (the
        /// Discord adapter pings them when `[discord] mention_approvers` is on).
        mention_roles: Vec<RoleId>,
    },
    /// Replace a job's message with its new state.
    UpdateCard {
        channel: ChannelId,
        message_id: Option<MessageId>,
        card: JobCard,
    },
    /// A notification in an incident channel, linking to the job's message.
    Incident {
        channel: ChannelId,
        job: JobId,
        severity: Severity,
        text: String,
        /// Where the job's own message is, for a link.
        job_channel: ChannelId,
        message_id: Option<MessageId>,
    },
    /// A new message about a job, e.g. that it finished.
    Notice {
        channel: ChannelId,
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
        channel: ChannelId,
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
    fn last_words(&self, channels: &[ChannelId], text: &str) {
        for channel in channels {
            self.send(Outgoing::Notice {
                channel: channel.clone(),
                job: None,
                text: text.to_string(),
            });
        }
    }
}

/// A job's message as structured data: the terminal prints it as one line, Discord as an
/// embed with buttons. Built from the job alone, so it can be re-rendered after a restart.
#[derive(Clone, Debug, PartialEq)]
pub struct JobCard {
    pub job: JobId,
    /// The job's nonce, carried by the card's buttons.
    pub nonce: u64,
    pub state: JobState,
    /// e.g. `restart ddm orders-db hard`
    pub action: String,
    pub requester: String,
    pub rule: String,
    pub approvals: usize,
    pub approvals_needed: u32,
    pub approvers: Vec<String>,
    /// Approver role names, for "needs approval from ...".
    pub approver_roles: String,
    pub expires_ms: u64,
    pub cloud_ref: Option<String>,
    pub progress: Option<String>,
    pub outcome: Option<String>,
    /// How long the cloud work took, once finished.
    pub duration_ms: Option<u64>,
}

/// Between the rule's name and a break-glass note in [`JobCard::rule`]. The card's fields
/// stay as the Discord adapter knows them (its tests build cards field by field), so the
/// note rides in the one field every renderer shows; [`JobCard::break_glass_note`] reads it.
const NOTE: &str = " · ⚠️ ";

impl JobCard {
    /// Adds the break-glass note to the rule's name, as [`JobCard::rule`] carries it.
    pub fn rule_with_note(rule: &str, note: &str) -> String {
        format!("{rule}{NOTE}{note}")
    }

    /// `break-glass by alice: db down · review pending`, for a job that ran with
    /// `--break-glass`.
    pub fn break_glass_note(&self) -> Option<&str> {
        self.rule.split_once(NOTE).map(|(_, note)| note)
    }

    /// Who may press what on an open card: Approve/Deny for the approver roles, Cancel for
    /// the requester or an admin.
    pub fn who_may(&self) -> String {
        format!(
            "approve/deny: {} · cancel: {} or an admin",
            self.approver_roles, self.requester
        )
    }

    /// Whether Approve/Deny still mean something.
    pub fn is_open(&self) -> bool {
        self.state == JobState::AwaitingApproval
    }

    /// One line of text: the whole card for the terminal, the fallback text elsewhere.
    pub fn line(&self) -> String {
        // Written into one buffer sized for a long line, so it is built without growing.
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{} job {} · {} · {} · requested by {}",
            self.state.icon(),
            self.job,
            self.state.label(),
            self.action,
            self.requester
        );
        if self.approvals_needed > 0 {
            let _ = write!(
                out,
                " · approvals {}/{}",
                self.approvals, self.approvals_needed
            );
            if !self.approvers.is_empty() {
                let _ = write!(out, " ({})", self.approvers.join(", "));
            }
        }
        if self.state == JobState::AwaitingApproval {
            let _ = write!(
                out,
                " · rule `{}` needs {} from {} · expires {} · react ✅/❌ or !approve {} / !deny {} · !cancel {}: {} or an admin",
                self.rule,
                if self.approvals_needed == 1 { "an approval".to_string() } else { format!("{} approvals", self.approvals_needed) },
                self.approver_roles,
                format_utc(self.expires_ms),
                self.job,
                self.job,
                self.job,
                self.requester
            );
        }
        if let Some(note) = self.break_glass_note() {
            let _ = write!(out, " · ⚠️ {note}");
        }
        if let Some(p) = &self.progress {
            if !self.state.is_final() {
                let _ = write!(out, " · {p}");
            }
        }
        // Once: the progress or outcome text often names the cloud's job already.
        if let Some(r) = &self.cloud_ref {
            let shown = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains(r.as_str()));
            let progress_shown = !self.state.is_final() && shown(&self.progress);
            if !progress_shown && !shown(&self.outcome) {
                let _ = write!(out, " · cloud job {r}");
            }
        }
        if let Some(d) = self.duration_ms {
            let _ = write!(out, " · took {}", format_duration_ms(d));
        }
        if let Some(o) = &self.outcome {
            let _ = write!(out, " · {o}");
        }
        out
    }
}
