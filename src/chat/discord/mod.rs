//! The Discord adapter (serenity 0.12): gateway events become [`ChatEvent`]s for the engine,
//! and the engine's [`Outgoing`](crate::ports::chat::Outgoing) messages become Discord messages,
//! embeds with buttons, edits and interaction replies.
//!
//! | file | job |
//! |---|---|
//! | `handler.rs` | gateway events -> the engine (messages, reactions, buttons, forms, slash commands) |
//! | `events.rs` | gateway data -> `ChatEvent`: the actor with role IDs, a message, a vote, slash options as text (no IO) |
//! | `sender.rs` | `ChatOut`: queues output, one lane per job (post, then coalesced edits and thread lines), per channel, per interaction |
//! | `answers.rs` | one lane per interaction: the first answer within Discord's 3 s, follow-ups, the "Posted job N" summary |
//! | `messages.rs` | one plain message posted or edited (split to fit, a dropped one counted): what the lanes build on |
//! | `deliver.rs` | the one send path for messages, interaction answers and edits: Discord's rate limits honoured, bounded retries, no duplicates |
//! | `render.rs` | card embed and buttons, splitting long text, incident text |
//! | `slash.rs` | slash command definitions from the command table, option -> `!` text, autocomplete |
//! | `catchup.rs` | on ready: apply ✅/❌ given while the bot was away |
//! | `gap.rs` | on the first ready: answer commands typed while no opsgate read the channel (never run them late) |
//! | `lost.rs` | cards deleted in chat: noticed, reposted once, incident links pointed at the new card |
//! | `threads.rs` | a thread per job: made on the card once, thread lines there (the channel when refused) |
//! | `interactions.rs` | how old an interaction is (its ID carries its creation time) and what a late one may still do |

mod answers;
mod catchup;
mod connect;
mod deliver;
mod events;
mod gap;
mod handler;
mod interactions;
mod lost;
mod messages;
pub mod render;
pub mod rest;
mod scope;
mod sender;
pub mod slash;
mod state;
mod threads;
mod votes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::IntoFuture;

use serenity::all::{Cache, ChannelId, GatewayError, GatewayIntents};
use serenity::http::Http;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ports::chat::{ChatEvent, ChatOut};
use crate::ports::inbox::{EngineEvent, EngineHandle};
use crate::ports::store::ReadMarks;

/// The intents opsgate needs. MESSAGE_CONTENT is privileged: it must be enabled in the
/// Developer Portal too.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
}

/// Settings that tests shorten; production uses [`Tuning::default`].
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Every REST call ends within this (serenity itself sets no timeout).
    pub rest_timeout: Duration,
    /// The first and the longest pause between attempts to reach Discord at start-up.
    pub connect_backoff: (Duration, Duration),
    /// How long after Discord created a slash command's interaction it is deferred if the
    /// engine has not answered yet (Discord drops an interaction unanswered after 3 s).
    pub defer_at: Duration,
    /// How long one message (or interaction answer, or edit) may take to reach Discord,
    /// waits for rate limits and retries included; then it is given up on.
    pub send_budget: Duration,
    /// The first pause before retrying a 5xx, a timeout or a broken connection (it doubles).
    pub retry_pause: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            rest_timeout: Duration::from_secs(15),
            connect_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            defer_at: Duration::from_millis(1500),
            send_budget: Duration::from_secs(30),
            retry_pause: Duration::from_millis(500),
        }
    }
}

/// The Discord chat: build with [`Discord::new`], give [`Discord::chat`] to the engine, then
/// [`Discord::run`] with the engine's handle.
pub struct Discord {
    shared: Arc<Shared>,
    chat: Arc<sender::DiscordChat>,
    stop: tokio::sync::watch::Sender<bool>,
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
    /// Builds the HTTP client and the chat output; no network yet. A token that cannot be a
    /// bot token is refused here.
    pub fn new(config: Arc<Config>, runtime: tokio::runtime::Handle) -> Result<Discord, String> {
        Discord::with_tuning(config, runtime, Tuning::default())
    }

    pub fn with_tuning(
        config: Arc<Config>,
        runtime: tokio::runtime::Handle,
        tuning: Tuning,
    ) -> Result<Discord, String> {
        rest::check_token_format(&config)?;
        let http = Arc::new(rest::build_http(&config, tuning.rest_timeout)?);
        let deliver = deliver::Rest::new(
            rest::client(tuning.rest_timeout)?,
            rest::base(&config),
            &rest::token(&config)?,
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            http,
            rest: deliver,
            tuning,
            metrics: Arc::new(Metrics::new()),
            out: tx,
            runtime: runtime.clone(),
            engine: Mutex::new(EngineLink::default()),
            bot_user: AtomicU64::new(0),
            readies: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            guilds: Mutex::new(HashMap::new()),
            cache: Mutex::new(None),
            interactions: Mutex::new(HashMap::new()),
            state: Mutex::new(state::AdapterState::default()),
            gap: Mutex::new(gap::Gap::default()),
            may_speak: Mutex::new(None),
        });
        let chat = Arc::new(sender::DiscordChat::new(shared.clone()));
        runtime.spawn(sender::dispatch(shared.clone(), rx));
        Ok(Discord {
            shared,
            chat,
            stop: tokio::sync::watch::channel(false).0,
        })
    }

    pub fn chat(&self) -> Arc<dyn ChatOut> {
        self.chat.clone()
    }

    /// The adapter's metrics (and the registry the engine adds its own to).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Connects and runs until [`Discord::stop`] or a fatal error, feeding `engine`. Fatal
    /// errors (a token Discord rejects, a missing intent) come back as a message that says
    /// what to fix; an unreachable Discord is retried with backoff until stopped.
    pub async fn run(&self, engine: EngineHandle) -> Result<(), String> {
        self.shared.attach(engine);
        let mut stop = self.stop.subscribe();
        if *stop.borrow_and_update() {
            return Ok(());
        }
        tokio::select! {
            reached = connect::reach(&self.shared) => reached?,
            _ = stop.changed() => return Ok(()),
        }
        let http = rest::build_http(&self.shared.config, self.shared.tuning.rest_timeout)?;
        let handler = handler::Handler::new(self.shared.clone());
        let built = serenity::client::ClientBuilder::new_with_http(http, intents())
            .event_handler(handler)
            .into_future();
        let mut client = tokio::select! {
            built = built => built.map_err(|e| format!("cannot start the Discord client: {e}"))?,
            _ = stop.changed() => return Ok(()),
        };
        let shards = client.shard_manager.clone();
        tracing::info!("connecting to Discord");
        let start = client.start();
        tokio::pin!(start);
        let result = tokio::select! {
            result = &mut start => result.map_err(|e| explain(&e, &self.shared.config)),
            _ = stop.changed() => {
                // serenity's shutdown returns at once while no shard runs (Discord
                // unreachable) and `start` then never ends: wait a little, then let go.
                let _ = tokio::time::timeout(SHUTDOWN_WAIT, shards.shutdown_all()).await;
                if tokio::time::timeout(SHUTDOWN_WAIT, &mut start).await.is_err() {
                    tracing::info!("the gateway did not close in time; leaving it");
                }
                Ok(())
            }
        };
        self.shared.set_connected(false);
        result
    }

    /// Reads each served channel back from `marks` (the newest message handled there) on
    /// the first READY, and answers the commands typed since (`gap.rs`). Call before
    /// [`Discord::run`].
    pub fn read_back_from(&self, marks: ReadMarks) {
        self.shared.read_back_from(marks);
    }

    /// From now on, every message, answer and edit first asks `may_speak` and is dropped
    /// when it says no (a replica whose lease may have ended says nothing more).
    pub fn speak_only_while(&self, may_speak: Arc<dyn Fn() -> bool + Send + Sync>) {
        *lock(&self.shared.may_speak) = Some(may_speak);
    }

    /// True while the gateway session is ready.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Asks [`Discord::run`] to close the gateway and return `Ok`, whatever the gateway is
    /// doing (it returns within a few seconds). Queued output still goes out.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        self.shared.set_connected(false);
    }
}

/// How long a stop waits for serenity to close the gateway.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

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
    waiting: Vec<EngineEvent>,
}

/// What the gateway handler and the output lanes share.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    /// serenity's HTTP client, for the calls that are not messages (reactions, lookups,
    /// threads, forms, command registration).
    pub http: Arc<Http>,
    /// The send path for messages, interaction answers and edits (`deliver.rs`).
    pub rest: deliver::Rest,
    pub tuning: Tuning,
    pub metrics: Arc<Metrics>,
    pub out: tokio::sync::mpsc::UnboundedSender<sender::Item>,
    pub runtime: tokio::runtime::Handle,
    engine: Mutex<EngineLink>,
    /// The bot's own user ID, from READY (0 before).
    pub bot_user: AtomicU64,
    /// READY events seen (a second one is a new session).
    pub readies: AtomicU64,
    pub connected: AtomicBool,
    /// Channel ID -> guild ID, learned from events.
    guilds: Mutex<HashMap<u64, u64>>,
    cache: Mutex<Option<Arc<Cache>>>,
    /// Interactions waiting for the engine's answer, by key.
    pub interactions: Mutex<HashMap<String, answers::InteractionEntry>>,
    /// What the adapter remembers between events (cards, threads, guilds).
    pub state: Mutex<state::AdapterState>,
    /// Where to read channels back from on the first READY (`gap.rs`).
    gap: Mutex<gap::Gap>,
    /// Whether this process may still speak in chat (a replica that may have lost its lead
    /// may not); every message, answer and edit asks it first (`deliver::call`).
    may_speak: Mutex<Option<Arc<dyn Fn() -> bool + Send + Sync>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Whether this process may still speak in chat (see `Discord::speak_only_while`).
    pub fn may_speak(&self) -> bool {
        let gate = lock(&self.may_speak).clone();
        gate.is_none_or(|may| may())
    }

    fn attach(&self, engine: EngineHandle) {
        let mut link = lock(&self.engine);
        for event in link.waiting.drain(..) {
            engine.send(event);
        }
        link.handle = Some(engine);
    }

    pub fn engine(&self) -> Option<EngineHandle> {
        lock(&self.engine).handle.clone()
    }

    /// Sends `event` to the engine, or keeps it until the engine is attached.
    pub fn feed(&self, event: ChatEvent) {
        self.feed_event(EngineEvent::Chat(event));
    }

    /// Sends a message's `event` to the engine with the message's place in its channel,
    /// recorded as read with it.
    pub fn feed_read(&self, event: ChatEvent, channel: u64, message: u64) {
        self.feed_event(EngineEvent::Read {
            event: Some(event),
            channel: channel.to_string().into(),
            message: message.to_string().into(),
        });
    }

    fn feed_event(&self, event: EngineEvent) {
        let mut link = lock(&self.engine);
        match &link.handle {
            Some(h) => {
                h.send(event);
            }
            None => link.waiting.push(event),
        }
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        self.metrics.discord.connected.set(i64::from(up));
    }

    /// When a message handed over now is given up on (`Tuning::send_budget`).
    pub fn send_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.tuning.send_budget
    }

    /// Counts a failed REST call.
    pub fn call_failed(&self, call: &'static str, failure: rest::Failure) {
        self.metrics.discord.call_failed(call, failure.label());
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
