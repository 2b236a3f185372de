//! Storage that fails under the bot: a sync that returns EIO, a disk that is full (injected
//! by the `powercut` shim, and a real full tmpfs when the test may mount one).
//!
//! The contract: the bot stops at once with exit status 74 (EX_IOERR), says so in the
//! channel of the command whose writes failed (`⛔ opsgate is stopping: its storage
//! failed ...`, one line), never acknowledges that command's job, logs the error to stderr,
//! and does not panic. Restarted on healthy storage, it holds every job acknowledged before.
//!
//! A first start that fails (a full disk, a failed sync, a crash or a power cut at any
//! point) leaves a directory that a start on healthy storage opens: as new, or with what
//! it acknowledged. It is never "damaged": nothing was acknowledged from it.

#[path = "support/powercut.rs"]
mod powercut;
#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use powercut::{materialize, panic_text, Bot, Ended, Launch, Shim, Stats};
use process::{run_shell_bounded, write_config, Emulator};

/// EX_IOERR from sysexits.h: what the bot exits with when its storage fails.
const EXIT_STORAGE_FAILED: i32 = 74;
const STOPPING: &str = "[#ops] ⛔ opsgate is stopping: its storage failed";

fn target(n: u32) -> String {
    format!("{n:08x}{:024x}in09", 0x0570_7a9e_u64)
}

struct Setup {
    dir: tempfile::TempDir,
    _emu: Emulator,
    config: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start("300ms");
    let config = write_config(dir.path(), &emu.url, "30m");
    Setup {
        dir,
        _emu: emu,
        config,
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh, empty data directory (the shim watches it from the start).
    fn data(&self, name: &str) -> PathBuf {
        let data = self.path(name);
        std::fs::create_dir_all(&data).unwrap();
        data
    }
}

/// A couple of commands that touch only the disk (no cloud work that could write later):
/// two hard restarts awaiting approval, one of them then denied. Returns the acknowledged
/// jobs.
fn prefix(bot: &mut Bot) -> Vec<u64> {
    bot.send(&format!("!restart ddm {} hard", target(1)));
    bot.expect("⏳ job 1 · awaiting approval");
    bot.send(&format!("!restart ddm {} hard", target(2)));
    bot.expect("⏳ job 2 · awaiting approval");
    bot.send("/as bob dba");
    bot.send("!deny 2 change freeze");
    bot.expect("🚫 job 2 · denied");
    bot.send("/as alice oncall");
    vec![1, 2]
}

/// The command that meets the failure: it would create job 3.
fn failing_command() -> String {
    format!("!restart ddm {} hard", target(3))
}

/// Starts the bot under a fault-free shim and runs the prefix; the test then arms a fault
/// for the next sync or write (the shim's `.control`), whatever the counts were by then.
fn start_under_shim(s: &Setup, data: &Path, http: bool) -> (Bot, Shim) {
    let shim = Shim::new(&s.path("image"));
    let mut bot = Bot::start(
        &s.config,
        data,
        &Launch {
            shim: Some(shim.clone()),
            http,
        },
    );
    prefix(&mut bot);
    (bot, shim)
}

/// Checks that an armed fault has fired, and only after the command was sent.
fn assert_fault_fired(shim: &Shim, armed: Stats) -> Stats {
    let after = powercut::stats(&shim.image);
    assert!(
        after.eio + after.enospc > 0,
        "the armed fault never fired: armed at {armed:?}, at the end {after:?}"
    );
    after
}

/// The contract for a storage failure met by `failing_command`, whose job would be `job`.
/// `note` goes into every failure message (e.g. the shim's counters).
fn assert_stopped_on_storage_failure(ended: &Ended, job: u64, note: &str) {
    let out = ended.stdout_text();
    let context = format!(
        "{note}\nstatus {:?}\nstdout:\n{out}\nstderr:\n{}",
        ended.status, ended.stderr
    );
    assert_eq!(
        ended.status.code(),
        Some(EXIT_STORAGE_FAILED),
        "exit status: {context}"
    );
    let stopping = ended
        .stdout
        .iter()
        .filter(|l| l.starts_with(STOPPING))
        .count();
    assert_eq!(stopping, 1, "one stopping line in #ops: {context}");
    let card = format!("job {job} · ");
    assert!(
        !ended.stdout.iter().any(|l| l.contains(&card)),
        "the failed command's job was acknowledged: {context}"
    );
    assert!(
        ended.stderr.lines().any(|l| {
            let l = l.to_lowercase();
            l.contains("storage") && (l.contains("error") || l.contains("fail"))
        }),
        "no storage error on stderr: {context}"
    );
    assert!(panic_text(&ended.stderr).is_none(), "a panic: {context}");
}

/// Restarts on `data` without any fault: it must open and hold every job in `jobs`.
fn assert_jobs_survived(s: &Setup, data: &Path, jobs: &[u64]) {
    let mut bot = Bot::start(&s.config, data, &Launch::default());
    for job in jobs {
        bot.send(&format!("!status {job}"));
        let needle = format!(" job {job} · ");
        let line = bot
            .wait_for(Duration::from_secs(20), |l| {
                l.contains(&needle) || l.contains(&format!("There is no job {job}."))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no answer for job {job} after the restart:\n{}\nstderr:\n{}",
                    bot.seen.join("\n"),
                    bot.stderr()
                )
            });
        assert!(
            line.contains(&needle),
            "job {job}, acknowledged before the failure, is gone: {line}"
        );
    }
    let ended = bot.finish(Duration::from_secs(30));
    assert!(
        ended.status.success() && panic_text(&ended.stderr).is_none(),
        "the restart did not end well: {:?}\n{}",
        ended.status,
        ended.stderr
    );
}

#[test]
fn a_failed_sync_stops_the_bot_with_74_and_loses_no_acknowledged_job() {
    let s = setup();
    let data = s.data("data");
    let (mut bot, shim) = start_under_shim(&s, &data, false);
    let armed = shim.fail_next_sync();
    bot.send(&failing_command());
    let ended = bot.wait_exit(Duration::from_secs(30));
    let after = assert_fault_fired(&shim, armed);
    let note = format!("EIO armed at {armed:?}, at the end {after:?}");
    assert_stopped_on_storage_failure(&ended, 3, &note);
    assert_jobs_survived(&s, &data, &[1, 2]);
}

#[test]
fn a_full_disk_stops_the_bot_with_74_and_loses_no_acknowledged_job() {
    let s = setup();
    let data = s.data("data");
    let (mut bot, shim) = start_under_shim(&s, &data, false);
    let armed = shim.fill_disk_now();
    bot.send(&failing_command());
    let ended = bot.wait_exit(Duration::from_secs(30));
    let after = assert_fault_fired(&shim, armed);
    let note = format!("ENOSPC armed at {armed:?}, at the end {after:?}");
    assert_stopped_on_storage_failure(&ended, 3, &note);
    assert_jobs_survived(&s, &data, &[1, 2]);
}

/// GET `path` on `addr`: the status code, or the connection error.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
    Ok(code)
}

#[test]
fn healthz_stops_answering_once_storage_fails() {
    let s = setup();
    let data = s.data("data");
    let (mut bot, shim) = start_under_shim(&s, &data, true);
    let addr = bot.http_addr();
    assert_eq!(http_get(addr, "/healthz").unwrap(), 200, "healthy at first");
    let armed = shim.fail_next_sync();
    bot.send(&failing_command());
    let ended = bot.wait_exit(Duration::from_secs(30));
    assert_fault_fired(&shim, armed);
    assert_stopped_on_storage_failure(&ended, 3, &format!("EIO armed at {armed:?}"));
    // The process is gone, so nothing answers 200 any more: the connection is refused.
    match http_get(addr, "/healthz") {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(code) => panic!("/healthz answered {code} after the storage failed"),
    }
}

// ---------------------------------------------------------------------------------------
// A real full disk: a small tmpfs, when this test may mount one.

/// Unmounts (and so frees) the tmpfs however the test ends.
struct Mounted(PathBuf);

impl Mounted {
    /// Mounts a tmpfs of `size` on `dir`, or says why not.
    fn tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mounted(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Mounted {
    /// Gives the tmpfs a new size (it keeps its files).
    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot resize the tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_real_full_tmpfs_stops_the_bot_with_74_and_loses_no_acknowledged_job() {
    let s = setup();
    let mnt = s.path("mnt");
    // Room for the store to open and take a few commands; the filler then takes the rest.
    let _mounted = match Mounted::tmpfs(&mnt, "12m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("note: skipping the real full-disk case, tmpfs cannot be mounted: {why}");
            return;
        }
    };
    let data = mnt.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut bot = Bot::start(&s.config, &data, &Launch::default());
    let mut acknowledged = prefix(&mut bot);
    let filler = mnt.join("filler");
    fill(&filler);

    // Where the full disk is met depends on the store (a preallocated file's overwrites
    // still fit; a growing log does not), so keep asking, one command at a time, until the
    // bot stops: the command it stops on must not be acknowledged.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut job = 3u64;
    let ended = loop {
        assert!(
            Instant::now() < deadline && job < 600,
            "the bot kept going on a full disk up to job {job}:\n{}\nstderr:\n{}",
            bot.seen.join("\n"),
            bot.stderr()
        );
        if !bot.try_send(&format!("!restart ddm {} hard", target(job as u32))) {
            break bot.wait_exit(Duration::from_secs(30));
        }
        let card = format!("⏳ job {job} · awaiting approval");
        match bot.wait_for(Duration::from_secs(30), |l| {
            l.contains(&card) || l.starts_with(STOPPING)
        }) {
            Some(line) if line.contains(&card) => {
                acknowledged.push(job);
                job += 1;
            }
            // The stopping line, or the end of output: the bot is on its way out.
            _ => break bot.wait_exit(Duration::from_secs(30)),
        }
    };
    assert_stopped_on_storage_failure(&ended, job, "a full tmpfs");
    eprintln!(
        "the full tmpfs stopped the bot at job {job}, {} jobs acknowledged",
        acknowledged.len()
    );
    std::fs::remove_file(&filler).unwrap();
    assert_jobs_survived(&s, &data, &acknowledged);
}

// ---------------------------------------------------------------------------------------
// A first start that fails: the directory it leaves must start, not be called damaged.

/// A first start's whole life: one request (which would be job 1), then the end of input.
fn first_request() -> String {
    format!("!restart ddm {} hard", target(1))
}

/// Whether a first life acknowledged job 1.
fn acknowledged_job_1(stdout: &[String]) -> bool {
    stdout
        .iter()
        .any(|l| l.contains("⏳ job 1 · awaiting approval"))
}

/// Starts the shell (no faults) on what a failed first start left in `data`: it must open
/// it and take a request, show job 1 if the first life acknowledged it, and say nothing of
/// damage. `what` says which state this is, for the failure message.
fn assert_starts(s: &Setup, data: &Path, acknowledged: bool, what: &str) {
    let request = format!("!restart ddm {} hard", target(9));
    let input = format!("!status 1\n{request}\n");
    let run = run_shell_bounded(&s.config, data, &input, Duration::from_secs(45));
    let context = format!(
        "{what}: status {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    assert!(
        run.status.is_some_and(|s| s.success()),
        "the directory did not start: {context}"
    );
    assert!(!run.stderr.contains("damaged"), "called damaged: {context}");
    assert!(panic_text(&run.stderr).is_none(), "a panic: {context}");
    if acknowledged {
        assert!(
            run.stdout.contains(" job 1 · awaiting approval"),
            "job 1, acknowledged, is gone: {context}"
        );
    }
    let card = format!("· awaiting approval · restart ddm {} hard", target(9));
    assert!(
        run.stdout.contains(&card),
        "the new request was not taken: {context}"
    );
}

/// What a failed first life must look like: no damage found (there is none to find in a
/// new directory), and no panic unless `may_panic`.
fn assert_failed_cleanly(ended: &Ended, what: &str, may_panic: bool) {
    let context = format!(
        "{what}: status {:?}\nstdout:\n{}\nstderr:\n{}",
        ended.status,
        ended.stdout_text(),
        ended.stderr
    );
    assert!(
        may_panic || panic_text(&ended.stderr).is_none(),
        "a panic: {context}"
    );
    assert!(
        !ended.stderr.contains("damaged"),
        "called damaged: {context}"
    );
}

/// The first life on `data` under `shim`: the request, then the end of input.
fn first_life(s: &Setup, data: &Path, shim: Shim) -> Ended {
    let launch = Launch {
        shim: Some(shim),
        http: false,
    };
    let mut bot = Bot::start(&s.config, data, &launch);
    // It may already have stopped: the end of input is all that follows.
    bot.try_send(&first_request());
    bot.finish(Duration::from_secs(45))
}

/// A crash at every point of a first start: the shim fails its N-th sync with EIO and
/// every later one, for each N up to the number a whole first life makes. The durable image
/// then is what a power cut just before that sync leaves, and the directory as the process
/// left it is what a SIGKILL there leaves (every write made, none after). Both must start.
#[test]
fn every_crash_point_of_a_first_start_leaves_a_directory_that_starts() {
    let s = setup();
    let whole = {
        let data = s.data("whole");
        let shim = Shim::new(&s.path("whole-image"));
        let ended = first_life(&s, &data, shim.clone());
        assert!(
            ended.status.success() && acknowledged_job_1(&ended.stdout),
            "a first life without faults: {:?}\n{}\n{}",
            ended.status,
            ended.stdout_text(),
            ended.stderr
        );
        powercut::stats(&shim.image).syncs
    };
    assert!(whole > 3, "a first life made only {whole} syncs");
    for n in 1..=whole {
        let data = s.data(&format!("cut-{n}"));
        let mut shim = Shim::new(&s.path(&format!("cut-{n}-image")));
        shim.fail_sync_after = Some(n);
        let ended = first_life(&s, &data, shim.clone());
        let what = format!("sync {n} of {whole} failed");
        // The last sync is sled's own, as its last handle goes after the clean stop (all
        // was durable before it); sled panics when it fails (`Log::drop`), which is not what
        // this test is about: the directory it leaves is.
        assert_failed_cleanly(&ended, &what, n == whole);
        let acknowledged = ended.status.success() && acknowledged_job_1(&ended.stdout);
        let power_cut = s.path(&format!("cut-{n}-after-power-cut"));
        materialize(&shim.image, &power_cut);
        assert_starts(
            &s,
            &power_cut,
            acknowledged,
            &format!("{what}, then a power cut"),
        );
        assert_starts(&s, &data, acknowledged, &format!("{what}, then a kill"));
    }
}

/// The states a start cut short while creating `commit.seq` leaves of it, made by hand:
/// by this version, a leftover `commit.seq.new` beside no `commit.seq`; by earlier ones
/// (which allocated and synced the file before writing its first slot), `commit.seq` empty
/// or 1,024 zero bytes. Beside sled's files as a first life left them, with nothing in them
/// (the creation is cut short on a first start) or with job 1 (an earlier version creating
/// the file anew after it was lost): each must start, with job 1 if sled has it.
#[test]
fn a_commit_seq_whose_creation_was_cut_short_is_not_damage() {
    let s = setup();
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let states: [(&str, Files); 4] = [
        (
            "a leftover commit.seq.new",
            &[("commit.seq.new", &[0x4f; 300])],
        ),
        ("an empty commit.seq", &[("commit.seq", b"")]),
        (
            "commit.seq of 1,024 zero bytes",
            &[("commit.seq", &[0; 1024])],
        ),
        (
            "commit.seq of zero bytes and a leftover commit.seq.new",
            &[("commit.seq", &[0; 1024]), ("commit.seq.new", &[0; 1024])],
        ),
    ];
    for (i, (state, files)) in states.iter().enumerate() {
        for with_job in [false, true] {
            let what = format!("{state}, after a first life with job 1: {with_job}");
            let data = s.path(&format!("state-{i}-{with_job}"));
            let input = if with_job {
                first_request() + "\n"
            } else {
                String::new()
            };
            let run = run_shell_bounded(&s.config, &data, &input, Duration::from_secs(45));
            assert!(
                run.status.is_some_and(|s| s.success()),
                "{what}: the first life failed: {}",
                run.stderr
            );
            let stdout: Vec<String> = run.stdout.lines().map(String::from).collect();
            assert_eq!(
                acknowledged_job_1(&stdout),
                with_job,
                "{what}: {}",
                run.stdout
            );
            std::fs::remove_file(data.join("commit.seq")).unwrap();
            for (name, bytes) in *files {
                std::fs::write(data.join(name), bytes).unwrap();
            }
            assert_starts(&s, &data, with_job, &what);
            assert!(
                !data.join("commit.seq.new").exists(),
                "{what}: commit.seq.new is left"
            );
        }
    }
}

/// A first start on a disk too small for it, tried at sizes from one page up: whichever
/// write the full disk refused, the start fails without acknowledging anything, and once
/// there is room a start opens the directory (as new, or with job 1 where the first start
/// fitted), never as damaged.
#[test]
fn a_first_start_on_a_full_tmpfs_leaves_a_directory_that_starts_once_there_is_room() {
    let s = setup();
    let mut failed = 0;
    for pages in 1..=6 {
        let mnt = s.path(&format!("mnt-{pages}"));
        let size = format!("{}k", pages * 4);
        let mounted = match Mounted::tmpfs(&mnt, &size) {
            Ok(m) => m,
            Err(why) => {
                eprintln!("note: skipping the full first start, tmpfs cannot be mounted: {why}");
                return;
            }
        };
        let data = mnt.join("data");
        let run = run_shell_bounded(
            &s.config,
            &data,
            &format!("{}\n", first_request()),
            Duration::from_secs(45),
        );
        let ended = Ended {
            status: run.status.expect("the first start hung"),
            stdout: run.stdout.lines().map(String::from).collect(),
            stderr: run.stderr,
        };
        let what = format!("a first start on {size}");
        assert_failed_cleanly(&ended, &what, false);
        let acknowledged = acknowledged_job_1(&ended.stdout);
        if !ended.status.success() {
            failed += 1;
            assert!(!acknowledged, "{what} failed after acknowledging job 1");
        }
        mounted.resize("16m");
        assert_starts(&s, &data, acknowledged, &format!("{what}, then with room"));
    }
    assert!(
        failed > 0,
        "no first start ran out of space: the test proves nothing"
    );
}
