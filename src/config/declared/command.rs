//! The command part of a declaration: an absolute program, an argv whose elements are
//! literals or one parameter's whole value, a cleared environment plus what is declared, a
//! working directory, a timeout and an output cap. Never a shell.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawOperation;
use super::template::{self, Names};
use super::types::{CommandRun, Fill};
use crate::config::problems::Collector;
use crate::config::SecretRef;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;
const MAX_OUTPUT_CAP: i64 = 1 << 20;

fn env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

pub fn check(
    raw: &RawOperation,
    names: &[String],
    base: &Path,
    at: &str,
    p: &mut Collector,
) -> Option<CommandRun> {
    let key = |k: &str| format!("{at}.{k}");
    let program = match raw.program.as_deref() {
        Some(prog) if Path::new(prog).is_absolute() && !prog.contains("/../") => {
            Some(PathBuf::from(prog))
        }
        Some(prog) => {
            let name = Path::new(prog)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(prog);
            p.add(
                key("program"),
                format!(
                    "`{prog}` is a relative program path: give the absolute path (e.g. \
                     /usr/local/bin/{name}; `command -v {name}` prints it), as no PATH is searched"
                ),
            );
            None
        }
        None => {
            p.add(
                key("program"),
                "missing: the absolute path of the program to run",
            );
            None
        }
    };
    let names = Names { known: names };
    let argv = raw
        .argv
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let path = key(&format!("argv[{i}]"));
            let fill = template::fill(a, "argv element", &path, &names, p);
            if let Fill::Literal(text) = &fill {
                if text.bytes().any(|b| b == 0) {
                    p.add(&path, "an argv element cannot hold NUL");
                }
            }
            fill
        })
        .collect();
    let mut env = Vec::new();
    for (name, value) in &raw.env {
        if !env_name(name) {
            p.add(
                key(&format!("env.{name}")),
                "an environment variable name is A-Z, 0-9 and _",
            );
        } else if value.contains(['{', '}']) || value.bytes().any(|b| b == 0) {
            p.add(
                key(&format!("env.{name}")),
                "an environment value is fixed text (no placeholder)",
            );
        } else {
            env.push((name.clone(), value.clone()));
        }
    }
    let mut secret_env = Vec::new();
    for (name, var) in &raw.secret_env {
        if !env_name(name) || !env_name(var) {
            p.add(
                key(&format!("secret_env.{name}")),
                "NAME = \"OPSGATE_VARIABLE\": the command's variable and the one of opsgate's \
                 environment that holds the secret",
            );
        } else if raw.env.contains_key(name) {
            p.add(key(&format!("secret_env.{name}")), "also set in env");
        } else {
            secret_env.push((name.clone(), SecretRef::load(Some(var), None, base)));
        }
    }
    let workdir = match raw.workdir.as_deref() {
        None => PathBuf::from("/"),
        Some(d) if Path::new(d).is_absolute() => PathBuf::from(d),
        Some(d) => {
            p.add(
                key("workdir"),
                format!("`{d}` must be an absolute directory"),
            );
            PathBuf::from("/")
        }
    };
    let timeout =
        super::http::duration(raw.timeout.as_deref(), DEFAULT_TIMEOUT, &key("timeout"), p);
    if timeout > MAX_TIMEOUT {
        p.add(key("timeout"), "at most 1h");
    }
    let output_cap = match raw.output_cap {
        None => DEFAULT_OUTPUT_CAP,
        Some(n) if (1..=MAX_OUTPUT_CAP).contains(&n) => n as usize,
        Some(_) => {
            p.add(
                key("output_cap"),
                format!("bytes between 1 and {MAX_OUTPUT_CAP}"),
            );
            DEFAULT_OUTPUT_CAP
        }
    };
    Some(CommandRun {
        program: program?,
        argv,
        env,
        secret_env,
        workdir,
        timeout: timeout.min(MAX_TIMEOUT),
        output_cap,
    })
}

/// The HTTP keys a command must not have, for "only for HTTP operations".
pub fn http_keys_set(raw: &RawOperation) -> Vec<&'static str> {
    let set = [
        ("auth", raw.auth.is_some()),
        ("endpoint", raw.endpoint.is_some()),
        ("method", raw.method.is_some()),
        ("path", raw.path.is_some()),
        ("query", !raw.query.is_empty()),
        ("headers", !raw.headers.is_empty()),
        ("body", raw.body.is_some()),
        ("accepted", raw.accepted.is_some()),
        ("errors", raw.errors.is_some()),
        ("poll", raw.poll.is_some()),
        ("reconcile", raw.reconcile.is_some()),
    ];
    set.into_iter()
        .filter(|(_, s)| *s)
        .map(|(k, _)| k)
        .collect()
}

/// The command keys an HTTP operation must not have.
pub fn command_keys_set(raw: &RawOperation) -> Vec<&'static str> {
    let set = [
        ("program", raw.program.is_some()),
        ("argv", !raw.argv.is_empty()),
        ("env", !raw.env.is_empty()),
        ("secret_env", !raw.secret_env.is_empty()),
        ("workdir", raw.workdir.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("output_cap", raw.output_cap.is_some()),
    ];
    set.into_iter()
        .filter(|(_, s)| *s)
        .map(|(k, _)| k)
        .collect()
}
