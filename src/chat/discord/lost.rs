//! Cards deleted in chat: which messages are the cards of active jobs (so a MESSAGE_DELETE of
//! one is noticed), reporting each lost card to the engine once (it posts the job's card
//! again and records the new message), and the incident messages that link to a card, so
//! they can be pointed at the new one.

use std::collections::HashMap;

use serenity::builder::{CreateAllowedMentions, EditMessage};

use super::render;
use super::{lock, Shared};
use crate::domain::JobId;
use crate::domain::Severity;
use crate::ports::chat::ChatEvent;

/// Incident messages remembered per job (a job has a handful: requested, approved, started).
const LINKS_PER_JOB: usize = 16;

/// An incident message that links to a job's card, with what it was made from.
#[derive(Clone, Debug)]
pub(crate) struct IncidentPost {
    pub channel: u64,
    pub message: u64,
    pub severity: Severity,
    pub text: String,
    pub job_channel: crate::domain::ChannelId,
}

#[derive(Default)]
pub(crate) struct Cards {
    /// Message -> job, for the cards of jobs that are not finished.
    live: HashMap<u64, JobId>,
    /// Cards already reported lost, so a deletion seen twice (the event and a failed edit)
    /// is reposted once.
    reported: HashMap<u64, JobId>,
    /// Job -> incident messages linking to its card.
    links: HashMap<JobId, Vec<IncidentPost>>,
}

impl Shared {
    /// `message` is `job`'s card and the job is not finished.
    pub fn card_live(&self, message: u64, job: JobId) {
        lock(&self.state).cards.live.insert(message, job);
    }

    /// `job` finished: its card is history and no longer reposted.
    pub fn card_finished(&self, job: JobId) {
        let mut state = lock(&self.state);
        let cards = &mut state.cards;
        cards.live.retain(|_, j| *j != job);
        cards.reported.retain(|_, j| *j != job);
        cards.links.remove(&job);
    }

    /// The job whose live card `message` is.
    pub fn live_card(&self, message: u64) -> Option<JobId> {
        lock(&self.state).cards.live.get(&message).copied()
    }

    /// `message`, `job`'s card, is gone: the engine hears it once.
    pub fn report_lost(&self, job: JobId, message: u64) {
        {
            let mut state = lock(&self.state);
            state.cards.live.remove(&message);
            if state.cards.reported.insert(message, job).is_some() {
                return;
            }
        }
        self.card_closed(message);
        tracing::warn!(
            job = job.0,
            message,
            "the job's card was deleted in chat; posting it again"
        );
        self.feed(ChatEvent::CardLost {
            job,
            message_id: message.to_string().into(),
        });
    }

    /// Remembers an incident message that links to `job`'s card, while the job is active.
    pub fn incident_linked(&self, job: JobId, post: IncidentPost) {
        let mut state = lock(&self.state);
        let cards = &mut state.cards;
        if !cards.live.values().any(|j| *j == job) {
            return;
        }
        let posts = cards.links.entry(job).or_default();
        if posts.len() < LINKS_PER_JOB {
            posts.push(post);
        }
    }

    fn incident_posts(&self, job: JobId) -> Vec<IncidentPost> {
        lock(&self.state)
            .cards
            .links
            .get(&job)
            .cloned()
            .unwrap_or_default()
    }
}

/// Points the incident messages that linked to `job`'s lost card at its new card `new_id`.
pub(crate) async fn relink(shared: &Shared, job: JobId, card_channel: &str, new_id: &str) {
    let Some(guild) = shared.guild_of(card_channel).await else {
        return;
    };
    let link = render::message_link(guild, card_channel, new_id);
    for post in shared.incident_posts(job) {
        let text = render::incident_text(
            post.severity,
            &post.text,
            job,
            Some(&link),
            &post.job_channel,
        );
        let edit = EditMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new());
        let edited = super::messages::edit_message(
            shared,
            post.channel,
            post.message,
            &edit,
            "edit_incident",
        )
        .await;
        if let Err(e) = edited {
            tracing::warn!(job = job.0, error = %e, "could not point an incident message at the reposted card");
        }
    }
}
