//! Where an event counts: only in the guilds of `[discord] guilds`, and in a thread or forum
//! post under its parent channel's rules (the answer still goes to the thread).

use serenity::all::{Channel, ChannelId, ChannelType, GuildId};

use super::{lock, Shared};
use crate::ports::chat::Origin;

impl Shared {
    /// Whether opsgate serves this guild. Events from other guilds (or from no guild) are
    /// dropped, logged once per guild and counted.
    pub fn serves(&self, guild: Option<GuildId>) -> bool {
        let Some(guild) = guild.map(GuildId::get) else {
            self.metrics.discord.dropped("no_guild");
            return false;
        };
        if self.config.discord.guilds.contains(&guild) {
            return true;
        }
        self.metrics.discord.dropped("foreign_guild");
        if lock(&self.state).foreign_guilds.insert(guild) {
            tracing::warn!(
                guild,
                "an event from a server not in [discord] guilds; ignoring that server"
            );
        }
        false
    }

    /// The origin of an event in `channel`: a thread is judged by its parent channel's rules
    /// and answered in the thread.
    pub async fn origin_in(&self, channel: ChannelId, interaction: Option<String>) -> Origin {
        let id = channel.get();
        match self.parent_of(channel).await {
            Some(parent) => Origin {
                channel: parent.to_string().into(),
                interaction,
                thread: Some(id.to_string().into()),
            },
            None => Origin {
                channel: id.to_string().into(),
                interaction,
                thread: None,
            },
        }
    }

    /// The parent channel when `channel` is a thread or forum post; `None` when it is not (or
    /// cannot be told, in which case its own rules apply).
    async fn parent_of(&self, channel: ChannelId) -> Option<u64> {
        let id = channel.get();
        if let Some(known) = lock(&self.state).parents.get(&id) {
            return *known;
        }
        // Configured channels are not threads; no need to ask.
        if self
            .config
            .policy
            .channels
            .values()
            .any(|c| c.parse() == Ok(id))
        {
            return None;
        }
        let parent = match self.http.get_channel(channel).await {
            Ok(Channel::Guild(c)) if is_thread(c.kind) => c.parent_id.map(ChannelId::get),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(channel = id, error = %e, "cannot tell whether a channel is a thread; its own rules apply");
                // Not remembered: the next event asks again.
                return None;
            }
        };
        self.learn_parent(id, parent);
        parent
    }

    pub fn learn_parent(&self, channel: u64, parent: Option<u64>) {
        lock(&self.state).parents.insert(channel, parent);
    }
}

pub fn is_thread(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::NewsThread
    )
}
