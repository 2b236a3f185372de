//! Memory and disk after many jobs: `opsgate shell` runs N restarts (distinct targets, no
//! approval) against the cloud emulator to success, and the bot's RSS and the data
//! directory's size are read 5 s after each checkpoint. Prints one table; BENCHMARKS.md
//! records it.
//!
//!     cargo bench --bench memory                         # 100,000 jobs, kept forever
//!     OPSGATE_MEMORY_JOBS=20000 cargo bench --bench memory
//!     OPSGATE_MEMORY_KEEP=10s cargo bench --bench memory  # `[bot] keep_finished = "10s"`
//!
//! The target: RSS after 100,000 jobs under 64 MiB.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/shell.rs"]
mod shell;

use shell::{instance, write_config, Shell};

/// Lines written to the shell at once; the next chunk waits for these jobs to succeed.
const CHUNK: usize = 500;

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && a != "memory")
    {
        return;
    }
    let jobs: usize = std::env::var("OPSGATE_MEMORY_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // The runtime serves the emulator for as long as it is held.
    let (_runtime, emu) = shell::emulator();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &emu.base_url(), "100ms");
    let keep = std::env::var("OPSGATE_MEMORY_KEEP").unwrap_or_else(|_| "forever".into());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[bot]\nkeep_finished = \"{keep}\"\n"));
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let (mut shell, _) = Shell::start(&config, &data);
    shell.send("!whoami");
    shell.wait_for("roles:");
    std::thread::sleep(Duration::from_secs(5));
    let mut rows = vec![(0, shell.rss_kib(), dir_size(&data), Duration::ZERO)];
    let checkpoints: Vec<usize> = [10_000, 50_000, 100_000, jobs]
        .into_iter()
        .filter(|c| *c <= jobs)
        .collect();
    let started = Instant::now();
    let mut done = 0;
    for checkpoint in checkpoints.iter().copied() {
        if checkpoint <= done {
            continue;
        }
        while done < checkpoint {
            let n = CHUNK.min(checkpoint - done);
            let mut lines = String::with_capacity(n * 52);
            for i in done..done + n {
                lines.push_str(&format!("!restart ddm {}\n", instance(i)));
            }
            shell.stdin.write_all(lines.as_bytes()).unwrap();
            shell.stdin.flush().unwrap();
            shell.wait_count("· succeeded", n);
            done += n;
        }
        let took = started.elapsed();
        std::thread::sleep(Duration::from_secs(5));
        rows.push((checkpoint, shell.rss_kib(), dir_size(&data), took));
    }
    shell.finish();

    println!();
    println!("Finished jobs kept: {keep}.");
    println!("| jobs | RSS (MiB) | data directory (MiB) | time to reach it |");
    println!("|---|---|---|---|");
    for (n, rss, disk, took) in &rows {
        println!(
            "| {n} | {} | {} | {:.0} s |",
            mib(rss * 1024),
            mib(*disk),
            took.as_secs_f64()
        );
    }
    let (_, last, _, _) = rows.last().unwrap();
    println!();
    println!(
        "RSS after {jobs} jobs: {} MiB (target for 100,000: under 64 MiB: {}).",
        mib(last * 1024),
        if *last < 64 * 1024 {
            "met"
        } else {
            "**not met**"
        }
    );
}
