//! PostgreSQL beside sled, in one run: the burst and line → cloud POST figures of
//! `overhead.rs` with `opsgate shell` on each store (PostgreSQL a throwaway cluster on
//! 127.0.0.1 with `fsync` and `synchronous_commit` on, as in production), then the takeover
//! time of two `opsgate run` replicas against the fake Discord and the emulator: the leader
//! SIGKILLed → the standby leads (`/readyz`) → the standby's first message in chat.
//!
//!     cargo bench --bench replicas
//!
//! `REPLICAS_BENCH_N` sets the commands per figure (default 1,000); `REPLICAS_BENCH_LEASES`
//! the leases to take over with (default `1s,15s`; 15 s is production's default), and
//! `REPLICAS_BENCH_ROUNDS` the kills per lease (default 3). Needs PostgreSQL's server
//! programs, as the tests do (README).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use opsgate::emulator::{self, EmulatorOptions, RunningEmulator};

#[path = "../tests/support/fake_discord.rs"]
mod fake_discord;
#[path = "../tests/support/postgres.rs"]
mod postgres_cluster;
#[path = "../tests/support/process.rs"]
mod process;
#[path = "../tests/support/replicas.rs"]
mod replicas;
#[path = "support/shell.rs"]
mod shell;

use fake_discord::{ALICE, OPS};
use replicas::{Replica, World};
use shell::{instance, ms, percentile, wait_posts, write_config, Shell};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one store gave.
struct Figures {
    store: &'static str,
    burst: f64,
    post_p50: Duration,
    post_p99: Duration,
    reply_p50: Duration,
    reply_p99: Duration,
}

/// The burst and the one-at-a-time figures of `overhead.rs`, on the store `config` names.
fn measure(
    store: &'static str,
    emu: &RunningEmulator,
    config: &Path,
    data: &Path,
    n: usize,
    base: usize,
) -> Figures {
    let (mut shell, _) = Shell::start(config, &data.join("burst"));
    shell.send("!whoami");
    shell.wait_for("roles:");
    let warm = emu.arrival_count("ddm.restart");
    shell.send(&format!("!restart ddm {}", instance(base)));
    wait_posts(emu, warm + 1);
    let before = emu.arrival_count("ddm.restart");
    let mut burst = String::with_capacity(n * 52);
    for i in 0..n {
        burst.push_str(&format!("!restart ddm {}\n", instance(base + 1 + i)));
    }
    let start = Instant::now();
    shell.stdin.write_all(burst.as_bytes()).unwrap();
    shell.stdin.flush().unwrap();
    wait_posts(emu, before + n);
    let last = (emu.arrivals("ddm.restart").iter())
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let rate = n as f64 / (last - start).as_secs_f64();
    shell.finish();

    let (mut shell, _) = Shell::start(config, &data.join("sequential"));
    shell.send("!whoami");
    shell.wait_for("roles:");
    std::thread::sleep(Duration::from_millis(200));
    let (mut to_post, mut to_reply) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let id = instance(base + 100_000 + i);
        let written = shell.send(&format!("!restart ddm {id}"));
        let replied = shell.wait_for(&id);
        let posted = loop {
            if let Some(at) = emu.arrival_of("ddm.restart", &id) {
                break at;
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        to_post.push(posted.saturating_duration_since(written));
        to_reply.push(replied.saturating_duration_since(written));
    }
    shell.finish();
    to_post.sort();
    to_reply.sort();
    Figures {
        store,
        burst: rate,
        post_p50: percentile(&to_post, 0.5),
        post_p99: percentile(&to_post, 0.99),
        reply_p50: percentile(&to_reply, 0.5),
        reply_p99: percentile(&to_reply, 0.99),
    }
}

/// One takeover: from the leader's SIGKILL to the standby leading, and to its first
/// message posted (the takeover notice or an answer, whichever comes first).
struct Takeover {
    leads: Duration,
    first_message: Duration,
}

async fn takeovers(lease: &str, rounds: usize) -> Vec<Takeover> {
    let mut world = World::postgres_with_lease("300ms", "1m", lease)
        .await
        .expect("PostgreSQL is needed for this benchmark");
    let mut out = Vec::new();
    let mut replicas: Vec<Replica> = vec![world.spawn(), world.spawn()];
    for _ in 0..rounds {
        let leader = world.leader(&replicas).await;
        // The standby is ready to take over, and the leader has answered in chat.
        let standby = 1 - leader;
        while replicas[standby].role().as_deref() != Some("standby") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answered = world.replies("roles: oncall");
        world.fake.type_message(ALICE, OPS, "!whoami");
        world.wait_replies("roles: oncall", answered + 1).await;
        let token = replicas[standby].token.clone();
        let killed = Instant::now();
        replicas[leader].kill();
        let mut leads = None;
        let first = loop {
            if leads.is_none() && replicas[standby].role().as_deref() == Some("leader") {
                leads = Some(killed.elapsed());
            }
            let posted = world.calls_by(&token, "POST", "/messages");
            if let Some(at) = posted.iter().map(|c| c.at).min() {
                break at.saturating_duration_since(killed);
            }
            assert!(killed.elapsed() < Duration::from_secs(120), "no takeover");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let leads = leads.unwrap_or(first);
        eprintln!(
            "lease {lease}: leads after {}, first message after {}",
            ms(leads),
            ms(first)
        );
        out.push(Takeover {
            leads,
            first_message: first,
        });
        replicas.remove(leader);
        replicas.push(world.spawn());
    }
    out
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "replicas")
    {
        return;
    }
    let n: usize = env_or("REPLICAS_BENCH_N", 1000);
    let rounds: usize = env_or("REPLICAS_BENCH_ROUNDS", 3);
    let leases: String = env_or("REPLICAS_BENCH_LEASES", "1s,15s".to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt
        .block_on(emulator::start(
            EmulatorOptions {
                job_duration: Duration::from_millis(200),
                ..Default::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    let sled_config = write_config(dir.path(), &emu.base_url(), "60s");
    let pg = postgres_cluster::Postgres::start().expect("PostgreSQL is needed for this bench");
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, pg.database()).unwrap();
    let pg_config = dir.path().join("bench-postgres.toml");
    let text = std::fs::read_to_string(&sled_config).unwrap();
    std::fs::write(
        &pg_config,
        format!(
            "{text}\n[store]\nbackend = \"postgres\"\nurl_file = \"{}\"\n",
            url_file.display()
        ),
    )
    .unwrap();

    let sled = measure("sled", &emu, &sled_config, &dir.path().join("sled"), n, 0);
    let postgres = measure(
        "PostgreSQL",
        &emu,
        &pg_config,
        &dir.path().join("pg"),
        n,
        1_000_000,
    );

    let mut taken = Vec::new();
    for lease in leases.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        taken.push((lease.to_string(), rt.block_on(takeovers(lease, rounds))));
    }

    println!();
    println!("| store | burst of {n} | line → POST p50 | p99 | line → reply p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for f in [&sled, &postgres] {
        println!(
            "| {} | {:.0} commands/s | {} | {} | {} | {} |",
            f.store,
            f.burst,
            ms(f.post_p50),
            ms(f.post_p99),
            ms(f.reply_p50),
            ms(f.reply_p99)
        );
    }
    println!();
    println!("| lease | takeovers | killed → standby leads (min / median / max) | killed → its first message (min / median / max) | target (lease + 5 s) met |");
    println!("|---|---|---|---|---|");
    for (lease, rounds) in &taken {
        let mut leads: Vec<Duration> = rounds.iter().map(|t| t.leads).collect();
        let mut first: Vec<Duration> = rounds.iter().map(|t| t.first_message).collect();
        leads.sort();
        first.sort();
        let limit = humantime::parse_duration(lease).unwrap() + Duration::from_secs(5);
        let show = |v: &[Duration]| {
            format!(
                "{:.2} / {:.2} / {:.2} s",
                v[0].as_secs_f64(),
                v[v.len() / 2].as_secs_f64(),
                v[v.len() - 1].as_secs_f64()
            )
        };
        println!(
            "| {lease} | {} | {} | {} | {} |",
            rounds.len(),
            show(&leads),
            show(&first),
            if first.iter().all(|d| *d <= limit) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
}
