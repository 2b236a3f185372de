//! The power-cut harness: builds the LD_PRELOAD shim (`powercut.c`), turns the durable image
//! it keeps into the data directory a power cut would leave, and drives the shell binary
//! (under the shim or not) line by line, with its stdout and stderr kept.
//!
//! Include next to `process.rs`, which provides the binary's path and the config writer:
//! `#[path = "support/process.rs"] mod process;` and `#[path = "support/powercut.rs"] mod powercut;`.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::{BIN, DEMO_PASSWORD, PASSWORD_VAR};

const SHIM_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/powercut.c");

/// Compiles `source` with `cc` into `out` (a shared library if `shared`), panicking with
/// the compiler's output if it fails. Compiles to a temporary name and renames, so that
/// test binaries building the same output at once never load a half-written file.
pub fn compile_c(source: &Path, out: &Path, shared: bool) {
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let mut cc = Command::new("cc");
    if shared {
        cc.args(["-shared", "-fPIC"]);
    }
    cc.args(["-O1", "-Wall", "-Wextra", "-o"])
        .arg(&tmp)
        .arg(source)
        .args(["-ldl", "-lpthread"]);
    let output = cc
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc to build {}: {e}", source.display()));
    assert!(
        output.status.success(),
        "cc failed to build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    fs::rename(&tmp, out).unwrap();
}

/// The shim, built once per test binary.
pub fn shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("powercut");
        fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("libpowercut.so");
        compile_c(Path::new(SHIM_SOURCE), &lib, true);
        lib
    })
    .clone()
}

/// Undoes the shim's %-escaping of names.
fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The shim's file name for the durable entries of the directory `rel` ("" = the root).
fn namespace_file(image: &Path, rel: &str) -> PathBuf {
    let escaped = rel.replace('%', "%25").replace('/', "%2F");
    image.join(".ns").join(format!("={escaped}"))
}

/// One durable directory entry: (name, inode key, is a directory).
fn durable_entries(image: &Path, rel: &str) -> Vec<(PathBuf, String, bool)> {
    let Ok(text) = fs::read_to_string(namespace_file(image, rel)) else {
        return Vec::new(); // never synced: no entry is durable
    };
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let (Some(name), Some(key), Some(kind), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("bad namespace line {line:?} for {rel:?}");
            };
            use std::os::unix::ffi::OsStringExt;
            let name = PathBuf::from(std::ffi::OsString::from_vec(unescape(name)));
            (name, key.to_string(), kind == "d")
        })
        .collect()
}

/// Builds in `to` (created if needed) the data directory as a power cut would leave it:
/// every durable name, with its inode's durable content (empty if it was never synced),
/// recursively through durable subdirectories.
pub fn materialize(image: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    materialize_dir(image, "", to);
}

fn materialize_dir(image: &Path, rel: &str, to: &Path) {
    for (name, key, is_dir) in durable_entries(image, rel) {
        let path = to.join(&name);
        if is_dir {
            fs::create_dir_all(&path).unwrap();
            let child = Path::new(rel).join(&name);
            materialize_dir(image, child.to_str().expect("utf-8 names"), &path);
        } else {
            match fs::read(image.join(".inodes").join(&key)) {
                Ok(content) => fs::write(&path, content).unwrap(),
                Err(_) => fs::write(&path, b"").unwrap(),
            }
        }
    }
}

/// The shim's counters (`IMAGE/.stats`): syncs of watched paths (failed ones included),
/// bytes written to watched fds, and the faults it injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub syncs: u64,
    pub bytes: u64,
    pub eio: u64,
    pub enospc: u64,
}

pub fn stats(image: &Path) -> Stats {
    let text = fs::read_to_string(image.join(".stats")).unwrap_or_default();
    let fields: HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    let get = |k: &str| fields.get(k).copied().unwrap_or(0);
    Stats {
        syncs: get("syncs"),
        bytes: get("bytes"),
        eio: get("eio"),
        enospc: get("enospc"),
    }
}

/// Waits until the shim's counters have not changed for `quiet` (the bot is idle on disk),
/// and returns them.
pub fn settled_stats(image: &Path, quiet: Duration) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = stats(image);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = stats(image);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
    panic!("the bot never stopped writing: {last:?}");
}

/// Runs the shell under the shim: what it watches, where it keeps the image, what it breaks.
#[derive(Clone, Debug, Default)]
pub struct Shim {
    pub image: PathBuf,
    pub fail_sync_after: Option<u64>,
    pub enospc_after_bytes: Option<u64>,
}

impl Shim {
    /// A fresh image directory `image` (created) with no faults.
    pub fn new(image: &Path) -> Shim {
        fs::create_dir_all(image).unwrap();
        Shim {
            image: image.to_path_buf(),
            ..Shim::default()
        }
    }

    /// Arms faults while the process runs (`IMAGE/.control`, written atomically): the
    /// `POWERCUT_*` settings given replace those from the environment.
    pub fn arm(&self, settings: &[(&str, u64)]) {
        let text: String = settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let tmp = self.image.join(".control.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.image.join(".control")).unwrap();
    }

    /// Once the process is idle on disk: its next sync of a watched path fails with EIO.
    /// Returns the counters it was armed at.
    pub fn fail_next_sync(&self) -> Stats {
        let now = settled_stats(&self.image, Duration::from_millis(500));
        self.arm(&[("POWERCUT_FAIL_SYNC_AFTER", now.syncs + 1)]);
        now
    }

    /// Once the process is idle on disk: the disk is full, its next write fails with ENOSPC.
    pub fn fill_disk_now(&self) -> Stats {
        let now = settled_stats(&self.image, Duration::from_millis(500));
        self.arm(&[("POWERCUT_ENOSPC_AFTER_BYTES", now.bytes)]);
        now
    }

    fn apply(&self, cmd: &mut Command, data: &Path) {
        cmd.env("LD_PRELOAD", shim())
            .env("POWERCUT_DIR", data)
            .env("POWERCUT_IMAGE", &self.image);
        if let Some(n) = self.fail_sync_after {
            cmd.env("POWERCUT_FAIL_SYNC_AFTER", n.to_string());
        }
        if let Some(n) = self.enospc_after_bytes {
            cmd.env("POWERCUT_ENOSPC_AFTER_BYTES", n.to_string());
        }
    }
}

/// How to start the shell.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub shim: Option<Shim>,
    /// Serve health and metrics on 127.0.0.1:0 (see [`Bot::http_addr`]).
    pub http: bool,
}

/// The shell as `process.rs` starts it (alice, oncall, #ops), plus `launch`.
fn shell_command(config: &Path, data: &Path, launch: &Launch) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["shell", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(["--user", "alice", "--roles", "oncall", "--channel", "ops"])
        .args(["--wait-timeout", "30s", "--drain-timeout", "30s"])
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .env("RUST_LOG", "warn");
    if launch.http {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    if let Some(shim) = &launch.shim {
        shim.apply(&mut cmd, data);
    }
    cmd
}

/// What a finished (or killed) shell left: its status, every stdout line, all of stderr.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Ended {
    pub fn stdout_text(&self) -> String {
        self.stdout.join("\n")
    }
}

/// A running shell, fed line by line, whose output is read as it comes.
pub struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Option<std::thread::JoinHandle<()>>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
}

impl Bot {
    pub fn start(config: &Path, data: &Path, launch: &Launch) -> Bot {
        let mut child = shell_command(config, data, launch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shell");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        let stderr_done = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Bot {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_done: Some(stderr_done),
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one line; false if the shell no longer reads (it exited).
    pub fn try_send(&mut self, line: &str) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .is_ok()
    }

    pub fn send(&mut self, line: &str) {
        assert!(
            self.try_send(line),
            "the shell stopped reading before {line:?}"
        );
    }

    /// The next stdout line within `timeout`; `None` on timeout or at the end of output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads lines until one satisfies `pred`, for at most `timeout`; `None` if none did.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = self.next_line(left)?;
            if pred(&line) {
                return Some(line);
            }
        }
        None
    }

    /// Waits (30 s at most) for a line containing `needle`, panicking with what it saw.
    pub fn expect(&mut self, needle: &str) -> String {
        self.wait_for(Duration::from_secs(30), |l| l.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no line containing {needle:?}; saw:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                )
            })
    }

    /// Takes whatever output is already there without waiting.
    pub fn drain_ready(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address the health endpoint listens on, from its stderr line.
    pub fn http_addr(&self) -> SocketAddr {
        const PREFIX: &str = "opsgate: http endpoint listening on ";
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(addr) = self.stderr().lines().find_map(|l| l.strip_prefix(PREFIX)) {
                return addr.trim().parse().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no http address on stderr:\n{}", self.stderr());
    }

    /// Whether the process has exited (without reaping what it printed).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGKILL: no flush, no cleanup, as a power cut. Returns everything it printed.
    pub fn kill(mut self) -> Ended {
        let _ = self.child.kill();
        self.collect()
    }

    /// Closes stdin (the end of input: the shell drains and stops) and waits for the exit.
    pub fn finish(mut self, timeout: Duration) -> Ended {
        self.stdin = None;
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the process to exit on its own; kills it and panics if not.
    pub fn wait_exit(mut self, timeout: Duration) -> Ended {
        let deadline = Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let ended = self.collect();
                panic!(
                    "the shell did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    ended.stdout_text(),
                    ended.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.collect()
    }

    fn collect(&mut self) -> Ended {
        self.stdin = None;
        let status = self.child.wait().unwrap();
        // The pipes close with the process: read both to their ends.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        if let Some(done) = self.stderr_done.take() {
            let _ = done.join();
        }
        Ended {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        // A failed assertion must not leave a shell holding the data directory.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Text that means the process panicked (Rust's message) or the shim aborted.
pub fn panic_text(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| {
        l.contains("panicked at") || l.contains("powercut:") || l.contains("RUST_BACKTRACE")
    })
}
