//! What a start does with each job the store holds as active (ARCHITECTURE.md, "Restart
//! behaviour").

use super::{Effect, Engine};
use crate::job::{Job, JobState};
use crate::ports::chat::Outgoing;

impl Engine {
    pub(super) fn recover(&mut self, jobs: Vec<Job>, now: u64) {
        if !jobs.is_empty() {
            tracing::info!(count = jobs.len(), "resuming unfinished jobs");
        }
        let mut reconciles = Vec::new();
        for mut job in jobs {
            let id = job.id;
            self.next_id = self.next_id.max(id.next());
            if job.state.is_final() {
                // Written in one batch with its index entry, so only a store from before
                // batches were atomic can hold this: take it out of the index, lock nothing.
                tracing::warn!(
                    job = id.0,
                    state = job.state.label(),
                    "a finished job was still in the active index; removed"
                );
                self.writes.put_job(&mut job, None);
                continue;
            }
            self.locks.insert(self.lock_key(&job.spec), id);
            match job.state {
                JobState::AwaitingApproval => {
                    self.expiries.insert((job.expires_ms, id));
                    // A crash between posting the card and recording its ID leaves approvers
                    // nothing to react on: post it again.
                    if job.message_id.is_none() {
                        let card = self.card(&job);
                        self.effects.push(Effect::Chat(Outgoing::Card {
                            channel: job.channel.clone(),
                            card,
                            mention_roles: Vec::new(),
                        }));
                    }
                }
                // Approved but never marked submitting: provably not sent, so send it now.
                JobState::Approved => self.effects.push(Effect::Submit(id)),
                // May or may not have reached the cloud: ask, never re-send.
                JobState::Submitting => {
                    reconciles.push(id);
                    self.effects.push(Effect::Reconcile(id));
                }
                JobState::Running => self.effects.push(Effect::Poll(id)),
                _ => {}
            }
            self.effects.push(Effect::Observe(id, job.state));
            self.active.insert(id, Box::new(job));
        }
        for id in reconciles {
            let why = "the bot restarted while this job was being submitted; asking the cloud \
                       whether it arrived (it is never re-sent)";
            self.audit_only(id, "restart", why, now);
        }
        self.expire(now);
    }
}
