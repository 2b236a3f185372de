//! Configuration: one TOML file, validated into the types the rest of the bot uses.
//!
//! `load` reports every problem at once, each with its key path, so `opsgate check-config`
//! can show a whole broken file in one go. Secrets are only ever named here (an environment
//! variable or a file); their values are read at load time into [`SecretRef`]s.

pub mod declared;
mod freezes;
mod known_keys;
mod places;
mod problems;
mod raw;
pub mod secrets;
mod sections;
pub mod startup;
pub mod store;
mod summary;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use declared::Declaration;
pub use secrets::SecretRef;
pub use sections::{Discord, IncidentRoute, Incidents, LogFormat};
pub use startup::Use;
pub use summary::summary;

use crate::command::{Catalog, Target};
use crate::domain::{ChannelId, Provider};
use crate::freeze::Freeze;
use crate::policy::Policy;

#[derive(Debug)]
pub struct Config {
    /// Where the file was read from; relative paths in it resolve against its directory.
    pub source: PathBuf,
    pub prefix: String,
    pub data_dir: Option<PathBuf>,
    pub accounts: BTreeMap<String, Arc<Account>>,
    pub targets: BTreeMap<String, Target>,
    /// The rules, and the role and channel names they use.
    pub policy: Policy,
    /// Every operation a user can request.
    pub catalog: Arc<Catalog>,
    /// Operations declared in the config (`[[operations]]` and `[bot] operations_dir`),
    /// for the cloud layer to build; their rows are in `catalog`.
    pub declared: Vec<Arc<Declaration>>,
    /// `[[freezes]]`: change freezes from the file (`!freeze` adds more at run time).
    pub freezes: Vec<Freeze>,
    /// Channel IDs whose jobs each get a thread on their card.
    pub thread_channels: Vec<ChannelId>,
    /// How long a finished job and its audit entries are kept after it finished; `None`
    /// keeps them forever. Pending and running jobs, jobs awaiting a break-glass review and
    /// the freeze log are always kept.
    pub keep_finished: Option<Duration>,
    pub discord: Discord,
    pub incidents: Incidents,
    /// Where the health and metrics endpoint listens, when enabled.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The bearer token the job API (`/api/...`) asks for. When none is configured, the
    /// job API answers only to loopback connections.
    pub api_token: SecretRef,
    pub log_format: LogFormat,
    /// `[store]`: sled in the data directory, or PostgreSQL shared by replicas.
    pub store: store::Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Huawei IAM password token (`POST /v3/auth/tokens`); SCNet password tokens.
    Password,
    /// Access key / secret key request signing.
    AkSk,
    /// An HTTP account: `Authorization: Bearer <token>`.
    Bearer,
    /// An HTTP account: the token in a header of the account's naming.
    Header,
    /// An HTTP account without authentication, or the local account of commands.
    None,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::AkSk => "aksk",
            AuthMethod::Bearer => "bearer",
            AuthMethod::Header => "header",
            AuthMethod::None => "none",
        }
    }

    /// The secrets an account authenticating this way needs, by the name of their key.
    pub fn secrets(self, account: &Account) -> Vec<(&'static str, &SecretRef)> {
        match self {
            AuthMethod::Password => vec![("password", &account.password)],
            AuthMethod::AkSk => vec![
                ("access_key", &account.access_key),
                ("secret_key", &account.secret_key),
            ],
            AuthMethod::Bearer | AuthMethod::Header => vec![("token", &account.token)],
            AuthMethod::None => Vec::new(),
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
    /// An HTTP account's bearer or header token.
    pub token: SecretRef,
    /// Service name (`iam`, `ddm`, ...) -> base URL, overriding the region table. For an
    /// HTTP account, the base URLs its declared operations name.
    pub endpoints: BTreeMap<String, String>,
    /// Overrides the provider's default poll interval (never below its floor).
    pub poll_interval: Option<Duration>,
    pub request_timeout: Duration,
    /// Settings only some providers use (SCNet user and cluster, Alibaba call budget).
    pub settings: ProviderSettings,
}

impl Account {
    /// Where the account's resources live: provider, region, the services' endpoints when
    /// configured (never the sign-in ones, which say nothing about that), project and SCNet
    /// cluster. Two accounts that reach the same resources have the same place, whatever
    /// their names.
    pub fn place(&self) -> String {
        let endpoints: Vec<&str> = (self.endpoints.iter())
            .filter(|(service, _)| !matches!(service.as_str(), "iam" | "token"))
            .map(|(_, url)| url.trim_end_matches('/'))
            .collect();
        let s = &self.settings;
        let cluster = s.cluster_id.as_deref().or(s.cluster_name.as_deref());
        format!(
            "{}|{}|{}|{}|{}",
            self.provider.name(),
            self.region,
            endpoints.join(","),
            self.project_id.as_deref().unwrap_or(""),
            cluster.unwrap_or(""),
        )
    }
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
    /// HTTP accounts with `auth = "header"`: the header that carries the token.
    pub auth_header: Option<String>,
}

/// What only the cloud layer knows, handed to config validation: the built-in operations,
/// and whether an account's endpoints can serve them.
pub struct Builtins {
    pub catalog: Catalog,
    /// A problem (key under the account, message) with an account no operation could reach.
    pub check_account: fn(&Account) -> Option<(String, String)>,
    /// Why a service cannot be reached on an account, if it cannot.
    pub check_service: fn(&Account, &str) -> Option<String>,
    /// Why an account cannot reach the endpoint a declared operation names (its key, e.g.
    /// `rds`), if it cannot.
    pub check_endpoint: fn(&Account, &str) -> Option<String>,
    /// The endpoint keys each provider's accounts understand (`endpoints = { ... }`).
    pub endpoint_keys: fn(Provider) -> &'static [&'static str],
}

/// One thing wrong with the config, at a key path such as `rules[1].approver_roles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Where in the file, when the key or value can be found there.
    pub at: Option<Location>,
    /// The file it is in, when not the config file itself (a file of declared operations).
    pub file: Option<PathBuf>,
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
            file: None,
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
        for p in &self.list {
            let file = p.file.as_ref().unwrap_or(&self.file).display();
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
    pub fn load(path: &Path, builtins: &Builtins) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| Problems {
            file: path.to_path_buf(),
            list: vec![Problem::new("", format!("cannot read the file: {e}"))],
        })?;
        Config::parse(&text, path, builtins)
    }

    pub fn parse(text: &str, source: &Path, builtins: &Builtins) -> Result<Config, Problems> {
        validate::parse(text, source, builtins).map_err(|list| Problems {
            file: source.to_path_buf(),
            list,
        })
    }

    /// [`Config::load`], then the checks of [`startup`] for `usage`: what `check-config`,
    /// `shell` and `run` accept.
    pub fn load_for(path: &Path, usage: Use, builtins: &Builtins) -> Result<Config, Problems> {
        let config = Config::load(path, builtins)?;
        let mut list = config.startup_problems(usage);
        // Placing problems parses the whole file again: only when there are some.
        if !list.is_empty() {
            if let Ok(text) = std::fs::read_to_string(path) {
                places::Places::of(&text).locate(&mut list);
            }
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
