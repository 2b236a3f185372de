//! Power cuts: the shell runs under the `powercut` shim, which records what a disk with a
//! volatile cache would hold (file contents as of their last fsync, directory entries as of
//! their directory's last fsync). A seeded workload of soft and hard DDM restarts,
//! approvals, denials, cancels and status queries is cut by SIGKILL at random moments; the
//! next life starts on the directory the cut would have left (`materialize`), and must open,
//! hold every job the chat acknowledged, and never show a job in a state before one the chat
//! announced. At the end the emulator must have received at most one restart per job that
//! reached `submitting`.
//!
//! On a failure the message names the seed and the cut, and the work directory (kept: the
//! last image and data directories are there to reproduce with `opsgate shell --data`).

#[path = "support/powercut.rs"]
mod powercut;
#[path = "support/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use powercut::{compile_c, materialize, panic_text, stats, Bot, Launch, Shim};
use process::{write_config, Emulator, JobState};
use regex::Regex;

/// How long a live shell gets to answer anything.
const ANSWER: Duration = Duration::from_secs(20);
/// A job number that never exists: its "There is no job" reply fences a batch of queries.
const FENCE: u64 = 999_999_999;

// ---------------------------------------------------------------------------------------
// The shim on its own, through a small C program.

const SELF_TEST_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int dir_fd(const char *path) { return open(path, O_RDONLY | O_DIRECTORY); }
static const char *res(long r) { return r < 0 ? strerror(errno) : "ok"; }

int main(int argc, char **argv) {
    if (argc != 3 || chdir(argv[2]) != 0) return 2;
    if (strcmp(argv[1], "durability") == 0) {
        int kept = open("kept", O_WRONLY | O_CREAT, 0644);
        if (write(kept, "durable", 7) != 7 || fsync(kept) != 0) return 3;
        if (write(kept, " lost", 5) != 5) return 3;              /* never synced */
        int empty = open("empty", O_WRONLY | O_CREAT, 0644);      /* named, never synced */
        if (write(empty, "gone", 4) != 4) return 3;
        mkdir("sub", 0755);
        int inner = open("sub/inner", O_WRONLY | O_CREAT, 0644);
        if (pwrite(inner, "inner", 5, 0) != 5 || fdatasync(inner) != 0) return 3;
        int root = dir_fd(".");
        if (fsync(root) != 0) return 3;                           /* names: kept, empty, sub, old */
        if (unlink("old") != 0) return 3;                         /* not durable: no fsync after */
        int sub = dir_fd("sub");
        if (fsync(sub) != 0) return 3;                            /* names: inner */
        int late = open("late", O_WRONLY | O_CREAT, 0644);        /* content synced, name not */
        if (write(late, "late", 4) != 4 || fsync(late) != 0) return 3;
        struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
        if (pwritev(kept, iov, 2, 0) != 4) return 3;              /* unsynced overwrite */
        printf("done\n");
        return 0;
    }
    if (strcmp(argv[1], "faults") == 0) {
        /* Each result is named at once: errno is only good until the next call. */
        int f = open("f", O_WRONLY | O_CREAT, 0644);
        struct iovec iov[1] = {{"", 0}};
        printf("write=%s", res(write(f, "123456", 6)));
        printf(" fsync=%s", res(fsync(f)));
        printf(" fdatasync=%s", res(fdatasync(f)));
        printf(" pwrite64=%s", res(pwrite64(f, "7890", 4, 6)));
        printf(" write=%s", res(write(f, "x", 1)));
        printf(" writev=%s", res(writev(f, iov, 1)));
        printf(" fsync=%s", res(fsync(f)));
        printf(" stdout=%s\n", res(write(1, "", 0)));
        return 0;
    }
    if (strcmp(argv[1], "control") == 0) {
        /* Arms both faults half way, as a test does through IMAGE/.control. */
        int f = open("f", O_WRONLY | O_CREAT, 0644);
        printf("write=%s", res(write(f, "12", 2)));
        printf(" fsync=%s", res(fsync(f)));
        char control[4096];
        snprintf(control, sizeof control, "%s/.control", getenv("POWERCUT_IMAGE"));
        FILE *c = fopen(control, "w");
        fprintf(c, "POWERCUT_FAIL_SYNC_AFTER=2\nPOWERCUT_ENOSPC_AFTER_BYTES=2\n");
        fclose(c);
        printf(" write=%s", res(write(f, "3", 1)));
        printf(" fsync=%s\n", res(fsync(f)));
        return 0;
    }
    return 2;
}
"#;

/// The C program above, built once per test binary (the tests using it run in parallel).
fn self_test_program() -> PathBuf {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("powercut");
            fs::create_dir_all(&dir).unwrap();
            // Named by process: another run of this binary may be writing its own copy.
            let source = dir.join(format!("selftest-{}.c", std::process::id()));
            fs::write(&source, SELF_TEST_C).unwrap();
            let program = dir.join("selftest");
            compile_c(&source, &program, false);
            let _ = fs::remove_file(&source);
            program
        })
        .clone()
}

fn run_self_test(mode: &str, data: &Path, shim: &Shim, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(self_test_program());
    cmd.arg(mode)
        .arg(data)
        .env("LD_PRELOAD", powercut::shim())
        .env("POWERCUT_DIR", data)
        .env("POWERCUT_IMAGE", &shim.image);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{mode}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn listing(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let rel = entry.strip_prefix(dir).unwrap().display().to_string();
        let content = if entry.is_dir() {
            "<dir>".to_string()
        } else {
            String::from_utf8_lossy(&fs::read(&entry).unwrap()).into_owned()
        };
        out.insert(rel, content);
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn the_shim_keeps_only_synced_content_under_synced_names() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    fs::create_dir(&data).unwrap();
    // Present before the process starts: durable, as a test's setup or an earlier cut left it.
    fs::write(data.join("old"), "from before").unwrap();
    let shim = Shim::new(&work.path().join("image"));
    run_self_test("durability", &data, &shim, &[]);

    let after = work.path().join("after");
    materialize(&shim.image, &after);
    let expected: BTreeMap<String, String> = [
        ("kept", "durable"),
        ("empty", ""),
        ("old", "from before"),
        ("sub", "<dir>"),
        ("sub/inner", "inner"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(listing(&after), expected);
    let s = stats(&shim.image);
    assert_eq!((s.syncs, s.eio, s.enospc), (5, 0, 0), "{s:?}");
    assert_eq!(s.bytes, 7 + 5 + 4 + 5 + 4 + 4, "{s:?}");
}

#[test]
fn the_shim_arms_faults_from_its_control_file() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    fs::create_dir(&data).unwrap();
    let shim = Shim::new(&work.path().join("image"));
    let out = run_self_test("control", &data, &shim, &[]);
    assert_eq!(
        out.trim(),
        "write=ok fsync=ok write=No space left on device fsync=Input/output error"
    );
    let s = stats(&shim.image);
    assert_eq!((s.syncs, s.bytes, s.eio, s.enospc), (2, 2, 1, 1), "{s:?}");
}

#[test]
fn the_shim_fails_syncs_and_writes_when_told() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    fs::create_dir(&data).unwrap();
    let shim = Shim::new(&work.path().join("image"));
    let out = run_self_test(
        "faults",
        &data,
        &shim,
        &[
            ("POWERCUT_FAIL_SYNC_AFTER", "2"),
            ("POWERCUT_ENOSPC_AFTER_BYTES", "10"),
        ],
    );
    let (eio, enospc) = ("Input/output error", "No space left on device");
    assert_eq!(
        out.trim(),
        format!(
            "write=ok fsync=ok fdatasync={eio} pwrite64=ok write={enospc} writev={enospc} fsync={eio} stdout=ok"
        )
    );
    let s = stats(&shim.image);
    assert_eq!((s.syncs, s.bytes, s.eio, s.enospc), (3, 10, 2, 2), "{s:?}");
    // The failed syncs did not update the image: the content is that of the first sync.
    let inodes: Vec<PathBuf> = fs::read_dir(shim.image.join(".inodes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(inodes.len(), 1, "{inodes:?}");
    assert_eq!(fs::read(&inodes[0]).unwrap(), b"123456");
}

// ---------------------------------------------------------------------------------------
// The bot under random power cuts.

/// Whether a job in `state` got as far as being sent (or perhaps sent) to the cloud.
fn was_submitted(state: JobState) -> bool {
    use JobState::*;
    matches!(state, Submitting | Running | Succeeded | Failed | Unknown)
}

/// A bot line that shows a job's card: (job, state, whether it is an edit of the card).
fn card_of(line: &str) -> Option<(u64, JobState, bool)> {
    static CARD: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = CARD.get_or_init(|| {
        Regex::new(r"^\[#ops\] (\(edit job-\d+\) )?(?:\(only you\) )?\S+ job (\d+) · ([a-z ]+) · ")
            .unwrap()
    });
    let c = re.captures(line)?;
    Some((
        c[2].parse().unwrap(),
        JobState::from_label(&c[3])?,
        c.get(1).is_some(),
    ))
}

fn no_job_of(line: &str) -> Option<u64> {
    line.strip_prefix("[#ops] There is no job ")?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// One chain of lives of the bot, each ended by a power cut.
struct Campaign {
    seed: u64,
    rng: fastrand::Rng,
    work: PathBuf,
    config: PathBuf,
    /// The most advanced state the chat showed for each job it acknowledged.
    announced: BTreeMap<u64, JobState>,
    /// Where that was shown (cut number and line), for messages.
    shown_at: BTreeMap<u64, String>,
    /// Raw instance IDs handed out so far (each job gets its own target).
    targets: u64,
    cut: usize,
    /// What was written to the current life, for messages.
    script: Vec<String>,
    /// How many of the current life's stdout lines `observe` has taken in.
    cursor: usize,
}

impl Campaign {
    fn new(seed: u64, emu: &Emulator) -> Campaign {
        let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("power_loss")
            .join(format!("seed-{seed:x}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        let config = write_config(&work, &emu.url, "30m");
        Campaign {
            seed,
            rng: fastrand::Rng::with_seed(seed),
            work,
            config,
            announced: BTreeMap::new(),
            shown_at: BTreeMap::new(),
            targets: 0,
            cut: 0,
            script: Vec::new(),
            cursor: 0,
        }
    }

    fn context(&self) -> String {
        format!(
            "seed {:#x}, cut {} (work dir {}); input of this life:\n{}",
            self.seed,
            self.cut,
            self.work.display(),
            self.script.join("\n")
        )
    }

    fn data_dir(&self, life: usize) -> PathBuf {
        self.work.join(format!("data-{life}"))
    }

    fn image_dir(&self, life: usize) -> PathBuf {
        self.work.join(format!("image-{life}"))
    }

    /// Takes in what the bot printed: every card must follow from what was shown before.
    fn observe(&mut self, lines: &[String]) {
        for line in lines {
            let Some((job, state, _)) = card_of(line) else {
                continue;
            };
            match self.announced.get(&job) {
                Some(&before) => {
                    assert!(
                        before.reaches(state),
                        "job {job} was shown {before:?} ({}) and now {state:?}: {line}\n{}",
                        self.shown_at[&job],
                        self.context()
                    );
                    if before != state {
                        self.announced.insert(job, state);
                        self.shown_at
                            .insert(job, format!("cut {}: {line}", self.cut));
                    }
                }
                None => {
                    self.announced.insert(job, state);
                    self.shown_at
                        .insert(job, format!("cut {}: {line}", self.cut));
                }
            }
        }
    }

    /// Observes the current life's lines not yet taken in.
    fn catch_up(&mut self, lines: &[String]) {
        let new = lines[self.cursor.min(lines.len())..].to_vec();
        self.cursor = lines.len();
        self.observe(&new);
    }

    fn send(&mut self, bot: &mut Bot, line: &str) {
        self.script.push(line.to_string());
        bot.send(line);
    }

    /// Starts a life on `data`: it must open and answer.
    fn start(&mut self, data: &Path, launch: &Launch) -> Bot {
        self.script.clear();
        self.cursor = 0;
        Bot::start(&self.config, data, launch)
    }

    /// Asks for every acknowledged job (and `extra` more numbers) and checks each answer:
    /// present, and in a state the announced one can reach. Returns each job's state.
    fn verify(&mut self, bot: &mut Bot, extra: u64) -> BTreeMap<u64, JobState> {
        let top = self.announced.keys().max().copied().unwrap_or(0);
        let jobs: BTreeSet<u64> = self
            .announced
            .keys()
            .copied()
            .chain(top + 1..=top + extra)
            .collect();
        let from = bot.seen.len();
        for job in &jobs {
            self.send(bot, &format!("!status {job}"));
        }
        self.send(bot, &format!("!status {FENCE}"));
        if bot
            .wait_for(ANSWER, |l| no_job_of(l) == Some(FENCE))
            .is_none()
        {
            // Give a bot on its way out a moment, so the message can say how it ended.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !bot.exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "the bot did not answer (exited: {}); stdout:\n{}\nstderr:\n{}\n{}",
                bot.exited(),
                bot.seen.join("\n"),
                bot.stderr(),
                self.context()
            );
        }
        let answers: Vec<String> = bot.seen[from..].to_vec();
        let mut found = BTreeMap::new();
        for line in &answers {
            if let Some((job, state, false)) = card_of(line) {
                found.entry(job).or_insert(state);
            }
        }
        for job in self.announced.keys() {
            let lost = answers.iter().any(|l| no_job_of(l) == Some(*job));
            assert!(
                !lost && found.contains_key(job),
                "acknowledged job {job} ({}) is {} after the cut; answers:\n{}\n{}",
                self.shown_at[job],
                if lost { "gone" } else { "not answered" },
                answers.join("\n"),
                self.context()
            );
        }
        self.catch_up(&bot.seen);
        found
    }

    fn new_target(&mut self) -> String {
        self.targets += 1;
        format!("{:08x}{:024x}in09", self.seed as u32, self.targets)
    }

    fn pending(&self, decided: &BTreeSet<u64>) -> Vec<u64> {
        self.announced
            .iter()
            .filter(|(job, s)| **s == JobState::AwaitingApproval && !decided.contains(job))
            .map(|(job, _)| *job)
            .collect()
    }

    /// One random command (or an approver's turn), as lines to write.
    fn step(&mut self, decided: &mut BTreeSet<u64>) -> Vec<String> {
        let pending = self.pending(decided);
        let roll = self.rng.u32(0..100);
        let pick = |rng: &mut fastrand::Rng| pending[rng.usize(0..pending.len())];
        match roll {
            0..=34 => vec![format!("!restart ddm {}", self.new_target())],
            35..=59 => vec![format!("!restart ddm {} hard", self.new_target())],
            60..=74 if !pending.is_empty() => {
                let job = pick(&mut self.rng);
                decided.insert(job);
                let vote = if self.rng.bool() {
                    format!("/react {job} ✅")
                } else {
                    format!("!approve {job}")
                };
                vec!["/as bob dba".into(), vote, "/as alice oncall".into()]
            }
            75..=84 if !pending.is_empty() => {
                let job = pick(&mut self.rng);
                decided.insert(job);
                vec![
                    "/as bob dba".into(),
                    format!("!deny {job} change freeze"),
                    "/as alice oncall".into(),
                ]
            }
            85..=89 if !pending.is_empty() => {
                let job = pick(&mut self.rng);
                decided.insert(job);
                vec![format!("!cancel {job}")]
            }
            90..=94 if !self.announced.is_empty() => {
                let jobs: Vec<u64> = self.announced.keys().copied().collect();
                vec![format!("!status {}", jobs[self.rng.usize(0..jobs.len())])]
            }
            90..=99 => vec!["!jobs".into()],
            _ => vec![format!("!restart ddm {} hard", self.new_target())],
        }
    }

    /// Cuts the power `delay_ms` from now: SIGKILL, then takes in all the life printed (it
    /// was printed before the cut, so it is all acknowledged).
    fn cut_power(&mut self, bot: Bot, delay_ms: u64, when: &str) {
        std::thread::sleep(Duration::from_millis(delay_ms));
        let ended = bot.kill();
        self.script.push(format!("<SIGKILL {delay_ms} ms {when}>"));
        if let Some(line) = panic_text(&ended.stderr) {
            panic!("{line}\nstderr:\n{}\n{}", ended.stderr, self.context());
        }
        self.catch_up(&ended.stdout);
    }

    /// Drives one life's workload, then cuts the power.
    fn workload_then_cut(&mut self, mut bot: Bot) {
        let mut decided = BTreeSet::new();
        let steps = self.rng.usize(0..=10);
        for _ in 0..steps {
            for line in self.step(&mut decided) {
                self.send(&mut bot, &line);
            }
            // Sometimes wait for the answer, sometimes race ahead of it.
            match self.rng.u32(0..3) {
                0 => {}
                1 => std::thread::sleep(Duration::from_millis(self.rng.u64(0..40))),
                _ => {
                    let _ = bot.next_line(Duration::from_millis(500));
                }
            }
            bot.drain_ready();
            self.catch_up(&bot.seen);
        }
        // The cut: at once, soon, or once cloud work (300 ms jobs, 100 ms polls) is under way.
        let delay = match self.rng.u32(0..3) {
            0 => 0,
            1 => self.rng.u64(0..100),
            _ => self.rng.u64(100..800),
        };
        self.cut_power(bot, delay, "after the last command");
    }

    /// Requests hard restarts in bursts (each sent at once, so the engine groups it), the
    /// next burst once the last card of the one before is out; after `bursts` of them sends
    /// one more and cuts the power a random moment later, while it is being handled.
    fn burst_then_cut(&mut self, mut bot: Bot, bursts: usize) {
        const BURST: usize = 64;
        for burst in 0..=bursts {
            let mut last = String::new();
            for _ in 0..BURST {
                last = self.new_target();
                bot.send(&format!("!restart ddm {last} hard"));
            }
            self.script = vec![format!(
                "<{} hard restarts in bursts of {BURST}>",
                (burst + 1) * BURST
            )];
            if burst == bursts {
                break;
            }
            if bot.wait_for(ANSWER, |l| l.contains(&last)).is_none() {
                panic!(
                    "no card for {last}; stderr:\n{}\n{}",
                    bot.stderr(),
                    self.context()
                );
            }
            self.catch_up(&bot.seen);
        }
        let delay = self.rng.u64(0..200);
        self.cut_power(bot, delay, "after the last burst was sent");
    }

    /// `cuts` lives under the shim, each on the directory the previous cut left, each
    /// checked on starting and then given `work` (which ends it with a cut); then a last
    /// life without the shim, checked, and returned running.
    fn lives(&mut self, cuts: usize, mut work: impl FnMut(&mut Campaign, Bot)) -> Bot {
        fs::create_dir_all(self.data_dir(0)).unwrap();
        for life in 0..cuts {
            self.cut = life;
            let shim = Shim::new(&self.image_dir(life));
            let image = shim.image.clone();
            let launch = Launch {
                shim: Some(shim),
                ..Launch::default()
            };
            let mut bot = self.start(&self.data_dir(life), &launch);
            self.verify(&mut bot, 0);
            work(self, bot);
            materialize(&image, &self.data_dir(life + 1));
            // Keep the last two lives' directories for a reproduction, not all of them.
            if life >= 1 {
                let _ = fs::remove_dir_all(self.data_dir(life - 1));
                let _ = fs::remove_dir_all(self.image_dir(life - 1));
            }
        }
        self.cut = cuts;
        let mut bot = self.start(&self.data_dir(cuts), &Launch::default());
        self.verify(&mut bot, 5);
        bot
    }

    /// Ends the last life with the end of its input: it must stop cleanly.
    fn finish(&self, bot: Bot) {
        let ended = bot.finish(ANSWER);
        assert!(
            ended.status.success() && panic_text(&ended.stderr).is_none(),
            "the last life did not end well: {:?}\n{}\n{}",
            ended.status,
            ended.stderr,
            self.context()
        );
    }

    /// Random workloads cut at random moments; at the end every job is let finish.
    /// Returns each job's final state.
    fn run(&mut self, cuts: usize) -> BTreeMap<u64, JobState> {
        let mut bot = self.lives(cuts, |c, bot| c.workload_then_cut(bot));
        self.settle(&mut bot);
        let states = self.verify(&mut bot, 5);
        self.finish(bot);
        states
    }

    /// Lives that each request hundreds of jobs in bursts and are cut during one.
    fn run_bursts(&mut self, cuts: usize) {
        let bot = self.lives(cuts, |c, bot| {
            let bursts = c.rng.usize(4..=12);
            c.burst_then_cut(bot, bursts);
        });
        self.finish(bot);
    }

    /// Waits until no acknowledged job is still between approval and a final state.
    fn settle(&mut self, bot: &mut Bot) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let states = self.verify(bot, 0);
            let busy: Vec<_> = states
                .iter()
                .filter(|(_, s)| {
                    matches!(
                        s,
                        JobState::Approved | JobState::Submitting | JobState::Running
                    )
                })
                .collect();
            if busy.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jobs still in flight after 60 s: {busy:?}\n{}",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn campaign(seed: u64, cuts: usize) {
    let started = Instant::now();
    let emu = Emulator::start("300ms");
    let mut campaign = Campaign::new(seed, &emu);
    let states = campaign.run(cuts);
    let submitted = states.values().filter(|s| was_submitted(**s)).count() as u64;
    let succeeded = states
        .values()
        .filter(|s| **s == JobState::Succeeded)
        .count() as u64;
    let calls = emu.calls("ddm.restart");
    assert!(
        calls <= submitted,
        "seed {seed:#x}: {calls} restarts reached the cloud for {submitted} jobs that got to \
         submitting: {states:?}"
    );
    assert!(
        calls >= succeeded,
        "seed {seed:#x}: {succeeded} jobs succeeded with only {calls} restarts sent: {states:?}"
    );
    eprintln!(
        "power_loss seed {seed:#x}: {cuts} cuts, {} jobs ({submitted} submitted, {calls} \
         restarts sent) in {:?}",
        states.len(),
        started.elapsed()
    );
    let _ = fs::remove_dir_all(&campaign.work);
}

#[test]
fn power_cuts_lose_no_acknowledged_job_seed_a() {
    campaign(0x5eed_0001, 13);
}

#[test]
fn power_cuts_lose_no_acknowledged_job_seed_b() {
    campaign(0x5eed_0002, 13);
}

#[test]
fn power_cuts_in_long_bursts_lose_no_acknowledged_job() {
    let started = Instant::now();
    let emu = Emulator::start("300ms");
    let mut campaign = Campaign::new(0x5eed_0003, &emu);
    campaign.run_bursts(3);
    eprintln!(
        "power_loss bursts: {} jobs in {:?}",
        campaign.announced.len(),
        started.elapsed()
    );
    assert_eq!(emu.calls("ddm.restart"), 0, "nothing was approved");
    let _ = fs::remove_dir_all(&campaign.work);
}
