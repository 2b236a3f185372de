//! Configuration: one TOML file, validated into the types the rest of the bot uses.
//!
//! `load` reports every problem at once, each with its key path, so `opsgate check-config`
//! can show a whole broken file in one go. Secrets are only ever named here (an environment
//! variable or a file); their values are read at load time into [`SecretRef`]s.

pub mod freezes;
mod known_keys;
mod places;
mod raw;
mod regions;
pub mod secrets;
mod sections;
pub mod startup;
mod summary;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use secrets::SecretRef;
pub use sections::{Discord, IncidentRoute, Incidents, LogFormat, Severity};
pub use startup::Use;
pub use summary::summary;

use crate::cloud::Provider;

#[derive(Debug)]
pub struct Config {
    /// Where the file was read from; relative paths in it resolve against its directory.
    pub source: PathBuf,
    pub prefix: String,
    pub data_dir: Option<PathBuf>,
    /// Role name -> Discord role ID. Authorization always compares IDs.
    pub roles: BTreeMap<String, u64>,
    pub admin_roles: Vec<u64>,
    /// Channel name -> channel ID (a Discord snowflake, or the name itself in the shell).
    pub channels: BTreeMap<String, String>,
    pub accounts: BTreeMap<String, Arc<Account>>,
    pub targets: BTreeMap<String, Target>,
    /// Account name -> its tags (`[accounts.X] tags`), which rules can scope by.
    pub account_tags: BTreeMap<String, BTreeMap<String, String>>,
    pub rules: Vec<Rule>,
    /// `[[freezes]]`: change freezes from the file (`!freeze` adds more at run time).
    pub freezes: Vec<freezes::Freeze>,
    /// Channel IDs whose jobs each get a thread on their card.
    pub thread_channels: Vec<String>,
    pub discord: Discord,
    pub incidents: Incidents,
    /// Where the health and metrics endpoint listens, when enabled.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The bearer token the job API (`/api/...`) asks for. When none is configured, the
    /// job API answers only to loopback connections.
    pub api_token: SecretRef,
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Huawei IAM password token (`POST /v3/auth/tokens`).
    Password,
    /// Access key / secret key request signing.
    AkSk,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::AkSk => "aksk",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub provider: Provider,
    pub region: String,
    pub project_id: Option<String>,
    /// Used for raw IDs typed without `account=NAME`; at most one per provider.
    pub default: bool,
    pub auth: AuthMethod,
    pub iam_user: Option<String>,
    pub iam_domain: Option<String>,
    pub password: SecretRef,
    pub access_key: SecretRef,
    pub secret_key: SecretRef,
    /// Service name (`iam`, `ddm`, ...) -> base URL, overriding the region table.
    pub endpoints: BTreeMap<String, String>,
    /// Overrides the provider's default poll interval (never below its floor).
    pub poll_interval: Option<Duration>,
    pub request_timeout: Duration,
    /// Settings only some providers use (SCNet user and cluster, Alibaba call budget).
    pub settings: ProviderSettings,
}

/// Account settings of one provider only; `Default` (all unset) for the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Alibaba: API calls per minute (default 60, SAE's per-user limit), shared by every
    /// SAE job's submit and polls on the account.
    pub calls_per_minute: Option<u32>,
    /// SCNet: the platform user (`user` header of the token request).
    pub scnet_user: Option<String>,
    /// SCNet: the organisation ID issued to the integrator (`orgId` header, password auth).
    pub org_id: Option<String>,
    /// SCNet: the cluster (computing region) by `clusterId`, or by `clusterName`.
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    /// SCNet: the status field of the container detail answer (UNCONFIRMED upstream);
    /// unset tries `status` and then the usual alternatives.
    pub status_field: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// Service as in the command table, e.g. `ddm`.
    pub service: &'static str,
    pub account: String,
    pub params: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Its own tags over its account's, for rules scoped by tag.
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    /// Canonical command key, e.g. `restart ddm`.
    pub command: String,
    /// Modes this rule covers; empty means every mode.
    pub modes: Vec<String>,
    pub request_roles: Vec<u64>,
    /// Channel IDs where the command may be requested; empty means anywhere.
    pub channels: Vec<String>,
    pub approvals: u32,
    pub approver_roles: Vec<u64>,
    pub expires: Duration,
    /// What the rule acts on; the most specific matching rule wins.
    pub scope: Scope,
    /// The requester types the target's name (`!confirm`) before the request is posted.
    pub confirm: bool,
    /// Roles that may use `--break-glass` under this rule (skipping its approvals and any
    /// freeze); empty means break-glass is not allowed.
    pub break_glass_roles: Vec<u64>,
    /// Jobs under this rule get a thread on their card.
    pub thread: bool,
}

/// What a rule acts on. At most one kind is set; none means everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Named targets.
    pub targets: Vec<String>,
    /// Accounts (named targets on them, and raw IDs used with them).
    pub accounts: Vec<String>,
    /// Tags every one of which the target (or, for raw IDs, the account) must carry.
    pub tags: BTreeMap<String, String>,
}

/// One thing wrong with the config, at a key path such as `rules[1].approver_roles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Where in the file, when the key or value can be found there.
    pub at: Option<Location>,
}

/// A place in the config file (1-based line and column) and that line's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub text: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
            at: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config file: one line each, `FILE:LINE:COLUMN: PATH: MESSAGE`,
/// followed by the offending line of the file when there is one.
#[derive(Debug)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for p in &self.list {
            match &p.at {
                Some(at) => {
                    writeln!(f, "{file}:{}:{}: {p}", at.line, at.column)?;
                    writeln!(f, "  {:>4} | {}", at.line, at.text)?;
                }
                None => writeln!(f, "{file}: {p}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| Problems {
            file: path.to_path_buf(),
            list: vec![Problem::new("", format!("cannot read the file: {e}"))],
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, source: &Path) -> Result<Config, Problems> {
        validate::parse(text, source).map_err(|list| Problems {
            file: source.to_path_buf(),
            list,
        })
    }

    /// [`Config::load`], then the checks of [`startup`] for `usage`: what `check-config`,
    /// `shell` and `run` accept.
    pub fn load_for(path: &Path, usage: Use) -> Result<Config, Problems> {
        let config = Config::load(path)?;
        let mut list = config.startup_problems(usage);
        if let Ok(text) = std::fs::read_to_string(path) {
            places::Places::of(&text).locate(&mut list);
        }
        if list.is_empty() {
            Ok(config)
        } else {
            Err(Problems {
                file: path.to_path_buf(),
                list,
            })
        }
    }

    /// The display name of a channel ID (the ID itself when it has no name).
    pub fn channel_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.channels
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map_or(id, |(k, _)| k.as_str())
    }

    /// The display name of a role ID.
    pub fn role_name(&self, id: u64) -> Option<&str> {
        self.roles
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.as_str())
    }

    pub fn default_account(&self, provider: Provider) -> Option<&Arc<Account>> {
        self.accounts
            .values()
            .find(|a| a.provider == provider && a.default)
    }

    /// Resolves a relative path in the config against the config file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        base_dir(&self.source).join(path)
    }
}

pub(crate) fn base_dir(source: &Path) -> PathBuf {
    source
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
