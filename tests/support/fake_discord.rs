//! A small fake Discord on 127.0.0.1 for the end-to-end tests: the REST routes opsgate uses
//! and a gateway websocket (HELLO, IDENTIFY -> READY, RESUME -> RESUMED, heartbeats, op 7,
//! close codes), driven by the real serenity client. It records every REST call and keeps
//! messages and reactions, so tests can look at what the bot did. It can fail calls as
//! Discord does (error statuses, 429s with Discord's headers and body, whose wait it then
//! enforces, hung answers, a connection closed after the call was done). Test code only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const GUILD: u64 = 100000000000000001;
pub const OPS: u64 = 200000000000000001;
pub const INCIDENTS: u64 = 200000000000000009;
pub const BOT: u64 = 900000000000000001;
/// A thread under OPS, and a forum post (a thread) in a forum whose rules are OPS's parent's.
pub const OPS_THREAD: u64 = 200000000000000101;
/// A channel no rule allows, and a thread under it.
pub const RANDOM: u64 = 200000000000000002;
pub const RANDOM_THREAD: u64 = 200000000000000102;
/// A server the bot was added to but that is not in `[discord] guilds`.
pub const FOREIGN_GUILD: u64 = 100000000000000002;
pub const FOREIGN_CHANNEL: u64 = 200000000000000201;
pub const ONCALL_ROLE: u64 = 400000000000000001;
pub const DBA_ROLE: u64 = 400000000000000002;
pub const ALICE: u64 = 700000000000000001;
pub const BOB: u64 = 700000000000000002;
pub const MALLORY: u64 = 700000000000000003;
pub const CAROL: u64 = 700000000000000004;
pub const OTHER_BOT: u64 = 700000000000000009;

#[derive(Clone, Debug)]
pub struct Call {
    /// The Authorization header (`Bot TOKEN`): which bot made the call.
    pub auth: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone, Debug)]
pub struct Stored {
    pub channel: u64,
    pub content: String,
    pub embeds: Value,
    pub components: Value,
    pub allowed_mentions: Value,
    pub edits: usize,
    /// The nonce it was posted with (Discord deduplicates on it with `enforce_nonce`).
    pub nonce: Option<String>,
    pub author: u64,
    /// When it was posted.
    pub at: Instant,
}

impl Stored {
    pub fn title(&self) -> String {
        self.embeds[0]["title"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The embed as text, for `contains` checks.
    pub fn text(&self) -> String {
        format!("{} {}", self.content, self.embeds)
    }
}

/// A failure the fake injects into matching REST calls, as Discord would answer.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// An error status with Discord's JSON body (`code`), e.g. 403/50013, 404/10008, 500/0.
    Status { status: u16, code: u64 },
    /// 429 for the route as Discord answers it: body `{"message", "retry_after", "global":
    /// false}` (no `code`), `Retry-After` (whole seconds, rounded up) and
    /// `X-RateLimit-Reset-After` headers. Until `retry_after` has passed, every call to the
    /// same method and path is answered 429 too and counted in `Inner::early`.
    RateLimited { retry_after: f64 },
    /// The same with `"global": true` and `X-RateLimit-Global: true`: until it has passed,
    /// every REST call is answered 429 and counted in `Inner::early`.
    GlobalRateLimited { retry_after: f64 },
    /// Do the call, then answer only after this long (the caller times out first).
    HangAfter(Duration),
    /// Do the call (a message is stored), then close the connection without answering.
    DropAfter,
}

/// A rate limit the fake announced with a 429 and now enforces.
#[derive(Clone, Debug)]
struct Window {
    /// Every route, or only this method and path.
    route: Option<(String, String)>,
    until: Instant,
    global: bool,
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub method: String,
    /// A substring of the path.
    pub path: String,
    pub kind: FaultKind,
    /// How many matching calls it applies to.
    pub times: usize,
}

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub name: String,
    pub roles: Vec<u64>,
    pub bot: bool,
}

enum WsCmd {
    Dispatch(String, Value),
    Reconnect,
    InvalidSession,
}

#[derive(Default)]
pub struct Inner {
    pub calls: Vec<Call>,
    pub messages: BTreeMap<u64, Stored>,
    /// (message, emoji) -> users, in order.
    pub reactions: BTreeMap<(u64, String), Vec<u64>>,
    pub users: BTreeMap<u64, FakeUser>,
    /// IDENTIFY frames, token redacted.
    pub identifies: Vec<Value>,
    pub readies: usize,
    pub resumes: usize,
    pub heartbeats: usize,
    /// Close the next IDENTIFY with this code (4004 bad token, 4014 disallowed intents).
    pub close_on_identify: Option<u16>,
    /// Refuse websocket upgrades with 503 (Discord's gateway unreachable, REST fine).
    pub gateway_down: bool,
    pub faults: Vec<Fault>,
    /// Command lists Discord accepted, per registration.
    pub registered: Vec<Value>,
    /// Thread -> parent channel.
    pub threads: BTreeMap<u64, u64>,
    /// Channel -> guild, for channels not in GUILD.
    pub channel_guilds: BTreeMap<u64, u64>,
    /// Calls that came while a rate limit the fake announced was still in force.
    pub early: Vec<Call>,
    windows: Vec<Window>,
    gateway: Option<mpsc::UnboundedSender<WsCmd>>,
    next_id: u64,
    seq: u64,
    /// Tokens seen in Authorization headers and IDENTIFY, to prove they stay out of logs.
    pub tokens: Vec<String>,
    /// Interaction -> the type of its first answer (Discord takes exactly one).
    pub acks: BTreeMap<u64, u64>,
    /// Interaction -> the deferred or first answer was deleted.
    pub deleted_originals: Vec<u64>,
    /// Interaction -> its type (2 command, 3 component, 4 autocomplete, 5 modal submit).
    pub kinds: BTreeMap<u64, u64>,
    /// Forms (modals) opened: interaction -> the modal's data, as Discord accepted it.
    pub modals: BTreeMap<u64, Value>,
    /// Component interaction -> the message its button is on (a form carries it on).
    pub form_messages: BTreeMap<u64, u64>,
    interaction_seq: u64,
    /// Messages users typed (MESSAGE_CREATE), by ID: (channel, author, content). Kept
    /// apart from `messages` (the bot's), and read back by GET /channels/{c}/messages.
    pub said: BTreeMap<u64, (u64, u64, String)>,
    last_id: u64,
}

/// Discord's epoch (2015-01-01) in Unix milliseconds, the zero of snowflake times.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// Discord takes the first answer to an interaction only this long after creating it.
pub const INTERACTION_WINDOW: Duration = Duration::from_secs(3);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When Discord created the object with this snowflake, in Unix milliseconds.
pub fn created_ms(id: u64) -> u64 {
    (id >> 22) + DISCORD_EPOCH_MS
}

impl Inner {
    /// A new message ID: a snowflake of the current time, as Discord's, larger than every
    /// one before.
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        let now = (unix_ms() - DISCORD_EPOCH_MS) << 22;
        self.last_id = now.max(self.last_id + 1);
        self.last_id
    }

    /// An interaction ID Discord made `age` ago.
    pub fn interaction_id(&mut self, age: Duration) -> u64 {
        self.snowflake(age)
    }

    /// A snowflake made `age` ago, as Discord makes interaction IDs (the time is in the ID).
    fn snowflake(&mut self, age: Duration) -> u64 {
        self.interaction_seq += 1;
        let ms = unix_ms().saturating_sub(age.as_millis() as u64) - DISCORD_EPOCH_MS;
        (ms << 22) | (self.interaction_seq & 0xfff)
    }

    /// The first fault matching this call, used up once.
    fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let i = self
            .faults
            .iter()
            .position(|f| f.times > 0 && f.method == method && path.contains(&f.path))?;
        self.faults[i].times -= 1;
        Some(self.faults[i].kind.clone())
    }

    /// The ID of the last message a user sent (MESSAGE_CREATE ids are `id()`s too).
    pub fn id_of_last_user_message(&self) -> u64 {
        self.last_id
    }

    /// Bot messages in a channel, oldest first.
    pub fn in_channel(&self, channel: u64) -> Vec<(u64, Stored)> {
        self.messages
            .iter()
            .filter(|(_, m)| m.channel == channel)
            .map(|(id, m)| (*id, m.clone()))
            .collect()
    }

    /// The card of job `job`: (message ID, message).
    pub fn card(&self, job: u64) -> Option<(u64, Stored)> {
        let want = format!("Job {job} ·");
        self.messages
            .iter()
            .find(|(_, m)| m.title().contains(&want))
            .map(|(id, m)| (*id, m.clone()))
    }

    pub fn calls_to(&self, method: &str, fragment: &str) -> Vec<Call> {
        self.calls
            .iter()
            .filter(|c| c.method == method && c.path.contains(fragment))
            .cloned()
            .collect()
    }

    /// Interaction callbacks (type, data) for interaction `id`.
    pub fn callbacks(&self, id: u64) -> Vec<Value> {
        self.calls
            .iter()
            .filter(|c| c.path.starts_with(&format!("/api/v10/interactions/{id}/")))
            .map(|c| c.body.clone())
            .collect()
    }

    /// Every call answering interaction `id`: its callback, then edits, deletions and
    /// follow-ups through its token.
    pub fn answers(&self, id: u64) -> Vec<Call> {
        self.calls
            .iter()
            .filter(|c| {
                c.path.starts_with(&format!("/api/v10/interactions/{id}/"))
                    || c.path.contains(&format!("/itok-{id}"))
            })
            .cloned()
            .collect()
    }
}

pub struct FakeDiscord {
    pub port: u16,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    inner: Mutex<Inner>,
    port: u16,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn user_json(id: u64, u: &FakeUser) -> Value {
    json!({"id": id.to_string(), "username": u.name, "bot": u.bot, "discriminator": "0000"})
}

fn member_json(id: u64, u: &FakeUser) -> Value {
    json!({"user": user_json(id, u),
           "roles": u.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
           "deaf": false, "mute": false, "flags": 0, "joined_at": "2024-01-01T00:00:00.000000+00:00"})
}

fn message_json(id: u64, channel: u64, author: Value, content: &str) -> Value {
    message_json_in(GUILD, id, channel, author, content)
}

fn message_json_in(guild: u64, id: u64, channel: u64, author: Value, content: &str) -> Value {
    json!({"id": id.to_string(), "channel_id": channel.to_string(), "guild_id": guild.to_string(),
           "author": author, "content": content, "timestamp": "2024-01-01T00:00:00.000000+00:00",
           "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
           "attachments": [], "embeds": [], "pinned": false, "type": 0})
}

fn bot_user() -> Value {
    json!({"id": BOT.to_string(), "username": "opsgate", "bot": true, "discriminator": "0000"})
}

/// Deserializes a fixture with serenity's own type before sending it, so a fixture that
/// drifted from serenity's model fails loudly instead of being dropped as `Event::Unknown`.
fn checked<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Value {
    if let Err(e) = serde_json::from_value::<T>(v.clone()) {
        panic!("fake Discord fixture {what} does not deserialize with serenity: {e}\n{v}");
    }
    v
}

/// A connection's handle, so the fake can close it without answering
/// (`FaultKind::DropAfter`).
#[derive(Clone, Debug, Default)]
struct Conn {
    closed: Arc<AtomicBool>,
}

/// The fake's listener: plain TCP connections it can close mid-call.
struct Listener(TcpListener);

struct Stream {
    io: TcpStream,
    closed: Arc<AtomicBool>,
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Stream, Conn) {
        loop {
            match self.0.accept().await {
                Ok((io, _)) => {
                    let conn = Conn::default();
                    let closed = conn.closed.clone();
                    return (Stream { io, closed }, conn);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Conn> {
        Ok(Conn::default())
    }
}

impl Connected<axum::serve::IncomingStream<'_, Listener>> for Conn {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Conn {
        stream.remote_addr().clone()
    }
}

fn closed_by_fake() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection closed by the fake Discord",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Closed: nothing of the answer goes out, and the server drops the connection.
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(closed_by_fake()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(closed_by_fake()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Discord returns the message already made for a repeated nonce within "the past few
/// minutes".
const NONCE_WINDOW: Duration = Duration::from_secs(5 * 60);

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind fake discord");
        let port = listener.local_addr().expect("addr").port();
        let mut inner = Inner::default();
        for (id, name, roles, bot) in [
            (ALICE, "alice", vec![ONCALL_ROLE], false),
            (BOB, "bob", vec![DBA_ROLE], false),
            (MALLORY, "mallory", vec![ONCALL_ROLE], false),
            (CAROL, "carol", vec![DBA_ROLE], false),
            (OTHER_BOT, "otherbot", vec![DBA_ROLE, ONCALL_ROLE], true),
            (BOT, "opsgate", vec![], true),
        ] {
            inner.users.insert(
                id,
                FakeUser {
                    name: name.into(),
                    roles,
                    bot,
                },
            );
        }
        inner.threads.insert(OPS_THREAD, OPS);
        inner.threads.insert(RANDOM_THREAD, RANDOM);
        inner.channel_guilds.insert(FOREIGN_CHANNEL, FOREIGN_GUILD);
        let state = Arc::new(Shared {
            inner: Mutex::new(inner),
            port,
        });
        let app = Router::new()
            .route("/gateway", get(gateway))
            .fallback(rest)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<Conn>();
            let _ = axum::serve(Listener(listener), app).await;
        });
        FakeDiscord { port, state, task }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (bounded) until `done` holds; panics with `what` and the recorded calls if not.
    pub async fn wait<T>(&self, what: &str, done: impl Fn(&Inner) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = done(&self.lock()) {
                return v;
            }
            if Instant::now() > deadline {
                let calls: Vec<String> = self
                    .lock()
                    .calls
                    .iter()
                    .map(|c| format!("{} {} {}", c.method, c.path, c.body))
                    .collect();
                panic!("timed out waiting for {what}; calls:\n{}", calls.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn send(&self, cmd: WsCmd) {
        let gw = self.lock().gateway.clone();
        match gw {
            Some(gw) => {
                if gw.send(cmd).is_err() {
                    panic!("the bot is not connected to the fake gateway");
                }
            }
            None => panic!("the bot is not connected to the fake gateway"),
        }
    }

    /// Makes the next `times` calls of `method` on paths containing `path` fail as `kind`.
    pub fn fail(&self, method: &str, path: &str, kind: FaultKind, times: usize) {
        self.lock().faults.push(Fault {
            method: method.into(),
            path: path.into(),
            kind,
            times,
        });
    }

    pub fn dispatch(&self, t: &str, d: Value) {
        self.send(WsCmd::Dispatch(t.to_string(), d));
    }

    /// Sends op 7 and closes the socket; serenity resumes.
    pub fn reconnect(&self) {
        self.send(WsCmd::Reconnect);
    }

    /// Sends op 9 (invalid session, not resumable): serenity closes, connects again and
    /// identifies anew, and gets a new READY (events in between are lost, as with Discord).
    pub fn invalidate_session(&self) {
        self.send(WsCmd::InvalidSession);
    }

    fn user(&self, id: u64) -> FakeUser {
        self.lock().users.get(&id).cloned().expect("known user")
    }

    /// MESSAGE_CREATE from `user` in `channel`.
    pub fn say(&self, user: u64, channel: u64, content: &str) {
        let (m, _) = self.typed(user, channel, content);
        self.dispatch("MESSAGE_CREATE", m);
    }

    /// A message typed by `user` in `channel`, kept for reading back, and sent on the
    /// gateway if a session is there to get it: returns its ID and whether it was sent
    /// (`false`: typed while no bot was connected).
    pub fn type_message(&self, user: u64, channel: u64, content: &str) -> (u64, bool) {
        let (m, id) = self.typed(user, channel, content);
        let gateway = self.lock().gateway.clone();
        let sent =
            gateway.is_some_and(|gw| gw.send(WsCmd::Dispatch("MESSAGE_CREATE".into(), m)).is_ok());
        (id, sent)
    }

    fn typed(&self, user: u64, channel: u64, content: &str) -> (Value, u64) {
        let guild = self
            .lock()
            .channel_guilds
            .get(&channel)
            .copied()
            .unwrap_or(GUILD);
        let u = self.user(user);
        let id = self.lock().id();
        let mut m = message_json_in(guild, id, channel, user_json(user, &u), content);
        m["member"] = json!({"roles": u.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>()});
        let m = checked::<serenity::all::Message>("MESSAGE_CREATE", m);
        self.lock()
            .said
            .insert(id, (channel, user, content.to_string()));
        (m, id)
    }

    /// Records a reaction as Discord would (so REST reads see it) and, if `live`, sends the
    /// gateway event (REACTION_ADD with member; REACTION_REMOVE without, as Discord does).
    pub fn react(&self, user: u64, message: u64, emoji: &str, added: bool, live: bool) {
        let u = self.user(user);
        {
            let mut inner = self.lock();
            let list = inner
                .reactions
                .entry((message, emoji.to_string()))
                .or_default();
            if added {
                if !list.contains(&user) {
                    list.push(user);
                }
            } else {
                list.retain(|x| *x != user);
            }
        }
        if !live {
            return;
        }
        let channel = self
            .lock()
            .messages
            .get(&message)
            .map_or(OPS, |m| m.channel);
        let mut r = json!({"user_id": user.to_string(), "channel_id": channel.to_string(),
            "message_id": message.to_string(), "guild_id": GUILD.to_string(),
            "message_author_id": BOT.to_string(),
            "emoji": {"id": null, "name": emoji}, "burst": false, "type": 0});
        if added {
            r["member"] = member_json(user, &u);
        }
        let r = checked::<serenity::all::Reaction>("MESSAGE_REACTION", r);
        self.dispatch(
            if added {
                "MESSAGE_REACTION_ADD"
            } else {
                "MESSAGE_REACTION_REMOVE"
            },
            r,
        );
    }

    /// Someone deletes `message` (with its reactions); if `live`, the gateway says so
    /// (MESSAGE_DELETE), else the bot finds out when it next touches the message.
    pub fn delete_message(&self, message: u64, live: bool) {
        let channel = {
            let mut inner = self.lock();
            inner.reactions.retain(|(m, _), _| *m != message);
            inner.messages.remove(&message).map_or(OPS, |m| m.channel)
        };
        if live {
            self.dispatch(
                "MESSAGE_DELETE",
                json!({"id": message.to_string(), "channel_id": channel.to_string(),
                       "guild_id": GUILD.to_string()}),
            );
        }
    }

    /// A moderator removes every reaction from `message` (MESSAGE_REACTION_REMOVE_ALL).
    pub fn remove_all(&self, message: u64) {
        let channel = {
            let mut inner = self.lock();
            inner.reactions.retain(|(m, _), _| *m != message);
            inner.messages.get(&message).map_or(OPS, |m| m.channel)
        };
        self.dispatch(
            "MESSAGE_REACTION_REMOVE_ALL",
            json!({"channel_id": channel.to_string(), "message_id": message.to_string(),
                   "guild_id": GUILD.to_string()}),
        );
    }

    /// A moderator removes one emoji's reactions from `message` (MESSAGE_REACTION_REMOVE_EMOJI).
    pub fn remove_emoji(&self, message: u64, emoji: &str) {
        let channel = {
            let mut inner = self.lock();
            inner.reactions.remove(&(message, emoji.to_string()));
            inner.messages.get(&message).map_or(OPS, |m| m.channel)
        };
        let r = json!({"channel_id": channel.to_string(), "message_id": message.to_string(),
            "guild_id": GUILD.to_string(), "emoji": {"id": null, "name": emoji},
            "burst": false, "type": 0});
        let r = checked::<serenity::all::Reaction>("MESSAGE_REACTION_REMOVE_EMOJI", r);
        self.dispatch("MESSAGE_REACTION_REMOVE_EMOJI", r);
    }

    fn interaction(
        &self,
        user: u64,
        channel: u64,
        kind: u8,
        data: Value,
        message: Option<u64>,
    ) -> u64 {
        self.interaction_aged(user, channel, kind, data, message, Duration::ZERO)
    }

    /// An interaction Discord created `age` ago (its ID says when, as Discord's do).
    fn interaction_aged(
        &self,
        user: u64,
        channel: u64,
        kind: u8,
        data: Value,
        message: Option<u64>,
        age: Duration,
    ) -> u64 {
        let u = self.user(user);
        let id = self.lock().snowflake(age);
        let mut m = member_json(user, &u);
        m["permissions"] = json!("0");
        let mut i = json!({"id": id.to_string(), "application_id": BOT.to_string(), "type": kind,
            "token": format!("itok-{id}"), "version": 1, "channel_id": channel.to_string(),
            "guild_id": GUILD.to_string(), "member": m, "data": data,
            "locale": "en-US", "entitlements": [], "attachment_size_limit": 10485760});
        if let Some(msg) = message {
            i["message"] = message_json(msg, channel, bot_user(), "");
        }
        let i = checked::<serenity::all::Interaction>("INTERACTION_CREATE", i);
        self.lock().kinds.insert(id, u64::from(kind));
        self.dispatch("INTERACTION_CREATE", i);
        id
    }

    /// Submits the form (modal) that interaction `opened` showed, with `fields` typed as
    /// (custom_id, value); returns the submission's interaction ID. Like Discord, it carries
    /// the message whose button opened the form.
    pub fn submit_form(&self, user: u64, opened: u64, fields: &[(&str, &str)]) -> u64 {
        let (modal, message) = {
            let i = self.lock();
            let modal = i
                .modals
                .get(&opened)
                .cloned()
                .unwrap_or_else(|| panic!("interaction {opened} opened no form"));
            let message = i.form_messages.get(&opened).copied();
            (modal, message)
        };
        let rows: Vec<Value> = fields
            .iter()
            .map(|(id, v)| json!({"type": 1, "components": [{"type": 4, "custom_id": id, "value": v}]}))
            .collect();
        let channel = message
            .and_then(|m| self.lock().messages.get(&m).map(|s| s.channel))
            .unwrap_or(OPS);
        self.interaction(
            user,
            channel,
            5,
            json!({"custom_id": modal["custom_id"], "components": rows}),
            message,
        )
    }

    /// A click on a button of the bot's message; returns the interaction ID.
    pub fn click(&self, user: u64, message: u64, custom_id: &str) -> u64 {
        self.click_aged(user, message, custom_id, Duration::ZERO)
    }

    /// A click Discord created `age` ago (delivered late, as after a gateway stall).
    pub fn click_aged(&self, user: u64, message: u64, custom_id: &str, age: Duration) -> u64 {
        let channel = self
            .lock()
            .messages
            .get(&message)
            .map_or(OPS, |m| m.channel);
        let id = self.interaction_aged(
            user,
            channel,
            3,
            json!({"custom_id": custom_id, "component_type": 2}),
            Some(message),
            age,
        );
        self.lock().form_messages.insert(id, message);
        id
    }

    /// A slash command with string options; returns the interaction ID.
    pub fn slash(&self, user: u64, channel: u64, name: &str, options: &[(&str, &str)]) -> u64 {
        self.slash_aged(user, channel, name, options, Duration::ZERO)
    }

    /// A slash command Discord created `age` ago.
    pub fn slash_aged(
        &self,
        user: u64,
        channel: u64,
        name: &str,
        options: &[(&str, &str)],
        age: Duration,
    ) -> u64 {
        let opts: Vec<Value> = options
            .iter()
            .map(|(n, v)| json!({"name": n, "type": 3, "value": v}))
            .collect();
        self.interaction_aged(
            user,
            channel,
            2,
            json!({"id": "1", "name": name, "type": 1, "options": opts}),
            None,
            age,
        )
    }

    /// A slash command with typed options (JSON booleans, integers and strings, sent with
    /// Discord's option types 5, 4 and 3); returns the interaction ID.
    pub fn slash_with(
        &self,
        user: u64,
        channel: u64,
        name: &str,
        options: &[(&str, Value)],
    ) -> u64 {
        let opts: Vec<Value> = options
            .iter()
            .map(|(n, v)| {
                let kind = match v {
                    Value::Bool(_) => 5,
                    Value::Number(_) => 4,
                    _ => 3,
                };
                json!({"name": n, "type": kind, "value": v})
            })
            .collect();
        self.interaction(
            user,
            channel,
            2,
            json!({"id": "1", "name": name, "type": 1, "options": opts}),
            None,
        )
    }

    /// An autocomplete request with `focused` being typed; returns the interaction ID.
    pub fn autocomplete(
        &self,
        user: u64,
        name: &str,
        options: &[(&str, &str)],
        focused: &str,
    ) -> u64 {
        let opts: Vec<Value> = options
            .iter()
            .map(|(n, v)| {
                let mut o = json!({"name": n, "type": 3, "value": v});
                if *n == focused {
                    o["focused"] = json!(true);
                }
                o
            })
            .collect();
        self.interaction(
            user,
            OPS,
            4,
            json!({"id": "1", "name": name, "type": 1, "options": opts}),
            None,
        )
    }
}

async fn gateway(State(state): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if state
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .gateway_down
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ws.on_upgrade(move |socket| session(state, socket))
}

fn frame(v: Value) -> WsMessage {
    WsMessage::Text(v.to_string().into())
}

async fn session(state: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.gateway = Some(tx);
    }
    if socket
        .send(frame(json!({"op": 10, "d": {"heartbeat_interval": 5000}})))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let text = match msg {
                    WsMessage::Text(t) => t.to_string(),
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let Ok(mut v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["op"].as_u64() {
                    Some(1) => {
                        state.inner.lock().unwrap_or_else(|e| e.into_inner()).heartbeats += 1;
                        let _ = socket.send(frame(json!({"op": 11}))).await;
                    }
                    Some(2) => {
                        let close = {
                            let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(t) = v["d"]["token"].as_str() {
                                inner.tokens.push(t.to_string());
                            }
                            v["d"]["token"] = json!("<redacted>");
                            inner.identifies.push(v.clone());
                            inner.close_on_identify.take()
                        };
                        if let Some(code) = close {
                            let _ = socket
                                .send(WsMessage::Close(Some(CloseFrame { code, reason: "fake close".into() })))
                                .await;
                            break;
                        }
                        let ready = json!({"v": 10, "user": {"id": BOT.to_string(), "username": "opsgate", "bot": true},
                            "guilds": [], "session_id": "fake-session",
                            "resume_gateway_url": format!("ws://127.0.0.1:{}/gateway", state.port),
                            "shard": [0, 1], "application": {"id": BOT.to_string(), "flags": 0}});
                        let ready = checked::<serenity::all::Ready>("READY", ready);
                        let seq = {
                            let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
                            inner.readies += 1;
                            inner.seq += 1;
                            inner.seq
                        };
                        let _ = socket.send(frame(json!({"op": 0, "s": seq, "t": "READY", "d": ready}))).await;
                    }
                    Some(6) => {
                        let seq = {
                            let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
                            inner.resumes += 1;
                            inner.seq += 1;
                            inner.seq
                        };
                        let _ = socket.send(frame(json!({"op": 0, "s": seq, "t": "RESUMED", "d": {}}))).await;
                    }
                    _ => {}
                }
            }
            cmd = rx.recv() => match cmd {
                Some(WsCmd::Dispatch(t, d)) => {
                    let seq = {
                        let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
                        inner.seq += 1;
                        inner.seq
                    };
                    if socket.send(frame(json!({"op": 0, "s": seq, "t": t, "d": d}))).await.is_err() {
                        break;
                    }
                }
                Some(WsCmd::InvalidSession) => {
                    let _ = socket.send(frame(json!({"op": 9, "d": false}))).await;
                }
                Some(WsCmd::Reconnect) => {
                    let _ = socket.send(frame(json!({"op": 7, "d": null}))).await;
                    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code: 4000, reason: "reconnect".into() }))).await;
                    break;
                }
                None => break,
            }
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "Unknown route", "code": 0})),
    )
        .into_response()
}

fn discord_error(status: StatusCode, code: u64, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

/// A 429 as Discord sends it: no `code` in the body; `Retry-After` in whole seconds.
fn rate_limited(retry_after: f64, global: bool) -> Response {
    let body = json!({"message": "You are being rate limited.", "retry_after": retry_after,
        "global": global});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    let mut headers = vec![
        ("retry-after", format!("{}", retry_after.ceil() as u64)),
        ("x-ratelimit-reset-after", format!("{retry_after:.3}")),
        (
            "x-ratelimit-scope",
            if global { "global" } else { "user" }.to_string(),
        ),
    ];
    if global {
        headers.push(("x-ratelimit-global", "true".to_string()));
    } else {
        headers.push(("x-ratelimit-limit", "5".to_string()));
        headers.push(("x-ratelimit-remaining", "0".to_string()));
    }
    for (name, value) in headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn rest(
    State(state): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let (response, hang) = {
        let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            if !inner.tokens.iter().any(|t| t == auth) {
                inner.tokens.push(auth.to_string());
            }
        }
        let auth = (headers.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let call = Call {
            auth,
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            at: Instant::now(),
        };
        inner.calls.push(call.clone());
        // A rate limit announced before and still in force: Discord answers 429 again.
        let now = Instant::now();
        inner.windows.retain(|w| w.until > now);
        let window = inner
            .windows
            .iter()
            .find(|w| {
                w.route
                    .as_ref()
                    .is_none_or(|(m, p)| m == method.as_str() && *p == path)
            })
            .cloned();
        if let Some(w) = window {
            inner.early.push(call);
            let left = w.until.saturating_duration_since(now).as_secs_f64();
            return rate_limited(left, w.global);
        }
        match inner.take_fault(method.as_str(), &path) {
            Some(FaultKind::Status { status, code }) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = json!({"message": "fake failure", "code": code});
                ((status, Json(body)).into_response(), None)
            }
            Some(FaultKind::RateLimited { retry_after }) => {
                inner.windows.push(Window {
                    route: Some((method.to_string(), path.clone())),
                    until: now + Duration::from_secs_f64(retry_after),
                    global: false,
                });
                (rate_limited(retry_after, false), None)
            }
            Some(FaultKind::GlobalRateLimited { retry_after }) => {
                inner.windows.push(Window {
                    route: None,
                    until: now + Duration::from_secs_f64(retry_after),
                    global: true,
                });
                (rate_limited(retry_after, true), None)
            }
            Some(FaultKind::DropAfter) => {
                let response = route(&mut inner, state.port, &method, &path, &query, &body);
                // Nothing of it is written: the connection closes instead.
                conn.closed.store(true, Ordering::SeqCst);
                (response, None)
            }
            Some(FaultKind::HangAfter(wait)) => (
                route(&mut inner, state.port, &method, &path, &query, &body),
                Some(wait),
            ),
            None => (
                route(&mut inner, state.port, &method, &path, &query, &body),
                None,
            ),
        }
    };
    if let Some(wait) = hang {
        tokio::time::sleep(wait).await;
    }
    response
}

/// Discord's answer to one REST call, changing the fake's state as Discord would.
/// GET /channels/{c}/messages?after=ID&limit=N: the channel's messages after ID, newest
/// first, at most N (Discord's order and bounds).
fn history(inner: &Inner, channel: u64, query: &str) -> Response {
    let arg = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let after = arg("after").unwrap_or(0);
    let limit = arg("limit").unwrap_or(50).min(100) as usize;
    let users = inner.users.clone();
    let mut found: Vec<(u64, Value)> = Vec::new();
    for (id, (c, author, content)) in inner.said.range(after + 1..) {
        if *c == channel {
            let u = users.get(author).cloned().expect("known user");
            let mut m = message_json(*id, channel, user_json(*author, &u), content);
            m["member"] =
                json!({"roles": u.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>()});
            found.push((*id, m));
        }
    }
    for (id, m) in inner.messages.range(after + 1..) {
        if m.channel == channel {
            found.push((*id, message_json(*id, channel, bot_user(), &m.content)));
        }
    }
    found.sort_by_key(|(id, _)| *id);
    found.truncate(limit);
    found.reverse();
    Json(found.into_iter().map(|(_, m)| m).collect::<Vec<_>>()).into_response()
}

fn route(
    inner: &mut Inner,
    port: u16,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
) -> Response {
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return not_found();
    };
    let seg: Vec<String> = rest.split('/').map(decode).collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["gateway"]) => {
            Json(json!({"url": format!("ws://127.0.0.1:{}/gateway", port)})).into_response()
        }
        ("GET", ["users", "@me"]) => Json(bot_user()).into_response(),
        ("GET", ["channels", c, "messages"]) => history(inner, num(c), query),
        ("POST", ["channels", c, "messages"]) => {
            let channel = num(c);
            let nonce = body["nonce"].as_str().map(str::to_string);
            // As Discord documents `enforce_nonce`: a message from the same author with the
            // same nonce in the past few minutes is returned, and none is made.
            if body["enforce_nonce"] == json!(true) && nonce.is_some() {
                let same = inner.messages.iter().find(|(_, m)| {
                    m.author == BOT && m.nonce == nonce && m.at.elapsed() < NONCE_WINDOW
                });
                if let Some((id, m)) = same {
                    return Json(message_json(*id, m.channel, bot_user(), &m.content))
                        .into_response();
                }
            }
            let id = inner.id();
            inner.messages.insert(
                id,
                Stored {
                    channel,
                    content: body["content"].as_str().unwrap_or_default().to_string(),
                    embeds: body["embeds"].clone(),
                    components: body["components"].clone(),
                    allowed_mentions: body["allowed_mentions"].clone(),
                    edits: 0,
                    nonce,
                    author: BOT,
                    at: Instant::now(),
                },
            );
            let content = body["content"].as_str().unwrap_or_default();
            Json(message_json(id, channel, bot_user(), content)).into_response()
        }
        ("POST", ["channels", c, "messages", m, "threads"]) => {
            // A thread on a message: the message's ID is the thread's; one per message.
            let (channel, message) = (num(c), num(m));
            if inner.messages.get(&message).is_none_or(|s| s.channel != channel) {
                return discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
            }
            if inner.threads.contains_key(&message) {
                return discord_error(
                    StatusCode::BAD_REQUEST,
                    160004,
                    "A thread has already been created for this message",
                );
            }
            let name = body["name"].as_str().unwrap_or_default();
            if name.is_empty() || name.chars().count() > 100 {
                return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body: name");
            }
            inner.threads.insert(message, channel);
            let t = json!({"id": message.to_string(), "type": 11, "guild_id": GUILD.to_string(),
                "name": name, "parent_id": channel.to_string(), "owner_id": BOT.to_string(),
                "thread_metadata": {"archived": false, "auto_archive_duration": 1440,
                    "archive_timestamp": "2024-01-01T00:00:00.000000+00:00", "locked": false}});
            Json(checked::<serenity::all::GuildChannel>("thread", t)).into_response()
        }
        ("PATCH", ["channels", c, "messages", m]) => {
            let id = num(m);
            let Some(stored) = inner.messages.get_mut(&id) else {
                return discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
            };
            if let Some(c) = body["content"].as_str() {
                stored.content = c.to_string();
            }
            if !body["embeds"].is_null() {
                stored.embeds = body["embeds"].clone();
            }
            if !body["components"].is_null() {
                stored.components = body["components"].clone();
            }
            stored.edits += 1;
            let content = stored.content.clone();
            Json(message_json(id, num(c), bot_user(), &content)).into_response()
        }
        ("PUT", ["channels", _, "messages", m, "reactions", emoji, "@me"]) => {
            let list = inner
                .reactions
                .entry((num(m), emoji.to_string()))
                .or_default();
            if !list.contains(&BOT) {
                list.push(BOT);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["channels", _, "messages", m, "reactions", _])
            if !inner.messages.contains_key(&num(m)) =>
        {
            discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
        }
        ("GET", ["channels", _, "messages", m, "reactions", emoji]) => {
            let after = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("after="))
                .map_or(0, num);
            let ids = inner
                .reactions
                .get(&(num(m), emoji.to_string()))
                .cloned()
                .unwrap_or_default();
            // Discord pages reactions: at most `limit` (1..=100, default 25) after `after`.
            let limit = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("limit="))
                .map_or(25, num)
                .clamp(1, 100) as usize;
            let mut ids: Vec<u64> = ids.into_iter().filter(|u| *u > after).collect();
            ids.sort_unstable();
            ids.truncate(limit);
            let users: Vec<Value> = ids
                .iter()
                .filter_map(|u| inner.users.get(u).map(|fu| user_json(*u, fu)))
                .collect();
            Json(Value::Array(users)).into_response()
        }
        ("GET", ["guilds", _, "members", u]) => match inner.users.get(&num(u)) {
            Some(fu) => Json(member_json(num(u), fu)).into_response(),
            None => not_found(),
        },
        ("PUT", ["applications", app, "guilds", g, "commands"]) => {
            match validate_commands(body) {
                Ok(()) => {
                    inner.registered.push(body.clone());
                    let list: Vec<Value> = body
                        .as_array()
                        .map(|a| a.iter().enumerate().map(|(i, c)| {
                            let mut c = c.clone();
                            c["id"] = json!((800000000000000000u64 + i as u64).to_string());
                            c["application_id"] = json!(app.to_string());
                            c["guild_id"] = json!(g.to_string());
                            c["version"] = json!("1");
                            c["type"] = json!(1);
                            c
                        }).collect())
                        .unwrap_or_default();
                    Json(Value::Array(list)).into_response()
                }
                Err(why) => (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"message": "Invalid Form Body", "code": 50035, "errors": {"_errors": [{"code": "INVALID", "message": why}]}})),
                )
                    .into_response(),
            }
        }
        ("GET", ["channels", c]) => {
            let id = num(c);
            let guild = inner.channel_guilds.get(&id).copied().unwrap_or(GUILD);
            let mut ch = json!({"id": id.to_string(), "type": 0, "guild_id": guild.to_string(),
                "name": format!("channel-{id}"), "position": 0, "permission_overwrites": [],
                "nsfw": false});
            if let Some(parent) = inner.threads.get(&id) {
                ch["type"] = json!(11);
                ch["parent_id"] = json!(parent.to_string());
                ch["thread_metadata"] = json!({"archived": false, "auto_archive_duration": 1440,
                    "archive_timestamp": "2024-01-01T00:00:00.000000+00:00", "locked": false});
            }
            Json(checked::<serenity::all::GuildChannel>("channel", ch)).into_response()
        }
        ("POST", ["interactions", i, _, "callback"]) => {
            // As Discord: one first answer per interaction, and only within 3 s of creating it.
            let id = num(i);
            if inner.acks.contains_key(&id) {
                return discord_error(
                    StatusCode::BAD_REQUEST,
                    40060,
                    "Interaction has already been acknowledged.",
                );
            }
            if unix_ms().saturating_sub(created_ms(id)) > INTERACTION_WINDOW.as_millis() as u64 {
                return discord_error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
            }
            let kind = body["type"].as_u64().unwrap_or(0);
            if kind == 9 {
                // A form answers only a command or a button, never another form; and Discord
                // checks its shape.
                if inner.kinds.get(&id) == Some(&5) {
                    return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body: a modal cannot open a modal");
                }
                if let Err(why) = validate_modal(&body["data"]) {
                    return discord_error(StatusCode::BAD_REQUEST, 50035, &format!("Invalid Form Body: {why}"));
                }
                inner.modals.insert(id, body["data"].clone());
            }
            inner.acks.insert(id, kind);
            StatusCode::NO_CONTENT.into_response()
        }
        (method, ["webhooks", _, token, rest @ ..]) => {
            // Follow-ups and the original answer exist only once the interaction was answered;
            // the original only for a message (4) or a deferred message (5).
            let id = token.strip_prefix("itok-").map_or(0, num);
            let acked = inner.acks.get(&id).copied();
            let original = matches!(acked, Some(4 | 5)) && !inner.deleted_originals.contains(&id);
            match (method, rest) {
                ("POST", []) if acked.is_some() => {}
                ("PATCH", ["messages", "@original"]) if original => {}
                ("DELETE", ["messages", "@original"]) if original => {
                    inner.deleted_originals.push(id);
                    return StatusCode::NO_CONTENT.into_response();
                }
                ("POST", []) => return discord_error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"),
                (_, ["messages", "@original"]) => {
                    return discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
                }
                _ => return not_found(),
            }
            let id = inner.id();
            let content = body["content"].as_str().unwrap_or_default().to_string();
            Json(message_json(id, OPS, bot_user(), &content)).into_response()
        }
        _ => not_found(),
    }
}

/// Discord's checks on a modal: an ID, a title of at most 45 characters, 1 to 5 rows of one
/// text input each, labels of at most 45 characters.
fn validate_modal(data: &Value) -> Result<(), String> {
    let id = data["custom_id"].as_str().unwrap_or_default();
    if id.is_empty() || id.chars().count() > 100 {
        return Err(format!("bad custom_id {id:?}"));
    }
    let title = data["title"].as_str().unwrap_or_default();
    if title.is_empty() || title.chars().count() > 45 {
        return Err(format!("bad title {title:?}"));
    }
    let rows = data["components"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() || rows.len() > 5 {
        return Err("a modal needs 1 to 5 rows".into());
    }
    for row in rows {
        let inputs = row["components"].as_array().cloned().unwrap_or_default();
        if inputs.len() != 1 || inputs[0]["type"] != 4 {
            return Err(format!("a row holds exactly one text input: {row}"));
        }
        let label = inputs[0]["label"].as_str().unwrap_or_default();
        if label.is_empty() || label.chars().count() > 45 || inputs[0]["style"].as_u64().is_none() {
            return Err(format!("bad text input {}", inputs[0]));
        }
    }
    Ok(())
}

/// Discord's checks on a bulk command registration (the parts opsgate could get wrong).
fn validate_commands(body: &Value) -> Result<(), String> {
    let list = body.as_array().ok_or("not a list")?;
    if list.len() > 100 {
        return Err("more than 100 commands".into());
    }
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().count() <= 32
            && n.chars().all(|c| {
                c == '-' || c == '_' || c.is_numeric() || (c.is_alphabetic() && !c.is_uppercase())
            })
    };
    let desc_ok = |d: &Value| {
        d.as_str()
            .is_some_and(|d| (1..=100).contains(&d.chars().count()))
    };
    for c in list {
        let name = c["name"].as_str().unwrap_or_default();
        if !name_ok(name) || !desc_ok(&c["description"]) {
            return Err(format!("bad name or description: {c}"));
        }
        if let Some(p) = c.get("default_member_permissions").filter(|p| !p.is_null()) {
            if p.as_str().is_none_or(|p| p.parse::<u64>().is_err()) {
                return Err(format!(
                    "default_member_permissions must be a string of digits: {p}"
                ));
            }
        }
        let opts = c["options"].as_array().cloned().unwrap_or_default();
        if opts.len() > 25 {
            return Err(format!("{name}: more than 25 options"));
        }
        let mut optional_seen = false;
        for o in &opts {
            let on = o["name"].as_str().unwrap_or_default();
            if !name_ok(on) || !desc_ok(&o["description"]) {
                return Err(format!("{name}: bad option {o}"));
            }
            let required = o["required"] == json!(true);
            if required && optional_seen {
                return Err(format!(
                    "{name}: required option {on} after an optional one"
                ));
            }
            optional_seen |= !required;
            if o["choices"].as_array().is_some_and(|c| c.len() > 25) {
                return Err(format!("{name}: more than 25 choices for {on}"));
            }
        }
    }
    Ok(())
}
