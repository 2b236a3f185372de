//! The command line with both stores, through the built binary: a bot's jobs moved from a
//! sled data directory into PostgreSQL with `opsgate migrate to-postgres` (refused the
//! second time, the database no longer empty), seen there by `opsgate jobs` and by the
//! shell, backed up and restored into another database, and moved back with `migrate
//! to-sled`. The connection string, which holds the password, appears in no output.

#[path = "support/postgres.rs"]
mod postgres_cluster;
#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::process::Command;

use postgres_cluster::Postgres;
use process::{run_shell, write_config_with, Emulator, BIN, DEMO_PASSWORD, PASSWORD_VAR};

const URL_VAR: &str = "OPSGATE_CLI_TEST_DATABASE_URL";
const SECOND_URL_VAR: &str = "OPSGATE_CLI_TEST_SECOND_URL";
const TARGET: &str = "28e8841d0b9c4f6a9a30742ee60e1068in09";

/// `opsgate ARGS` with both databases' connection strings in its environment:
/// (stdout + stderr, success).
fn opsgate(args: &[&str], first: &str, second: &str, secret: &str) -> (String, bool) {
    let out = Command::new(BIN)
        .args(args)
        .env(URL_VAR, first)
        .env(SECOND_URL_VAR, second)
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .env("RUST_LOG", "info")
        .output()
        .expect("run opsgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(secret),
        "the database password was printed by `opsgate {}`: {text}",
        args.join(" ")
    );
    (text, out.status.success())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_command_line_moves_a_bot_between_the_stores_and_back() {
    let Some(pg) = Postgres::start() else { return };
    let (first, second) = (pg.database(), pg.database());
    // postgresql://opsgate:PASSWORD@127.0.0.1:PORT/DB
    let secret = first
        .split(':')
        .nth(2)
        .and_then(|p| p.split('@').next())
        .unwrap()
        .to_string();
    let emu = Emulator::start("300ms");
    let dir = tempfile::tempdir().unwrap();
    for sub in ["sled", "pg", "pg2"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let sled_config = write_config_with(&dir.path().join("sled"), &emu.url, "1h", "");
    let pg_config = write_config_with(
        &dir.path().join("pg"),
        &emu.url,
        "1h",
        &format!("[store]\nbackend = \"postgres\"\nurl_env = \"{URL_VAR}\"\nlease = \"2s\"\n"),
    );
    let second_config = write_config_with(
        &dir.path().join("pg2"),
        &emu.url,
        "1h",
        &format!("[store]\nbackend = \"postgres\"\nurl_file = \"{SECOND_URL_VAR}-file\"\n"),
    );
    std::fs::write(
        dir.path()
            .join("pg2")
            .join(format!("{SECOND_URL_VAR}-file")),
        &second,
    )
    .unwrap();
    let data = dir.path().join("data");

    // A pending job on sled.
    let (out, err, ok) = run_shell(
        &sled_config,
        &data,
        &format!("!restart ddm {TARGET} hard\n"),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("job 1"), "{out}");

    // Into PostgreSQL, once.
    let (moved, ok) = opsgate(
        &[
            "migrate",
            "to-postgres",
            "--config",
            path(&pg_config),
            "--data",
            path(&data),
        ],
        &first,
        &second,
        &secret,
    );
    assert!(ok, "{moved}");
    assert!(moved.contains("copied"), "{moved}");
    let (again, ok) = opsgate(
        &[
            "migrate",
            "to-postgres",
            "--config",
            path(&pg_config),
            "--data",
            path(&data),
        ],
        &first,
        &second,
        &secret,
    );
    assert!(
        !ok,
        "a second migration into a non-empty database must be refused"
    );
    assert!(again.contains("already holds opsgate data"), "{again}");

    // `opsgate jobs` reads the database; the shell on PostgreSQL knows the job.
    let (listed, ok) = opsgate(
        &[
            "jobs",
            "--config",
            path(&pg_config),
            "--filter",
            "all",
            "--json",
        ],
        &first,
        &second,
        &secret,
    );
    assert!(ok && listed.contains(TARGET), "{listed}");
    let shell = Command::new(BIN)
        .args(["shell", "--config", path(&pg_config), "--user", "alice"])
        .args(["--roles", "oncall", "--channel", "ops"])
        .env(URL_VAR, &first)
        .env(PASSWORD_VAR, DEMO_PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut shell = shell;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"!status 1\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(TARGET), "the shell on PostgreSQL: {said}");

    // Backup of the database, restored into the second one.
    let file = dir.path().join("pg.backup");
    let (done, ok) = opsgate(
        &["backup", path(&file), "--config", path(&pg_config)],
        &first,
        &second,
        &secret,
    );
    assert!(ok && file.exists(), "{done}");
    let (done, ok) = opsgate(
        &["restore", path(&file), "--config", path(&second_config)],
        &first,
        &second,
        &secret,
    );
    assert!(ok, "{done}");
    let (listed, ok) = opsgate(
        &["jobs", "--config", path(&second_config), "--filter", "all"],
        &first,
        &second,
        &secret,
    );
    assert!(ok && listed.contains("restart ddm"), "{listed}");

    // And back into a new sled directory.
    let back = dir.path().join("back");
    let (done, ok) = opsgate(
        &[
            "migrate",
            "to-sled",
            "--config",
            path(&pg_config),
            "--data",
            path(&back),
        ],
        &first,
        &second,
        &secret,
    );
    assert!(ok, "{done}");
    let (listed, ok) = opsgate(
        &[
            "jobs",
            "--config",
            path(&sled_config),
            "--data",
            path(&back),
            "--filter",
            "all",
            "--json",
        ],
        &first,
        &second,
        &secret,
    );
    assert!(ok && listed.contains(TARGET), "{listed}");
}
