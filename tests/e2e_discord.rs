//! The Discord adapter end to end: the real serenity client (through `opsgate::chat::discord`)
//! against a fake Discord on 127.0.0.1 (REST + gateway websocket), the real engine on its own
//! thread, and the cloud emulator for DDM. No timed assertions: every wait is bounded and
//! polls for a state.

#[path = "support/fake_discord.rs"]
mod fake_discord;

use opsgate::domain::{JobId, MessageId};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use fake_discord::*;
use opsgate::chat::discord::{Discord, Tuning};
use opsgate::cloud::Registry;
use opsgate::config::Config;
use opsgate::driver::{Driver, Seams};
use opsgate::emulator::{self, demo, EmulatorOptions, RunningEmulator};
use opsgate::ports::inbox::{EngineEvent, EngineHandle};
use opsgate::store::SledStore;
use serde_json::{json, Value};

const TOKEN_VAR: &str = "OPSGATE_E2E_DISCORD_TOKEN";
const TOKEN: &str = "fake-token-e2e";
const PASSWORD_VAR: &str = "OPSGATE_E2E_DISCORD_HUAWEI_PASSWORD";

fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(TOKEN_VAR, TOKEN);
        std::env::set_var(PASSWORD_VAR, demo::PASSWORD);
    });
}

fn config_text(discord: &str, emu: &str) -> String {
    format!(
        r#"
[bot]
admin_roles = ["admin"]
[roles]
oncall = "{ONCALL_ROLE}"
dba = "{DBA_ROLE}"
admin = "400000000000000004"
[channels]
ops = "{OPS}"
incidents = "{INCIDENTS}"
[incidents]
default = "incidents"
[discord]
token_env = "{TOKEN_VAR}"
guilds = ["{GUILD}"]
api_base = "{discord}"
edit_interval = "200ms"
[accounts.huawei]
provider = "huawei"
region = "cn-north-4"
project_id = "{project}"
default = true
auth = "password"
iam_user = "{user}"
iam_domain = "{domain}"
password_env = "{PASSWORD_VAR}"
poll_interval = "100ms"
endpoints = {{ iam = "{emu}", ddm = "{emu}" }}
[targets.orders-db]
service = "ddm"
instance_id = "{instance}"
description = "orders DDM cluster"
[[rules]]
name = "soft restart"
command = "restart ddm"
modes = ["soft"]
request_roles = ["oncall", "dba"]
channels = ["ops"]
approvals = 0
[[rules]]
name = "hard restart"
command = "restart ddm"
modes = ["hard"]
request_roles = ["oncall", "dba"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
expires = "15m"
"#,
        project = demo::PROJECT_ID,
        user = demo::IAM_USER,
        domain = demo::IAM_DOMAIN,
        instance = demo::DDM_INSTANCE,
    )
}

/// A fake Discord, the cloud emulator and a fresh data directory: what every test here
/// starts from.
async fn world() -> (FakeDiscord, RunningEmulator, tempfile::TempDir) {
    let fake = FakeDiscord::start().await;
    let emu = start_emulator().await;
    (fake, emu, tempfile::tempdir().expect("tempdir"))
}

/// The same, with the bot started on the standard config.
async fn started() -> (FakeDiscord, RunningEmulator, tempfile::TempDir, Bot) {
    let (fake, emu, dir) = world().await;
    let bot = Bot::start(&fake, &emu, dir.path()).await;
    (fake, emu, dir, bot)
}

async fn start_emulator() -> RunningEmulator {
    init_env();
    let opts = EmulatorOptions {
        job_duration: Duration::from_millis(300),
        ..EmulatorOptions::default()
    };
    emulator::start(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator starts")
}

/// opsgate wired the way `app.rs` wires the shell, with the Discord chat.
struct Bot {
    discord: Arc<Discord>,
    engine: EngineHandle,
    engine_thread: Option<std::thread::JoinHandle<()>>,
    run: tokio::task::JoinHandle<Result<(), String>>,
}

impl Bot {
    async fn start(fake: &FakeDiscord, emu: &RunningEmulator, data: &Path) -> Bot {
        Bot::start_with(fake, emu, data, Tuning::default()).await
    }

    async fn start_with(
        fake: &FakeDiscord,
        emu: &RunningEmulator,
        data: &Path,
        tuning: Tuning,
    ) -> Bot {
        let text = config_text(&fake.base(), &emu.base_url());
        Bot::start_text(data, tuning, &text).await
    }

    async fn start_text(data: &Path, tuning: Tuning, text: &str) -> Bot {
        init_env();
        let config = match Config::parse(text, Path::new("e2e.toml"), &opsgate::cloud::builtins()) {
            Ok(c) => Arc::new(c),
            Err(p) => panic!("{p}"),
        };
        let store = Arc::new(SledStore::open(data).expect("store"));
        let rt = tokio::runtime::Handle::current();
        let discord =
            Arc::new(Discord::with_tuning(config.clone(), rt.clone(), tuning).expect("discord"));
        let seams = Seams {
            store: store.clone(),
            history: store,
            operations: Arc::new(Registry::from_config(&config)),
            chat: discord.chat(),
            observer: None,
            runtime: rt,
            metrics: discord.metrics(),
            leads: Arc::new(|| true),
        };
        let (driver, handle, rx) = Driver::new(config, seams).expect("engine");
        let engine_thread = std::thread::spawn(move || {
            driver
                .run(rx)
                .expect("the engine stopped on a storage error")
        });
        let (d, h) = (discord.clone(), handle.clone());
        let run = tokio::spawn(async move { d.run(h).await });
        Bot {
            discord,
            engine: handle,
            engine_thread: Some(engine_thread),
            run,
        }
    }

    async fn stop(mut self) {
        self.discord.stop().await;
        let result = tokio::time::timeout(Duration::from_secs(20), &mut self.run)
            .await
            .expect("run returns after stop")
            .expect("run task");
        assert_eq!(result, Ok(()));
        self.engine.send(EngineEvent::Shutdown);
        if let Some(t) = self.engine_thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .expect("join")
                .expect("engine thread");
        }
    }
}

async fn ready(fake: &FakeDiscord, n: usize) {
    fake.wait("READY", |i| (i.readies >= n).then_some(())).await;
    // Slash commands are registered once per READY.
    fake.wait("slash command registration", |i| {
        (i.calls_to("PUT", &format!("/guilds/{GUILD}/commands"))
            .len()
            >= n)
            .then_some(())
    })
    .await;
}

async fn card(fake: &FakeDiscord, job: u64) -> (u64, Stored) {
    fake.wait(&format!("the card of job {job}"), |i| i.card(job))
        .await
}

async fn card_state(fake: &FakeDiscord, job: u64, state: &str) -> Stored {
    fake.wait(&format!("job {job} {state}"), |i| {
        i.card(job)
            .filter(|(_, m)| m.title().contains(state))
            .map(|(_, m)| m)
    })
    .await
}

/// A message in `channel` containing `text`.
async fn message_with(fake: &FakeDiscord, channel: u64, text: &str) -> Stored {
    fake.wait(&format!("a message with {text:?}"), |i| {
        i.in_channel(channel)
            .into_iter()
            .map(|(_, m)| m)
            .find(|m| m.content.contains(text))
    })
    .await
}

/// The follow-up to interaction `ix` whose text contains `text` (its body).
async fn follow_up(fake: &FakeDiscord, ix: u64, text: &str) -> Value {
    fake.wait(&format!("a follow-up to {ix} with {text:?}"), |i| {
        i.answers(ix)
            .into_iter()
            .filter(|c| c.method == "POST" && c.path.starts_with("/api/v10/webhooks/"))
            .map(|c| c.body)
            .find(|b| b["content"].as_str().is_some_and(|c| c.contains(text)))
    })
    .await
}

fn reacted(i: &Inner, message: u64, emoji: &str, user: u64) -> bool {
    i.reactions
        .get(&(message, emoji.to_string()))
        .is_some_and(|u| u.contains(&user))
}

fn buttons(m: &Stored) -> Vec<(String, bool)> {
    m.components[0]["components"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    (
                        b["custom_id"].as_str().unwrap_or_default().to_string(),
                        b["disabled"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every message the bot sent or edited carried empty allowed mentions.
fn assert_no_pings(i: &Inner) {
    let none = json!({"parse": [], "roles": [], "users": []});
    let mut checked = 0;
    for c in &i.calls {
        let message_body = match (c.method.as_str(), c.path.as_str()) {
            ("POST" | "PATCH", p)
                if p.contains("/messages")
                    && !p.contains("/reactions")
                    && !p.ends_with("/threads") =>
            {
                Some(&c.body)
            }
            ("POST", p) if p.starts_with("/api/v10/webhooks/") => Some(&c.body),
            ("POST", p) if p.ends_with("/callback") => {
                match c.body["type"].as_u64() {
                    // message, deferred message, update message
                    Some(4 | 5 | 7) => Some(&c.body["data"]),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(body) = message_body {
            checked += 1;
            assert_eq!(
                body["allowed_mentions"], none,
                "{} {} sent mentions: {}",
                c.method, c.path, body
            );
        }
    }
    assert!(checked > 0, "no message was checked");
}

async fn calls(emu: &RunningEmulator, operation: &str) -> u64 {
    let counts: BTreeMap<String, u64> = reqwest::get(format!("{}/_emulator/calls", emu.base_url()))
        .await
        .expect("calls")
        .json()
        .await
        .expect("calls json");
    counts.get(operation).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approvers_reaction_runs_the_job_and_the_card_and_incidents_follow() {
    let (fake, emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    {
        let i = fake.lock();
        let identify = &i.identifies[0]["d"];
        // GUILDS | GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS | MESSAGE_CONTENT
        assert_eq!(identify["intents"], 34305, "{identify}");
        assert_eq!(identify["token"], "<redacted>");
    }
    assert!(bot.discord.connected());

    // Bots (here another one) are ignored, even with approver roles.
    fake.say(OTHER_BOT, OPS, "!help");
    // 1. A request that needs approval: one card with both reactions and both buttons.
    fake.say(CAROL, OPS, "!restart ddm orders-db hard");
    let (msg, card1) = card(&fake, 1).await;
    let text = card1.text();
    for want in [
        "awaiting approval",
        "carol",
        "restart ddm orders-db hard",
        "hard restart",
        "0 of 1",
        "dba",
        "<t:",
    ] {
        assert!(text.contains(want), "card lacks {want}: {text}");
    }
    let ids = buttons(&card1);
    assert_eq!(ids.len(), 3, "approve, deny, cancel: {ids:?}");
    let nonce = ids[0]
        .0
        .strip_prefix("approve:1:")
        .expect("approve:1:<nonce>");
    assert_eq!(ids[1], (format!("deny:1:{nonce}"), false));
    assert!(!ids[0].1, "{ids:?}");
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;

    // 3. A non-approver's ✅ and the requester's ✅ change nothing.
    fake.react(ALICE, msg, "✅", true, true);
    message_with(&fake, OPS, "alice: you cannot approve job 1").await;
    fake.react(CAROL, msg, "✅", true, true);
    message_with(
        &fake,
        OPS,
        "carol: you cannot approve job 1: you requested it",
    )
    .await;
    {
        let i = fake.lock();
        let (_, now) = i.card(1).expect("card");
        assert_eq!(now.edits, 0, "the card changed: {}", now.text());
    }
    assert_eq!(calls(&emu, "ddm.restart").await, 0);
    // Removing a reaction arrives without a member: the bot asks for the roles.
    fake.react(CAROL, msg, "✅", false, true);
    fake.wait("GET member after a reaction removal", |i| {
        (!i.calls_to("GET", &format!("/guilds/{GUILD}/members/{CAROL}"))
            .is_empty())
        .then_some(())
    })
    .await;

    // 2. An approver's ✅ runs the job; the card is edited until it shows success.
    fake.react(BOB, msg, "✅", true, true);
    let done = card_state(&fake, 1, "succeeded").await;
    let text = done.text();
    assert!(text.contains("1 of 1") && text.contains("bob"), "{text}");
    assert!(
        text.contains("Cloud job") && text.contains("Took"),
        "{text}"
    );
    assert_eq!(
        buttons(&done),
        vec![
            (format!("approve:1:{nonce}"), true),
            (format!("deny:1:{nonce}"), true),
            (format!("cancel:1:{nonce}"), true),
        ]
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
    {
        // Edits are coalesced: never two writes of the card closer than edit_interval
        // (a lower bound, which a slow machine only makes larger).
        let i = fake.lock();
        let writes: Vec<std::time::Instant> = i
            .calls
            .iter()
            .filter(|c| {
                (c.method == "PATCH" && c.path.ends_with(&format!("/messages/{msg}")))
                    || (c.method == "POST"
                        && c.path.ends_with(&format!("/channels/{OPS}/messages"))
                        && c.body["embeds"][0]["title"]
                            .as_str()
                            .is_some_and(|t| t.contains("Job 1 ·")))
            })
            .map(|c| c.at)
            .collect();
        assert!(writes.len() >= 2, "{}", writes.len());
        for pair in writes.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= Duration::from_millis(190),
                "two writes {gap:?} apart"
            );
        }
    }

    // 8. The incident channel hears about it, each notice linking to the card.
    let link = format!("https://discord.com/channels/{GUILD}/{OPS}/{msg}");
    for what in ["requested", "approved", "started", "succeeded"] {
        let notice = message_with(&fake, INCIDENTS, &format!("job 1 {what}")).await;
        assert!(notice.content.contains(&link), "{what}: {}", notice.content);
    }

    bot.stop().await;
    let i = fake.lock();
    // The other bot's !help got no answer.
    assert!(
        !i.in_channel(OPS)
            .iter()
            .any(|(_, m)| m.content.contains("approve <job>")),
        "a bot's command was answered"
    );
    // 7. Nothing the bot sent could ping anyone.
    assert_no_pings(&i);
    // The token went out only as the Authorization header / IDENTIFY value.
    assert!(
        i.tokens.iter().all(|t| t == &format!("Bot {TOKEN}")),
        "{:?}",
        i.tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_and_buttons_answer_their_interactions() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    {
        let i = fake.lock();
        let reg = &i.calls_to("PUT", "/commands")[0].body;
        let names: Vec<&str> = reg
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        for want in ["restart", "approve", "deny", "status", "jobs"] {
            assert!(names.contains(&want), "{want} not registered: {names:?}");
        }
    }

    // Autocomplete suggests the named targets of the chosen service.
    let ac = fake.autocomplete(
        ALICE,
        "restart",
        &[("service", "ddm"), ("target", "ord")],
        "target",
    );
    let answer = fake
        .wait("autocomplete answer", |i| i.callbacks(ac).first().cloned())
        .await;
    assert_eq!(answer["type"], 8, "{answer}");
    assert_eq!(
        answer["data"]["choices"][0]["value"], "orders-db",
        "{answer}"
    );

    // /restart posts the card; the slash command itself gets an ephemeral "posted job 1".
    let ix = fake.slash(
        ALICE,
        OPS,
        "restart",
        &[
            ("service", "ddm"),
            ("target", "orders-db"),
            ("mode", "hard"),
        ],
    );
    let (msg, posted) = card(&fake, 1).await;
    let approve = buttons(&posted)[0].0.clone();
    assert!(
        approve.starts_with("approve:1:"),
        "the button carries the job's nonce: {approve}"
    );
    // The card's post is awaited: the interaction is deferred (ephemeral), then its answer
    // says where the card is.
    let done = fake
        .wait("the slash command's answer", |i| {
            i.callbacks(ix).first().cloned()
        })
        .await;
    assert!(done["type"] == 4 || done["type"] == 5, "{done}");
    assert_eq!(done["data"]["flags"], 64, "{done}");
    let answer = fake
        .wait("Posted job 1", |i| {
            i.calls
                .iter()
                .filter(|c| {
                    c.path.contains(&format!("itok-{ix}"))
                        || c.path.contains(&format!("/interactions/{ix}/"))
                })
                .map(|c| c.body.to_string())
                .find(|b| b.contains("Posted job 1"))
        })
        .await;
    assert!(!answer.contains("could not"), "{answer}");

    // A bad slash command gets an ephemeral refusal with the usage.
    let bad = fake.slash(
        ALICE,
        OPS,
        "restart",
        &[("service", "ddm"), ("target", "no/such")],
    );
    let refusal = fake
        .wait("the refusal", |i| i.callbacks(bad).first().cloned())
        .await;
    assert_eq!(refusal["data"]["flags"], 64, "{refusal}");
    assert!(
        refusal["data"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("Usage")),
        "{refusal}"
    );

    // 4. A refused click is acknowledged at once (deferred update), then hears why in an
    // ephemeral follow-up; nothing changes.
    let click = fake.click(MALLORY, msg, &approve);
    let reply = follow_up(&fake, click, "cannot approve job 1").await;
    assert_eq!(reply["flags"], 64, "{reply}");
    let acks: Vec<Value> = fake
        .lock()
        .callbacks(click)
        .iter()
        .map(|c| c["type"].clone())
        .collect();
    assert_eq!(acks, vec![json!(6)]);
    assert_eq!(fake.lock().card(1).expect("card").1.edits, 0);

    // A button that is not this card's (no nonce, or another job's) is not counted.
    for stale in ["approve:1", "approve:1:1"] {
        let click = fake.click(BOB, msg, stale);
        let reply = follow_up(&fake, click, "not on job 1's card").await;
        assert_eq!(reply["flags"], 64, "{stale}: {reply}");
    }
    assert_eq!(fake.lock().card(1).expect("card").1.edits, 0);

    // An approver's click is acknowledged and the card runs to success, buttons disabled.
    let click = fake.click(BOB, msg, &approve);
    let ack = fake
        .wait("the click's acknowledgement", |i| {
            i.callbacks(click).first().cloned()
        })
        .await;
    assert_eq!(ack["type"], 6, "{ack}");
    let done = card_state(&fake, 1, "succeeded").await;
    assert!(buttons(&done).iter().all(|(_, disabled)| *disabled));

    // /status answers in the channel (not private).
    let status = fake.slash(ALICE, OPS, "status", &[("job", "1")]);
    let answer = fake
        .wait("the status answer", |i| {
            i.callbacks(status).first().cloned()
        })
        .await;
    assert_eq!(answer["type"], 4, "{answer}");
    assert_ne!(answer["data"]["flags"], 64, "{answer}");
    assert!(
        answer["data"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("succeeded")),
        "{answer}"
    );

    bot.stop().await;
    assert_no_pings(&fake.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_given_while_the_bot_was_offline_is_applied_after_restart() {
    let (fake, emu, dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;
    bot.stop().await;

    // While opsgate is down: the requester, another bot, and an approver react.
    fake.react(ALICE, msg, "✅", true, false);
    fake.react(OTHER_BOT, msg, "❌", true, false);
    fake.react(BOB, msg, "✅", true, false);

    let bot = Bot::start(&fake, &emu, dir.path()).await;
    ready(&fake, 2).await;
    let done = card_state(&fake, 1, "succeeded").await;
    assert!(done.text().contains("bob"), "{}", done.text());
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
    {
        let i = fake.lock();
        assert!(!i
            .calls_to("GET", &format!("/messages/{msg}/reactions/"))
            .is_empty());
        // Replayed reactions get no chat answers (the requester's ✅ was refused quietly).
        assert!(
            !i.in_channel(OPS)
                .iter()
                .any(|(_, m)| m.content.contains("cannot approve")),
            "a replayed reaction was answered"
        );
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reconnect_and_resume_commands_still_work_and_failures_reach_incidents() {
    let (fake, emu, _dir, bot) = started().await;
    ready(&fake, 1).await;

    // 6. op 7: serenity reconnects and resumes (no second IDENTIFY).
    fake.reconnect();
    fake.wait("RESUME", |i| (i.resumes >= 1).then_some(()))
        .await;
    fake.wait("connected again", |_| bot.discord.connected().then_some(()))
        .await;
    assert_eq!(fake.lock().identifies.len(), 1);

    // A command after the resume still works; this one fails in the cloud.
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&json!({"operation": "ddm.restart", "status": 400,
                      "body": {"error_code": "DBS.280001", "error_msg": "instance is frozen"}}))
        .send()
        .await
        .expect("fault");
    assert!(resp.status().is_success());
    fake.say(ALICE, OPS, "!restart ddm orders-db soft");
    let (msg, _) = card(&fake, 1).await;
    let failed = card_state(&fake, 1, "failed").await;
    assert!(failed.text().contains("frozen"), "{}", failed.text());
    // No approval was needed, so no ✅/❌ and no buttons.
    assert!(!fake.lock().reactions.contains_key(&(msg, "✅".to_string())));
    assert!(buttons(&failed).is_empty(), "{}", failed.components);
    let notice = message_with(&fake, INCIDENTS, "job 1 failed").await;
    assert!(notice.content.contains("critical"), "{}", notice.content);
    assert!(
        notice
            .content
            .contains(&format!("https://discord.com/channels/{GUILD}/{OPS}/{msg}")),
        "{}",
        notice.content
    );
    bot.stop().await;
    assert_no_pings(&fake.lock());
}

async fn fatal(code: u16) -> String {
    let (fake, emu, dir) = world().await;
    fake.lock().close_on_identify = Some(code);
    let mut bot = Bot::start(&fake, &emu, dir.path()).await;
    let result = tokio::time::timeout(Duration::from_secs(30), &mut bot.run)
        .await
        .expect("run ends on a fatal close")
        .expect("run task");
    bot.engine.send(EngineEvent::Shutdown);
    if let Some(t) = bot.engine_thread.take() {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    let err = result.expect_err("a fatal close is an error");
    assert!(!err.contains(TOKEN), "the token leaked: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_gateway_closes_say_what_to_fix() {
    let bad_token = fatal(4004).await;
    assert!(
        bad_token.contains("token") && bad_token.contains(TOKEN_VAR),
        "{bad_token}"
    );
    let intents = fatal(4014).await;
    assert!(intents.contains("Message Content intent"), "{intents}");
}

/// A metric's value in the bot's registry (0 when it has no sample yet).
fn metric(bot: &Bot, line_start: &str) -> u64 {
    let text = bot.discord.metrics().render();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The POSTs of job `job`'s card.
fn card_posts(i: &Inner, job: u64) -> Vec<Call> {
    let title = format!("Job {job} ·");
    i.calls_to("POST", "/messages")
        .into_iter()
        .filter(|c| {
            c.body["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains(&title))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_rest_call_times_out_and_a_retried_card_post_is_not_duplicated() {
    let (fake, emu, dir) = world().await;
    let tuning = Tuning {
        rest_timeout: Duration::from_secs(1),
        ..Tuning::default()
    };
    let bot = Bot::start_with(&fake, &emu, dir.path(), tuning).await;
    ready(&fake, 1).await;
    // Discord creates the card but its answer never arrives in time.
    fake.fail(
        "POST",
        &format!("/channels/{OPS}/messages"),
        FaultKind::HangAfter(Duration::from_secs(5)),
        1,
    );
    fake.say(CAROL, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;
    {
        let i = fake.lock();
        let posts = card_posts(&i, 1);
        assert!(
            posts.len() >= 2,
            "the post was not retried: {}",
            posts.len()
        );
        let nonce = posts[0].body["nonce"].clone();
        assert!(
            nonce
                .as_str()
                .is_some_and(|n| !n.is_empty() && n.len() <= 25),
            "{nonce}"
        );
        for p in &posts {
            assert_eq!(p.body["nonce"], nonce);
            assert_eq!(p.body["enforce_nonce"], true);
        }
        let cards = i
            .messages
            .values()
            .filter(|m| m.title().contains("Job 1 ·"))
            .count();
        assert_eq!(cards, 1, "the retry posted a second card");
    }
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"post_card\",reason=\"timeout\"}"
        ) >= 1
    );

    // An edit that hangs does not hold the job's lane: the card still reaches its end.
    fake.fail(
        "PATCH",
        &format!("/messages/{msg}"),
        FaultKind::HangAfter(Duration::from_secs(60)),
        1,
    );
    fake.react(BOB, msg, "✅", true, true);
    card_state(&fake, 1, "succeeded").await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_a_thread_follows_its_parent_channels_rules_and_is_answered_there() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;

    // A thread under #ops: #ops's rules apply; the card goes to the thread.
    fake.say(CAROL, OPS_THREAD, "!restart ddm orders-db hard");
    let (msg, posted) = card(&fake, 1).await;
    assert_eq!(posted.channel, OPS_THREAD);
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;
    // Answers to a message in the thread go to the thread.
    fake.say(ALICE, OPS_THREAD, "!whoami");
    message_with(&fake, OPS_THREAD, "oncall").await;
    // A thread under a channel no rule allows is refused like its parent, in the thread.
    fake.say(CAROL, RANDOM_THREAD, "!restart ddm orders-db hard");
    let refusal = message_with(&fake, RANDOM_THREAD, "cannot be requested in").await;
    assert!(refusal.content.contains("#ops"), "{}", refusal.content);
    // A slash command in the thread is judged by #ops too (here: busy, since job 1 holds
    // the target), not refused for its channel.
    let ix = fake.slash(
        BOB,
        OPS_THREAD,
        "restart",
        &[
            ("service", "ddm"),
            ("target", "orders-db"),
            ("mode", "soft"),
        ],
    );
    let answer = fake
        .wait("the slash command's answer", |i| {
            i.callbacks(ix).last().cloned().filter(|c| c["type"] != 5)
        })
        .await;
    let text = answer.to_string();
    assert!(
        text.contains("busy") && !text.contains("cannot be requested"),
        "{text}"
    );
    // Each thread was looked up once; #ops (configured) never.
    {
        let i = fake.lock();
        assert_eq!(
            i.calls_to("GET", &format!("/channels/{OPS_THREAD}"))
                .iter()
                .filter(|c| c.path.ends_with(&OPS_THREAD.to_string()))
                .count(),
            1
        );
        assert!(i
            .calls_to("GET", &format!("/channels/{OPS}"))
            .iter()
            .all(|c| !c.path.ends_with(&OPS.to_string())));
        assert!(
            i.in_channel(OPS)
                .iter()
                .all(|(_, m)| !m.title().contains("Job")),
            "a card went to the parent"
        );
    }
    bot.stop().await;
}

/// The commands of the first registration Discord accepted.
fn registered(fake: &FakeDiscord) -> Vec<Value> {
    let i = fake.lock();
    let registered = i
        .registered
        .first()
        .cloned()
        .expect("registration accepted");
    let list = registered.as_array().cloned().unwrap_or_default();
    assert!(!list.is_empty());
    list
}

/// The text of every answer to interaction `ix` so far (its callback's, edits', follow-ups').
fn answer_texts(i: &Inner, ix: u64) -> Vec<String> {
    i.answers(ix)
        .iter()
        .filter_map(|c| {
            c.body["data"]["content"]
                .as_str()
                .or(c.body["content"].as_str())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_not_configured_are_ignored_and_slash_commands_are_for_every_member() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    // The fake checks what Discord checks. Every member of the server sees the commands
    // (opsgate's rules decide who may do what): no Manage Server default, said explicitly so
    // an earlier registration's restriction is cleared.
    for c in registered(&fake) {
        assert_eq!(
            c.get("default_member_permissions"),
            Some(&Value::Null),
            "{c}"
        );
    }
    // `/status` without a number is the overview, as `!status`.
    let status = registered(&fake)
        .into_iter()
        .find(|c| c["name"] == "status")
        .expect("/status registered");
    assert_ne!(status["options"][0]["required"], true, "{status}");
    let ix = fake.slash(ALICE, OPS, "status", &[]);
    fake.wait("the overview", |i| {
        answer_texts(i, ix)
            .into_iter()
            .find(|t| t.contains("0 pending, 0 running"))
    })
    .await;
    // A server the bot was added to but that is not configured: no answer, no audit text.
    fake.say(ALICE, FOREIGN_CHANNEL, "!jobs");
    fake.say(ALICE, FOREIGN_CHANNEL, "!status 1");
    let dropped = "opsgate_discord_dropped_events_total{reason=\"foreign_guild\"}";
    fake.wait("both foreign messages dropped", |_| {
        (metric(&bot, dropped) >= 2).then_some(())
    })
    .await;
    fake.say(ALICE, OPS, "!whoami");
    message_with(&fake, OPS, "oncall").await;
    assert!(fake.lock().in_channel(FOREIGN_CHANNEL).is_empty());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_need_manage_server_when_the_config_asks_for_it() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replace(
        "edit_interval = \"200ms\"",
        "edit_interval = \"200ms\"\nslash_commands_need_manage_server = true",
    );
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;
    for c in registered(&fake) {
        assert_eq!(c["default_member_permissions"], "32", "{c}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_removals_refusals_and_cleared_reactions_are_handled_as_votes_need() {
    let (fake, emu, dir) = world().await;
    // Two approvals, so one can be given and then cleared.
    let text = config_text(&fake.base(), &emu.base_url()).replace("approvals = 1", "approvals = 2");
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;

    // A ✅ removed from a message that is no card costs no member lookup.
    fake.say(CAROL, OPS, "just chatting");
    let chat = fake.lock().id_of_last_user_message();
    fake.react(CAROL, chat, "✅", true, true);
    fake.react(CAROL, chat, "✅", false, true);
    let not_a_card = "opsgate_discord_dropped_events_total{reason=\"not_a_card\"}";
    fake.wait("the removal dropped", |_| {
        (metric(&bot, not_a_card) >= 1).then_some(())
    })
    .await;
    assert!(fake
        .lock()
        .calls_to("GET", &format!("/members/{CAROL}"))
        .is_empty());

    // A non-approver toggling ✅ hears the refusal once.
    for _ in 0..3 {
        fake.react(MALLORY, msg, "✅", true, true);
        fake.react(MALLORY, msg, "✅", false, true);
    }
    let throttled = "opsgate_discord_dropped_events_total{reason=\"throttled_refusal\"}";
    fake.wait("repeated refusals held back", |_| {
        (metric(&bot, throttled) >= 2).then_some(())
    })
    .await;
    let refusals = fake
        .lock()
        .in_channel(OPS)
        .iter()
        .filter(|(_, m)| m.content.contains("mallory: you cannot approve job 1"))
        .count();
    assert_eq!(refusals, 1);

    // An approval, then a moderator clears the reactions: the approval is withdrawn.
    fake.react(BOB, msg, "✅", true, true);
    fake.wait("1 of 2", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("1 of 2"))
    })
    .await;
    fake.remove_all(msg);
    fake.wait("0 of 2", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("0 of 2"))
    })
    .await;
    // The same for clearing only ✅.
    fake.react(BOB, msg, "✅", true, true);
    fake.wait("1 of 2 again", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("1 of 2"))
    })
    .await;
    fake.remove_emoji(msg, "✅");
    fake.wait("0 of 2 again", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("0 of 2"))
    })
    .await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_given_offline_wins_over_an_approval_given_offline() {
    let (fake, emu, dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;
    bot.stop().await;
    fake.react(BOB, msg, "✅", true, false);
    fake.react(CAROL, msg, "❌", true, false);
    let bot = Bot::start(&fake, &emu, dir.path()).await;
    ready(&fake, 2).await;
    card_state(&fake, 1, "denied").await;
    assert_eq!(calls(&emu, "ddm.restart").await, 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_refused_for_permissions_is_reported_to_the_requester_and_counted() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    let cards = format!("/channels/{OPS}/messages");
    let refused = FaultKind::Status {
        status: 403,
        code: 50013,
    };
    // A slash request: the interaction's answer says the card was not posted.
    fake.fail("POST", &cards, refused.clone(), 1);
    let ix = fake.slash(
        ALICE,
        OPS,
        "restart",
        &[
            ("service", "ddm"),
            ("target", "orders-db"),
            ("mode", "hard"),
        ],
    );
    let answer = fake
        .wait("the slash command's answer", |i| {
            i.calls
                .iter()
                .filter(|c| {
                    c.path.contains(&format!("itok-{ix}"))
                        || c.path.contains(&format!("/interactions/{ix}/"))
                })
                .map(|c| c.body.to_string())
                .find(|b| b.contains("could not be posted"))
        })
        .await;
    assert!(!answer.contains("Posted job"), "{answer}");
    // A typed request, nobody on an interaction: the incident channel hears it.
    fake.fail("POST", &cards, refused, 1);
    // Another instance (orders-db is held by job 1).
    fake.say(
        BOB,
        OPS,
        "!restart ddm 5d2f6a0c9b1e4c7d8a3f2e1d0c9b8a7fin09 hard",
    );
    let notice = message_with(&fake, INCIDENTS, "could not be posted").await;
    assert!(notice.content.contains("Job 2"), "{}", notice.content);
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"post_card\",reason=\"permission\"}"
        ) >= 2
    );
    bot.stop().await;
}

#[test]
fn fixtures_match_serenity_models() {
    // The fake checks every fixture it sends; this makes a drift visible without a gateway.
    let v: Value = json!({"user_id": "1", "channel_id": "2", "message_id": "3",
        "emoji": {"id": null, "name": "✅"}, "burst": false, "type": 0});
    assert!(serde_json::from_value::<serenity::all::Reaction>(v).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_are_acknowledged_in_discords_window_and_late_ones_are_not_answered() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replace("approvals = 1", "approvals = 2");
    // Slash commands deferred as soon as they arrive, so the deferral is what is checked.
    let tuning = Tuning {
        defer_at: Duration::ZERO,
        ..Tuning::default()
    };
    let bot = Bot::start_text(dir.path(), tuning, &text).await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, posted) = card(&fake, 1).await;
    let approve = buttons(&posted)[0].0.clone();
    let ack_types = |ix: u64| -> Vec<Value> {
        let i = fake.lock();
        i.callbacks(ix).iter().map(|c| c["type"].clone()).collect()
    };

    // An approver's press is acknowledged once, at once, by a deferred update; the card's
    // edit shows the vote. A second press is acknowledged too and does not count again.
    let first = fake.click(BOB, msg, &approve);
    fake.wait("1 of 2", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("1 of 2"))
    })
    .await;
    assert_eq!(ack_types(first), vec![json!(6)]);
    let again = fake.click(BOB, msg, &approve);
    let reply = follow_up(&fake, again, "already counted").await;
    assert_eq!(reply["flags"], 64, "{reply}");
    assert_eq!(ack_types(again), vec![json!(6)]);
    assert!(fake
        .lock()
        .card(1)
        .expect("card")
        .1
        .text()
        .contains("1 of 2"));

    // /status is deferred publicly, and its answer replaces the deferral.
    let status = fake.slash(ALICE, OPS, "status", &[("job", "1")]);
    let edit = fake
        .wait("the status answer", |i| {
            i.answers(status)
                .into_iter()
                .find(|c| c.method == "PATCH" && c.path.ends_with("/messages/@original"))
        })
        .await;
    assert!(
        edit.body["content"]
            .as_str()
            .is_some_and(|c| c.contains("awaiting approval")),
        "{}",
        edit.body
    );
    let deferral = fake.lock().callbacks(status);
    assert_eq!(deferral.len(), 1, "{deferral:?}");
    assert_eq!(deferral[0]["type"], 5, "{deferral:?}");
    assert_ne!(deferral[0]["data"]["flags"], 64, "{deferral:?}");
    // A refusal after a public deferral stays private: the deferral goes, an ephemeral
    // follow-up takes its place.
    let bad = fake.slash(ALICE, OPS, "status", &[("job", "x1")]);
    let refusal = follow_up(&fake, bad, "Usage").await;
    assert_eq!(refusal["flags"], 64, "{refusal}");
    assert!(fake.lock().deleted_originals.contains(&bad));

    // Discord lost track of an interaction before its answer (10062): counted, and nothing
    // more is sent to it.
    fake.fail(
        "POST",
        "/callback",
        FaultKind::Status {
            status: 404,
            code: 10062,
        },
        1,
    );
    let lost = fake.click(MALLORY, msg, &approve);
    let expired = "opsgate_discord_late_interactions_total{reason=\"expired_on_answer\"}";
    fake.wait("the expired interaction counted", |_| {
        (metric(&bot, expired) >= 1).then_some(())
    })
    .await;

    // A slash command that reaches opsgate after Discord's window is not acted on (the user
    // was told it failed) and not answered; it is counted.
    let late_request = fake.slash_aged(
        CAROL,
        OPS,
        "restart",
        &[
            ("service", "ddm"),
            ("target", "orders-db"),
            ("mode", "soft"),
        ],
        Duration::from_secs(10),
    );
    let dropped = "opsgate_discord_late_interactions_total{reason=\"slash_dropped\"}";
    fake.wait("the late slash command counted", |_| {
        (metric(&bot, dropped) >= 1).then_some(())
    })
    .await;
    // A late press still counts (it came from an approver, on the job's own card): the card
    // shows it and the job runs, but the interaction is never answered.
    let late_click = fake.click_aged(CAROL, msg, &approve, Duration::from_secs(10));
    let done = card_state(&fake, 1, "succeeded").await;
    assert!(done.text().contains("carol"), "{}", done.text());
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
    let unanswered = "opsgate_discord_late_interactions_total{reason=\"button_unanswered\"}";
    assert_eq!(metric(&bot, unanswered), 1);
    bot.stop().await;

    let i = fake.lock();
    assert!(
        i.answers(late_click).is_empty(),
        "{:?}",
        i.answers(late_click)
    );
    assert!(i.answers(late_request).is_empty());
    assert!(i.card(2).is_none(), "a late request was acted on");
    assert_eq!(i.answers(lost).len(), 1, "{:?}", i.answers(lost));
    assert_no_pings(&i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_discord_takes_one_answer_per_interaction_within_three_seconds() {
    let fake = FakeDiscord::start().await;
    let callback = |ix: u64| {
        format!(
            "{}/api/v10/interactions/{ix}/itok-{ix}/callback",
            fake.base()
        )
    };
    let http = reqwest::Client::new();
    let ack = json!({"type": 6});
    // The fake needs no bot for this: interactions are made without a gateway here.
    let fresh = fake.lock().interaction_id(Duration::ZERO);
    let late = fake
        .lock()
        .interaction_id(INTERACTION_WINDOW + Duration::from_secs(1));
    let first = http
        .post(callback(fresh))
        .json(&ack)
        .send()
        .await
        .expect("post");
    assert_eq!(first.status(), 204);
    let second = http
        .post(callback(fresh))
        .json(&ack)
        .send()
        .await
        .expect("post");
    assert_eq!(second.status(), 400);
    let body: Value = second.json().await.expect("json");
    assert_eq!(body["code"], 40060, "{body}");
    let expired = http
        .post(callback(late))
        .json(&ack)
        .send()
        .await
        .expect("post");
    assert_eq!(expired.status(), 404);
    let body: Value = expired.json().await.expect("json");
    assert_eq!(body["code"], 10062, "{body}");
    // A follow-up needs an answered interaction; editing the original, a message answer.
    let followup = format!("{}/api/v10/webhooks/{BOT}/itok-{late}", fake.base());
    let refused = http
        .post(followup)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 404);
    let original = format!(
        "{}/api/v10/webhooks/{BOT}/itok-{fresh}/messages/@original",
        fake.base()
    );
    let refused = http
        .patch(original)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(refused.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_card_is_posted_again_and_its_incident_links_follow() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replace("approvals = 1", "approvals = 2");
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (first, posted) = card(&fake, 1).await;
    let nonce_buttons = buttons(&posted);
    let link = |m: u64| format!("https://discord.com/channels/{GUILD}/{OPS}/{m}");
    let requested = message_with(&fake, INCIDENTS, "job 1 requested").await;
    assert!(
        requested.content.contains(&link(first)),
        "{}",
        requested.content
    );
    fake.react(BOB, first, "✅", true, true);
    fake.wait("1 of 2", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("1 of 2"))
    })
    .await;

    // A moderator deletes the card: it comes back with the job's state, its reactions and
    // the same buttons, and the incident message links to the new card.
    fake.delete_message(first, true);
    let (second, again) = fake
        .wait("the card posted again", |i| {
            i.card(1).filter(|(m, _)| *m != first)
        })
        .await;
    assert!(
        again.text().contains("1 of 2") && again.text().contains("bob"),
        "{}",
        again.text()
    );
    assert_eq!(buttons(&again), nonce_buttons);
    fake.wait("✅ and ❌ on the new card", |i| {
        (reacted(i, second, "✅", BOT) && reacted(i, second, "❌", BOT)).then_some(())
    })
    .await;
    fake.wait("the incident link follows the card", |i| {
        i.in_channel(INCIDENTS).into_iter().find(|(_, m)| {
            m.content.contains("job 1 requested") && m.content.contains(&link(second))
        })
    })
    .await;

    // Deleted again, unnoticed (no event): the next edit finds it gone (10008) and the card
    // is posted once more; a press on that card counts.
    fake.delete_message(second, false);
    fake.say(CAROL, OPS, "!approve 1");
    let (third, _) = fake
        .wait("the card posted a third time", |i| {
            i.card(1).filter(|(m, _)| *m != first && *m != second)
        })
        .await;
    let done = card_state(&fake, 1, "succeeded").await;
    assert!(done.text().contains("2 of 2"), "{}", done.text());
    assert_eq!(calls(&emu, "ddm.restart").await, 1);
    fake.wait("the incident link follows again", |i| {
        i.in_channel(INCIDENTS).into_iter().find(|(_, m)| {
            m.content.contains("job 1 requested") && m.content.contains(&link(third))
        })
    })
    .await;
    {
        let i = fake.lock();
        let cards = i
            .messages
            .values()
            .filter(|m| m.title().contains("Job 1 ·"))
            .count();
        assert_eq!(cards, 1, "one card at a time");
        assert!(!i
            .calls_to("PATCH", &format!("/messages/{second}"))
            .is_empty());
    }
    bot.stop().await;
    // The reposted card's ID is durable: after a restart the job's record names it.
    let store = SledStore::open(dir.path()).expect("store");
    let job = store.job(JobId(1)).expect("read").expect("job 1");
    assert_eq!(job.message_id, Some(MessageId(third.to_string())));
    let audit = store.audit(JobId(1)).expect("audit");
    assert_eq!(
        audit.iter().filter(|e| e.event == "card_reposted").count(),
        2,
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_deleted_while_the_bot_was_offline_is_posted_again_on_reconnect() {
    let (fake, emu, dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (first, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, first, "✅", BOT) && reacted(i, first, "❌", BOT)).then_some(())
    })
    .await;
    bot.stop().await;
    // Deleted while opsgate is down: no gateway event reaches it.
    fake.delete_message(first, false);
    let bot = Bot::start(&fake, &emu, dir.path()).await;
    ready(&fake, 2).await;
    // Catch-up finds it gone (10008 reading its reactions) and the engine posts it again.
    let (second, _) = fake
        .wait("the card posted again", |i| {
            i.card(1).filter(|(m, _)| *m != first)
        })
        .await;
    fake.react(BOB, second, "✅", true, true);
    card_state(&fake, 1, "succeeded").await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_invalid_session_a_new_ready_reads_the_cards_again() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.wait("✅ and ❌ from the bot", |i| {
        (reacted(i, msg, "✅", BOT) && reacted(i, msg, "❌", BOT)).then_some(())
    })
    .await;
    // An approval whose event is lost with the session.
    fake.react(BOB, msg, "✅", true, false);
    // op 9 (not resumable): serenity identifies again (after its 5 s between identifies)
    // and gets a new READY; opsgate counts the new session and reads the cards again.
    fake.invalidate_session();
    ready(&fake, 2).await;
    assert_eq!(fake.lock().identifies.len(), 2);
    assert_eq!(fake.lock().resumes, 0);
    let done = card_state(&fake, 1, "succeeded").await;
    assert!(done.text().contains("bob"), "{}", done.text());
    assert!(metric(&bot, "opsgate_discord_reconnects_total") >= 1);
    fake.wait("connected again", |_| bot.discord.connected().then_some(()))
        .await;
    fake.say(ALICE, OPS, "!whoami");
    message_with(&fake, OPS, "oncall").await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_and_missing_access_is_reported() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    let cards = format!("/channels/{OPS}/messages");
    // 429 on the card's post: retried (after at least a second), one card.
    fake.fail(
        "POST",
        &cards,
        FaultKind::RateLimited { retry_after: 0.2 },
        1,
    );
    fake.say(CAROL, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    {
        let i = fake.lock();
        assert_eq!(card_posts(&i, 1).len(), 2);
        assert_eq!(
            i.messages
                .values()
                .filter(|m| m.title().contains("Job 1 ·"))
                .count(),
            1
        );
    }
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"post_card\",reason=\"rate_limited\"}"
        ) >= 1
    );
    // A 500 and a 429 on the card's edits: retried; the card still reaches its end.
    fake.fail(
        "PATCH",
        &format!("/messages/{msg}"),
        FaultKind::Status {
            status: 500,
            code: 0,
        },
        1,
    );
    fake.fail(
        "PATCH",
        &format!("/messages/{msg}"),
        FaultKind::RateLimited { retry_after: 0.1 },
        1,
    );
    fake.react(BOB, msg, "✅", true, true);
    card_state(&fake, 1, "succeeded").await;
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"edit_card\",reason=\"server\"}"
        ) >= 1
    );
    // 50001 (Missing Access: opsgate cannot see the channel) on a card: not retried,
    // reported in the incident channel and counted as a permission problem.
    fake.fail(
        "POST",
        &cards,
        FaultKind::Status {
            status: 403,
            code: 50001,
        },
        1,
    );
    fake.say(CAROL, OPS, "!restart ddm orders-db hard");
    let notice = message_with(&fake, INCIDENTS, "could not be posted").await;
    assert!(notice.content.contains("Job 2"), "{}", notice.content);
    assert_eq!(
        card_posts(&fake.lock(), 2).len(),
        1,
        "a refusal was retried"
    );
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"post_card\",reason=\"permission\"}"
        ) >= 1
    );
    bot.stop().await;
}

/// The bot's message POSTs in `channel`, as (nonce, tries): no nonce made more than one
/// message, and every try asked Discord to enforce it.
fn tries_per_nonce(i: &Inner, channel: u64) -> BTreeMap<String, usize> {
    let mut tries = BTreeMap::new();
    for p in i.calls_to("POST", &format!("/channels/{channel}/messages")) {
        if !p.path.ends_with("/messages") {
            continue;
        }
        assert_eq!(p.body["enforce_nonce"], true, "{}", p.body);
        let nonce = p.body["nonce"].as_str().expect("a nonce").to_string();
        *tries.entry(nonce).or_insert(0) += 1;
    }
    for nonce in tries.keys() {
        let made = i
            .messages
            .values()
            .filter(|m| m.nonce.as_deref() == Some(nonce.as_str()))
            .count();
        assert!(made <= 1, "nonce {nonce} made {made} messages");
    }
    tries
}

/// Messages in `channel` containing `text`.
fn count_with(i: &Inner, channel: u64, text: &str) -> usize {
    i.in_channel(channel)
        .iter()
        .filter(|(_, m)| m.content.contains(text))
        .count()
}

/// WARN and ERROR lines logged on a test's own runtime.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The WARN line that says a message to `channel` was dropped.
    fn dropped(&self, channel: u64) -> Option<String> {
        self.lines().into_iter().find(|l| {
            l.contains(" WARN ")
                && l.contains("gave up sending a message to Discord; dropped")
                && l.contains(&channel.to_string())
        })
    }
}

/// Runs `test` on a runtime of its own whose threads log (WARN and up) into `Logs`, so the
/// lines are this test's alone.
fn with_logs<F, Fut>(test: F)
where
    F: FnOnce(Logs) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let logs = Logs::default();
    let sink = logs.0.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || LogWriter(sink.clone()))
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let for_threads = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's whole life; the runtime's threads end with the test.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("runtime");
    let _main = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(test(logs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_rate_limited_for_a_moment_is_sent_once_after_the_wait() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    // As Discord answered `!help`: Retry-After: 1, body retry_after 0.5, no `code`. The
    // fake answers 429 again to any call before the wait is over (counted in `early`).
    fake.fail(
        "POST",
        &format!("/channels/{OPS}/messages"),
        FaultKind::RateLimited { retry_after: 0.5 },
        1,
    );
    fake.say(ALICE, OPS, "!help");
    message_with(&fake, OPS, "Commands:").await;
    // A second reply in the same channel goes after the first (one lane per channel).
    fake.say(ALICE, OPS, "!whoami");
    message_with(&fake, OPS, "alice (").await;
    {
        let i = fake.lock();
        let tries = tries_per_nonce(&i, OPS);
        let first = i.calls_to("POST", &format!("/channels/{OPS}/messages"))[0].body["nonce"]
            .as_str()
            .expect("nonce")
            .to_string();
        assert_eq!(tries.get(&first), Some(&2), "{tries:?}");
        assert!(
            i.early.is_empty(),
            "called before the wait was over: {:?}",
            i.early
        );
    }
    assert!(metric(&bot, "opsgate_discord_rate_limited_total") >= 1);
    assert_eq!(metric(&bot, "opsgate_discord_messages_dropped_total"), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_rate_limit_holds_every_channels_messages_until_it_ends() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.fail(
        "POST",
        &format!("/channels/{OPS}/messages"),
        FaultKind::GlobalRateLimited { retry_after: 1.5 },
        1,
    );
    fake.say(ALICE, OPS, "!whoami");
    // Once opsgate has seen the global 429, a reply in another channel waits for it too.
    fake.wait("the global 429 seen", |_| {
        (metric(&bot, "opsgate_discord_rate_limited_total") >= 1).then_some(())
    })
    .await;
    fake.say(BOB, INCIDENTS, "!whoami");
    message_with(&fake, OPS, "alice (").await;
    message_with(&fake, INCIDENTS, "bob (").await;
    {
        let i = fake.lock();
        assert!(
            i.early.is_empty(),
            "called during the global limit: {:?}",
            i.early
        );
        assert_eq!(tries_per_nonce(&i, OPS).values().sum::<usize>(), 2);
        assert_eq!(tries_per_nonce(&i, INCIDENTS).values().sum::<usize>(), 1);
        assert_eq!(count_with(&i, OPS, "alice ("), 1);
        assert_eq!(count_with(&i, INCIDENTS, "bob ("), 1);
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_a_lost_answer_on_replies_are_retried_without_duplicates() {
    let (fake, emu, dir) = world().await;
    let tuning = Tuning {
        retry_pause: Duration::from_millis(20),
        ..Tuning::default()
    };
    let bot = Bot::start_with(&fake, &emu, dir.path(), tuning).await;
    ready(&fake, 1).await;
    let posts = format!("/channels/{OPS}/messages");
    // 500, 502, 503 in a row on the `!whoami` reply: the fourth try goes through.
    for status in [500, 502, 503] {
        fake.fail("POST", &posts, FaultKind::Status { status, code: 0 }, 1);
    }
    fake.say(ALICE, OPS, "!whoami");
    message_with(&fake, OPS, "alice (").await;
    {
        let i = fake.lock();
        assert_eq!(tries_per_nonce(&i, OPS).values().collect::<Vec<_>>(), [&4]);
        assert_eq!(count_with(&i, OPS, "alice ("), 1);
    }
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"message\",reason=\"server\"}"
        ) >= 3
    );
    // Discord stores the reply, then the connection closes without an answer: the retry
    // carries the same nonce and Discord returns the message it made; one message.
    fake.fail("POST", &posts, FaultKind::DropAfter, 1);
    fake.say(BOB, OPS, "!whoami");
    message_with(&fake, OPS, "bob (").await;
    // The next reply in the channel goes out only after that one's call has ended.
    fake.say(CAROL, OPS, "!help");
    message_with(&fake, OPS, "Commands:").await;
    {
        let i = fake.lock();
        assert_eq!(
            count_with(&i, OPS, "bob ("),
            1,
            "the reply was posted twice"
        );
        let tries = tries_per_nonce(&i, OPS);
        assert_eq!(tries.values().filter(|n| **n == 2).count(), 1, "{tries:?}");
    }
    assert_eq!(metric(&bot, "opsgate_discord_messages_dropped_total"), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interaction_follow_up_is_retried_only_when_discord_cannot_have_taken_it() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    fake.say(CAROL, OPS, "!restart ddm orders-db hard");
    let (msg, posted) = card(&fake, 1).await;
    let approve = buttons(&posted)[0].0.clone();
    let follow_ups = |i: &Inner, ix: u64| {
        i.answers(ix)
            .into_iter()
            .filter(|c| c.method == "POST" && c.path.starts_with("/api/v10/webhooks/"))
            .count()
    };
    // A 429 on the refusal's follow-up: nothing was made, so it is sent after the wait.
    fake.fail(
        "POST",
        "/api/v10/webhooks/",
        FaultKind::RateLimited { retry_after: 0.2 },
        1,
    );
    let click = fake.click(MALLORY, msg, &approve);
    follow_up(&fake, click, "cannot approve job 1").await;
    fake.wait("the follow-up's second try", |i| {
        (follow_ups(i, click) == 2).then_some(())
    })
    .await;
    assert!(
        fake.lock().early.is_empty(),
        "sent again before the wait was over"
    );
    // A follow-up Discord took but whose answer was lost is not sent again (Discord has no
    // nonce for follow-ups): it is counted as dropped, never posted twice.
    fake.fail("POST", "/api/v10/webhooks/", FaultKind::DropAfter, 1);
    let click = fake.click(MALLORY, msg, &approve);
    let dropped = "opsgate_discord_messages_dropped_total{kind=\"interaction\"}";
    fake.wait("the follow-up given up on", |_| {
        (metric(&bot, dropped) == 1).then_some(())
    })
    .await;
    assert_eq!(follow_ups(&fake.lock(), click), 1);
    bot.stop().await;
}

#[test]
fn a_message_given_up_on_is_counted_and_logged_at_warn_with_its_channel() {
    with_logs(|logs| async move {
        let (fake, emu, dir) = world().await;
        let tuning = Tuning {
            retry_pause: Duration::from_millis(20),
            ..Tuning::default()
        };
        let bot = Bot::start_with(&fake, &emu, dir.path(), tuning).await;
        ready(&fake, 1).await;
        let dropped = "opsgate_discord_messages_dropped_total{kind=\"reply\"}";
        // Discord asks for a wait far past the message's budget: not waited, not retried.
        fake.fail(
            "POST",
            &format!("/channels/{OPS}/messages"),
            FaultKind::RateLimited { retry_after: 600.0 },
            1,
        );
        fake.say(ALICE, OPS, "!whoami");
        fake.wait("the reply given up on", |_| {
            (metric(&bot, dropped) == 1).then_some(())
        })
        .await;
        {
            let i = fake.lock();
            assert_eq!(tries_per_nonce(&i, OPS).values().sum::<usize>(), 1);
            assert_eq!(count_with(&i, OPS, "alice ("), 0);
        }
        let line = fake.wait("the WARN line", |_| logs.dropped(OPS)).await;
        assert!(line.contains("429"), "{line}");
        // 503 on every try: given up after a bounded number of tries.
        fake.fail(
            "POST",
            &format!("/channels/{INCIDENTS}/messages"),
            FaultKind::Status {
                status: 503,
                code: 0,
            },
            100,
        );
        fake.say(BOB, INCIDENTS, "!whoami");
        fake.wait("the second reply given up on", |_| {
            (metric(&bot, dropped) == 2).then_some(())
        })
        .await;
        let tries = tries_per_nonce(&fake.lock(), INCIDENTS);
        assert_eq!(tries.values().sum::<usize>(), 5, "{tries:?}");
        let line = fake
            .wait("the WARN line", |_| logs.dropped(INCIDENTS))
            .await;
        assert!(line.contains("503"), "{line}");
        fake.lock().faults.clear();
        bot.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_mark_removed_while_offline_withdraws_only_the_approval_it_gave() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replace("approvals = 1", "approvals = 3");
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, posted) = card(&fake, 1).await;
    let approve = buttons(&posted)[0].0.clone();
    // bob approves with ✅; carol with the button, and adds ✅ too (not a second approval).
    fake.react(BOB, msg, "✅", true, true);
    fake.wait("1 of 3", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("1 of 3"))
    })
    .await;
    fake.click(CAROL, msg, &approve);
    fake.wait("2 of 3", |i| {
        i.card(1).filter(|(_, m)| m.text().contains("2 of 3"))
    })
    .await;
    fake.react(CAROL, msg, "✅", true, true);
    message_with(&fake, OPS, "already counted").await;
    bot.stop().await;

    // While opsgate is down both take their ✅ back.
    fake.react(BOB, msg, "✅", false, false);
    fake.react(CAROL, msg, "✅", false, false);
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 2).await;
    // bob's approval went with his ✅; carol's came from the button and stays.
    let now = fake
        .wait("1 of 3 after catch-up", |i| {
            i.card(1).filter(|(_, m)| m.text().contains("1 of 3"))
        })
        .await
        .1;
    assert!(
        now.text().contains("carol") && !now.text().contains("bob"),
        "{}",
        now.text()
    );
    assert_eq!(calls(&emu, "ddm.restart").await, 0);
    bot.stop().await;
    let store = SledStore::open(dir.path()).expect("store");
    let job = store.job(JobId(1)).expect("read").expect("job 1");
    let approvers: Vec<(&str, bool)> = job
        .approvals
        .iter()
        .map(|a| (a.by.name.as_str(), a.by_reaction))
        .collect();
    assert_eq!(approvers, vec![("carol", false)]);
}

/// The callback types interaction `ix` was answered with.
fn callback_types(fake: &FakeDiscord, ix: u64) -> Vec<u64> {
    fake.lock()
        .callbacks(ix)
        .iter()
        .filter_map(|c| c["type"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_asks_for_a_reason_in_a_form_and_cancel_withdraws_the_request() {
    let (fake, emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    let hard = [
        ("service", "ddm"),
        ("target", "orders-db"),
        ("mode", "hard"),
    ];

    // The open card has Approve, Deny and Cancel, and says who may press what.
    fake.slash(ALICE, OPS, "restart", &hard);
    let (msg, posted) = card(&fake, 1).await;
    let ids: Vec<String> = buttons(&posted).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        ids[1].starts_with("deny:1:") && ids[2].starts_with("cancel:1:"),
        "{ids:?}"
    );
    assert!(
        posted
            .text()
            .contains("approve/deny: dba · cancel: alice or an admin"),
        "{}",
        posted.text()
    );

    // Deny opens a form as the press's first answer; nothing is decided yet.
    let press = fake.click(BOB, msg, &ids[1]);
    fake.wait("the Deny form", |i| i.modals.get(&press).cloned())
        .await;
    assert_eq!(callback_types(&fake, press), vec![9]);
    assert_eq!(fake.lock().modals[&press]["custom_id"], ids[1].as_str());
    assert_eq!(fake.lock().card(1).expect("card").1.edits, 0);

    // The submitted form denies with its reason, shown on the card; the submission is
    // acknowledged without a message.
    let sent = fake.submit_form(BOB, press, &[("reason", "not during the sale")]);
    let denied = card_state(&fake, 1, "denied").await;
    assert!(
        denied.text().contains("not during the sale"),
        "{}",
        denied.text()
    );
    assert_eq!(callback_types(&fake, sent), vec![6]);
    assert!(buttons(&denied).iter().all(|(_, disabled)| *disabled));

    // Cancel: refused for someone else (privately), done for the requester.
    fake.slash(ALICE, OPS, "restart", &hard);
    let (msg, posted) = card(&fake, 2).await;
    let cancel = buttons(&posted)[2].0.clone();
    let press = fake.click(BOB, msg, &cancel);
    let reply = follow_up(&fake, press, "or an admin can cancel job 2").await;
    assert_eq!(reply["flags"], 64, "{reply}");
    assert_eq!(callback_types(&fake, press), vec![6]);
    let press = fake.click(ALICE, msg, &cancel);
    card_state(&fake, 2, "cancelled").await;
    assert_eq!(callback_types(&fake, press), vec![6]);
    assert_eq!(calls(&emu, "ddm.restart").await, 0);

    bot.stop().await;
    assert_no_pings(&fake.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_dry_run_and_break_glass_options_and_the_approval_flow_builtins() {
    let (fake, _emu, _dir, bot) = started().await;
    ready(&fake, 1).await;
    {
        let i = fake.lock();
        let reg = i.calls_to("PUT", "/commands")[0].body.clone();
        let names: Vec<&str> = reg
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        for want in ["confirm", "review", "freeze", "unfreeze"] {
            assert!(names.contains(&want), "{want} not registered: {names:?}");
        }
        let restart = reg
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "restart").cloned())
            .unwrap_or_default();
        let kind_of = |name: &str| {
            restart["options"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["name"] == name))
                .map(|o| o["type"].clone())
        };
        assert_eq!(kind_of("dry_run"), Some(json!(5)), "{restart}");
        assert_eq!(kind_of("break_glass"), Some(json!(3)), "{restart}");
    }

    // dry_run (a boolean) with break_glass: a private description, nothing stored or posted.
    let ix = fake.slash_with(
        ALICE,
        OPS,
        "restart",
        &[
            ("service", json!("ddm")),
            ("target", json!("orders-db")),
            ("mode", json!("hard")),
            ("dry_run", json!(true)),
            ("break_glass", json!("orders \"are\" failing")),
        ],
    );
    let answer = fake
        .wait("the dry run's answer", |i| {
            i.answers(ix)
                .iter()
                .map(|c| c.body.to_string())
                .find(|b| b.contains("Dry run of restart ddm"))
        })
        .await;
    assert!(answer.contains("break-glass"), "{answer}");
    let first = fake.lock().callbacks(ix)[0].clone();
    assert_eq!(first["data"]["flags"], 64, "private: {first}");
    assert!(fake.lock().card(1).is_none(), "a dry run posts no card");
    assert!(fake.lock().in_channel(OPS).is_empty());

    // A built-in taken from the command table: /freeze by someone who is no admin is refused
    // privately, by the engine (the slash command became `!freeze 2h release`).
    let ix = fake.slash(
        ALICE,
        OPS,
        "freeze",
        &[("duration", "2h"), ("reason", "release")],
    );
    let refusal = fake
        .wait("the freeze refusal", |i| {
            i.answers(ix)
                .iter()
                .map(|c| c.body.clone())
                .find(|b| b.to_string().contains("admin"))
        })
        .await;
    assert!(
        refusal["flags"] == 64 || refusal["data"]["flags"] == 64,
        "private: {refusal}"
    );

    bot.stop().await;
    assert_no_pings(&fake.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threaded_jobs_lines_go_to_a_thread_on_its_card_or_to_the_channel_when_refused() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replacen(
        "[bot]\n",
        "[bot]\nthread_channels = [\"ops\"]\n",
        1,
    );
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;

    // One thread, made on the card, carries the job's lines; the card stays in the channel.
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 1).await;
    fake.react(BOB, msg, "✅", true, true);
    card_state(&fake, 1, "succeeded").await;
    let lines = fake
        .wait("lines in the job's thread", |i| {
            let lines: Vec<String> = i
                .in_channel(msg)
                .into_iter()
                .map(|(_, m)| m.content)
                .collect();
            lines
                .iter()
                .any(|l| l.contains("approved"))
                .then_some(lines)
        })
        .await;
    assert!(
        lines.iter().any(|l| l.contains("requested by alice")),
        "{lines:?}"
    );
    {
        let i = fake.lock();
        let made = i.calls_to("POST", &format!("/messages/{msg}/threads"));
        assert_eq!(made.len(), 1, "one thread per card");
        assert!(
            made[0].body["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("job 1 · restart ddm orders-db hard")),
            "{}",
            made[0].body
        );
        assert_eq!(i.threads.get(&msg), Some(&OPS));
        let in_ops: Vec<String> = i
            .in_channel(OPS)
            .into_iter()
            .map(|(_, m)| m.content)
            .collect();
        assert!(
            !in_ops.iter().any(|l| l.starts_with("[job 1]")),
            "{in_ops:?}"
        );
    }

    // Without the permission to make threads, the lines go to the channel, counted; the
    // refusal is not asked again for every line.
    fake.fail(
        "POST",
        "/threads",
        FaultKind::Status {
            status: 403,
            code: 50013,
        },
        10,
    );
    fake.say(ALICE, OPS, "!restart ddm orders-db hard");
    let (msg, _) = card(&fake, 2).await;
    fake.react(BOB, msg, "✅", true, true);
    card_state(&fake, 2, "succeeded").await;
    message_with(&fake, OPS, "[job 2] requested by alice").await;
    message_with(&fake, OPS, "[job 2] approved").await;
    assert_eq!(
        fake.lock()
            .calls_to("POST", &format!("/messages/{msg}/threads"))
            .len(),
        1
    );
    assert!(fake.lock().in_channel(msg).is_empty());
    assert!(
        metric(
            &bot,
            "opsgate_discord_call_failures_total{call=\"create_thread\",reason=\"permission\"}"
        ) >= 1
    );

    bot.stop().await;
    assert_no_pings(&fake.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_request_needing_confirmation_is_confirmed_in_a_form() {
    let (fake, emu, dir) = world().await;
    let text = config_text(&fake.base(), &emu.base_url()).replacen(
        "expires = \"15m\"\n",
        "expires = \"15m\"\nconfirm = true\n",
        1,
    );
    let bot = Bot::start_text(dir.path(), Tuning::default(), &text).await;
    ready(&fake, 1).await;

    // The prompt is the slash command's private answer, with a "Confirm…" button.
    let ix = fake.slash(
        ALICE,
        OPS,
        "restart",
        &[
            ("service", "ddm"),
            ("target", "orders-db"),
            ("mode", "hard"),
        ],
    );
    let prompt = fake
        .wait("the confirmation prompt", |i| {
            i.answers(ix)
                .into_iter()
                .map(|c| c.body)
                .find(|b| b.to_string().contains("needs your confirmation"))
        })
        .await;
    let body = if prompt["data"].is_object() {
        prompt["data"].clone()
    } else {
        prompt.clone()
    };
    assert_eq!(body["flags"], 64, "private: {prompt}");
    let button = body["components"][0]["components"][0].clone();
    assert_eq!(button["label"], "Confirm…", "{prompt}");
    let id = button["custom_id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("confirm:"), "{id}");
    assert!(
        fake.lock().card(1).is_none(),
        "nothing is posted before confirmation"
    );

    // The button opens a form; a wrong name is refused privately and the request stays open.
    let press = fake.click(ALICE, 1, &id);
    fake.wait("the confirmation form", |i| i.modals.get(&press).cloned())
        .await;
    assert_eq!(callback_types(&fake, press), vec![9]);
    let wrong = fake.submit_form(ALICE, press, &[("typed", "billing-db")]);
    let refusal = fake
        .wait("the refusal", |i| {
            i.answers(wrong)
                .into_iter()
                .map(|c| c.body)
                .find(|b| b.to_string().contains("not the target's name"))
        })
        .await;
    assert!(
        refusal["flags"] == 64 || refusal["data"]["flags"] == 64,
        "{refusal}"
    );

    // The right name: the request is checked again, stored and posted.
    let press = fake.click(ALICE, 1, &id);
    fake.wait("the form again", |i| i.modals.get(&press).cloned())
        .await;
    let right = fake.submit_form(ALICE, press, &[("typed", " orders-db ")]);
    let (_, posted) = card(&fake, 1).await;
    assert!(
        posted.title().contains("awaiting approval"),
        "{}",
        posted.title()
    );
    fake.wait("Posted job 1", |i| {
        i.answers(right)
            .into_iter()
            .find(|c| c.body.to_string().contains("Posted job 1"))
    })
    .await;

    bot.stop().await;
    assert_no_pings(&fake.lock());
}
