//! The Discord adapter (serenity 0.12): gateway events become [`ChatEvent`]s for the engine,
//! and the engine's [`Outgoing`](crate::chat::Outgoing) messages become Discord messages,
//! embeds with buttons, edits and interaction replies.
//!
//! | file | job |
//! |---|---|
//! | `handler.rs` | gateway events -> `ChatEvent` (messages, reactions, buttons, slash commands) |
//! | `sender.rs` | `ChatOut`: queues output, one lane per job (post, then coalesced edits), per channel, per interaction |
//! | `render.rs` | card embed and buttons, splitting long text, incident text |
//! | `slash.rs` | slash command definitions from the command table, option -> `!` text, autocomplete |
//! | `catchup.rs` | on ready: apply ✅/❌ given while the bot was away |

mod catchup;
mod handler;
pub mod render;
mod sender;
pub mod slash;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serenity::all::{Cache, ChannelId, GatewayError, GatewayIntents, ShardManager};
use serenity::builder::CreateAllowedMentions;
use serenity::http::{Http, HttpBuilder};

use super::{ChatEvent, ChatOut};
use crate::config::Config;
use crate::engine::{EngineEvent, EngineHandle};

/// The intents opsgate needs. MESSAGE_CONTENT is privileged: it must be enabled in the
/// Developer Portal too.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
}

/// The Discord chat: build with [`Discord::new`], give [`Discord::chat`] to the engine, then
/// [`Discord::run`] with the engine's handle.
pub struct Discord {
    shared: Arc<Shared>,
    chat: Arc<sender::DiscordChat>,
    shards: Mutex<Option<Arc<ShardManager>>>,
    stopping: AtomicBool,
}

impl std::fmt::Debug for Discord {
    // Never print the HTTP client: it holds the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord")
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl Discord {
    /// Builds the HTTP client and the chat output; no network yet. With `[discord] api_base`
    /// (tests) every REST call goes there and serenity's rate limiter is off.
    pub fn new(config: Arc<Config>, runtime: tokio::runtime::Handle) -> Result<Discord, String> {
        let http = Arc::new(build_http(&config)?);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            http,
            out: tx,
            runtime: runtime.clone(),
            engine: Mutex::new(EngineLink::default()),
            bot_user: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            guilds: Mutex::new(HashMap::new()),
            cache: Mutex::new(None),
            interactions: Mutex::new(HashMap::new()),
        });
        let chat = Arc::new(sender::DiscordChat::new(shared.clone()));
        runtime.spawn(sender::dispatch(shared.clone(), rx));
        Ok(Discord {
            shared,
            chat,
            shards: Mutex::new(None),
            stopping: AtomicBool::new(false),
        })
    }

    pub fn chat(&self) -> Arc<dyn ChatOut> {
        self.chat.clone()
    }

    /// Connects and runs until [`Discord::stop`] or a fatal gateway error, feeding `engine`.
    /// Fatal errors come back as a message that says what to fix.
    pub async fn run(&self, engine: EngineHandle) -> Result<(), String> {
        self.shared.attach(engine);
        self.stopping.store(false, Ordering::SeqCst);
        let http = build_http(&self.shared.config)?;
        let handler = handler::Handler::new(self.shared.clone());
        let mut client = serenity::client::ClientBuilder::new_with_http(http, intents())
            .event_handler(handler)
            .await
            .map_err(|e| format!("cannot start the Discord client: {e}"))?;
        *lock(&self.shards) = Some(client.shard_manager.clone());
        if self.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!("connecting to Discord");
        let result = client.start().await;
        self.shared.connected.store(false, Ordering::SeqCst);
        *lock(&self.shards) = None;
        result.map_err(|e| explain(&e, &self.shared.config))
    }

    /// True while the gateway session is ready.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Closes the gateway connection; [`Discord::run`] then returns `Ok`. Queued output still
    /// goes out.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let shards = lock(&self.shards).clone();
        if let Some(shards) = shards {
            shards.shutdown_all().await;
        }
        self.shared.connected.store(false, Ordering::SeqCst);
    }
}

fn build_http(config: &Config) -> Result<Http, String> {
    let token = config
        .discord
        .token
        .require("the Discord bot token")
        .map_err(|e| {
            format!(
                "{e}: put the bot token (Developer Portal > Applications > your app > Bot > Reset \
             Token) in DISCORD_TOKEN, or name another variable or file with [discord] \
             token_env / token_file"
            )
        })?;
    let mut builder = HttpBuilder::new(token.expose())
        // Nothing the bot posts pings anyone unless a message opts in (approver roles).
        .default_allowed_mentions(CreateAllowedMentions::new());
    if let Some(base) = &config.discord.api_base {
        // serenity's rate limiter ignores the proxy; tests run without it.
        builder = builder.proxy(base.clone()).ratelimiter_disabled(true);
    }
    Ok(builder.build())
}

/// What to fix, for errors that end the connection.
fn explain(e: &serenity::Error, config: &Config) -> String {
    let token_source = config
        .discord
        .token
        .source
        .clone()
        .unwrap_or_else(|| "env DISCORD_TOKEN".into());
    match e {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => format!(
            "Discord rejected the bot token (gateway close 4004). Put the token from the \
             Developer Portal (Applications > your app > Bot > Reset Token) in {token_source}."
        ),
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => "Discord refused \
            a privileged intent (gateway close 4014). Enable the Message Content intent in the \
            Developer Portal (Applications > your app > Bot > Privileged Gateway Intents > \
            Message Content Intent), then start opsgate again."
            .to_string(),
        serenity::Error::Gateway(GatewayError::InvalidGatewayIntents) => "Discord says the \
            requested intents are invalid (gateway close 4013); this is a bug in opsgate."
            .to_string(),
        serenity::Error::Http(h) if h.status_code().is_some_and(|s| s.as_u16() == 401) => {
            format!(
                "Discord rejected the bot token (HTTP 401). Put the token from the Developer \
                 Portal (Applications > your app > Bot > Reset Token) in {token_source}."
            )
        }
        other => format!("the Discord connection failed: {other}"),
    }
}

/// The engine, once `run` has it; events reported before that wait here.
#[derive(Default)]
struct EngineLink {
    handle: Option<EngineHandle>,
    waiting: Vec<ChatEvent>,
}

/// What the gateway handler and the output lanes share.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    /// The one HTTP client for all REST calls (one rate limiter).
    pub http: Arc<Http>,
    pub out: tokio::sync::mpsc::UnboundedSender<sender::Item>,
    pub runtime: tokio::runtime::Handle,
    engine: Mutex<EngineLink>,
    /// The bot's own user ID, from READY (0 before).
    pub bot_user: AtomicU64,
    pub connected: AtomicBool,
    /// Channel ID -> guild ID, learned from events.
    guilds: Mutex<HashMap<u64, u64>>,
    cache: Mutex<Option<Arc<Cache>>>,
    /// Interactions waiting for the engine's answer, by key.
    pub interactions: Mutex<HashMap<String, sender::InteractionEntry>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn attach(&self, engine: EngineHandle) {
        let mut link = lock(&self.engine);
        for event in link.waiting.drain(..) {
            engine.chat(event);
        }
        link.handle = Some(engine);
    }

    pub fn engine(&self) -> Option<EngineHandle> {
        lock(&self.engine).handle.clone()
    }

    /// Sends `event` to the engine, or keeps it until the engine is attached.
    pub fn feed(&self, event: ChatEvent) {
        let mut link = lock(&self.engine);
        match &link.handle {
            Some(h) => {
                h.chat(event);
            }
            None => link.waiting.push(event),
        }
    }

    pub fn is_me(&self, user: u64) -> bool {
        user != 0 && self.bot_user.load(Ordering::SeqCst) == user
    }

    pub fn learn_guild(&self, channel: u64, guild: u64) {
        lock(&self.guilds).insert(channel, guild);
    }

    pub fn set_cache(&self, cache: Arc<Cache>) {
        *lock(&self.cache) = Some(cache);
    }

    /// The guild a channel belongs to: from events, the cache, the config (one guild), or
    /// the API.
    pub async fn guild_of(&self, channel: &str) -> Option<u64> {
        let id: u64 = channel.parse().ok().filter(|v| *v > 0)?;
        if let Some(g) = lock(&self.guilds).get(&id) {
            return Some(*g);
        }
        let cached = lock(&self.cache).as_ref().and_then(|c| {
            let channel = ChannelId::new(id);
            c.guilds().into_iter().find(|g| {
                c.guild(*g)
                    .is_some_and(|guild| guild.channels.contains_key(&channel))
            })
        });
        let cached = cached.map(|g| g.get());
        if let Some(g) = cached {
            self.learn_guild(id, g);
            return Some(g);
        }
        if let [only] = self.config.discord.guilds.as_slice() {
            return Some(*only);
        }
        match self.http.get_channel(ChannelId::new(id)).await {
            Ok(serenity::all::Channel::Guild(gc)) => {
                self.learn_guild(id, gc.guild_id.get());
                Some(gc.guild_id.get())
            }
            _ => self.config.discord.guilds.first().copied(),
        }
    }
}

/// Waits (bounded) until the engine has handled and acted on everything sent before.
pub(crate) async fn sync_engine(engine: &EngineHandle) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if !engine.send(EngineEvent::Sync(tx)) {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10))).await;
}
