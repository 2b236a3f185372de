//! Two or three `opsgate run` replicas on one PostgreSQL database (short lease: 1 s),
//! against the fake Discord and the cloud emulator: only the leader connects to the
//! gateway and answers; a standby takes over when the leader is SIGKILLed (a seeded
//! campaign of 30 kills mid-workload: every acknowledged job is there, no cloud call is
//! made twice, no job is left unfinished), paused past its lease (it commits nothing more
//! and leaves), or cut off from PostgreSQL (connections killed, the server stopped and
//! started); replicas started at the same instant elect one leader; commands typed while
//! no replica read the channel are answered once, never run (on sled after a plain
//! restart too); an approval given by reaction while no replica was connected is applied
//! by the new leader. Every campaign has a fixed seed (`OPSGATE_FAILOVER_SEED` to change it)
//! and a bounded size; waits are bounded, never timed claims.

#[path = "support/fake_discord.rs"]
mod fake_discord;
#[path = "support/postgres.rs"]
mod postgres_cluster;
#[path = "support/process.rs"]
mod process;
#[path = "support/replicas.rs"]
mod replicas;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fake_discord::*;
use replicas::{Replica, World, BOUND};

const ANSWER: &str = "opsgate was switching over when this arrived; nothing was done";
const KILLS: usize = 30;
const DEFAULT_SEED: u64 = 0x0dd5_eed5_2701_0001;

fn seed() -> u64 {
    std::env::var("OPSGATE_FAILOVER_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(DEFAULT_SEED)
}

/// A raw DDM instance ID no other job uses: 32 hex digits and `in09`.
fn target(seed: u64, n: usize) -> String {
    format!("{:016x}{:016x}in09", seed, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_connects_and_every_command_gets_one_answer() {
    let Some(mut world) = World::postgres("300ms", "1m").await else {
        return;
    };
    let replicas: Vec<Replica> = (0..3).map(|_| world.spawn()).collect();
    let leader = world.leader(&replicas).await;
    for (i, r) in replicas.iter().enumerate().filter(|(i, _)| *i != leader) {
        assert_eq!(r.role().as_deref(), Some("standby"), "replica {i}");
    }
    for n in 0..10 {
        world.fake.type_message(ALICE, OPS, "!whoami");
        world
            .fake
            .type_message(ALICE, OPS, &format!("!restart ddm {} soft", target(1, n)));
    }
    world.wait_replies("roles: oncall", 10).await;
    for n in 0..10 {
        let t = target(1, n);
        let deadline = Instant::now() + BOUND;
        while world.jobs_on(&t).is_empty() {
            assert!(Instant::now() < deadline, "no card for {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(world.jobs_on(&t).len(), 1, "one job for {t}");
    }
    assert_eq!(world.replies("roles: oncall"), 10, "one answer each");
    for (i, r) in replicas.iter().enumerate() {
        let gateway = world.calls_by(&r.token, "GET", "/gateway");
        let posts = world.calls_by(&r.token, "POST", "/messages");
        if i == leader {
            assert!(!gateway.is_empty() && !posts.is_empty());
        } else {
            assert!(gateway.is_empty(), "standby {i} asked for the gateway");
            assert!(posts.is_empty(), "standby {i} posted");
        }
    }
    assert_eq!(world.fake.lock().readies, 1, "one gateway session");
    let calls: Vec<_> = world.emu.call_log();
    assert_eq!(calls.len(), 10, "{calls:?}");
    for (i, r) in replicas.iter().enumerate() {
        let leads = if i == leader { "1" } else { "0" };
        assert_eq!(
            r.metric("opsgate_leader"),
            Some(leads.into()),
            "replica {i}"
        );
    }
    assert_eq!(
        replicas[leader].metric("opsgate_leader_epoch"),
        Some("1".into())
    );
    assert_eq!(
        replicas[leader].metric("opsgate_leader_takeovers_total"),
        Some("0".into())
    );
    // The connection string's password is in no replica's log.
    let password = (world.url.split(':').nth(2))
        .and_then(|p| p.split('@').next())
        .unwrap()
        .to_string();
    let log = replicas[leader].log();
    assert!(log.contains("PostgreSQL at 127.0.0.1:"), "{log}");
    for r in &replicas {
        assert!(!r.log().contains(&password), "{}", r.log());
        assert!(!r.log().contains("NOTICE"), "{}", r.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_at_the_same_instant_elect_one_leader_ten_times() {
    let Some(mut world) = World::postgres("300ms", "1m").await else {
        return;
    };
    for round in 0..10 {
        if round > 0 {
            // A new database each round: the last round's leader's lease must not decide.
            world.url = world.pg().database();
            world.db = postgres_cluster::database_of(&world.url).to_string();
        }
        let before = world.fake.lock().readies;
        let mut pair = vec![world.spawn(), world.spawn()];
        let leader = world.leader(&pair).await;
        let other = 1 - leader;
        let deadline = Instant::now() + BOUND;
        while pair[other].role().as_deref() != Some("standby") {
            assert!(
                Instant::now() < deadline,
                "round {round}: {}",
                pair[other].log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(world.fake.lock().readies, before + 1, "round {round}");
        assert!(world
            .calls_by(&pair[other].token, "GET", "/gateway")
            .is_empty());
        for r in &mut pair {
            r.kill();
        }
    }
}

/// What the campaign knows about the jobs it asked for.
#[derive(Default)]
struct Asked {
    /// Targets asked for, soft (run at once) or hard (needs an approval).
    targets: Vec<(String, bool)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_thirty_times_losing_nothing() {
    let Some(mut world) = World::postgres("300ms", "4s").await else {
        return;
    };
    let seed = seed();
    eprintln!("failover campaign: seed {seed:#x}, {KILLS} kills");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut replicas = vec![world.spawn(), world.spawn()];
    let mut asked = Asked::default();
    for kill in 0..KILLS {
        let leader = world.leader(&replicas).await;
        for _ in 0..rng.usize(1..=4) {
            match rng.u8(0..4) {
                0 | 1 => {
                    let hard = rng.bool();
                    let t = target(seed, asked.targets.len());
                    let mode = if hard { "hard" } else { "soft" };
                    world
                        .fake
                        .type_message(ALICE, OPS, &format!("!restart ddm {t} {mode}"));
                    asked.targets.push((t, hard));
                }
                2 => {
                    // Approve a hard restart whose card is up, if there is one.
                    let pending: Vec<u64> = (asked.targets.iter())
                        .filter(|(_, hard)| *hard)
                        .flat_map(|(t, _)| world.jobs_on(t))
                        .collect();
                    if let Some(job) = pending.get(rng.usize(..pending.len().max(1))) {
                        world
                            .fake
                            .type_message(BOB, OPS, &format!("!approve {job}"));
                    }
                }
                _ => {
                    world.fake.type_message(ALICE, OPS, "!status");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
        let mut killed = replicas.remove(leader);
        killed.kill();
        replicas.push(world.spawn());
        eprintln!("kill {}: replica {} killed", kill + 1, killed.number);
    }
    world.leader(&replicas).await;
    // Every job ends: hard restarts nobody approved expire (4 s), the others run.
    let deadline = Instant::now() + BOUND;
    while world.sql("SELECT count(*) FROM opsgate_jobs WHERE active") != "0" {
        assert!(
            Instant::now() < deadline,
            "jobs left unfinished: {}",
            world.sql("SELECT id, record FROM opsgate_jobs WHERE active")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: BTreeMap<String, (u64, String)> = world
        .sql("SELECT id, record::json->'spec'->>'target', record::json->>'state' FROM opsgate_jobs")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[1].to_string(), (f[0].parse().unwrap(), f[2].to_string()))
        })
        .collect();
    let mut acknowledged = 0;
    for (t, _) in &asked.targets {
        let cards = world.jobs_on(t);
        assert!(cards.len() <= 1, "{t}: one job per request, got {cards:?}");
        if let Some(job) = cards.first() {
            acknowledged += 1;
            let (id, _) = stored
                .get(t)
                .unwrap_or_else(|| panic!("job {job} on {t} was acknowledged but is gone"));
            assert_eq!(id, job, "{t}");
        }
    }
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for (operation, t) in world.emu.call_log() {
        assert_eq!(operation, "ddm.restart");
        *sent.entry(t).or_default() += 1;
    }
    for (t, n) in &sent {
        assert_eq!(*n, 1, "{t} was restarted {n} times");
        let (_, state) = stored.get(t).expect("a call for a stored job");
        assert_ne!(state, "expired", "{t}");
        assert_ne!(state, "denied", "{t}");
    }
    for (t, (_, state)) in &stored {
        if state == "succeeded" {
            assert_eq!(sent.get(t), Some(&1), "{t} succeeded without one call");
        }
    }
    eprintln!(
        "{} asked, {acknowledged} acknowledged, {} stored, {} cloud calls",
        asked.targets.len(),
        stored.len(),
        sent.len()
    );
    assert!(acknowledged > KILLS / 2, "the workload did get through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_commits_nothing_more_and_leaves() {
    let Some(mut world) = World::postgres("3s", "1m").await else {
        return;
    };
    let mut replicas = vec![world.spawn(), world.spawn()];
    let first = world.leader(&replicas).await;
    let t = target(2, 0);
    world
        .fake
        .type_message(ALICE, OPS, &format!("!restart ddm {t} soft"));
    let deadline = Instant::now() + BOUND;
    while world.sql("SELECT count(*) FROM opsgate_jobs WHERE record::json->>'state' = 'running'")
        != "1"
    {
        assert!(Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replicas[first].signal(libc::SIGSTOP);
    let second = 1 - first;
    let deadline = Instant::now() + BOUND;
    while replicas[second].role().as_deref() != Some("leader") {
        assert!(
            Instant::now() < deadline,
            "no takeover: {}",
            replicas[second].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 1).await;
    let resumed = Instant::now();
    replicas[first].signal(libc::SIGCONT);
    let status = replicas[first].ended().await;
    assert_eq!(status.code(), Some(75), "{}", replicas[first].log());
    assert!(
        replicas[first].log().contains("lost the lead")
            || replicas[first].log().contains("no longer leads")
    );
    let late: Vec<_> = world
        .calls_by(&replicas[first].token, "POST", "/messages")
        .into_iter()
        .filter(|c| c.at > resumed)
        .collect();
    assert!(
        late.is_empty(),
        "the paused leader posted after its lease: {late:?}"
    );
    // The new leader finishes the job, with the one cloud call made before the pause.
    let deadline = Instant::now() + BOUND;
    while world.sql("SELECT record::json->>'state' FROM opsgate_jobs") != "succeeded" {
        assert!(Instant::now() < deadline, "the job never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(world.emu.call_log().len(), 1);
    assert_eq!(replicas[second].role().as_deref(), Some("leader"));
}

/// Waits until the incident channel says a replica took over, `n` times in all.
async fn takeovers(world: &World, n: usize) {
    let deadline = Instant::now() + BOUND;
    loop {
        let said = (world.fake.lock().in_channel(INCIDENTS).iter())
            .filter(|(_, m)| m.text().contains("switched over"))
            .inspect(|(_, m)| assert!(!m.text().contains("  "), "{}", m.text()))
            .count();
        if said >= n {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} takeover notices");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_typed_during_a_takeover_are_answered_once_and_never_run() {
    let Some(mut world) = World::postgres("300ms", "1m").await else {
        return;
    };
    let mut replicas = vec![world.spawn(), world.spawn()];
    let leader = world.leader(&replicas).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 1).await;
    let mut killed = replicas.remove(leader);
    killed.kill();
    let missed = [target(3, 0), target(3, 1)];
    for t in &missed {
        world
            .fake
            .type_message(ALICE, OPS, &format!("!restart ddm {t} soft"));
    }
    let new = world.leader(&replicas).await;
    takeovers(&world, 1).await;
    assert_eq!(
        replicas[new].metric("opsgate_leader_takeovers_total"),
        Some("1".into())
    );
    assert_eq!(
        replicas[new].metric("opsgate_leader_epoch"),
        Some("2".into())
    );
    world.wait_replies(ANSWER, 2).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 2).await;
    assert_eq!(world.replies(ANSWER), 2, "each once");
    for t in &missed {
        assert_eq!(world.replies(t), 1, "{t}: only the answer names it");
    }
    assert_eq!(
        world.sql("SELECT count(*) FROM opsgate_jobs"),
        "0",
        "nothing ran"
    );
    assert!(world.emu.call_log().is_empty());

    // A second takeover does not answer them again.
    let leader = world.leader(&replicas).await;
    replicas.push(world.spawn());
    replicas.remove(leader).kill();
    world.leader(&replicas).await;
    takeovers(&world, 2).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 3).await;
    assert_eq!(world.replies(ANSWER), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_given_during_a_takeover_is_applied_by_the_new_leader() {
    let Some(mut world) = World::postgres("300ms", "1m").await else {
        return;
    };
    let mut replicas = vec![world.spawn(), world.spawn()];
    let leader = world.leader(&replicas).await;
    let t = target(6, 0);
    world
        .fake
        .type_message(ALICE, OPS, &format!("!restart ddm {t} hard"));
    let deadline = Instant::now() + BOUND;
    let card = loop {
        let found = (world.fake.lock().messages.iter())
            .find(|(_, m)| m.title().contains("Job ") && m.text().contains(&t))
            .map(|(id, _)| *id);
        if let Some(card) = found {
            break card;
        }
        assert!(Instant::now() < deadline, "no card for {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    replicas.remove(leader).kill();
    // A dba approves while no replica is connected: no gateway event reaches anyone.
    world.fake.react(BOB, card, "✅", true, false);
    world.leader(&replicas).await;
    takeovers(&world, 1).await;
    let deadline = Instant::now() + BOUND;
    while world.emu.call_log().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the approval given in the gap was never applied: {}",
            replicas[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + BOUND;
    while world.sql("SELECT record::json->>'state' FROM opsgate_jobs") != "succeeded" {
        assert!(Instant::now() < deadline, "the approved job never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(world.emu.call_log().len(), 1, "one cloud call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_hands_over_at_once() {
    // A long lease: the standby could not take over by waiting it out within the test.
    let Some(mut world) = World::postgres_with_lease("300ms", "1m", "5m").await else {
        return;
    };
    let mut replicas = vec![world.spawn(), world.spawn()];
    let leader = world.leader(&replicas).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 1).await;
    replicas[leader].signal(libc::SIGTERM);
    let status = replicas[leader].ended().await;
    assert_eq!(status.code(), Some(0), "{}", replicas[leader].log());
    assert_eq!(
        world.sql("SELECT expires_at = '-infinity' OR epoch > 1 FROM opsgate_leader"),
        "t",
        "the lease was released on the way out"
    );
    let old = replicas.remove(leader);
    world.leader(&replicas).await;
    takeovers(&world, 1).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 2).await;
    drop(old);
    // A standby stops at once on SIGTERM, with nothing to drain.
    replicas.push(world.spawn());
    let deadline = Instant::now() + BOUND;
    while replicas[1].role().as_deref() != Some("standby") {
        assert!(Instant::now() < deadline, "{}", replicas[1].log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replicas[1].signal(libc::SIGTERM);
    let status = replicas[1].ended().await;
    assert_eq!(status.code(), Some(0), "{status:?}: {}", replicas[1].log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sled_commands_typed_during_a_restart_are_answered_once_and_never_run() {
    let mut world = World::sled("300ms", "1m").await;
    let mut bot = world.spawn();
    world.leader(std::slice::from_ref(&bot)).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 1).await;
    bot.kill();
    let t = target(4, 0);
    world
        .fake
        .type_message(ALICE, OPS, &format!("!restart ddm {t} soft"));
    let bot = world.spawn();
    world.leader(std::slice::from_ref(&bot)).await;
    world.wait_replies(ANSWER, 1).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 2).await;
    assert_eq!(world.replies(ANSWER), 1);
    assert!(world.jobs_on(&t).is_empty(), "nothing ran");
    assert!(world.emu.call_log().is_empty());
}

/// Starts a new replica for each one that has ended (as Kubernetes would), noting how it
/// ended: only a storage failure (74) or a lost lead (75) may end one here.
fn supervise(world: &mut World, replicas: &mut Vec<Replica>, exits: &mut Vec<i32>) {
    let mut i = 0;
    while i < replicas.len() {
        if replicas[i].has_ended() {
            let mut gone = replicas.remove(i);
            let code = gone.exit_code().unwrap_or(-1);
            assert!(
                code == 74 || code == 75,
                "a replica ended with {code}, not a storage failure or a lost lead: {}",
                gone.log()
            );
            exits.push(code);
            replicas.push(world.spawn());
        } else {
            i += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_and_a_stopped_server_stop_the_leader_and_lose_nothing() {
    let Some(mut world) = World::postgres("300ms", "1m").await else {
        return;
    };
    let mut replicas = vec![world.spawn(), world.spawn()];
    let mut exits = Vec::new();
    let mut asked = Vec::new();
    for fault in 0..4 {
        world.leader(&replicas).await;
        // Load: requests keep coming while the fault strikes.
        for n in 0..6 {
            let t = target(5, asked.len());
            world
                .fake
                .type_message(ALICE, OPS, &format!("!restart ddm {t} soft"));
            asked.push(t);
            if n == 2 {
                if fault % 2 == 0 {
                    world.pg().terminate_connections(&world.db);
                } else {
                    world.pg().stop_immediate();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    world.pg().restart();
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        // The leader stops at its next commit or renewal; a standby (or it, restarted)
        // leads next. Until one leads, keep the dead ones replaced.
        let deadline = Instant::now() + BOUND;
        loop {
            supervise(&mut world, &mut replicas, &mut exits);
            let leading = replicas
                .iter()
                .filter(|r| r.role().as_deref() == Some("leader"))
                .count();
            if leading == 1 && !exits.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery after fault {fault}: {exits:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        exits.clear();
    }
    world.leader(&replicas).await;
    world.fake.type_message(ALICE, OPS, "!whoami");
    world.wait_replies("roles: oncall", 1).await;
    let deadline = Instant::now() + BOUND;
    while world.sql("SELECT count(*) FROM opsgate_jobs WHERE active") != "0" {
        assert!(Instant::now() < deadline, "jobs left unfinished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen = BTreeSet::new();
    for (_, t) in world.emu.call_log() {
        assert!(seen.insert(t.clone()), "{t} restarted twice");
    }
    for t in &asked {
        if let Some(job) = world.jobs_on(t).first() {
            let state = world.sql(&format!(
                "SELECT record::json->>'state' FROM opsgate_jobs WHERE id = {job}"
            ));
            assert!(
                !state.is_empty(),
                "job {job} on {t} was acknowledged but is gone"
            );
        }
    }
}
