//! What happens in chat: commands, reactions, buttons, cards posted or lost.

use super::votes::Via;
use super::{Effect, Engine};
use crate::approval;
use crate::command::{self, Command};
use crate::domain::{Actor, JobId};
use crate::ports::chat::{CardAction, ChatEvent, Origin, Outgoing, Vote};

impl Engine {
    pub(super) fn chat_event(&mut self, event: ChatEvent, now: u64) {
        match event {
            ChatEvent::Message {
                actor,
                origin,
                text,
            } => self.on_message(&actor, &origin, &text, now),
            ChatEvent::Reaction {
                actor,
                origin,
                message_id,
                emoji,
                added,
            } => self.on_reaction(&actor, &origin, &message_id, &emoji, added, now),
            ChatEvent::Button {
                actor,
                origin,
                job,
                nonce,
                message_id,
                vote,
            } => {
                if self.button_is_for(job, nonce, &message_id) {
                    self.vote(&actor, &origin, job, vote, Via::Button(None), now);
                } else {
                    let text = format!("This button is not on job {job}'s card, so it was not counted. Use the buttons on that job's own card, or {}approve {job}.", self.config.prefix);
                    self.reply(&origin, text, true);
                }
            }
            ChatEvent::CardAction {
                actor,
                origin,
                job,
                nonce,
                message_id,
                action,
            } => {
                if self.button_is_for(job, nonce, &message_id) {
                    self.on_card_action(&actor, &origin, job, action, now);
                } else {
                    let text = format!("This button is not on job {job}'s card, so it did nothing. Use the buttons on that job's own card.");
                    self.reply(&origin, text, true);
                }
            }
            ChatEvent::MessagePosted { job, message_id } => {
                self.message_posted(job, message_id);
            }
            ChatEvent::CardLost { job, message_id } => self.repost_card(job, &message_id, now),
            ChatEvent::CheckMarkGone {
                actor, message_id, ..
            } => {
                if let Some(job) = self.job_of_message(&message_id) {
                    self.check_mark_gone(&actor, job, now);
                }
            }
        }
    }

    /// While draining nothing new starts; commands get a reply saying why. Reactions are left
    /// alone: the chat adapter reads them again when the bot is back.
    pub(super) fn refuse_while_draining(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Message { origin, text, .. }
                if text.trim_start().starts_with(self.config.prefix.as_str()) =>
            {
                let text =
                    "opsgate is restarting and takes no new commands; try again in a minute.";
                self.reply(&origin, text, true);
            }
            ChatEvent::Button { origin, .. } | ChatEvent::CardAction { origin, .. } => {
                let text = "opsgate is restarting; decide again in a minute (reactions are picked up after the restart).";
                self.reply(&origin, text, true);
            }
            ChatEvent::MessagePosted { job, message_id } => {
                self.message_posted(job, message_id);
            }
            _ => {}
        }
    }

    fn on_reaction(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        message_id: &str,
        emoji: &str,
        added: bool,
        now: u64,
    ) {
        let Some(vote) = Vote::from_emoji(emoji) else {
            return;
        };
        // Reactions on messages that are not approval requests are chat, not votes.
        let Some(job) = self.job_of_message(message_id) else {
            return;
        };
        match (vote, added) {
            (vote, true) => self.vote(actor, origin, job, vote, Via::Reaction, now),
            (Vote::Approve, false) => self.withdraw(actor, origin, job, now),
            (Vote::Deny, false) => {}
        }
    }

    fn on_card_action(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        job: JobId,
        action: CardAction,
        now: u64,
    ) {
        match action {
            CardAction::Approve => {
                self.vote(actor, origin, job, Vote::Approve, Via::Button(None), now)
            }
            CardAction::Deny { reason } => {
                // Typed into a modal: the same checks as a `!deny` reason.
                let words: Vec<&str> = reason.as_deref().unwrap_or("").split_whitespace().collect();
                match command::reason_text(&words, "the Deny form") {
                    Ok(reason) => {
                        self.vote(actor, origin, job, Vote::Deny, Via::Button(reason), now)
                    }
                    Err(e) => self.refuse(origin, e.message),
                }
            }
            CardAction::Cancel => self.cancel(actor, origin, job, now),
        }
    }

    /// The job whose card `message_id` is. An active job's card first: its ID may have been
    /// learned in this very group (a reposted card), before the index reached the store.
    fn job_of_message(&mut self, message_id: &str) -> Option<JobId> {
        let live = self
            .active
            .values()
            .find(|j| j.message_id.as_deref() == Some(message_id));
        match live {
            Some(job) => Some(job.id),
            None => self.stored_job_for_message(message_id),
        }
    }

    /// `actor`'s ✅ left the card without a live removal (cleared by a moderator, or removed
    /// while opsgate was away): an approval they gave with ✅ is withdrawn, quietly.
    fn check_mark_gone(&mut self, actor: &Actor, id: JobId, now: u64) {
        let Some(job) = self.active.get_mut(&id) else {
            return;
        };
        if approval::withdraw_reaction(job, actor) {
            let detail = format!(
                "{}'s ✅ is no longer on the card; approval withdrawn",
                actor.name
            );
            self.save(id, Some(actor.audit_name()), "withdrawn", detail, now);
        }
    }

    /// A job's card was deleted in chat: post its current card again (the new message's ID
    /// comes back as `MessagePosted` and replaces the old one durably). Only for an active
    /// job and its current card: a finished job's card is history, and an older card was
    /// already replaced.
    fn repost_card(&mut self, id: JobId, lost: &str, now: u64) {
        let Some(job) = self.active.get(&id) else {
            return;
        };
        if job.message_id.as_deref() != Some(lost) {
            return;
        }
        let (channel, card) = (job.channel.clone(), self.card(job));
        self.audit_only(
            id,
            "card_reposted",
            "the job's message was deleted in chat; its card was posted again",
            now,
        );
        self.effects.push(Effect::Chat(Outgoing::Card {
            channel,
            card,
            mention_roles: Vec::new(),
        }));
    }

    /// Whether a button with `nonce` on message `message_id` belongs to job `id`'s card. A job
    /// no longer active has no open card; [`vote`](Self::vote) says what became of it.
    fn button_is_for(&self, id: JobId, nonce: Option<u64>, message_id: &str) -> bool {
        let Some(job) = self.active.get(&id) else {
            return true;
        };
        let same_nonce = match nonce {
            Some(nonce) => nonce == job.nonce,
            // Cards posted before nonces carry none; so do only the jobs they were for.
            None => job.nonce == 0,
        };
        let same_message = job.message_id.as_deref().is_none_or(|m| m == message_id);
        same_nonce && same_message
    }

    fn on_message(&mut self, actor: &Actor, origin: &Origin, text: &str, now: u64) {
        let config = self.config.clone();
        let parsed = command::parse(text, &config.prefix, &config.targets, &config.catalog);
        let verb = self.metric_verb(text);
        let cmd = match parsed {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return,
            Err(e) => {
                self.metrics.command(&verb, "invalid");
                tracing::debug!(user = %actor.id, error = %e.message, "refused command");
                self.reply(origin, e.to_string(), true);
                return;
            }
        };
        let refusals_before = self.refusals;
        self.command(actor, origin, cmd, now);
        let outcome = if self.refusals > refusals_before {
            "refused"
        } else {
            "accepted"
        };
        self.metrics.command(&verb, outcome);
    }

    fn command(&mut self, actor: &Actor, origin: &Origin, cmd: Command, now: u64) {
        match cmd {
            Command::Operation(req) => self.request(actor, origin, req, false, now),
            Command::Approve(id) => {
                self.vote(actor, origin, id, Vote::Approve, Via::Command(None), now)
            }
            Command::Deny(id, reason) => {
                self.vote(actor, origin, id, Vote::Deny, Via::Command(reason), now)
            }
            Command::Cancel(id) => self.cancel(actor, origin, id, now),
            Command::Status(id) => {
                let text = self.status_text(id);
                self.reply(origin, text, false);
            }
            Command::Overview => {
                let text = self.overview_text(now);
                self.reply(origin, text, false);
            }
            Command::Confirm(number, typed) => self.on_confirm(actor, origin, number, &typed, now),
            Command::Review(id, verdict, note) => {
                self.on_review(actor, origin, id, verdict, note, now)
            }
            Command::Freeze(duration, reason) => {
                self.on_freeze(actor, origin, duration, reason, now)
            }
            Command::Unfreeze => self.on_unfreeze(actor, origin, now),
            Command::Jobs(filter) => {
                let text = self.jobs_text(filter, actor, now);
                self.reply(origin, text, false);
            }
            Command::Help(topic) => {
                let text = self.help_text(topic.as_deref());
                self.reply(origin, text, true);
            }
            Command::WhoAmI => {
                let text = self.whoami_text(actor, &origin.channel);
                self.reply(origin, text, true);
            }
        }
    }

    /// The verb of a command, for metric labels: known verbs only, so chat cannot inflate the
    /// label set.
    fn metric_verb(&self, text: &str) -> String {
        let verb = text
            .trim_start()
            .strip_prefix(self.config.prefix.as_str())
            .and_then(|b| b.split_whitespace().next())
            .unwrap_or("")
            .to_ascii_lowercase();
        let known = command::builtin_by_verb(&verb).is_some() || self.config.catalog.is_verb(&verb);
        if known {
            verb
        } else {
            "unknown".to_string()
        }
    }
}
