//! The TOML file as written. Validation into [`super::Config`] happens in `validate.rs`,
//! so that every problem can be reported at once with its key path.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub bot: RawBot,
    pub roles: BTreeMap<String, RawId>,
    pub channels: BTreeMap<String, RawId>,
    pub accounts: BTreeMap<String, RawAccount>,
    pub targets: BTreeMap<String, RawTarget>,
    pub rules: Vec<RawRule>,
    /// Operations declared in the config (HTTP calls and local commands).
    pub operations: Vec<super::declared::raw::RawOperation>,
    pub freezes: Vec<super::freezes::RawFreeze>,
    pub discord: Option<super::sections::RawDiscord>,
    pub incidents: super::sections::RawIncidents,
    pub http: super::sections::RawHttp,
    pub log: super::sections::RawLog,
    pub store: super::store::RawStore,
}

/// Discord snowflakes are 64-bit; TOML integers are signed 64-bit, so accept strings too.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawId {
    Number(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBot {
    pub prefix: Option<String>,
    pub data_dir: Option<String>,
    pub admin_roles: Vec<String>,
    /// Channels whose jobs each get a thread on their card (as `[[rules]] thread = true`).
    pub thread_channels: Vec<String>,
    /// How long finished jobs and their audit entries are kept (`"180d"`), or `"forever"`.
    pub keep_finished: Option<String>,
    /// A directory (relative to the config's) of `*.toml` files of `[[operations]]`.
    pub operations_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAccount {
    pub provider: Option<String>,
    pub region: Option<String>,
    pub project_id: Option<String>,
    pub default: bool,
    pub auth: Option<String>,
    pub iam_user: Option<String>,
    pub iam_domain: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub access_key_env: Option<String>,
    pub access_key_file: Option<String>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<String>,
    /// HTTP accounts: the bearer or header token, and the header that carries it.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub auth_header: Option<String>,
    pub endpoints: BTreeMap<String, String>,
    pub poll_interval: Option<String>,
    pub request_timeout: Option<String>,
    /// Alibaba: API calls per minute the account may make (SAE allows 60 per user).
    pub calls_per_minute: Option<i64>,
    /// SCNet: the platform user name, the organisation ID (password auth), and the cluster
    /// (computing region) whose token and AI endpoint are used.
    pub scnet_user: Option<String>,
    pub org_id: Option<String>,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    /// SCNet: the status field of the container detail answer (UNCONFIRMED upstream).
    pub status_field: Option<String>,
    /// Labels rules can scope by, e.g. `{ env = "prod" }`; the account's targets inherit them.
    pub tags: BTreeMap<String, String>,
    /// The requester must type the target's name to confirm before the request is posted.
    pub confirm: bool,
    /// `--break-glass "reason"` may skip the approvals, for `break_glass_roles`.
    pub break_glass: bool,
    pub break_glass_roles: Vec<String>,
    /// Progress and the audit trail go to a thread on the job's card.
    pub thread: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTarget {
    pub service: Option<String>,
    pub account: Option<String>,
    pub description: Option<String>,
    /// Labels rules can scope by, over the account's.
    pub tags: BTreeMap<String, String>,
    /// Service-specific identifiers (e.g. `instance_id`); checked against the command table.
    #[serde(flatten)]
    pub params: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRule {
    pub name: Option<String>,
    pub command: Option<String>,
    pub modes: Vec<String>,
    pub request_roles: Vec<String>,
    pub channels: Vec<String>,
    pub approvals: Option<i64>,
    pub approver_roles: Vec<String>,
    pub expires: Option<String>,
    /// Scope: named targets, accounts, or tags the rule acts on; none means anything.
    pub targets: Vec<String>,
    pub accounts: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// The requester must type the target's name to confirm before the request is posted.
    pub confirm: bool,
    /// `--break-glass "reason"` may skip the approvals, for `break_glass_roles`.
    pub break_glass: bool,
    pub break_glass_roles: Vec<String>,
    /// Progress and the audit trail go to a thread on the job's card.
    pub thread: bool,
}
