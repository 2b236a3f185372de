//! Gateway events -> [`ChatEvent`]s. Messages and reactions go straight to the engine;
//! slash commands and buttons are interactions, answered within Discord's 3 seconds (counted
//! from the time in the interaction's ID) through their own output lane (see `sender.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ChannelId, CommandInteraction, ComponentInteraction, ConnectionStage, Context, EventHandler,
    GuildChannel, Interaction, InteractionId, Message, ModalInteraction, RatelimitInfo, Reaction,
    ReactionType, Ready, ResumedEvent, ShardStageUpdateEvent,
};
use serenity::async_trait;
use serenity::builder::{Builder, CreateInteractionResponse, CreateModal};

use super::answers::{self, IxKind, IxOp, IxTarget};
use super::events::{interaction_actor, message_event, options_of, reaction_event, vote_emoji};
use super::render::Press;
use super::sender::Item;
use super::{catchup, interactions, render, rest, scope, slash, sync_engine, votes, Shared};
use crate::domain::Actor;
use crate::ports::chat::{CardAction, ChatEvent, Origin, Vote};

pub(crate) struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub fn new(shared: Arc<Shared>) -> Handler {
        Handler { shared }
    }
}

impl Handler {
    async fn on_reaction(&self, r: Reaction, added: bool) {
        let Some(user) = r.user_id else { return };
        if self.shared.is_me(user.get()) || vote_emoji(&r).is_none() {
            return;
        }
        if !self.shared.serves(r.guild_id) {
            return;
        }
        if let Some(g) = r.guild_id {
            self.shared.learn_guild(r.channel_id.get(), g.get());
        }
        if r.member.is_none() && !self.shared.may_be_card(r.message_id.get()) {
            // A removal on a message that is no open card: not a vote, no member lookup.
            self.shared.metrics.discord.dropped("not_a_card");
            return;
        }
        let member = match (&r.member, r.guild_id) {
            (Some(m), _) => m.clone(),
            // REACTION_REMOVE carries no member: ask for the roles.
            (None, Some(g)) => match self.shared.http.get_member(g, user).await {
                Ok(m) => m,
                Err(e) => {
                    self.shared.metrics.discord.dropped("member_unknown");
                    tracing::warn!(user = user.get(), error = %e, "cannot read the roles of a reacting user; reaction ignored");
                    return;
                }
            },
            (None, None) => return,
        };
        if let Some(ChatEvent::Reaction {
            actor,
            mut origin,
            message_id,
            emoji,
            added,
        }) = reaction_event(&r, &member, added)
        {
            if Vote::from_emoji(&emoji) == Some(Vote::Approve) {
                self.shared.saw_approval(r.message_id.get(), &actor, added);
            }
            // Refusals to this user about this card are throttled by this key.
            origin.interaction = Some(votes::reaction_key(user.get(), r.message_id.get()));
            self.shared.feed(ChatEvent::Reaction {
                actor,
                origin,
                message_id,
                emoji,
                added,
            });
        }
    }

    /// Sends an interaction's event to the engine; its answers go to the interaction's lane,
    /// which is completed once the engine has acted on the event. A button is acknowledged at
    /// once (deferred update: the card's own edit shows the vote); a slash command is deferred
    /// `defer_at` after Discord created it if the engine has not answered by then.
    async fn forward(&self, key: String, target: IxTarget, actor: Actor, event: ChatEvent) {
        let Some(engine) = self.shared.engine() else {
            answers::answer_now(
                &self.shared,
                target.id,
                &target.token,
                &target.channel,
                "opsgate is starting; try again in a moment.",
            )
            .await;
            return;
        };
        let defer_in = match target.kind {
            IxKind::Button => Duration::ZERO,
            IxKind::Slash => interactions::until(target.age, self.shared.tuning.defer_at),
        };
        let lane = answers::open_interaction(&self.shared, &key, target, &actor.name);
        if defer_in.is_zero() {
            // Queued before the engine can answer, so the acknowledgement goes out first.
            let _ = lane.send(IxOp::Defer);
        } else {
            let timer = lane.clone();
            tokio::spawn(async move {
                tokio::time::sleep(defer_in).await;
                let _ = timer.send(IxOp::Defer);
            });
        }
        engine.chat(event);
        sync_engine(&engine).await;
        let _ = self.shared.out.send(Item::Complete(key));
    }

    /// An interaction past Discord's window: logged and counted under `reason`.
    fn late(&self, what: &str, id: u64, age: Duration, reason: &'static str) {
        self.shared.metrics.discord.late_interaction(reason);
        tracing::warn!(
            interaction = id,
            age_ms = age.as_millis() as u64,
            "a {what} reached opsgate after Discord's 3 s window; not answered (if every interaction is late, check this host's clock)"
        );
    }

    /// A deleted message that is an active job's card: its lane and the engine hear it.
    fn card_deleted(
        &self,
        message: serenity::all::MessageId,
        guild: Option<serenity::all::GuildId>,
    ) {
        if !self.shared.serves(guild) {
            return;
        }
        if let Some(job) = self.shared.live_card(message.get()) {
            let _ = self.shared.out.send(Item::CardGone {
                job,
                message: message.get(),
            });
        }
    }

    async fn on_slash(&self, cmd: CommandInteraction) {
        let age = interactions::age(cmd.id.get(), interactions::now_ms());
        if interactions::is_stale(age) {
            // The user was already told the command failed; acting on it now would run
            // something they believe did not happen.
            self.late("slash command", cmd.id.get(), age, "slash_dropped");
            return;
        }
        let actor = interaction_actor(cmd.member.as_deref(), &cmd.user);
        if let Some(g) = cmd.guild_id {
            self.shared.learn_guild(cmd.channel_id.get(), g.get());
        }
        let options = options_of(&cmd.data.options);
        let text = match slash::to_text(
            &self.shared.config.prefix,
            &self.shared.config.catalog,
            &cmd.data.name,
            &options,
        ) {
            Ok(t) => t,
            Err(msg) => {
                let channel = cmd.channel_id.get().to_string();
                answers::answer_now(&self.shared, cmd.id, &cmd.token, &channel, &msg).await;
                return;
            }
        };
        let key = cmd.id.get().to_string();
        let origin = self
            .shared
            .origin_in(cmd.channel_id, Some(key.clone()))
            .await;
        let target = IxTarget {
            id: cmd.id,
            token: cmd.token.clone(),
            kind: IxKind::Slash,
            channel: origin.answer_channel().to_string(),
            public: slash::answers_publicly(&cmd.data.name),
            age,
        };
        let event = ChatEvent::Message {
            actor: actor.clone(),
            origin,
            text,
        };
        self.forward(key, target, actor, event).await;
    }

    async fn on_autocomplete(&self, cmd: CommandInteraction) {
        let Some(focused) = cmd.data.autocomplete() else {
            return;
        };
        let age = interactions::age(cmd.id.get(), interactions::now_ms());
        if interactions::is_stale(age) {
            self.late(
                "autocomplete request",
                cmd.id.get(),
                age,
                "autocomplete_dropped",
            );
            return;
        }
        let options = options_of(&cmd.data.options);
        let service = options
            .iter()
            .find(|(n, _)| n == "service")
            .map(|(_, v)| v.as_str());
        let choices = if slash::is_operation(&self.shared.config.catalog, &cmd.data.name) {
            slash::suggest(&self.shared.config, focused.name, focused.value, service)
        } else {
            Vec::new()
        };
        let response =
            CreateInteractionResponse::Autocomplete(slash::autocomplete_response(choices));
        if let Err(e) = response
            .execute(&*self.shared.http, (cmd.id, &cmd.token))
            .await
        {
            tracing::debug!(error = %e, "autocomplete answer failed");
        }
    }

    async fn on_button(&self, c: ComponentInteraction) {
        let age = interactions::age(c.id.get(), interactions::now_ms());
        let stale = interactions::is_stale(age);
        if let Some(number) = render::parse_confirm_id(&c.data.custom_id) {
            if !stale {
                self.open_form(c.id, &c.token, render::confirm_modal(number))
                    .await;
            } else {
                self.late("confirm button press", c.id.get(), age, "form_unopened");
            }
            return;
        }
        let Some((job, nonce, press)) = render::parse_button_id(&c.data.custom_id) else {
            if !stale {
                answers::answer_now(
                    &self.shared,
                    c.id,
                    &c.token,
                    &c.channel_id.get().to_string(),
                    "This button is not one of opsgate's.",
                )
                .await;
            }
            return;
        };
        if press == Press::Deny && !stale {
            // The form is the press's first and only answer; its submission is the decision.
            let form = render::deny_modal(&c.data.custom_id, job);
            self.open_form(c.id, &c.token, form).await;
            return;
        }
        let actor = interaction_actor(c.member.as_ref(), &c.user);
        if let Some(g) = c.guild_id {
            self.shared.learn_guild(c.channel_id.get(), g.get());
        }
        let key = c.id.get().to_string();
        let channel = c.channel_id.get().to_string();
        let message_id = c.message.id.get().to_string();
        let event = |interaction: String| {
            let origin = Origin {
                channel: channel.clone().into(),
                interaction: Some(interaction),
                thread: None,
            };
            match press {
                Press::Approve | Press::Deny => ChatEvent::Button {
                    actor: actor.clone(),
                    origin,
                    job,
                    nonce,
                    message_id: message_id.clone().into(),
                    vote: if press == Press::Approve {
                        Vote::Approve
                    } else {
                        Vote::Deny
                    },
                },
                Press::Cancel => ChatEvent::CardAction {
                    actor: actor.clone(),
                    origin,
                    job,
                    nonce,
                    message_id: message_id.clone().into(),
                    action: CardAction::Cancel,
                },
            }
        };
        if stale {
            // The press reached opsgate, from someone Discord vouches for, on the job's own
            // card (the engine checks nonce and message): it counts, like a ✅ or ❌ (a late
            // Deny cannot open its form, so it denies without a reason), and the card's edit
            // shows it. Only the answer is impossible; refusals go to the channel, as for
            // reactions (throttled).
            self.late("button press", c.id.get(), age, "button_unanswered");
            let reaction_key = votes::reaction_key(c.user.id.get(), c.message.id.get());
            self.shared.feed(event(reaction_key));
            return;
        }
        let target = IxTarget {
            id: c.id,
            token: c.token.clone(),
            kind: IxKind::Button,
            channel: channel.clone(),
            public: false,
            age,
        };
        let ev = event(key.clone());
        self.forward(key, target, actor.clone(), ev).await;
    }

    /// Opens a form (modal) as the interaction's first answer.
    async fn open_form(&self, id: InteractionId, token: &str, form: CreateModal) {
        let response = CreateInteractionResponse::Modal(form);
        if let Err(e) = response.execute(&*self.shared.http, (id, token)).await {
            self.shared
                .call_failed("interaction", rest::Failure::of(&e));
            tracing::warn!(error = %e, "could not open a form");
        }
    }

    /// A submitted form: the Deny reason for a card, or a typed confirmation.
    async fn on_form(&self, m: ModalInteraction) {
        let age = interactions::age(m.id.get(), interactions::now_ms());
        if interactions::is_stale(age) {
            // Like a late slash command: the user was told it failed and may send it again.
            self.late("form", m.id.get(), age, "form_dropped");
            return;
        }
        let actor = interaction_actor(m.member.as_ref(), &m.user);
        if let Some(g) = m.guild_id {
            self.shared.learn_guild(m.channel_id.get(), g.get());
        }
        let key = m.id.get().to_string();
        if let Some(number) = render::parse_confirm_id(&m.data.custom_id) {
            let typed = render::modal_value(&m.data.components, render::CONFIRM_FIELD)
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let origin = self.shared.origin_in(m.channel_id, Some(key.clone())).await;
            let target = IxTarget {
                id: m.id,
                token: m.token.clone(),
                kind: IxKind::Slash,
                channel: origin.answer_channel().to_string(),
                public: false,
                age,
            };
            let text = format!("{}confirm {number} {typed}", self.shared.config.prefix);
            let event = ChatEvent::Message {
                actor: actor.clone(),
                origin,
                text,
            };
            return self.forward(key, target, actor, event).await;
        }
        let (Some((job, nonce, Press::Deny)), Some(message)) = (
            render::parse_button_id(&m.data.custom_id),
            m.message.as_ref(),
        ) else {
            answers::answer_now(
                &self.shared,
                m.id,
                &m.token,
                &m.channel_id.get().to_string(),
                "This form is not one of opsgate's.",
            )
            .await;
            return;
        };
        let channel = m.channel_id.get().to_string();
        let event = ChatEvent::CardAction {
            actor: actor.clone(),
            origin: Origin {
                channel: channel.clone().into(),
                interaction: Some(key.clone()),
                thread: None,
            },
            job,
            nonce,
            message_id: message.id.get().to_string().into(),
            action: CardAction::Deny {
                reason: render::modal_value(&m.data.components, render::REASON_FIELD),
            },
        };
        let target = IxTarget {
            id: m.id,
            token: m.token.clone(),
            kind: IxKind::Button,
            channel,
            public: false,
            age,
        };
        self.forward(key, target, actor, event).await;
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.shared
            .bot_user
            .store(ready.user.id.get(), Ordering::SeqCst);
        self.shared.http.set_application_id(ready.application.id);
        self.shared.set_cache(ctx.cache.clone());
        if self.shared.readies.fetch_add(1, Ordering::SeqCst) > 0 {
            // A new session (op 9, or a resume Discord refused): events may have been missed;
            // catch-up below reads the cards again.
            self.shared.metrics.discord.reconnects.inc();
        }
        self.shared.set_connected(true);
        tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "connected to Discord");
        let shared = self.shared.clone();
        tokio::spawn(async move {
            slash::register(&shared.http, &shared.config).await;
        });
        tokio::spawn(catchup::run(self.shared.clone()));
        tokio::spawn(super::gap::run(self.shared.clone()));
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        self.shared.metrics.discord.reconnects.inc();
        self.shared.set_connected(true);
        tracing::info!("Discord session resumed");
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        if event.new != ConnectionStage::Connected {
            self.shared.set_connected(false);
        }
    }

    async fn ratelimit(&self, data: RatelimitInfo) {
        // serenity's rate limiter waits and retries by itself; count it so it shows.
        self.shared.metrics.discord.rate_limited.inc();
        tracing::debug!(path = %data.path, wait_ms = data.timeout.as_millis() as u64, "Discord rate limit");
    }

    async fn message(&self, _ctx: Context, msg: Message) {
        if self.shared.is_me(msg.author.id.get()) {
            return;
        }
        let Some(ChatEvent::Message { actor, text, .. }) =
            message_event(&msg, &self.shared.config.prefix)
        else {
            return;
        };
        if !self.shared.serves(msg.guild_id) {
            return;
        }
        if let Some(g) = msg.guild_id {
            self.shared.learn_guild(msg.channel_id.get(), g.get());
        }
        if !self.shared.claim(msg.id.get()) {
            // Already answered as typed while opsgate was switching over (`gap.rs`).
            return;
        }
        let origin = self.shared.origin_in(msg.channel_id, None).await;
        let event = ChatEvent::Message {
            actor,
            origin,
            text,
        };
        (self.shared).feed_read(event, msg.channel_id.get(), msg.id.get());
    }

    async fn reaction_remove_all(
        &self,
        _ctx: Context,
        channel: ChannelId,
        message: serenity::all::MessageId,
    ) {
        if self.shared.may_be_card(message.get()) {
            self.shared.approvals_cleared(channel.get(), message.get());
        }
    }

    async fn reaction_remove_emoji(&self, _ctx: Context, removed: Reaction) {
        if !self.shared.serves(removed.guild_id) {
            return;
        }
        let approve = matches!(&removed.emoji, ReactionType::Unicode(e) if Vote::from_emoji(e) == Some(Vote::Approve));
        if approve {
            self.shared
                .approvals_cleared(removed.channel_id.get(), removed.message_id.get());
        }
    }

    async fn message_delete(
        &self,
        _ctx: Context,
        _channel: ChannelId,
        message: serenity::all::MessageId,
        guild: Option<serenity::all::GuildId>,
    ) {
        self.card_deleted(message, guild);
    }

    async fn message_delete_bulk(
        &self,
        _ctx: Context,
        _channel: ChannelId,
        messages: Vec<serenity::all::MessageId>,
        guild: Option<serenity::all::GuildId>,
    ) {
        for message in messages {
            self.card_deleted(message, guild);
        }
    }

    async fn thread_create(&self, _ctx: Context, thread: GuildChannel) {
        if scope::is_thread(thread.kind) {
            self.shared
                .learn_parent(thread.id.get(), thread.parent_id.map(|p| p.get()));
        }
    }

    async fn reaction_add(&self, _ctx: Context, r: Reaction) {
        self.on_reaction(r, true).await;
    }

    async fn reaction_remove(&self, _ctx: Context, r: Reaction) {
        self.on_reaction(r, false).await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let guild = match &interaction {
            Interaction::Command(c) | Interaction::Autocomplete(c) => c.guild_id,
            Interaction::Component(c) => c.guild_id,
            Interaction::Modal(m) => m.guild_id,
            _ => None,
        };
        if !self.shared.serves(guild) {
            return;
        }
        match interaction {
            Interaction::Command(cmd) => self.on_slash(cmd).await,
            Interaction::Autocomplete(cmd) => self.on_autocomplete(cmd).await,
            Interaction::Component(c) => self.on_button(c).await,
            Interaction::Modal(m) => self.on_form(m).await,
            _ => {}
        }
    }
}
