use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a job asks a cloud to do. Fixed when the job is requested; approvals are bound to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Operation identifier from the catalog, e.g. `ddm.restart`.
    pub operation: String,
    /// Name of the account in the config whose credentials and endpoints are used.
    pub account: String,
    /// What the user named: a configured target name, or the raw ID they typed.
    pub target: String,
    /// Validated parameters, e.g. `instance_id`, `mode`. Keys are defined by the operation.
    pub params: BTreeMap<String, String>,
}

impl JobSpec {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// Where an operation runs: a cloud vendor behind an account, a generic HTTP API (an
/// operation declared in the config), or this host (a declared local command). Each
/// operation belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Huawei,
    Alibaba,
    Scnet,
    /// An HTTP API of the team's own, reached through an account's configured base URL.
    Http,
    /// A program run on this host (no cloud account).
    Local,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Huawei,
        Provider::Alibaba,
        Provider::Scnet,
        Provider::Http,
        Provider::Local,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Huawei => "huawei",
            Provider::Alibaba => "alibaba",
            Provider::Scnet => "scnet",
            Provider::Http => "http",
            Provider::Local => "local",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }
}
