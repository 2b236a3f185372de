//! Builds one [`CloudOperation`] per (operation, account) from the config and the catalog,
//! sharing each account's auth state (token cache, signer) between its operations.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::OPERATIONS;
use super::http::Http;
use super::operation::AccountClients;
use super::{alibaba, huawei, scnet};
use crate::config::Config;
use crate::domain::Provider;
use crate::ports::cloud::{CloudOperation, Operations};

/// Idle connections kept open per cloud host. A quiet bot makes a call now and then; a busy
/// moment opens up to a provider's bound on requests in flight, and each connection kept
/// after it holds its buffers: unbounded, idle RSS after 10,000 jobs was ~0.9 MiB higher
/// than with two or four kept (BENCHMARKS.md, "Memory after many jobs"). Equal to that bound,
/// so no connection a burst opens is closed only to be opened again.
const IDLE_CONNECTIONS_PER_HOST: usize = super::http::REQUESTS_IN_FLIGHT;

#[derive(Default)]
pub struct Registry {
    ops: HashMap<(String, String), Result<Arc<dyn CloudOperation>, String>>,
}

impl Registry {
    pub fn from_config(config: &Config) -> Registry {
        let client = reqwest::Client::builder()
            .user_agent(concat!("opsgate/", env!("CARGO_PKG_VERSION")))
            // Redirects could carry a signed request to another host; the vendors never send them.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
            .build()
            .unwrap_or_default();
        // One bound on requests in flight per provider, shared by its accounts.
        let per_provider: [Http; Provider::ALL.len()] =
            std::array::from_fn(|_| Http::from(client.clone()));
        let mut registry = Registry::default();
        for account in config.accounts.values() {
            let http = &per_provider[account.provider as usize];
            let clients = AccountClients {
                account: account.clone(),
                huawei: (account.provider == Provider::Huawei)
                    .then(|| Arc::new(huawei::HuaweiClient::new(account.clone(), http.clone()))),
                alibaba: (account.provider == Provider::Alibaba)
                    .then(|| Arc::new(alibaba::AlibabaClient::new(account.clone(), http.clone()))),
                scnet: (account.provider == Provider::Scnet)
                    .then(|| Arc::new(scnet::ScnetClient::new(account.clone(), http.clone()))),
                http: http.clone(),
            };
            for op in OPERATIONS {
                let def = (op.def)();
                if def.provider == account.provider {
                    let built = (op.build)(&clients);
                    registry.ops.insert((def.id, account.name.clone()), built);
                }
            }
            // Declared operations: one more implementation of the same seam.
            for decl in config
                .declared
                .iter()
                .filter(|d| d.provider == account.provider)
            {
                let built = super::declared::build(decl, &clients);
                registry
                    .ops
                    .insert((decl.id.clone(), account.name.clone()), built);
            }
        }
        registry
    }

    /// Replaces an operation, e.g. with a scripted fake in engine tests.
    pub fn insert(&mut self, operation: &str, account: &str, op: Arc<dyn CloudOperation>) {
        self.ops
            .insert((operation.to_string(), account.to_string()), Ok(op));
    }
}

impl Operations for Registry {
    fn get(&self, operation: &str, account: &str) -> Result<Arc<dyn CloudOperation>, String> {
        match self.ops.get(&(operation.to_string(), account.to_string())) {
            Some(Ok(op)) => Ok(op.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "no `{operation}` operation is available for account `{account}`"
            )),
        }
    }
}
