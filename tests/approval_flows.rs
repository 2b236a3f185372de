//! Change freezes, break-glass, dry runs, typed confirmation, card actions and threads:
//! through the engine with a scripted cloud, and through the built binary's terminal chat.

mod support;

#[path = "support/process.rs"]
mod process;

use opsgate::domain::{JobId, MessageId, RoleId};
use std::path::Path;

use opsgate::config::Config;
use opsgate::ports::chat::{CardAction, ChatEvent, Origin, Outgoing};
use support::*;

const SRE: RoleId = RoleId(60);
const HARD: &str = "!restart ddm orders-db hard";
const SOFT: &str = "!restart ddm orders-db";

/// The shared test config, its hard restart open to break-glass by `sre`, with or without
/// a typed confirmation and a thread.
fn flows_text(confirm: bool, thread: bool) -> String {
    support::config_text(
        "30m",
        1,
        &format!(
            "break_glass = true\nbreak_glass_roles = [\"sre\"]\nconfirm = {confirm}\nthread = {thread}"
        ),
    )
}

fn flows_config(confirm: bool, thread: bool, extra: &str) -> Config {
    support::parse(&(flows_text(confirm, thread) + extra))
}

fn start(dir: &Path, extra: &str) -> Harness {
    Harness::start_config(dir, ScriptedOp::new(1), flows_config(false, false, extra))
}

/// A freeze from the config over every request on prod, for all of this century.
const PROD_FREEZE: &str = r#"
[[freezes]]
name = "year-end"
reason = "year-end close"
start = "2000-01-01T00:00:00Z"
end = "2099-12-31T00:00:00Z"
tags = { env = "prod" }
"#;

#[test]
fn a_config_freeze_refuses_covered_requests_with_its_reason_and_end_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), PROD_FREEZE);
    let r = h.say("alice", &[ONCALL], SOFT);
    assert!(
        r.contains("frozen until 2099-12-31 00:00:00 UTC")
            && r.contains("year-end close")
            && r.contains("freeze `year-end`"),
        "{r}"
    );
    // The hard rule allows break-glass, and the refusal says so.
    let r = h.say("alice", &[ONCALL], HARD);
    assert!(r.contains("allows sre: add --break-glass"), "{r}");
    // A raw ID on an account without the tag is not covered.
    let r = h.say(
        "alice",
        &[ONCALL],
        "!restart ddm 0123456789abcdef0123456789abcdefin09",
    );
    assert!(r.contains("job 1"), "{r}");
    // Let the job finish first: its own notices would race the next reply.
    h.wait_for(1, "succeeded");
    let jobs = h.say("x", &[], "!jobs all");
    assert!(jobs.contains("1 recent job"), "{jobs}");
    let overview = h.say("x", &[], "!status");
    assert!(
        overview.contains("freeze `year-end`") && overview.contains("covers where env=prod"),
        "{overview}"
    );
    h.stop();
}

#[test]
fn break_glass_passes_a_freeze_and_the_approvals_but_not_the_roles_or_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), PROD_FREEZE);
    // On-call may request, but break-glass is for sre only: refused, nothing stored.
    let r = h.say(
        "alice",
        &[ONCALL],
        &format!("{HARD} --break-glass \"db is down\""),
    );
    assert!(r.contains("needs the role sre"), "{r}");
    assert!(h.say("x", &[], "!jobs all").contains("No recent jobs"));
    let r = h.say(
        "sam",
        &[SRE],
        &format!("{HARD} --break-glass \"orders are failing\""),
    );
    assert!(r.contains("job 1"), "{r}");
    let status = h.wait_for(1, "succeeded");
    assert!(
        status.contains("break-glass by sam: orders are failing · review pending"),
        "{status}"
    );
    assert!(
        status.contains("approvals skipped with --break-glass by sam"),
        "{status}"
    );
    assert_eq!(h.op.submits(), 1);
    let critical: Vec<(String, String)> = h
        .chat
        .incidents()
        .into_iter()
        .filter(|(_, t)| t.contains("--break-glass"))
        .collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert_eq!(critical[0].0, "alerts");
    assert!(critical[0].1.contains("orders are failing"), "{critical:?}");
    // Break-glass needs a reason.
    let r = h.say("sam", &[SRE], &format!("{HARD} --break-glass"));
    assert!(r.contains("needs a reason"), "{r}");
    h.stop();

    // The lock holds even for break-glass.
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    h.say("alice", &[ONCALL], HARD);
    let r = h.say("sam", &[SRE], &format!("{HARD} --break-glass now"));
    assert!(r.contains("busy: job 1"), "{r}");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_break_glass_job_stays_marked_until_an_approver_reviews_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    h.say("sam", &[SRE], &format!("{HARD} --break-glass db down"));
    h.wait_for(1, "succeeded");
    let open = h.say("x", &[], "!jobs review");
    assert!(
        open.contains("1 break-glass job awaiting review") && open.contains("#1"),
        "{open}"
    );
    assert!(
        h.say("x", &[], "!status").contains("#1"),
        "overview lists it"
    );
    let r = h.say("sam", &[SRE, DBA], "!review 1 ok fine");
    assert!(r.contains("someone else must review"), "{r}");
    let r = h.say("alice", &[ONCALL], "!review 1 ok");
    assert!(r.contains("needs the role dba"), "{r}");
    let r = h.say("bob", &[DBA], "!review 1 concern");
    assert!(r.contains("Say what the concern is"), "{r}");
    let r = h.say("bob", &[DBA], "!review 1 ok right call\u{202E}evil");
    assert!(r.contains("review: ok by bob: right callevil"), "{r}");
    let again = h.say("carol", &[DBA], "!review 1 ok");
    assert!(again.contains("already reviewed by bob"), "{again}");
    assert_eq!(
        h.say("x", &[], "!jobs review"),
        "No break-glass jobs are awaiting review."
    );
    let status = h.status(1);
    assert!(status.contains("reviewed ok by bob"), "{status}");
    assert!(
        status.contains("review by bob: ok by bob: right callevil")
            || status.contains(" ok by bob: right callevil"),
        "{status}"
    );
    // A job that did not use break-glass has nothing to review.
    h.say("alice", &[ONCALL], SOFT);
    h.wait_for(2, "succeeded");
    let r = h.say("bob", &[DBA], "!review 2 ok");
    assert!(r.contains("did not run with --break-glass"), "{r}");
    h.stop();
    // The review survived: stored with the job.
    let store = opsgate::store::SledStore::open(dir.path()).unwrap();
    let job = store.job(JobId(1)).unwrap().unwrap();
    assert!(job.break_glass.unwrap().review.is_some());
}

#[test]
fn freeze_and_unfreeze_are_for_admins_durable_and_in_the_overview() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    let r = h.say("alice", &[ONCALL], "!freeze 2h release");
    assert!(r.contains("only an admin"), "{r}");
    let r = h.say("root", &[ADMIN], "!freeze 2h release in progress");
    assert!(r.contains("Freeze set by root until"), "{r}");
    let r = h.say("alice", &[ONCALL], SOFT);
    assert!(
        r.contains("frozen until") && r.contains("release in progress (!freeze by root)"),
        "{r}"
    );
    h.crash();
    // Persisted before it was announced: a restart keeps it.
    let h = start(dir.path(), "");
    let r = h.say("alice", &[ONCALL], SOFT);
    assert!(r.contains("release in progress"), "{r}");
    let r = h.say("alice", &[ONCALL], "!unfreeze");
    assert!(r.contains("only an admin"), "{r}");
    let r = h.say("root", &[ADMIN], "!unfreeze");
    assert!(r.contains("Freeze lifted by root"), "{r}");
    let r = h.say("root", &[ADMIN], "!unfreeze");
    assert!(r.contains("No !freeze is in force"), "{r}");
    assert!(h.say("alice", &[ONCALL], SOFT).contains("job 1"));
    // Its cloud result posts on its own; the replies below must not race it.
    h.wait_for(1, "succeeded");
    h.say("x", &[], "!status");
    let overview = h.chat.last_reply();
    assert!(
        overview.contains("freeze by root: until") && overview.contains("unfreeze by root"),
        "{overview}"
    );
    for bad in [
        "!freeze",
        "!freeze soon x",
        "!freeze 2h",
        "!freeze 30d too long",
    ] {
        let r = h.say("root", &[ADMIN], bad);
        assert!(r.contains("Usage: !freeze"), "{bad}: {r}");
    }
    h.stop();
}

#[test]
fn a_dry_run_says_what_would_happen_and_stores_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_config(
        dir.path(),
        ScriptedOp::new(1),
        flows_config(true, false, ""),
    );
    let r = h.say("alice", &[ONCALL], &format!("{HARD} --dry-run"));
    for want in [
        "Dry run of restart ddm orders-db hard: nothing was stored or sent.",
        "rule `hard`",
        "needs 1 approval from dba within 30m",
        "break-glass: allowed for sre",
        "confirmation: you would first type `!confirm <number> orders-db`",
        "lock: free",
        "freeze: none",
        "would send: POST https://",
        "/v1/0123456789abcdef0123456789abcdef/instances/28e8841d0b9c4f6a9a30742ee60e1068in09/action",
        r#"body: {"restart":{"type":"hard"}}"#,
        "auth: X-Auth-Token: an IAM token for user `u` (not shown)",
        "outcome: would be posted for approval",
    ] {
        assert!(r.contains(want), "missing {want}: {r}");
    }
    let private = h.chat.sent.lock().unwrap().iter().any(
        |o| matches!(o, Outgoing::Reply { text, private: true, .. } if text.contains("Dry run")),
    );
    assert!(private, "a dry run is answered privately");
    assert!(h.say("x", &[], "!jobs all").contains("No recent jobs"));
    // The flag may stand anywhere, and a refusal is described, not acted on.
    let r = h.say(
        "alice",
        &[ONCALL],
        "!restart ddm --dry-run orders-db --break-glass x",
    );
    assert!(
        r.contains("--break-glass: refused") && r.contains("would be refused"),
        "{r}"
    );
    let r = h.say("guest", &[GUEST], &format!("{SOFT} --dry-run"));
    assert!(r.contains("needs the role"), "{r}");
    assert_eq!(h.op.submits(), 0);
    h.stop();
    let store = opsgate::store::SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.next_job_id().unwrap(),
        JobId(1),
        "no job number was used"
    );
}

#[test]
fn a_dry_run_reports_the_lock_and_the_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    h.say("alice", &[ONCALL], HARD);
    h.say("root", &[ADMIN], "!freeze 1h maintenance");
    let r = h.say("sam", &[SRE], &format!("{SOFT} --dry-run"));
    assert!(r.contains("lock: orders-db is busy: job 1"), "{r}");
    assert!(
        r.contains("freeze: 🧊 until") && r.contains("maintenance"),
        "{r}"
    );
    assert!(r.contains("would be refused: 🧊"), "{r}");
    h.stop();
}

#[test]
fn a_confirm_rule_posts_nothing_until_the_requester_types_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_config(
        dir.path(),
        ScriptedOp::new(1),
        flows_config(true, false, ""),
    );
    let prompt = h.say("alice", &[ONCALL], HARD);
    assert!(prompt.contains("within 60 s"), "{prompt}");
    let number: u64 = prompt
        .split("!confirm ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a number in the prompt");
    assert!(h.chat.new_cards().is_empty());
    assert!(h.say("x", &[], "!jobs all").contains("No recent jobs"));
    let r = h.say("alice", &[ONCALL], &format!("!confirm {number} orders"));
    assert!(r.contains("not the target's name"), "{r}");
    let r = h.say("bob", &[ONCALL], &format!("!confirm {number} orders-db"));
    assert!(r.contains("not yours to confirm"), "{r}");
    let r = h.say("alice", &[ONCALL], &format!("!confirm {number} orders-db"));
    assert!(r.contains("job 1 · awaiting approval"), "{r}");
    let r = h.say("alice", &[ONCALL], &format!("!confirm {number} orders-db"));
    assert!(r.contains("no request"), "used once: {r}");
    assert!(h
        .status(1)
        .contains("confirmed by typing the target's name"));
    // A soft restart's rule does not ask.
    h.say("bob", &[DBA], "!approve 1");
    h.wait_for(1, "succeeded");
    assert!(h.say("alice", &[ONCALL], SOFT).contains("job 2"));
    h.stop();
}

fn nonce_of(h: &Harness, job: u64) -> u64 {
    h.chat
        .sent
        .lock()
        .unwrap()
        .iter()
        .find_map(|o| match o {
            Outgoing::Card { card, .. } if card.job == JobId(job) => Some(card.nonce),
            _ => None,
        })
        .expect("card posted")
}

fn card_action(
    user: &str,
    roles: &[RoleId],
    job: u64,
    nonce: u64,
    action: CardAction,
) -> ChatEvent {
    ChatEvent::CardAction {
        actor: actor(user, roles),
        origin: Origin::channel("ops"),
        job: JobId(job),
        nonce: Some(nonce),
        message_id: MessageId(format!("msg-{job}")),
        action,
    }
}

#[test]
fn card_buttons_cancel_for_the_requester_or_an_admin_and_deny_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    let card = h.say("alice", &[ONCALL], HARD);
    assert!(card.contains("!cancel 1: alice or an admin"), "{card}");
    let nonce = nonce_of(&h, 1);
    h.event(card_action("bob", &[DBA], 1, nonce, CardAction::Cancel));
    assert!(
        h.chat.last_reply().contains("only alice"),
        "{}",
        h.chat.last_reply()
    );
    h.event(card_action(
        "alice",
        &[ONCALL],
        1,
        nonce + 1,
        CardAction::Cancel,
    ));
    assert!(h.chat.last_reply().contains("not on job 1's card"));
    h.event(card_action(
        "alice",
        &[ONCALL],
        1,
        nonce,
        CardAction::Cancel,
    ));
    h.wait_for(1, "cancelled");

    h.say("alice", &[ONCALL], HARD);
    let nonce = nonce_of(&h, 2);
    let reason = Some("not during the sale \u{200B}please".to_string());
    h.event(card_action(
        "bob",
        &[DBA],
        2,
        nonce,
        CardAction::Deny { reason },
    ));
    let status = h.wait_for(2, "denied");
    assert!(
        status.contains("denied by bob: not during the sale please"),
        "{status}"
    );
    h.say("alice", &[ONCALL], HARD);
    h.event(card_action(
        "root",
        &[ADMIN],
        3,
        nonce_of(&h, 3),
        CardAction::Cancel,
    ));
    h.wait_for(3, "cancelled");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_threaded_job_tells_its_story_in_its_thread_and_its_outcome_in_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_config(
        dir.path(),
        ScriptedOp::new(1),
        flows_config(false, true, ""),
    );
    h.say("alice", &[ONCALL], HARD);
    h.say("bob", &[DBA], "!approve 1");
    h.wait_for(1, "succeeded");
    let thread = h.chat.thread(1);
    let all = thread.join("\n");
    for want in ["requested by alice", "approved by bob", "succeeded"] {
        assert!(all.contains(want), "missing {want}: {all}");
    }
    let outcome = h.chat.sent.lock().unwrap().iter().any(|o| {
        matches!(o, Outgoing::Notice { channel, text, .. }
            if channel == "ops" && text.contains("✅ job 1 succeeded"))
    });
    assert!(outcome, "the outcome is said in the channel");
    // Rules without threads keep everything on the card.
    h.say("alice", &[ONCALL], SOFT);
    h.wait_for(2, "succeeded");
    assert!(h.chat.thread(2).is_empty());
    h.stop();
}

#[test]
fn jobs_stored_before_these_flows_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), "");
    h.say("alice", &[ONCALL], HARD);
    h.stop();
    let store = opsgate::store::SledStore::open(dir.path()).unwrap();
    let job = store.job(JobId(1)).unwrap().unwrap();
    let mut old = serde_json::to_value(&job).unwrap();
    let map = old.as_object_mut().unwrap();
    map.remove("break_glass");
    map.remove("thread");
    let back: opsgate::job::Job = serde_json::from_value(old).unwrap();
    assert_eq!(back.break_glass, None);
    assert!(!back.thread);
}

#[test]
fn bad_freezes_and_break_glass_settings_are_config_errors_with_their_paths() {
    let bad = r#"
[[freezes]]
reason = "x"
weekly = "Fri 16:00"
[[freezes]]
start = "2026-01-01T00:00:00Z"
end = "2026-01-02T00:00:00Z"
[[freezes]]
reason = "y"
start = "2026-01-02T00:00:00Z"
end = "2026-01-01T00:00:00Z"
rules = ["hadr"]
[[freezes]]
reason = "z"
"#;
    let text = flows_text(false, false).replace("break_glass_roles = [\"sre\"]", "") + bad;
    let err = Config::parse(&text, Path::new("t.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    for want in [
        "freezes[1].weekly: `Fri 16:00` is not a weekly window",
        "freezes[2].reason: missing",
        "freezes[3].end: must be after start",
        "freezes[4].start: missing",
        "rules[2].break_glass_roles: missing",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
    let text = flows_text(false, false)
        + "[[freezes]]\nreason = \"y\"\nweekly = \"Fri 16:00 - Mon 08:00\"\nrules = [\"hadr\"]\n";
    let err = Config::parse(&text, Path::new("t.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("freezes[1].rules[1]: unknown rule `hadr`; did you mean `hard`?"),
        "{err}"
    );
}

// ---- through the built binary's terminal chat ----

const SHELL_EXTRA: &str = r#"
[[rules]]
command = "restart taurus-proxy"
request_roles = ["oncall"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
confirm = true
thread = true
break_glass = true
break_glass_roles = ["admin"]
[targets.orders-proxy]
service = "taurus-proxy"
instance_id = "0123456789abcdef0123456789abcdefin07"
proxy_id = "0123456789abcdef0123456789abcdefpo01"
"#;

/// The number in a `type `!confirm N target`` prompt.
fn confirm_number(prompt: &str) -> u64 {
    prompt
        .split("!confirm ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {prompt}"))
}

#[test]
fn the_terminal_shows_dry_runs_confirmation_threads_freezes_break_glass_and_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let emu = process::Emulator::start("300ms");
    let config = process::write_config_with(dir.path(), &emu.url, "30m", SHELL_EXTRA);
    let mut shell = process::LiveShell::start(&config, &dir.path().join("data"));
    shell.send("!restart taurus-proxy orders-proxy --dry-run");
    shell.expect("[#ops] (only you) 🧪 Dry run of restart taurus-proxy orders-proxy");
    let url = shell.expect("would send: POST http://127.0.0.1");
    assert!(
        url.contains("/v3/0123456789abcdef0123456789abcdef/instances/0123456789abcdef0123456789abcdefin07/proxy/0123456789abcdef0123456789abcdefpo01/restart"),
        "{url}"
    );
    shell.expect("outcome: would be posted for approval");

    shell.send("!restart taurus-proxy orders-proxy");
    let n = confirm_number(&shell.expect("needs your confirmation"));
    shell.send(&format!("!confirm {n} orders-prox"));
    shell.expect("not the target's name");
    shell.send(&format!("!confirm {n} orders-proxy"));
    shell.expect("[#ops] ⏳ job 1 · awaiting approval · restart taurus-proxy orders-proxy");
    shell.expect("[#ops/job-1] requested by alice");

    shell.send("/as root oncall,admin");
    shell.send("!freeze 1h release train");
    shell.expect("Freeze set by root until");
    shell.send("!restart ddm orders-db");
    shell.expect("is frozen until");
    shell.send("!cancel 1");
    shell.expect("[#ops/job-1] cancelled by root");
    shell.expect("[#ops] ↩️ job 1 cancelled: restart taurus-proxy orders-proxy");

    shell.send("!restart taurus-proxy orders-proxy --break-glass \"proxy wedged\"");
    let n = confirm_number(&shell.expect("needs your confirmation"));
    shell.send(&format!("!confirm {n} orders-proxy"));
    shell.expect("[#ops] 🔄 job 2 · submitting");
    shell.expect(
        "[#ops/job-2] break-glass: approvals skipped with --break-glass by root: proxy wedged",
    );
    shell.send("/wait 2");
    shell.send("!jobs review");
    shell.expect("1 break-glass job awaiting review");
    shell.send("/as bob dba");
    shell.send("!review 2 ok looked fine");
    shell.expect("break-glass review: ok by bob: looked fine");
    shell.send("!status");
    shell.expect("no break-glass jobs awaiting review");
    shell.send("/as root oncall,admin");
    shell.send("!unfreeze");
    shell.expect("Freeze lifted by root");
    let (status, seen) = shell.finish(std::time::Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", seen.join("\n"));
    assert_eq!(emu.calls("taurus.restart"), 1, "{}", seen.join("\n"));
    assert_eq!(emu.calls("ddm.restart"), 0);
}
