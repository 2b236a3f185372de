//! Damaged files in the data directory. Each case copies a directory holding acknowledged
//! jobs, damages one file in one way, and reads the copy with `opsgate jobs`, then starts
//! the shell on it. Two outcomes are acceptable, and both must reach the same one: a clear
//! refusal (non-zero exit, `is damaged`, the operator's directory and how to restore named
//! on stderr, no panic), or a full recovery (exit 0, and `!status` or `opsgate jobs` shows
//! every acknowledged job in a state its last announcement leads to). Anything else fails:
//! a panic, a hang, a refusal that does not say what is wrong (or names `opsgate jobs`'s
//! private copy), `opsgate jobs` changing the directory, or an exit 0 with a job missing or
//! gone back. A file replaced by an entry of another kind must be refused, naming the file.
//!
//! All cases run (each takes well under a second) and the test prints every outcome before
//! it fails, so one run shows the whole picture.

#[path = "support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The name of one entry in the data directory given.
type NameIn = fn(&Path) -> String;

/// Entries sled or `commit.seq` keeps, each replaced by one of the other kind (a directory
/// for a file, a file for `blobs/`): (what, its name). A refusal must name it: sled and the
/// kernel would say only "Is a directory".
const WRONG_KINDS: &[(&str, NameIn)] = &[
    ("db", |_| "db".into()),
    ("conf", |_| "conf".into()),
    ("the newest snap.*", |d| {
        snapshot(d)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }),
    ("commit.seq", |_| "commit.seq".into()),
    ("blobs/", |_| "blobs".into()),
];

/// Replaces the file at `path` by a directory (holding a file), or the directory by a file.
fn replace_by_other_kind(path: &Path) {
    if path.is_dir() {
        fs::remove_dir_all(path).unwrap();
        fs::write(path, b"not a directory").unwrap();
    } else {
        remove(path);
        fs::create_dir(path).unwrap();
        fs::write(path.join("stray"), b"not a file").unwrap();
    }
}

/// One case: its name, and the damage, which returns the file a refusal must name, if any.
type Case = (
    String,
    Box<dyn Fn(&Path, &mut fastrand::Rng) -> Option<String>>,
);

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = CASES
        .iter()
        .map(|&(what, damage)| -> Case {
            let damage = move |d: &Path, rng: &mut fastrand::Rng| {
                damage(d, rng);
                None
            };
            (what.to_string(), Box::new(damage))
        })
        .collect();
    for &(what, name) in WRONG_KINDS {
        let kind = if what.ends_with('/') {
            "file"
        } else {
            "directory"
        };
        let damage = move |d: &Path, _: &mut fastrand::Rng| {
            let name = name(d);
            replace_by_other_kind(&d.join(&name));
            Some(name)
        };
        cases.push((format!("{what} replaced by a {kind}"), Box::new(damage)));
    }
    cases
}

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

/// Whether `stderr` refuses `data` as the contract asks: `is damaged`, the operator's
/// directory, how to restore, and `names` (in backquotes) when given, all on one line.
fn refusal(stderr: &str, data: &Path, names: Option<&str>) -> Result<String, String> {
    let shown = data.display().to_string();
    // opsgate's own lines (sled's log lines, about the files it reads, name the copy).
    if let Some(line) = stderr
        .lines()
        .find(|l| l.starts_with("opsgate:") && l.contains("opsgate-read-"))
    {
        return Err(format!("it names the private copy: {line}"));
    }
    let line = stderr
        .lines()
        .find(|l| l.contains("is damaged"))
        .ok_or_else(|| format!("without saying that {shown} is damaged:\n{stderr}"))?;
    let missing: Vec<String> = [Some(shown), Some("opsgate restore".into())]
        .into_iter()
        .chain([names.map(|n| format!("`{n}`"))])
        .flatten()
        .filter(|want| !line.contains(want.as_str()))
        .collect();
    if missing.is_empty() {
        Ok(line.to_string())
    } else {
        Err(format!("a refusal without {}: {line}", missing.join(", ")))
    }
}

fn panicked(stderr: &str) -> Option<Outcome> {
    let panic = ["panicked at", "RUST_BACKTRACE", "stack backtrace"]
        .into_iter()
        .find(|p| stderr.contains(p))?;
    Some(Outcome::Failed(format!("{panic:?} on stderr:\n{stderr}")))
}

/// Starts the shell on `data` and asks for every acknowledged job.
fn judge(
    config: &Path,
    data: &Path,
    acknowledged: &BTreeMap<u64, JobState>,
    names: Option<&str>,
) -> Outcome {
    let input: String = acknowledged
        .keys()
        .map(|id| format!("!status {id}\n"))
        .collect();
    let run = run_shell_bounded(config, data, &input, RUN_LIMIT);
    if let Some(failed) = panicked(&run.stderr) {
        return failed;
    }
    match run.status {
        None => Outcome::Failed(format!("hung: still running after {RUN_LIMIT:?}")),
        Some(s) if !s.success() => match refusal(&run.stderr, data, names) {
            Ok(line) => Outcome::Refused(line),
            Err(why) => Outcome::Failed(format!("{s}, {why}")),
        },
        Some(_) => match lost(&run.stdout, acknowledged) {
            lost if lost.is_empty() => Outcome::Recovered,
            lost => Outcome::Failed(format!("exit 0, but {}", lost.join("; "))),
        },
    }
}

/// Reads `data` with `opsgate jobs --json`, which must not change it, and looks for every
/// acknowledged job.
fn judge_jobs(
    config: &Path,
    data: &Path,
    acknowledged: &BTreeMap<u64, JobState>,
    names: Option<&str>,
) -> Outcome {
    let before = tree(data);
    let mut child = Command::new(BIN)
        .args(["jobs", "--filter", "all", "--json", "--limit", "1000000"])
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsgate jobs");
    let stdout = read_to_string_in_thread(child.stdout.take().unwrap());
    let stderr = read_to_string_in_thread(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if let Some(failed) = panicked(&stderr) {
        return failed;
    }
    if tree(data) != before {
        return Outcome::Failed(format!("opsgate jobs changed {}", data.display()));
    }
    match status {
        None => Outcome::Failed(format!("hung: still running after {RUN_LIMIT:?}")),
        Some(s) if !s.success() => match refusal(&stderr, data, names) {
            Ok(line) => Outcome::Refused(line),
            Err(why) => Outcome::Failed(format!("{s}, {why}")),
        },
        Some(_) => match jobs_lost(&stdout, acknowledged) {
            Ok(lost) if lost.is_empty() => Outcome::Recovered,
            Ok(lost) => Outcome::Failed(format!("exit 0, but {}", lost.join("; "))),
            Err(e) => Outcome::Failed(format!("exit 0, but {e}:\n{stdout}")),
        },
    }
}

fn read_to_string_in_thread(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Every entry under `dir` with its content (files) or `None` (directories).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.insert(path.clone(), None);
            out.extend(tree(&path));
        } else {
            out.insert(path.clone(), Some(fs::read(&path).unwrap()));
        }
    }
    out
}

/// The acknowledged jobs `opsgate jobs --json` does not show, or shows gone back.
fn jobs_lost(stdout: &str, acknowledged: &BTreeMap<u64, JobState>) -> Result<Vec<String>, String> {
    let list: serde_json::Value = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
    let mut shown: BTreeMap<u64, JobState> = BTreeMap::new();
    for job in list.as_array().ok_or("not a JSON array")? {
        let id = job["id"].as_u64().ok_or("a job without an id")?;
        let state = job["state"].as_str().and_then(JobState::from_json);
        shown.insert(
            id,
            state.ok_or_else(|| format!("job {id}: {}", job["state"]))?,
        );
    }
    Ok(acknowledged
        .iter()
        .filter_map(|(id, announced)| match shown.get(id) {
            Some(now) if announced.reaches(*now) => None,
            Some(now) => Some(format!("job {id} went back from {announced:?} to {now:?}")),
            None => Some(format!("job {id} ({announced:?}) is missing")),
        })
        .collect())
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
    let cases = cases();
    for (i, (case, damage)) in cases.iter().enumerate() {
        let data = root.path().join(format!("case-{i}"));
        copy_dir(&base.data, &data);
        let names = damage(&data, &mut fastrand::Rng::with_seed(SEED ^ i as u64));
        let started = std::time::Instant::now();
        // `opsgate jobs` first: the shell may change what it opens.
        let jobs = judge_jobs(&config, &data, &base.acknowledged, names.as_deref());
        let shell = judge(&config, &data, &base.acknowledged, names.as_deref());
        let took = started.elapsed();
        let verdict = match (&shell, &jobs) {
            (Outcome::Failed(why), _) => format!("FAILED: the shell: {why}"),
            (_, Outcome::Failed(why)) => format!("FAILED: opsgate jobs: {why}"),
            (Outcome::Refused(why), _) | (_, Outcome::Refused(why)) if i == 0 => {
                format!("FAILED: the undamaged directory was refused: {why}")
            }
            (Outcome::Recovered, _) | (_, Outcome::Recovered) if names.is_some() => {
                format!(
                    "FAILED: `{}` of the wrong kind was not refused",
                    names.unwrap()
                )
            }
            (Outcome::Refused(why), Outcome::Refused(_)) => format!("refused clearly: {why}"),
            (Outcome::Recovered, Outcome::Recovered) => "recovered fully".to_string(),
            (Outcome::Refused(why), Outcome::Recovered) => {
                format!("FAILED: opsgate jobs read what the shell refused: {why}")
            }
            (Outcome::Recovered, Outcome::Refused(why)) => {
                format!("FAILED: opsgate jobs refused what the shell opened: {why}")
            }
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
        cases.len(),
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
