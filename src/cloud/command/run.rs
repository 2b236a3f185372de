//! One run of a declared command: started in a process group of its own with a cleared
//! environment and its stdout and stderr in one pipe, watched until it exits or its timeout
//! passes (then SIGTERM to the group, and SIGKILL after a grace), keeping only the last
//! bytes of its output.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// How long a command has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output is still read after the command exited (a child it left behind may hold
/// the pipe open).
const DRAIN: Duration = Duration::from_secs(1);

/// What a run is given.
pub struct Spec {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: std::path::PathBuf,
    pub timeout: Duration,
    pub output_cap: usize,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Finished {
    /// `None` when waiting for it failed.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    /// The last `output_cap` bytes of stdout and stderr, as they came.
    pub output: Vec<u8>,
}

/// A started run: its process ID, and the task that watches it.
pub struct Started {
    pub pid: u32,
    pub done: tokio::task::JoinHandle<Finished>,
}

/// A pipe whose ends are closed on exec (the child gets its own copies as fd 1 and 2).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts the program (never a shell). An error means it did not start: nothing ran.
pub fn start(spec: Spec) -> std::io::Result<Started> {
    let (read, write) = pipe()?;
    let write_err = write.try_clone()?;
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write_err))
        // A group of its own, so a timeout ends whatever it started too.
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd.spawn()?;
    // Our copies of the write end go with the command, so the pipe ends when the run does.
    drop(cmd);
    let pid = child.id().unwrap_or(0);
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
    let done = tokio::spawn(watch(child, pid, reader, spec.timeout, spec.output_cap));
    Ok(Started { pid, done })
}

fn signal_group(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill has no memory effects; -pid names the run's own process group,
            // whose leader is not yet reaped, so the ID cannot have been reused.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

async fn watch(
    mut child: tokio::process::Child,
    pid: u32,
    mut reader: tokio::net::unix::pipe::Receiver,
    timeout: Duration,
    cap: usize,
) -> Finished {
    let mut output = Tail::new(cap);
    let mut buf = vec![0u8; 8192];
    let mut eof = false;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut timed_out = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            n = reader.read(&mut buf), if !eof => match n {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&buf[..n]),
            },
            () = &mut deadline, if !timed_out => {
                timed_out = true;
                tracing::warn!(pid, timeout_s = timeout.as_secs_f64(), "command timed out; SIGTERM to its process group");
                signal_group(pid, libc::SIGTERM);
                let grace = tokio::time::sleep(KILL_GRACE);
                tokio::pin!(grace);
                tokio::select! {
                    status = child.wait() => break status.ok(),
                    () = &mut grace => {
                        tracing::warn!(pid, "command still running; SIGKILL to its process group");
                        signal_group(pid, libc::SIGKILL);
                    }
                }
            }
        }
    };
    if timed_out {
        // Anything it started in its group goes with it.
        signal_group(pid, libc::SIGKILL);
    }
    let drain = tokio::time::sleep(DRAIN);
    tokio::pin!(drain);
    while !eof {
        tokio::select! {
            n = reader.read(&mut buf) => match n {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&buf[..n]),
            },
            () = &mut drain => break,
        }
    }
    Finished {
        status,
        timed_out,
        output: output.into_vec(),
    }
}

/// The last `cap` bytes written.
struct Tail {
    cap: usize,
    buf: std::collections::VecDeque<u8>,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail {
            cap,
            buf: std::collections::VecDeque::with_capacity(cap.min(64 * 1024)),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let over = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..over.min(self.buf.len()));
        self.buf.extend(bytes);
    }

    fn into_vec(self) -> Vec<u8> {
        self.buf.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str], cap: usize) -> Spec {
        Spec {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![("ONLY".into(), "this".into())],
            workdir: "/".into(),
            timeout: Duration::from_secs(30),
            output_cap: cap,
        }
    }

    #[tokio::test]
    async fn output_is_capped_to_its_last_bytes() {
        let run = start(spec("/usr/bin/head", &["-c", "100000", "/dev/zero"], 1000)).unwrap();
        let done = run.done.await.unwrap();
        assert!(done.status.is_some_and(|s| s.success()));
        assert_eq!(done.output.len(), 1000);
    }

    #[tokio::test]
    async fn the_environment_is_only_what_was_declared() {
        let run = start(spec("/usr/bin/env", &[], 4096)).unwrap();
        let done = run.done.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&done.output), "ONLY=this\n");
    }

    #[tokio::test]
    async fn a_program_that_does_not_start_is_an_error_not_a_run() {
        assert!(start(spec("/nonexistent/program", &[], 10)).is_err());
    }

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let mut t = Tail::new(5);
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.into_vec(), b"cdefg");
        let mut t = Tail::new(3);
        t.push(b"abcdefgh");
        assert_eq!(t.into_vec(), b"fgh");
    }
}
