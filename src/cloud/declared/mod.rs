//! Operations declared in the config, built for an account: an HTTP call through the
//! vendor's own client (`operation.rs`, `transport.rs`), or a local command
//! (`cloud::command`). The registry builds one per (declared operation, account of its
//! provider), as it does for the built-ins.

mod fill;
mod operation;
mod transport;

use std::sync::Arc;

pub use operation::DeclaredHttp;
use transport::Transport;

use super::operation::AccountClients;
use super::{alibaba, huawei};
use crate::config::declared::Action;
use crate::config::{Account, Declaration};
use crate::domain::Provider;
use crate::ports::cloud::CloudOperation;

/// The operation `decl` on the account of `clients`, or why it cannot run there.
pub fn build(
    decl: &Arc<Declaration>,
    clients: &AccountClients,
) -> Result<Arc<dyn CloudOperation>, String> {
    let account = &clients.account;
    let call = match &decl.action {
        Action::Command(run) => {
            return Ok(Arc::new(super::command::CommandOperation::new(
                decl.clone(),
                run,
            )?))
        }
        Action::Http(call) => call,
    };
    if let Some(why) = call.auth.misfit(account.auth) {
        return Err(format!(
            "`{}` cannot run on account `{}`: {why}",
            decl.id, account.name
        ));
    }
    if let Some(why) = check_endpoint(account, &call.endpoint) {
        return Err(why);
    }
    let missing = |what: &str| format!("account `{}` has no {what} client", account.name);
    let transport = match decl.provider {
        Provider::Huawei => Transport::Huawei {
            client: clients.huawei.clone().ok_or_else(|| missing("Huawei"))?,
            service: huawei::Service::from_key(&call.endpoint)
                .ok_or_else(|| format!("unknown Huawei endpoint `{}`", call.endpoint))?,
        },
        Provider::Alibaba => {
            let (action, version) = call.alibaba.clone().unwrap_or_default();
            Transport::Alibaba {
                client: clients.alibaba.clone().ok_or_else(|| missing("Alibaba"))?,
                api: alibaba::Api {
                    service: call.endpoint.clone().into(),
                    version: version.into(),
                },
                action,
            }
        }
        Provider::Scnet => Transport::Scnet {
            client: clients.scnet.clone().ok_or_else(|| missing("SCNet"))?,
        },
        Provider::Http => Transport::Http {
            http: clients.http.clone(),
            account: account.clone(),
            base: account
                .endpoints
                .get(&call.endpoint)
                .cloned()
                .unwrap_or_default(),
        },
        Provider::Local => return Err("an HTTP call needs an HTTP account".into()),
    };
    Ok(Arc::new(DeclaredHttp::new(
        decl.clone(),
        account.clone(),
        transport,
    )))
}

/// Why `account` cannot reach the endpoint `key` a declared operation names, if it cannot.
pub fn check_endpoint(account: &Account, key: &str) -> Option<String> {
    match account.provider {
        Provider::Huawei => match huawei::Service::from_key(key) {
            Some(service) => huawei::endpoints::resolve(account, service).err(),
            None => Some(format!("unknown Huawei endpoint `{key}`")),
        },
        Provider::Alibaba if account.region.is_empty() && !account.endpoints.contains_key(key) => {
            Some(format!(
                "account `{}` has no region; set accounts.{}.region or endpoints.{key}",
                account.name, account.name
            ))
        }
        Provider::Scnet
            if !account.endpoints.contains_key("ai") && !account.endpoints.contains_key("ac") =>
        {
            Some(format!(
                "account `{}` needs endpoints.ai or endpoints.ac",
                account.name
            ))
        }
        Provider::Http if !account.endpoints.contains_key(key) => Some(format!(
            "account `{}` has no endpoints.{key}: set it to the API's base URL",
            account.name
        )),
        _ => None,
    }
}

/// The endpoint keys each provider's accounts understand.
pub fn endpoint_keys(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Huawei => &huawei::Service::KEYS,
        Provider::Alibaba => &["sae"],
        Provider::Scnet => &["token", "ac", "ai"],
        Provider::Http | Provider::Local => &[],
    }
}
