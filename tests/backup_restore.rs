//! Backup and restore, and read-only inspection, through the built binary: a backup taken
//! from the running bot (over its HTTP endpoint) and from a stopped one, restored into a new
//! directory where pending work goes on and new job IDs never repeat an old one.

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::Command;

use process::*;

/// A config with the job API on a free port of 127.0.0.1.
fn config_with_http(dir: &Path, emulator: &str) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_config_with(
        dir,
        emulator,
        "30m",
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
}

/// Runs `opsgate ARGS...`; returns (stdout, stderr, success).
fn opsgate(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (String, String, bool) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run opsgate");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// `opsgate audit export --since SINCE`; returns (stdout, stderr, success).
fn export(config: &Path, data: &Path, since: &str) -> (String, String, bool) {
    opsgate(&[
        &"audit",
        &"export",
        &"--since",
        &since,
        &"--config",
        &config,
        &"--data",
        &data,
    ])
}

/// The events of job `job` in exported JSON lines, in order.
fn events(lines: &str, job: u64) -> Vec<String> {
    lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["job"] == job)
        .map(|v| v["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every file below `dir` with its bytes, sorted: to see that nothing changed.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_backup_from_the_running_bot_restores_with_pending_work_and_fresh_ids() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = config_with_http(dir.path(), &emu.url);
    let data = dir.path().join("data");
    let mut shell = LiveShell::start(&config, &data);
    shell.send("!restart ddm orders-db");
    shell.expect("job 1 · succeeded");
    shell.send("!restart ddm 0123456789abcdef0123456789abcdefin09 hard");
    shell.expect("job 2 · awaiting approval");

    let file = dir.path().join("live.backup");
    let (out, err, ok) = opsgate(&[&"backup", &file, &"--config", &config, &"--data", &data]);
    assert!(ok, "backup while running: {out}{err}");
    assert!(out.contains("2 jobs"), "{out}");
    // The audit log too, through the running bot.
    let (out, err, ok) = export(&config, &data, "2000-01-01");
    assert!(ok, "export while running: {out}{err}");
    assert_eq!(events(&out, 2), vec!["requested"], "{out}");
    shell.kill();

    let restored = dir.path().join("restored");
    let (out, err, ok) = opsgate(&[&"restore", &file, &"--data", &restored]);
    assert!(ok, "{out}{err}");
    let (_, err, ok) = opsgate(&[&"restore", &file, &"--data", &restored]);
    assert!(!ok && err.contains("is not empty"), "{err}");

    let input =
        "!status 1\n/as bob dba\n!approve 2\n/wait 2\n/as alice oncall\n!restart ddm orders-db\n";
    let (out, err, ok) = run_shell(&config, &restored, input);
    assert!(ok, "{err}");
    assert!(out.contains("job 1 · succeeded"), "{out}");
    assert!(
        out.contains("job 2 · succeeded"),
        "the pending job goes on: {out}"
    );
    let new_id = out
        .lines()
        .filter_map(|l| {
            l.split("🔄 job ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .find(|id| *id > 2)
        .unwrap_or_else(|| panic!("a new job: {out}"));
    assert!(
        new_id > 1_000_000_000_000,
        "new IDs go on far above the old ones: {new_id}"
    );
    assert_eq!(emu.calls("ddm.restart"), 3);
}

#[test]
fn a_stopped_bots_directory_is_backed_up_and_inspected_without_being_changed() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = config_with_http(dir.path(), &emu.url);
    let data = dir.path().join("data");
    let (out, err, ok) = run_shell(&config, &data, "!restart ddm orders-db\n/wait 1\n");
    assert!(ok && out.contains("succeeded"), "{out}{err}");
    let before = files(&data);

    let file = dir.path().join("stopped.backup");
    let (out, err, ok) = opsgate(&[&"backup", &file, &"--config", &config, &"--data", &data]);
    assert!(ok && out.contains("1 jobs"), "{out}{err}");
    let (out, err, ok) = opsgate(&[
        &"jobs",
        &"--config",
        &config,
        &"--data",
        &data,
        &"--filter",
        &"all",
    ]);
    assert!(ok && out.contains("succeeded"), "{out}{err}");
    let (_, err, ok) = opsgate(&[&"audit", &"99", &"--config", &config, &"--data", &data]);
    assert!(!ok && err.contains("no job 99"), "{err}");
    let (out, err, ok) = export(&config, &data, "2000-01-01");
    assert!(ok, "{err}");
    let all = events(&out, 1);
    assert_eq!(all.first().map(String::as_str), Some("requested"), "{out}");
    assert_eq!(all.last().map(String::as_str), Some("succeeded"), "{out}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["operation"], "ddm.restart", "{first}");
    assert_eq!(first["target"], "orders-db", "{first}");
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");
    let (out, err, ok) = export(&config, &data, "2999-01-01T00:00:00Z");
    assert!(ok && out.is_empty(), "nothing is that recent: {out}{err}");
    let (_, err, ok) = export(&config, &data, "yesterday");
    assert!(!ok && err.contains("is not a date"), "{err}");
    assert_eq!(files(&data), before, "reading changed the data directory");

    let typo = dir.path().join("typo-dir");
    let (_, err, ok) = opsgate(&[&"jobs", &"--config", &config, &"--data", &typo]);
    assert!(!ok && err.contains("typo-dir"), "{err}");
    assert!(!typo.exists(), "inspection created a directory");

    // A backup that was cut short is refused, and leaves nothing behind.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let target = dir.path().join("from-truncated");
    let (_, err, ok) = opsgate(&[&"restore", &file, &"--data", &target]);
    assert!(!ok && err.contains("checksum"), "{err}");
    assert!(!target.exists());
}
