//! A throwaway PostgreSQL cluster for the tests: `initdb` and `postgres` from the
//! `postgresql` package, in a temporary directory, listening on 127.0.0.1 on a free port
//! with a password, run as the `postgres` OS user when the tests run as root (PostgreSQL
//! refuses root). It is stopped and its directory removed when the value is dropped, which
//! a failing test's unwinding does too.
//!
//! Without PostgreSQL the tests fail, saying how to install it, unless
//! `OPSGATE_PG_TESTS_MAY_SKIP=1` says a developer's machine may skip them (CI never sets it,
//! and a run with `CI=true` never skips).
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const USER: &str = "opsgate";
const SKIP_VAR: &str = "OPSGATE_PG_TESTS_MAY_SKIP";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    password: String,
    /// As whom the server runs: `Some("postgres")` when the tests run as root.
    run_as: Option<&'static str>,
    databases: AtomicUsize,
}

/// The directory of `initdb`, `postgres` and `pg_ctl`, if PostgreSQL is installed.
fn server_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("OPSGATE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("initdb"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    /// Starts a new cluster, or returns `None` when PostgreSQL is absent and skipping is
    /// allowed (see the module's comment); panics when it is absent and not allowed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            let may_skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1")
                && std::env::var("CI").map_or(true, |v| v != "true");
            if may_skip {
                eprintln!("PostgreSQL is not installed: skipped ({SKIP_VAR}=1)");
                return None;
            }
            panic!(
                "these tests need PostgreSQL's server (initdb, postgres, pg_ctl): install it \
                 (`apt-get install postgresql`) or, on a developer's machine only, set \
                 {SKIP_VAR}=1 to skip them"
            );
        };
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("opsgate-pg-")
            .tempdir()
            .unwrap();
        if root {
            let owner = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .output();
            check("chown the cluster's directory", owner);
        }
        let password = format!("pw-{:016x}", fastrand::u64(..));
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        if root {
            check(
                "chown pwfile",
                Command::new("chown").arg("postgres").arg(&pwfile).output(),
            );
        }
        let pg = Postgres {
            port: free_port(),
            bin,
            password,
            run_as,
            databases: AtomicUsize::new(0),
            dir,
        };
        let out = pg
            .server_command("initdb")
            .args(["--no-sync", "-A", "scram-sha-256", "-U", USER, "-E", "UTF8"])
            .arg("--pwfile")
            .arg(&pwfile)
            .arg("-D")
            .arg(pg.data())
            .output();
        check("initdb", out);
        std::fs::create_dir_all(pg.sockets()).unwrap();
        if root {
            check(
                "chown sockets",
                Command::new("chown")
                    .arg("postgres")
                    .arg(pg.sockets())
                    .output(),
            );
        }
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn sockets(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    /// `name` from the server's directory, as the user that owns the cluster.
    fn server_command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
            self.port,
            self.sockets().display()
        );
        let out = self
            .server_command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options])
            .stdin(Stdio::null())
            .output();
        check("pg_ctl start", out);
    }

    /// Stops the server at once (no checkpoint, clients cut off), as a crash would.
    pub fn stop_immediate(&self) {
        let out = self
            .server_command("pg_ctl")
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
        check("pg_ctl stop", out);
    }

    /// Starts the server again after [`Postgres::stop_immediate`]: it recovers from its WAL.
    pub fn restart(&self) {
        self.start_server();
    }

    /// A new, empty database, and its connection string.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::SeqCst));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Runs `sql` in `database` with psql and returns what it printed (unaligned, tuples
    /// only); panics on an error.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = self.try_sql(database, sql);
        match out {
            Ok(text) => text,
            Err(e) => panic!("psql `{sql}`: {e}"),
        }
    }

    pub fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut child = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", USER, "-d", database])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Ends every connection opsgate holds to `database` (`pg_terminate_backend`); returns
    /// how many.
    pub fn terminate_connections(&self, database: &str) -> usize {
        let out = self.sql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND application_name LIKE 'opsgate%'"
            ),
        );
        out.parse().unwrap_or(0)
    }

    /// Waits (bounded) until `sql` in `database` prints `want`.
    pub fn wait_for(&self, database: &str, sql: &str, want: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            match self.try_sql(database, sql) {
                Ok(got) if got == want => return,
                got if Instant::now() > deadline => {
                    panic!("`{sql}` never printed `{want}` (last: {got:?})")
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .server_command("pg_ctl")
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The database's name in a connection string of [`Postgres::database`].
pub fn database_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}
