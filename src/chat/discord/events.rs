//! Gateway data -> what the engine reads: the acting user with their role IDs, a message or
//! a ✅/❌ reaction as a [`ChatEvent`], a slash command's options as text. No IO.

use serenity::all::{
    CommandDataOption, CommandDataOptionValue, Member, Message, Reaction, ReactionType, RoleId,
    User,
};

use crate::domain::{self, Actor};
use crate::ports::chat::{ChatEvent, Origin, Vote};

/// Who acted: the user's ID and name, and their role IDs in the guild.
pub fn actor_of(user: &User, roles: &[RoleId]) -> Actor {
    Actor {
        id: user.id.get().to_string().into(),
        name: user.name.clone(),
        roles: roles.iter().map(|r| domain::RoleId(r.get())).collect(),
    }
}

/// A guild message that may be a command, unless it comes from a bot (opsgate included).
pub fn message_event(msg: &Message, prefix: &str) -> Option<ChatEvent> {
    if msg.author.bot || msg.author.system {
        return None;
    }
    if !msg.content.trim_start().starts_with(prefix) {
        return None;
    }
    let roles = msg
        .member
        .as_ref()
        .map(|m| m.roles.clone())
        .unwrap_or_default();
    Some(ChatEvent::Message {
        actor: actor_of(&msg.author, &roles),
        origin: Origin::channel(msg.channel_id.get().to_string()),
        text: msg.content.clone(),
    })
}

/// The emoji of a reaction that votes (✅/❌ and their variants); others are chat.
pub fn vote_emoji(r: &Reaction) -> Option<String> {
    match &r.emoji {
        ReactionType::Unicode(e) if Vote::from_emoji(e).is_some() => Some(e.clone()),
        _ => None,
    }
}

/// A reaction event for the engine, given who reacted.
pub fn reaction_event(r: &Reaction, member: &Member, added: bool) -> Option<ChatEvent> {
    if member.user.bot {
        return None;
    }
    Some(ChatEvent::Reaction {
        actor: actor_of(&member.user, &member.roles),
        origin: Origin::channel(r.channel_id.get().to_string()),
        message_id: r.message_id.get().to_string().into(),
        emoji: vote_emoji(r)?,
        added,
    })
}

/// (name, value) of a slash command's options, values as text.
pub fn options_of(options: &[CommandDataOption]) -> Vec<(String, String)> {
    options
        .iter()
        .filter_map(|o| {
            let v = match &o.value {
                CommandDataOptionValue::String(s) => s.clone(),
                CommandDataOptionValue::Integer(i) => i.to_string(),
                CommandDataOptionValue::Number(n) => n.to_string(),
                CommandDataOptionValue::Boolean(b) => b.to_string(),
                CommandDataOptionValue::Autocomplete { value, .. } => value.clone(),
                _ => return None,
            };
            Some((o.name.clone(), v))
        })
        .collect()
}

/// The acting user of an interaction, with roles when it happened in a guild.
pub fn interaction_actor(member: Option<&Member>, user: &User) -> Actor {
    match member {
        Some(m) => actor_of(&m.user, &m.roles),
        None => actor_of(user, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::discord::slash;
    use serde_json::json;
    use serenity::all::CommandInteraction;

    fn message(author_bot: bool, content: &str) -> Message {
        let v = json!({"id":"300000000000000001","channel_id":"200000000000000001",
            "guild_id":"100000000000000001",
            "author":{"id":"700000000000000001","username":"alice","bot":author_bot},
            "member":{"roles":["400000000000000001","400000000000000002"]},
            "content":content,"timestamp":"2024-01-01T00:00:00.000000+00:00",
            "tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],
            "attachments":[],"embeds":[],"pinned":false,"type":0});
        match serde_json::from_value(v) {
            Ok(m) => m,
            Err(e) => panic!("fixture: {e}"),
        }
    }

    fn reaction(emoji: &str, with_member: bool, bot: bool) -> Reaction {
        let mut v = json!({"user_id":"700000000000000002","channel_id":"200000000000000001",
            "message_id":"500000000000000000","guild_id":"100000000000000001",
            "emoji":{"id":null,"name":emoji},"burst":false,"type":0});
        if with_member {
            v["member"] = json!({"user":{"id":"700000000000000002","username":"bob","bot":bot},
                "roles":["400000000000000002"],"deaf":false,"mute":false,"flags":0});
        }
        match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => panic!("fixture: {e}"),
        }
    }

    #[test]
    fn a_prefixed_message_becomes_a_message_event_with_role_ids() {
        let event = message_event(&message(false, "!restart ddm orders-db hard"), "!");
        assert_eq!(
            event,
            Some(ChatEvent::Message {
                actor: Actor {
                    id: "700000000000000001".into(),
                    name: "alice".into(),
                    roles: vec![
                        domain::RoleId(400000000000000001),
                        domain::RoleId(400000000000000002)
                    ],
                },
                origin: Origin::channel("200000000000000001"),
                text: "!restart ddm orders-db hard".into(),
            })
        );
    }

    #[test]
    fn bots_and_ordinary_chat_are_ignored() {
        assert_eq!(message_event(&message(true, "!jobs"), "!"), None);
        assert_eq!(message_event(&message(false, "hello"), "!"), None);
    }

    #[test]
    fn a_check_mark_with_member_becomes_a_vote_with_roles() {
        let r = reaction("✅", true, false);
        let member = r.member.clone().unwrap_or_else(|| panic!("member"));
        let event = reaction_event(&r, &member, true);
        assert_eq!(
            event,
            Some(ChatEvent::Reaction {
                actor: Actor {
                    id: "700000000000000002".into(),
                    name: "bob".into(),
                    roles: vec![domain::RoleId(400000000000000002)],
                },
                origin: Origin::channel("200000000000000001"),
                message_id: "500000000000000000".into(),
                emoji: "✅".into(),
                added: true,
            })
        );
    }

    #[test]
    fn other_emoji_and_bot_reactions_are_not_votes() {
        assert_eq!(vote_emoji(&reaction("👀", true, false)), None);
        let r = reaction("✅", true, true);
        let member = r.member.clone().unwrap_or_else(|| panic!("member"));
        assert_eq!(reaction_event(&r, &member, true), None);
        // REACTION_REMOVE has no member: the handler fetches it.
        assert!(reaction("✅", false, false).member.is_none());
    }

    #[test]
    fn slash_options_are_read_as_text() {
        let v = json!({"id":"800000000000000001","application_id":"900000000000000001","type":2,
            "token":"itok","version":1,"channel_id":"200000000000000001","guild_id":"100000000000000001",
            "member":{"user":{"id":"700000000000000001","username":"alice"},"roles":["400000000000000001"],
                      "deaf":false,"mute":false,"flags":0,"permissions":"0"},
            "data":{"id":"1","name":"restart","type":1,"options":[
                {"name":"service","type":3,"value":"ddm"},
                {"name":"target","type":3,"value":"orders-db"},
                {"name":"mode","type":3,"value":"hard"}]},
            "locale":"en-US","entitlements":[],"attachment_size_limit":10485760});
        let cmd: CommandInteraction = match serde_json::from_value(v) {
            Ok(c) => c,
            Err(e) => panic!("fixture: {e}"),
        };
        let opts = options_of(&cmd.data.options);
        assert_eq!(
            slash::to_text(
                "!",
                &crate::cloud::builtins().catalog,
                &cmd.data.name,
                &opts
            ),
            Ok("!restart ddm orders-db hard".into())
        );
        let actor = interaction_actor(cmd.member.as_deref(), &cmd.user);
        assert_eq!(actor.roles, vec![domain::RoleId(400000000000000001)]);
    }
}
