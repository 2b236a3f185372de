//! Whole-process benchmark: `opsgate shell` driven through piped stdin against the cloud
//! emulator on 127.0.0.1, under a `restart ddm` rule that needs no approval, with distinct
//! instance IDs. Prints one table; BENCHMARKS.md records it.
//!
//!     cargo bench --bench overhead
//!
//! The emulator runs inside this process so that "line written" and "POST received" are read
//! off one clock.

use std::io::Write;
use std::time::{Duration, Instant};

use opsgate::emulator::RunningEmulator;

#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/shell.rs"]
mod shell;

use shell::{instance, ms, percentile, wait_posts, write_config, write_config_declaring, Shell};

const N: usize = 1000;

/// Writes `N` commands made by `line` at once into a fresh shell (after one warm-up) and
/// returns commands per second, from the first byte written to the last POST received, and
/// the CPU seconds the bot spent on them (steadier than the rate on a shared machine).
fn timed_burst(
    emu: &RunningEmulator,
    config: &std::path::Path,
    data: &std::path::Path,
    line: impl Fn(usize) -> String,
) -> (f64, f64) {
    let (mut shell, _) = Shell::start(config, data);
    shell.send("!whoami");
    shell.wait_for("roles:");
    let before = emu.arrival_count("ddm.restart");
    shell.send(&line(N + 1));
    wait_posts(emu, before + 1);
    let before = emu.arrival_count("ddm.restart");
    let cpu_before = shell.cpu_seconds();
    let mut text = String::with_capacity(N * 52);
    for i in 0..N {
        text.push_str(&line(i));
        text.push('\n');
    }
    let start = Instant::now();
    shell.stdin.write_all(text.as_bytes()).unwrap();
    shell.stdin.flush().unwrap();
    wait_posts(emu, before + N);
    let last = emu
        .arrivals("ddm.restart")
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let cpu = shell.cpu_seconds() - cpu_before;
    shell.finish();
    (N as f64 / (last - start).as_secs_f64(), cpu)
}

struct Row {
    figure: &'static str,
    value: String,
    target: &'static str,
    met: bool,
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means "not me".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "overhead")
    {
        return;
    }
    // The runtime serves the emulator for as long as it is held.
    let (_runtime, emu) = shell::emulator();
    let dir = tempfile::tempdir().unwrap();
    // Polls are not what most rows measure: keep them out of the way.
    let config = write_config(dir.path(), &emu.base_url(), "60s");
    let mut rows = Vec::new();

    // Start-up to the first reply (median of 5 fresh starts) and idle RSS.
    let mut startups = Vec::new();
    let mut idle_rss = 0;
    for run in 0..5 {
        let data = dir.path().join(format!("start-{run}"));
        let (mut shell, started) = Shell::start(&config, &data);
        shell.send("!whoami");
        let first = shell.wait_for("roles:");
        startups.push(first - started);
        if run == 0 {
            std::thread::sleep(Duration::from_millis(500));
            idle_rss = shell.rss_kib();
        }
        shell.finish();
    }
    startups.sort();
    let startup = startups[startups.len() / 2];
    rows.push(Row {
        figure: "start-up to first reply",
        value: ms(startup),
        target: "≤ 30 ms",
        met: startup <= Duration::from_millis(30),
    });
    rows.push(Row {
        figure: "idle RSS",
        value: format!("{:.1} MiB", idle_rss as f64 / 1024.0),
        target: "≤ 16 MiB",
        met: idle_rss <= 16 * 1024,
    });

    // Start-up with 200 more declarations in the config (median of 5), against the same
    // figure without them.
    let config_200 = write_config_declaring(dir.path(), &emu.base_url(), "60s", 200);
    let mut startups_200 = Vec::new();
    for run in 0..5 {
        let data = dir.path().join(format!("start-200-{run}"));
        let (mut shell, started) = Shell::start(&config_200, &data);
        shell.send("!whoami");
        startups_200.push(shell.wait_for("roles:") - started);
        shell.finish();
    }
    startups_200.sort();
    let startup_200 = startups_200[startups_200.len() / 2];
    let added = startup_200.saturating_sub(startup);
    rows.push(Row {
        figure: "start-up with 200 more declarations",
        value: format!("{} (+{})", ms(startup_200), ms(added)),
        target: "≤ +20 ms",
        met: added <= Duration::from_millis(20),
    });

    // Burst: 1,000 commands written at once.
    let data = dir.path().join("burst");
    let (mut shell, _) = Shell::start(&config, &data);
    shell.send("!whoami");
    shell.wait_for("roles:");
    // Warm the IAM token so the burst measures the bot, not the first token fetch.
    shell.send(&format!("!restart ddm {}", instance(100_000)));
    wait_posts(&emu, 1);
    let before_posts = emu.arrival_count("ddm.restart");
    let cpu_before = shell.cpu_seconds();
    let mut burst = String::with_capacity(N * 52);
    for i in 0..N {
        burst.push_str(&format!("!restart ddm {}\n", instance(i)));
    }
    let start = Instant::now();
    shell.stdin.write_all(burst.as_bytes()).unwrap();
    shell.stdin.flush().unwrap();
    wait_posts(&emu, before_posts + N);
    let last_post = emu
        .arrivals("ddm.restart")
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let elapsed = last_post - start;
    let cpu = shell.cpu_seconds() - cpu_before;
    let peak = shell.peak_rss_kib();
    // Where the memory is at the end of the burst: the process's own heap, or the pages of
    // the binary it has touched (file-backed, shared with every other process running it).
    let split = format!(
        "at the burst's end: {:.1} MiB anonymous, {:.1} MiB file-backed, {} threads",
        shell.proc_status("RssAnon:") as f64 / 1024.0,
        shell.proc_status("RssFile:") as f64 / 1024.0,
        shell.proc_status("Threads:")
    );
    let rate = N as f64 / elapsed.as_secs_f64();
    rows.push(Row {
        figure: "burst of 1,000 commands",
        value: format!("{rate:.0} commands/s"),
        target: "≥ 4,000 commands/s",
        met: rate >= 4000.0,
    });
    rows.push(Row {
        figure: "peak RSS in the burst",
        value: format!("{:.1} MiB", peak as f64 / 1024.0),
        target: "≤ 32 MiB",
        met: peak <= 32 * 1024,
    });
    rows.push(Row {
        figure: "CPU for the 1,000-command burst",
        value: format!("{cpu:.2} s"),
        target: "—",
        met: true,
    });
    shell.finish();

    // The same burst, built-in and declared (the same DDM API through a declaration), in
    // three rounds whose order alternates, so neither always runs on a warmer disk; the
    // median of each.
    let mut builtin = Vec::new();
    let mut declared = Vec::new();
    for round in 0..3 {
        let base = 1_000_000 + round * 10 * N;
        let run_declared = |i: usize| {
            timed_burst(
                &emu,
                &config,
                &dir.path().join(format!("burst-declared-{round}-{i}")),
                |i| format!("!reboot ddm {}", instance(base + i)),
            )
        };
        let run_builtin = |i: usize| {
            timed_burst(
                &emu,
                &config,
                &dir.path().join(format!("burst-builtin-{round}-{i}")),
                |i| format!("!restart ddm {}", instance(base + 5 * N + i)),
            )
        };
        if round % 2 == 0 {
            declared.push(run_declared(round));
            builtin.push(run_builtin(round));
        } else {
            builtin.push(run_builtin(round));
            declared.push(run_declared(round));
        }
    }
    let median = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(pick).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (b, d) = (median(&builtin, |r| r.0), median(&declared, |r| r.0));
    rows.push(Row {
        figure: "burst, built-in vs declared (median of 3 each)",
        value: format!(
            "{b:.0} vs {d:.0} commands/s ({:+.1} %)",
            (d / b - 1.0) * 100.0
        ),
        target: "declared ≥ built-in − 10 %",
        met: d >= b * 0.9,
    });
    let (b, d) = (median(&builtin, |r| r.1), median(&declared, |r| r.1));
    rows.push(Row {
        figure: "CPU of a burst, built-in vs declared (median of 3)",
        value: format!("{b:.2} s vs {d:.2} s ({:+.1} %)", (d / b - 1.0) * 100.0),
        target: "—",
        met: true,
    });

    // One at a time: line -> POST received, line -> reply on stdout.
    let data = dir.path().join("sequential");
    let (mut shell, _) = Shell::start(&config, &data);
    shell.send(&format!("!restart ddm {}", instance(200_000)));
    wait_posts(&emu, emu.arrival_count("ddm.restart"));
    std::thread::sleep(Duration::from_millis(200));
    let mut to_post = Vec::with_capacity(N);
    let mut to_reply = Vec::with_capacity(N);
    for i in 0..N {
        let id = instance(300_000 + i);
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
    if std::env::var_os("OVERHEAD_SLOW").is_some() {
        // Where the tail comes from: which commands were slow, in order, printed before the
        // samples are sorted (a regular spacing points at periodic disk work, BENCHMARKS.md).
        for (i, (post, reply)) in to_post.iter().zip(&to_reply).enumerate() {
            if *post > Duration::from_millis(2) {
                eprintln!("slow #{i}: POST {} reply {}", ms(*post), ms(*reply));
            }
        }
    }
    to_post.sort();
    to_reply.sort();
    let (p50, p99) = (percentile(&to_post, 0.5), percentile(&to_post, 0.99));
    rows.push(Row {
        figure: "line → cloud POST, p50",
        value: ms(p50),
        target: "≤ 1.5 ms",
        met: p50 <= Duration::from_micros(1500),
    });
    rows.push(Row {
        figure: "line → cloud POST, p99",
        value: ms(p99),
        target: "≤ 5 ms",
        met: p99 <= Duration::from_millis(5),
    });
    let (p50, p99) = (percentile(&to_reply, 0.5), percentile(&to_reply, 0.99));
    rows.push(Row {
        figure: "line → reply, p50",
        value: ms(p50),
        target: "—",
        met: true,
    });
    rows.push(Row {
        figure: "line → reply, p99",
        value: ms(p99),
        target: "—",
        met: true,
    });

    // One at a time again, built-in and declared alternating in one shell, so both see the
    // same disk: line -> POST received.
    let data = dir.path().join("sequential-declared");
    let (mut shell, _) = Shell::start(&config, &data);
    shell.send(&format!("!restart ddm {}", instance(2_000_000)));
    wait_posts(&emu, emu.arrival_count("ddm.restart"));
    std::thread::sleep(Duration::from_millis(200));
    let mut builtin_post = Vec::with_capacity(N / 2);
    let mut declared_post = Vec::with_capacity(N / 2);
    for i in 0..N {
        let id = instance(2_100_000 + i);
        let verb = if i % 2 == 0 { "restart" } else { "reboot" };
        let written = shell.send(&format!("!{verb} ddm {id}"));
        shell.wait_for(&id);
        let posted = loop {
            if let Some(at) = emu.arrival_of("ddm.restart", &id) {
                break at;
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        let took = posted.saturating_duration_since(written);
        if i % 2 == 0 {
            builtin_post.push(took);
        } else {
            declared_post.push(took);
        }
    }
    shell.finish();
    builtin_post.sort();
    declared_post.sort();
    for (figure, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (b, d) = (percentile(&builtin_post, p), percentile(&declared_post, p));
        rows.push(Row {
            figure: if figure == "p50" {
                "line → POST p50, built-in vs declared (alternating)"
            } else {
                "line → POST p99, built-in vs declared (alternating)"
            },
            value: format!(
                "{} vs {} ({:+.1} %)",
                ms(b),
                ms(d),
                (d.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
            ),
            target: "declared ≤ built-in + 10 %",
            met: d.as_secs_f64() <= b.as_secs_f64() * 1.1,
        });
    }

    // Recovery: 100,000 finished jobs and 1,000 pending ones on disk.
    let data = dir.path().join("recovery");
    fixtures::fill(&data, 100_000, 1_000).expect("fill the store");
    let mut recoveries = Vec::new();
    for _ in 0..3 {
        let (mut shell, started) = Shell::start(&config, &data);
        shell.send("!whoami");
        recoveries.push(shell.wait_for("roles:") - started);
        shell.finish();
    }
    recoveries.sort();
    let recovery = recoveries[1];
    rows.push(Row {
        figure: "recovery: start-up to ready, 100k stored jobs",
        value: ms(recovery),
        target: "≤ 1 s",
        met: recovery <= Duration::from_secs(1),
    });

    println!();
    println!("| figure | measured | target | met |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.figure,
            r.value,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
    println!();
    println!("Peak RSS in the burst, {split}.");
}
