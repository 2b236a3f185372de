//! Damaged files in the data directory. Each case copies a directory holding acknowledged
//! jobs, damages one file in one way, and starts the shell on the copy. Two outcomes are
//! acceptable: a clear refusal (non-zero exit, `is damaged` and the directory named on
//! stderr, no panic), or a full recovery (exit 0, and `!status` shows every acknowledged job
//! in a state its last announcement leads to). Anything else fails: a panic, a hang, a
//! refusal that does not say what is wrong, or an exit 0 with a job missing or gone back.
//!
//! All cases run (each takes well under a second) and the test prints every outcome before
//! it fails, so one run shows the whole picture.

#[path = "support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use process::*;

/// Garbage is seeded: a failure replays byte for byte.
const SEED: u64 = 0xdada_0bad_d15c;
/// Past the shell's own 30 s drain timeout: longer than this is a hang.
const RUN_LIMIT: Duration = Duration::from_secs(45);

type Damage = fn(&Path, &mut fastrand::Rng);

/// One way to damage a data directory, applied to a fresh copy.
const CASES: &[(&str, Damage)] = &[
    ("no damage (control)", |_, _| {}),
    ("db truncated to 0 bytes", |d, _| {
        truncate(&d.join("db"), |_| 0)
    }),
    ("db truncated to half", |d, _| {
        truncate(&d.join("db"), |n| n / 2)
    }),
    ("db missing its last 7 bytes", |d, _| {
        truncate(&d.join("db"), |n| n.saturating_sub(7))
    }),
    ("db garbled at its start", |d, rng| {
        garble(&d.join("db"), |_| 0, 512, rng)
    }),
    ("db garbled in the middle", |d, rng| {
        let len = fs::metadata(d.join("db")).unwrap().len() as usize;
        let at = rng.usize(len / 4..len * 3 / 4);
        garble(&d.join("db"), |_| at, 256, rng)
    }),
    ("db deleted", |d, _| remove(&d.join("db"))),
    ("conf deleted", |d, _| remove(&d.join("conf"))),
    ("conf truncated to 0 bytes", |d, _| {
        truncate(&d.join("conf"), |_| 0)
    }),
    ("conf truncated to half", |d, _| {
        truncate(&d.join("conf"), |n| n / 2)
    }),
    ("conf garbled", |d, rng| {
        garble(&d.join("conf"), |_| 0, usize::MAX, rng)
    }),
    // sled 0.34.7 takes any `snap.*` file for a snapshot, `.generating` ones (left by a crash
    // while it wrote one) included, and reads the newest by name (spacejam/sled#1527, #1533).
    (
        "leftover snap.*.generating: half a copy of the snapshot",
        |d, _| {
            let snap = snapshot(d);
            let bytes = fs::read(&snap).unwrap();
            let name = format!("{}.generating", snap.display());
            fs::write(name, &bytes[..bytes.len() / 2]).unwrap();
        },
    ),
    (
        "leftover empty snap.*.generating with a higher LSN",
        |d, _| {
            let lsn = snapshot_lsn(&snapshot(d));
            fs::write(d.join(format!("snap.{:016X}.generating", lsn + 4096)), b"").unwrap();
        },
    ),
    ("snapshot garbled", |d, rng| {
        garble(&snapshot(d), |n| n / 3, 64, rng)
    }),
    ("snapshots deleted", |d, _| {
        for snap in snapshots(d) {
            remove(&snap);
        }
    }),
];

fn truncate(path: &Path, len: impl Fn(u64) -> u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    let n = file.metadata().unwrap().len();
    file.set_len(len(n)).unwrap();
}

/// Overwrites up to `len` bytes from `at(file length)` with random bytes.
fn garble(path: &Path, at: impl Fn(usize) -> usize, len: usize, rng: &mut fastrand::Rng) {
    let mut bytes = fs::read(path).unwrap();
    let start = at(bytes.len()).min(bytes.len());
    let end = start.saturating_add(len).min(bytes.len());
    assert!(end > start, "nothing to garble in {}", path.display());
    rng.fill(&mut bytes[start..end]);
    fs::write(path, bytes).unwrap();
}

fn remove(path: &Path) {
    fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// sled's snapshots: `snap.` and 16 hex digits of the LSN they stand at.
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut snaps: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.strip_prefix("snap.")
                .is_some_and(|lsn| lsn.len() == 16 && lsn.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect();
    snaps.sort();
    snaps
}

fn snapshot(dir: &Path) -> PathBuf {
    let snaps = snapshots(dir);
    snaps
        .last()
        .unwrap_or_else(|| panic!("no snapshot in {}", dir.display()))
        .clone()
}

fn snapshot_lsn(snap: &Path) -> u64 {
    let name = snap.file_name().unwrap().to_string_lossy();
    u64::from_str_radix(&name["snap.".len()..], 16).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A data directory to damage copies of, and what the chat acknowledged in it.
struct Base {
    data: PathBuf,
    /// Each acknowledged job, with the last state the chat announced for it.
    acknowledged: BTreeMap<u64, JobState>,
}

impl Base {
    fn record<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) {
        let parser = Announcements::new();
        for a in lines.into_iter().filter_map(|l| parser.parse(l)) {
            self.acknowledged.insert(a.job, a.state);
        }
    }

    /// Runs the shell on `input` to the end of input, which must succeed.
    fn run(&mut self, config: &Path, input: &str) {
        let run = run_shell_bounded(config, &self.data, input, RUN_LIMIT);
        assert!(
            run.status.is_some_and(|s| s.success()),
            "preparing {}: {:?}\n{}",
            self.data.display(),
            run.status,
            run.stderr
        );
        self.record(run.stdout.lines());
    }
}

/// A raw DDM instance ID (32 letters or digits, then `in09`) unique to this base and job.
fn target(base: &str, n: u32) -> String {
    let tag: String = base.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{tag:0>24.24}{n:08x}in09")
}

/// Jobs in every final state the chat shows, one left awaiting approval, all stopped
/// cleanly. Opened twice, so sled has written a snapshot (it does on opening).
fn clean_base(root: &Path, config: &Path, name: &str) -> Base {
    let mut base = Base {
        data: root.join(name),
        acknowledged: BTreeMap::new(),
    };
    let t = |n| target(name, n);
    base.run(
        config,
        &format!(
            "!restart ddm {} soft\n/wait 1\n\
             !restart ddm {} hard\n/as bob dba\n!deny 2 change freeze\n/as alice oncall\n\
             !restart ddm {} hard\n\
             !restart ddm {} hard\n/as bob dba\n/react 4 ✅\n/wait 4\n/as alice oncall\n\
             !restart ddm {} hard\n!cancel 5\n",
            t(1),
            t(2),
            t(3),
            t(4),
            t(5)
        ),
    );
    base.run(config, &format!("!restart ddm {} soft\n/wait 6\n", t(6)));
    assert!(
        !snapshots(&base.data).is_empty(),
        "sled wrote no snapshot in {}",
        base.data.display()
    );
    assert_eq!(base.acknowledged.len(), 6, "{:?}", base.acknowledged);
    base
}

/// [`clean_base`], then a life SIGKILLed with a restart in flight and a request pending.
fn killed_base(root: &Path, config: &Path, name: &str) -> Base {
    let mut base = clean_base(root, config, name);
    let mut shell = LiveShell::start(config, &base.data);
    shell.send(&format!("!restart ddm {} soft", target(name, 7)));
    shell.expect("job 7 · submitting");
    shell.send(&format!("!restart ddm {} hard", target(name, 8)));
    shell.expect("job 8 · awaiting approval");
    shell.send(&format!("!restart ddm {} soft", target(name, 9)));
    let seen = shell.kill_and_collect();
    base.record(seen.iter().map(String::as_str));
    base
}

enum Outcome {
    /// With the line that says so.
    Refused(String),
    Recovered,
    Failed(String),
}

/// Starts the shell on `data` and asks for every acknowledged job.
fn judge(config: &Path, data: &Path, acknowledged: &BTreeMap<u64, JobState>) -> Outcome {
    let input: String = acknowledged
        .keys()
        .map(|id| format!("!status {id}\n"))
        .collect();
    let run = run_shell_bounded(config, data, &input, RUN_LIMIT);
    let panic = ["panicked at", "RUST_BACKTRACE", "stack backtrace"]
        .into_iter()
        .find(|p| run.stderr.contains(p));
    if let Some(p) = panic {
        return Outcome::Failed(format!("{p:?} on stderr:\n{}", run.stderr));
    }
    let shown = data.display().to_string();
    match run.status {
        None => Outcome::Failed(format!("hung: still running after {RUN_LIMIT:?}")),
        Some(s) if !s.success() => {
            let said = run.stderr.lines().find(|l| l.contains("is damaged"));
            match said {
                Some(line) if run.stderr.contains(&shown) => Outcome::Refused(line.to_string()),
                _ => Outcome::Failed(format!(
                    "{s}, without saying that {shown} is damaged:\n{}",
                    run.stderr
                )),
            }
        }
        Some(_) => match lost(&run.stdout, acknowledged) {
            lost if lost.is_empty() => Outcome::Recovered,
            lost => Outcome::Failed(format!("exit 0, but {}", lost.join("; "))),
        },
    }
}

/// The acknowledged jobs the shell's output does not show, or shows gone back.
fn lost(stdout: &str, acknowledged: &BTreeMap<u64, JobState>) -> Vec<String> {
    let parser = Announcements::new();
    let mut shown: BTreeMap<u64, JobState> = BTreeMap::new();
    for a in stdout.lines().filter_map(|l| parser.parse(l)) {
        shown.insert(a.job, a.state);
    }
    let mut lost = Vec::new();
    for (id, announced) in acknowledged {
        let absent = stdout.contains(&format!("There is no job {id}."));
        match shown.get(id) {
            Some(now) if !absent && announced.reaches(*now) => {}
            Some(now) if !absent => {
                lost.push(format!("job {id} went back from {announced:?} to {now:?}"))
            }
            _ => lost.push(format!("job {id} ({announced:?}) is missing")),
        }
    }
    lost
}

/// Every case on a copy of the base `make` builds; fails listing every case that failed.
fn damage_each_way(base_name: &str, make: fn(&Path, &Path, &str) -> Base) {
    let root = tempfile::tempdir().unwrap();
    let emu = Emulator::start("200ms");
    let config = write_config(root.path(), &emu.url, "30m");
    let base = make(root.path(), &config, base_name);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (i, (case, damage)) in CASES.iter().enumerate() {
        let data = root.path().join(format!("case-{i}"));
        copy_dir(&base.data, &data);
        damage(&data, &mut fastrand::Rng::with_seed(SEED ^ i as u64));
        let started = std::time::Instant::now();
        let outcome = judge(&config, &data, &base.acknowledged);
        let took = started.elapsed();
        let verdict = match &outcome {
            Outcome::Refused(why) if i == 0 => {
                format!("FAILED: the undamaged directory was refused: {why}")
            }
            Outcome::Refused(why) => format!("refused clearly: {why}"),
            Outcome::Recovered => "recovered fully".to_string(),
            Outcome::Failed(why) => format!("FAILED: {why}"),
        };
        if verdict.starts_with("FAILED") {
            failures.push(format!("[{base_name}] {case}: {verdict}"));
        }
        report.push(format!(
            "  {case:<55} {took:>7.2?}  {}",
            first_line(&verdict)
        ));
    }
    eprintln!(
        "damaged data after {base_name} (jobs {:?}):\n{}",
        base.acknowledged,
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[test]
fn damaged_files_after_a_clean_stop_are_refused_clearly_or_recovered_fully() {
    damage_each_way("clean-stop", clean_base);
}

#[test]
fn damaged_files_after_a_sigkill_are_refused_clearly_or_recovered_fully() {
    damage_each_way("sigkill", killed_base);
}
