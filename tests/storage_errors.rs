//! Storage that fails under the bot: a sync that returns EIO, a disk that is full (injected
//! by the `powercut` shim, and a real full tmpfs when the test may mount one).
//!
//! The contract: the bot stops at once with exit status 74 (EX_IOERR), says so in the
//! channel of the command whose writes failed (`⛔ opsgate is stopping: its storage
//! failed ...`, one line), never acknowledges that command's job, logs the error to stderr,
//! and does not panic. Restarted on healthy storage, it holds every job acknowledged before.

#[path = "support/powercut.rs"]
mod powercut;
#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use powercut::{panic_text, Bot, Ended, Launch, Shim, Stats};
use process::{write_config, Emulator};

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
