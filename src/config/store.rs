//! The `[store]` section: where opsgate keeps its jobs. sled (the default) is a directory
//! that one process holds; PostgreSQL is a database several replicas share, one of which
//! leads at a time.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Collector;
use super::secrets::SecretRef;

/// The connection string's variable unless the config names another one or a file.
pub const DEFAULT_URL_ENV: &str = "OPSGATE_DATABASE_URL";
/// How long a leader's lease lasts without a renewal: a standby takes over at most this
/// long (plus its own start) after the leader stopped renewing it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
const MIN_LEASE: Duration = Duration::from_secs(1);
const MAX_LEASE: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawStore {
    pub backend: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub lease: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// The data directory (`[bot] data_dir` or `--data`), held by one process.
    #[default]
    Sled,
    Postgres(Postgres),
}

#[derive(Clone, Debug)]
pub struct Postgres {
    /// The connection string (`postgresql://user:password@host/db` or `key=value` pairs):
    /// a secret, since it usually holds the password.
    pub url: SecretRef,
    pub lease: Duration,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }
}

pub(super) fn store(raw: RawStore, base: &Path, p: &mut Collector) -> Backend {
    let postgres_only = [
        ("url_env", raw.url_env.is_some()),
        ("url_file", raw.url_file.is_some()),
        ("lease", raw.lease.is_some()),
    ];
    match raw.backend.as_deref().map(str::trim) {
        None | Some("sled") => {
            for (key, set) in postgres_only {
                if set {
                    p.add(
                        format!("store.{key}"),
                        "only for backend = \"postgres\" (sled keeps its data in [bot] data_dir)",
                    );
                }
            }
            Backend::Sled
        }
        Some("postgres") => Backend::Postgres(postgres(raw, base, p)),
        Some(other) => {
            p.add(
                "store.backend",
                format!("unknown backend `{other}` (sled or postgres)"),
            );
            Backend::Sled
        }
    }
}

fn postgres(raw: RawStore, base: &Path, p: &mut Collector) -> Postgres {
    if raw.url_env.is_some() && raw.url_file.is_some() {
        p.add("store.url_env", "set url_env or url_file, not both");
    }
    let env = match (&raw.url_env, &raw.url_file) {
        (None, None) => Some(DEFAULT_URL_ENV),
        (env, _) => env.as_deref(),
    };
    let url = SecretRef::load(env, raw.url_file.as_deref(), base);
    let lease = match raw.lease.as_deref() {
        None => DEFAULT_LEASE,
        Some(text) => match humantime::parse_duration(text.trim()) {
            Ok(lease) if (MIN_LEASE..=MAX_LEASE).contains(&lease) => lease,
            _ => {
                p.add(
                    "store.lease",
                    format!("`{text}` is not a duration from 1s to 5m (such as \"15s\")"),
                );
                DEFAULT_LEASE
            }
        },
    };
    Postgres { url, lease }
}
