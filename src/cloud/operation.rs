//! What an operation module gives (`BuiltIn`: its catalog row and how it is built) and what
//! it is built from (`AccountClients`: one account's clients, shared by its operations).
//! Below the catalog and the registry, so the operation modules they list import neither.

use std::sync::Arc;

use super::http::Http;
use super::{alibaba, huawei, scnet};
use crate::command::OperationDef;
use crate::config::Account;
use crate::ports::cloud::CloudOperation;

/// One built-in operation, as its module gives it.
pub struct BuiltIn {
    /// Its row in the catalog: verb, service, parameters with their patterns, modes, help.
    pub def: fn() -> OperationDef,
    /// The operation for one account.
    pub build: fn(&AccountClients) -> Result<Arc<dyn CloudOperation>, String>,
}

/// The per-account clients an operation is built from.
pub struct AccountClients {
    pub account: Arc<Account>,
    pub huawei: Option<Arc<huawei::HuaweiClient>>,
    /// Holds the account's SAE call budget, shared by all its SAE jobs.
    pub alibaba: Option<Arc<alibaba::AlibabaClient>>,
    /// Holds the account's SCNet token and AI base URL.
    pub scnet: Option<Arc<scnet::ScnetClient>>,
    /// The provider's HTTP client (its bound on requests in flight), for HTTP accounts.
    pub http: Http,
}
