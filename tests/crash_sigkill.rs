//! A random SIGKILL campaign against the built binary: a seeded workload of soft and hard
//! DDM restarts, approvals, denials, cancels and status queries, SIGKILLed at random moments
//! and reopened on the same data directory every time. After each kill the reopened shell
//! must answer, and hold every job the chat acknowledged in a state no older than the one it
//! announced. At the end every job must be final, and the emulator must have received at
//! most one restart per job (each job has a target of its own), none for a job that was
//! denied, expired or cancelled, and exactly one for a job that succeeded.
//!
//! Environment: `OPSGATE_CRASH_KILLS` (default 200), `OPSGATE_CRASH_SEED` (decimal or
//! 0x-hex), `OPSGATE_CRASH_DEADLINE_SECS` (default 420: the campaign fails, saying so, if
//! it has not made its kills by then).

#[path = "support/process.rs"]
mod process;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use process::JobState::{self, *};
use process::*;
use regex::Regex;

const DEFAULT_KILLS: usize = 200;
const DEFAULT_SEED: u64 = 0x5eed_c0de_0bad_f00d;
const DEFAULT_DEADLINE_SECS: u64 = 420;
/// How long a live shell gets to answer or acknowledge anything.
const ANSWER: Duration = Duration::from_secs(10);
/// The HTTP job API returns at most this many (the newest) jobs.
const API_LIMIT: usize = 1000;
/// Short enough that cloud work is often in flight (and polled) when the kill comes.
const JOB_DURATION: &str = "300ms";
/// Unapproved hard restarts lapse quickly, so expiry (also at start-up) is exercised and
/// pending jobs do not pile up.
const HARD_EXPIRES: &str = "4s";

/// What the test knows about one job.
struct Tracked {
    /// The raw DDM instance ID the job restarts (one job per target).
    target: String,
    /// The most advanced state the chat announced, if it announced any.
    announced: Option<JobState>,
    /// Where that announcement was made, for messages.
    announced_at: String,
    /// The latest state the job API showed: only to pick jobs to approve or deny (an API
    /// read may see a group before it is durable, so it is no promise).
    observed: Option<JobState>,
}

/// How a life ends.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// Right after the last write, without waiting for any output.
    Written,
    /// Once the last command was acknowledged.
    Acknowledged,
    /// After a random sleep of 0–300 ms.
    Slept(u64),
}

/// A line (or a burst of lines) to write, and how to recognise its acknowledgement.
struct Input {
    text: String,
    ack: Option<Ack>,
}

enum Ack {
    /// The card of the job on this target.
    Card(String),
    /// Any line naming this job (a card, a refusal, "Job N is already ...").
    Job(u64),
}

struct Campaign {
    seed: u64,
    rng: fastrand::Rng,
    parser: Announcements,
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    stderr: PathBuf,
    emu: Emulator,
    jobs: BTreeMap<u64, Tracked>,
    /// Targets written in a restart command, whether or not a job came of it.
    sent_targets: Vec<String>,
    kills: usize,
    planned: usize,
    /// This life's workload so far, for messages.
    steps: Vec<String>,
    /// The previous life's, for failures on reopening.
    last_steps: Vec<String>,
}

impl Campaign {
    fn new(seed: u64, planned: usize) -> Campaign {
        let dir = tempfile::tempdir().unwrap();
        let emu = Emulator::start(JOB_DURATION);
        let config = write_config(dir.path(), &emu.url, HARD_EXPIRES);
        Campaign {
            seed,
            rng: fastrand::Rng::with_seed(seed),
            parser: Announcements::new(),
            config,
            data: dir.path().join("data"),
            stderr: dir.path().join("stderr.log"),
            _dir: dir,
            emu,
            jobs: BTreeMap::new(),
            sent_targets: Vec::new(),
            kills: 0,
            planned,
            steps: Vec::new(),
            last_steps: Vec::new(),
        }
    }

    /// Seed, kill number and this life's workload: the head of every failure message.
    fn context(&self) -> String {
        format!(
            "seed {:#x}, after kill {} of {}, this life's workload: [{}], the life before: [{}]",
            self.seed,
            self.kills,
            self.planned,
            self.steps.join(" | "),
            self.last_steps.join(" | ")
        )
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{}\n{what}", self.context());
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A raw DDM instance ID no other job uses: 32 hex digits and `in09` (ids.rs).
    fn new_target(&mut self) -> String {
        let target = format!("{:016x}{:016x}in09", self.seed, self.sent_targets.len());
        self.sent_targets.push(target.clone());
        target
    }

    /// Starts a shell on the data directory and checks that it opens and answers.
    fn open(&mut self) -> (LiveShell, String) {
        let http = free_local_addr();
        let mut shell =
            LiveShell::start_logged(&self.config, &self.data, &["--http", &http], &self.stderr);
        let answered = shell.write_raw("!jobs\n").is_ok()
            && shell
                .try_expect(ANSWER, |l| l.contains("pending or running job"))
                .is_some();
        self.absorb(&shell.seen, 0, "reopening");
        if !answered {
            let seen = shell.kill_and_collect();
            self.fail(&format!(
                "the reopened shell did not answer `!jobs` (its output ended, or {ANSWER:?} passed)\nstderr:\n{}\nstdout:\n{}",
                self.stderr_text(),
                seen.join("\n")
            ));
        }
        self.check_stderr("reopening");
        (shell, http)
    }

    fn check_stderr(&self, when: &str) {
        let err = self.stderr_text();
        for bad in ["panicked at", "damaged", "missing record"] {
            if err.contains(bad) {
                self.fail(&format!("stderr ({when}) contains {bad:?}:\n{err}"));
            }
        }
    }

    /// Takes in the announcements in `lines[from..]`; returns how many lines it read.
    fn absorb(&mut self, lines: &[String], from: usize, during: &str) -> usize {
        for line in &lines[from..] {
            let Some(a) = self.parser.parse(line) else {
                continue;
            };
            let at = format!("after kill {} ({during}): {line}", self.kills);
            match self.jobs.get_mut(&a.job) {
                None => {
                    self.jobs.insert(
                        a.job,
                        Tracked {
                            target: a.target,
                            announced: Some(a.state),
                            announced_at: at,
                            observed: None,
                        },
                    );
                }
                Some(t) => {
                    if t.target != a.target {
                        let what = format!(
                            "job {} was announced for target {} and now for {}: {line}",
                            a.job, t.target, a.target
                        );
                        self.fail(&what);
                    }
                    if let Some(before) = t.announced {
                        if !before.reaches(a.state) {
                            let what = format!(
                                "job {} went backwards in the chat: announced {before:?} ({}), now {:?}",
                                a.job, t.announced_at, a.state
                            );
                            self.fail(&what);
                        }
                    }
                    t.announced = Some(a.state);
                    t.announced_at = at;
                }
            }
        }
        lines.len()
    }

    /// Reads the newest jobs through the live shell's HTTP API: (id, state, target).
    fn api_jobs(&self, http: &str) -> Vec<(u64, JobState, String)> {
        let path = format!("/api/jobs?filter=all&limit={API_LIMIT}");
        let deadline = Instant::now() + ANSWER;
        let body = loop {
            match http_get(http, &path) {
                Some((200, body)) => break body,
                other if Instant::now() >= deadline => {
                    self.fail(&format!("GET {path} on {http}: {other:?}"))
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        parse_jobs(&body).unwrap_or_else(|e| self.fail(&format!("GET {path}: {e}: {body}")))
    }

    /// Every acknowledged job is there, in a state its announcement can lead to.
    fn check_jobs(&mut self, found: &[(u64, JobState, String)], complete: bool, when: &str) {
        let by_id: HashMap<u64, (JobState, &str)> = found
            .iter()
            .map(|(id, s, t)| (*id, (*s, t.as_str())))
            .collect();
        // Without `complete`, only the newest jobs were listed.
        let oldest_listed = if complete || found.len() < API_LIMIT {
            0
        } else {
            found.iter().map(|j| j.0).min().unwrap_or(0)
        };
        for (id, t) in &self.jobs {
            let Some(announced) = t.announced else {
                continue;
            };
            if *id < oldest_listed {
                continue;
            }
            match by_id.get(id) {
                None => self.fail(&format!(
                    "{when}: acknowledged job {id} (announced {announced:?} at {}) is missing",
                    t.announced_at
                )),
                Some((state, target)) => {
                    if *target != t.target {
                        self.fail(&format!(
                            "{when}: job {id} restarts {target}, but was announced for {}",
                            t.target
                        ));
                    }
                    if !announced.reaches(*state) {
                        self.fail(&format!(
                            "{when}: job {id} went backwards: announced {announced:?} ({}), stored {state:?}",
                            t.announced_at
                        ));
                    }
                }
            }
        }
        for (id, state, target) in found {
            let t = self.jobs.entry(*id).or_insert_with(|| Tracked {
                target: target.clone(),
                announced: None,
                announced_at: String::new(),
                observed: None,
            });
            t.observed = Some(*state);
        }
    }

    /// One life: open, check, run a random workload, SIGKILL, collect what it printed.
    fn life(&mut self) {
        self.last_steps = std::mem::take(&mut self.steps);
        let (mut shell, http) = self.open();
        let mut read = shell.seen.len();
        let found = self.api_jobs(&http);
        self.check_jobs(&found, false, "after reopening");

        // The last input still to be acknowledged, and where the output stood when it was
        // written: its answer may already have been read (by `take_available`) by the time
        // the test waits for it.
        let mut last_ack = None;
        for _ in 0..self.rng.usize(1..=5) {
            let writes = self.step();
            for w in writes {
                self.steps.push(w.text.trim_end().replace('\n', " ⏎ "));
                let written_at = shell.seen.len();
                if shell.write_raw(&w.text).is_err() {
                    let seen = shell.kill_and_collect();
                    self.fail(&format!(
                        "the shell went away\nstderr:\n{}\nstdout:\n{}",
                        self.stderr_text(),
                        seen.join("\n")
                    ));
                }
                last_ack = w.ack.map(|ack| (ack, written_at));
                // Wait for some acknowledgements, so later steps know the job numbers.
                if self.rng.u8(0..3) == 0 {
                    self.await_ack(&mut shell, last_ack.take());
                }
                shell.take_available();
                read = self.absorb(&shell.seen, read, "running");
            }
        }
        let kill = match self.rng.u8(0..3) {
            0 => Kill::Written,
            1 => Kill::Acknowledged,
            _ => Kill::Slept(self.rng.u64(0..=300)),
        };
        self.steps.push(format!("{kill:?}"));
        match kill {
            Kill::Written => {}
            Kill::Acknowledged => self.await_ack(&mut shell, last_ack),
            Kill::Slept(ms) => std::thread::sleep(Duration::from_millis(ms)),
        }
        let seen = shell.kill_and_collect();
        self.kills += 1;
        self.absorb(&seen, read, "before the kill");
        self.check_stderr("before the kill");
    }

    /// Waits for the answer to an input written when the output stood at `written_at`.
    fn await_ack(&mut self, shell: &mut LiveShell, ack: Option<(Ack, usize)>) {
        let Some((ack, written_at)) = ack else {
            return;
        };
        let parser = &self.parser;
        let answers: Box<dyn Fn(&str) -> bool> = match &ack {
            Ack::Card(target) => {
                let target = target.clone();
                Box::new(move |l: &str| parser.parse(l).is_some_and(|a| a.target == target))
            }
            Ack::Job(id) => {
                let named = Regex::new(&format!(r"(?i)\bjob #?{id}\b")).unwrap();
                Box::new(move |l: &str| named.is_match(l))
            }
        };
        let already = shell.seen[written_at..].iter().any(|l| answers(l));
        let found = already || shell.try_expect(ANSWER, |l| answers(l)).is_some();
        if !found {
            let what = match ack {
                Ack::Card(t) => format!("no card for the restart of {t}"),
                Ack::Job(id) => format!("no answer naming job {id}"),
            };
            self.fail(&format!(
                "{what} within {ANSWER:?}\nstderr:\n{}\nstdout:\n{}",
                self.stderr_text(),
                shell.seen.join("\n")
            ));
        }
    }

    /// Jobs the test last knew as awaiting approval.
    fn pending(&self) -> Vec<u64> {
        self.jobs
            .iter()
            .filter(|(_, t)| t.observed.or(t.announced) == Some(AwaitingApproval))
            .filter(|(_, t)| t.announced.is_none_or(|a| a == AwaitingApproval))
            .map(|(id, _)| *id)
            .collect()
    }

    fn restart_line(&mut self, hard: bool) -> (String, String) {
        let target = self.new_target();
        let mode = if hard { "hard" } else { "soft" };
        (format!("!restart ddm {target} {mode}\n"), target)
    }

    /// The next workload step: what to write.
    fn step(&mut self) -> Vec<Input> {
        let pending = self.pending();
        let pick =
            |rng: &mut fastrand::Rng| pending.get(rng.usize(..pending.len().max(1))).copied();
        match self.rng.u8(0..100) {
            0..30 => {
                let (text, target) = self.restart_line(false);
                vec![Input {
                    text,
                    ack: Some(Ack::Card(target)),
                }]
            }
            30..50 => {
                let (text, target) = self.restart_line(true);
                vec![Input {
                    text,
                    ack: Some(Ack::Card(target)),
                }]
            }
            50..64 => match pick(&mut self.rng) {
                Some(id) if self.rng.bool() => vec![Input {
                    text: format!("/as bob dba\n/react {id} ✅\n/as alice oncall\n"),
                    ack: None,
                }],
                Some(id) => vec![Input {
                    text: format!("/as bob dba\n!approve {id}\n/as alice oncall\n"),
                    ack: Some(Ack::Job(id)),
                }],
                None => self.step(),
            },
            64..72 => match pick(&mut self.rng) {
                Some(id) => vec![Input {
                    text: format!("/as bob dba\n!deny {id} change freeze\n/as alice oncall\n"),
                    ack: Some(Ack::Job(id)),
                }],
                None => self.step(),
            },
            72..76 => match pick(&mut self.rng) {
                Some(id) => vec![Input {
                    text: format!("!cancel {id}\n"),
                    ack: Some(Ack::Job(id)),
                }],
                None => self.step(),
            },
            76..88 => {
                // A burst: several restarts in one write.
                let mut text = String::new();
                let mut target = String::new();
                for _ in 0..self.rng.usize(2..=4) {
                    let hard = self.rng.bool();
                    let (line, t) = self.restart_line(hard);
                    text.push_str(&line);
                    target = t;
                }
                vec![Input {
                    text,
                    ack: Some(Ack::Card(target)),
                }]
            }
            88..96 => match self.jobs.keys().copied().collect::<Vec<_>>() {
                ids if ids.is_empty() => self.step(),
                ids => {
                    let id = ids[self.rng.usize(..ids.len())];
                    vec![Input {
                        text: format!("!status {id}\n"),
                        ack: Some(Ack::Job(id)),
                    }]
                }
            },
            _ => {
                let ms = self.rng.u64(0..=300);
                vec![Input {
                    text: format!("/sleep {ms}ms\n"),
                    ack: None,
                }]
            }
        }
    }

    /// The last life: let every job finish, stop cleanly, and read every job back.
    fn finale(&mut self, deadline: Instant) -> Vec<(u64, JobState, String)> {
        self.last_steps = std::mem::take(&mut self.steps);
        self.steps
            .push("final life: wait for every job to be final".into());
        let (shell, http) = self.open();
        let read = shell.seen.len();
        let settle_by = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.api_jobs(&http);
            self.check_jobs(&found, false, "while settling");
            let open: Vec<u64> = found
                .iter()
                .filter(|j| !j.1.is_final())
                .map(|j| j.0)
                .collect();
            if open.is_empty() {
                break;
            }
            if Instant::now() >= settle_by.min(deadline) {
                self.fail(&format!(
                    "jobs still not final 20 s into the last life: {open:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let (status, seen) = shell.finish(ANSWER);
        self.absorb(&seen, read, "final life");
        self.check_stderr("final life");
        if !status.is_some_and(|s| s.success()) {
            self.fail(&format!(
                "the last life did not end cleanly at the end of input: {status:?}\nstderr:\n{}",
                self.stderr_text()
            ));
        }
        self.all_jobs()
    }

    /// Every job, through `opsgate jobs --json` on the stopped bot's directory.
    fn all_jobs(&self) -> Vec<(u64, JobState, String)> {
        let out = std::process::Command::new(BIN)
            .args(["jobs", "--filter", "all", "--json", "--limit", "1000000"])
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data)
            .env(PASSWORD_VAR, DEMO_PASSWORD)
            .output()
            .expect("run opsgate jobs");
        let body = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            self.fail(&format!(
                "opsgate jobs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        parse_jobs(&body).unwrap_or_else(|e| self.fail(&format!("opsgate jobs: {e}: {body}")))
    }

    /// At most one restart per job, none for a job that never ran, one for a success, and
    /// none on a target that has no job.
    fn check_calls(&self, jobs: &[(u64, JobState, String)]) {
        let mut calls: HashMap<String, usize> = HashMap::new();
        for (op, target) in self.emu.call_log() {
            if op != "ddm.restart" {
                self.fail(&format!("unexpected mutating call {op} on {target}"));
            }
            *calls.entry(target).or_default() += 1;
        }
        let mut jobs_of: HashMap<&str, Vec<u64>> = HashMap::new();
        for (id, state, target) in jobs {
            jobs_of.entry(target).or_default().push(*id);
            let n = calls.get(target).copied().unwrap_or(0);
            let wrong = match state {
                _ if n > 1 => Some("more than one restart"),
                Denied | Expired | Cancelled if n > 0 => Some("a restart, though it never ran"),
                Succeeded if n == 0 => Some("no restart, though it succeeded"),
                _ => None,
            };
            if let Some(wrong) = wrong {
                self.fail(&format!(
                    "job {id} ({state:?}, target {target}): the cloud got {wrong} ({n} calls); {}",
                    self.origin(*id)
                ));
            }
        }
        for (target, n) in &calls {
            match jobs_of.get(target.as_str()) {
                None => self.fail(&format!(
                    "{n} restart(s) of {target}, which no stored job names (sent as target #{:?})",
                    self.sent_targets.iter().position(|t| t == target)
                )),
                Some(ids) if ids.len() > 1 => {
                    self.fail(&format!("jobs {ids:?} all restart {target}"))
                }
                Some(_) => {}
            }
        }
    }

    fn origin(&self, id: u64) -> String {
        match self.jobs.get(&id) {
            Some(t) if t.announced.is_some() => format!("last announced at {}", t.announced_at),
            _ => "never announced".into(),
        }
    }
}

/// (id, state, target) of each job in a JSON array of jobs (the API's and the CLI's shape).
fn parse_jobs(body: &str) -> Result<Vec<(u64, JobState, String)>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let list = v.as_array().ok_or("not an array")?;
    list.iter()
        .map(|j| {
            let id = j["id"].as_u64().ok_or("a job without id")?;
            let state = j["state"].as_str().and_then(JobState::from_json);
            let state = state.ok_or_else(|| format!("job {id}: unknown state {}", j["state"]))?;
            let target = j["spec"]["target"].as_str().ok_or("a job without target")?;
            Ok((id, state, target.to_string()))
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => {
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}"))
        }
    }
}

#[test]
fn random_sigkills_lose_no_acknowledged_job_and_send_nothing_twice() {
    let kills = env_number("OPSGATE_CRASH_KILLS", DEFAULT_KILLS as u64) as usize;
    let seed = env_number("OPSGATE_CRASH_SEED", DEFAULT_SEED);
    let limit = Duration::from_secs(env_number(
        "OPSGATE_CRASH_DEADLINE_SECS",
        DEFAULT_DEADLINE_SECS,
    ));
    eprintln!("crash campaign: seed {seed:#x}, {kills} kills, deadline {limit:?}");
    let started = Instant::now();
    let deadline = started + limit;
    let mut c = Campaign::new(seed, kills);
    while c.kills < kills {
        if Instant::now() >= deadline {
            c.fail(&format!(
                "the deadline of {limit:?} passed after {} of {kills} kills",
                c.kills
            ));
        }
        c.life();
    }
    let jobs = c.finale(deadline);
    c.check_jobs(&jobs, true, "at the end");
    for (id, state, _) in &jobs {
        if !state.is_final() {
            c.fail(&format!(
                "job {id} is stuck in {state:?}; {}",
                c.origin(*id)
            ));
        }
    }
    c.check_calls(&jobs);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (_, state, _) in &jobs {
        *tally.entry(format!("{state:?}")).or_default() += 1;
    }
    let acknowledged = c.jobs.values().filter(|t| t.announced.is_some()).count();
    eprintln!(
        "crash campaign: {} kills in {:.1?}; {} jobs ({acknowledged} acknowledged), {} restarts sent to the cloud; final states {tally:?}",
        c.kills,
        started.elapsed(),
        jobs.len(),
        c.emu.call_log().len()
    );
}
