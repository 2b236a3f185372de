//! The request a job would send, described without sending it (`--dry-run`): method, URL
//! and body, built from the operation table, the account's endpoints and the job's
//! parameters, and never any credential (only how the request would be authenticated).
//!
//! It mirrors what each operation in `cloud/` sends (which this file may not call into
//! without sending): a change to a request's shape there must be made here too.
//! `tests/approval_flows.rs` checks the DDM and TaurusDB descriptions.

use crate::cloud::huawei::endpoints::{self, Service};
use crate::cloud::JobSpec;
use crate::config::{Account, AuthMethod, Config};

/// One request as it would go out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub method: &'static str,
    pub url: String,
    pub body: Option<String>,
    /// How it would be authenticated, e.g. `X-Auth-Token: an IAM user token (not shown)`.
    pub auth: String,
}

impl Described {
    pub fn lines(&self) -> String {
        let mut out = format!("{} {}", self.method, self.url);
        if let Some(body) = &self.body {
            out.push_str(&format!("\n    body: {body}"));
        }
        out.push_str(&format!("\n    auth: {}", self.auth));
        out
    }
}

/// What `spec` would send, or why it cannot be told (an endpoint the config lacks).
pub fn describe(spec: &JobSpec, config: &Config) -> Result<Described, String> {
    let account = config
        .accounts
        .get(&spec.account)
        .ok_or_else(|| format!("account `{}` is not in the config", spec.account))?;
    let p = |key: &str| spec.param(key).unwrap_or("");
    let project = account.project_id.as_deref().unwrap_or("");
    match spec.operation.as_str() {
        "ddm.restart" => Ok(Described {
            method: "POST",
            url: format!(
                "{}/v1/{project}/instances/{}/action",
                huawei_base(account, Service::Ddm)?,
                p("instance_id")
            ),
            body: Some(serde_json::json!({"restart": {"type": p("mode")}}).to_string()),
            auth: huawei_auth(account),
        }),
        "taurus-proxy.restart" => Ok(Described {
            method: "POST",
            url: format!(
                "{}/v3/{project}/instances/{}/proxy/{}/restart",
                huawei_base(account, Service::Gaussdb)?,
                p("instance_id"),
                p("proxy_id")
            ),
            body: None,
            auth: huawei_auth(account),
        }),
        "taurus-proxy.upgrade" => Ok(Described {
            method: "POST",
            url: format!(
                "{}/v3/{project}/instances/{}/proxy/{}/upgrade-version",
                huawei_base(account, Service::Gaussdb)?,
                p("instance_id"),
                p("proxy_id")
            ),
            body: Some(
                serde_json::json!({
                    "source_version": p("source_version"),
                    "target_version": p("target_version")
                })
                .to_string(),
            ),
            auth: huawei_auth(account),
        }),
        "sae.restart" => {
            let base = match account.endpoints.get("sae") {
                Some(b) => b.trim_end_matches('/').to_string(),
                None => format!("https://sae.{}.aliyuncs.com", account.region),
            };
            Ok(Described {
                method: "PUT",
                url: format!(
                    "{base}{}?AppId={}&InstanceIds={}",
                    crate::cloud::alibaba::sae::RESTART_PATH,
                    p("app_id"),
                    p("instance_ids")
                ),
                body: None,
                auth: "ACS3-HMAC-SHA256 signature with the account's access key (not shown)".into(),
            })
        }
        "scnet.restart" => {
            let base = match (account.endpoints.get("ai"), account.endpoints.get("ac")) {
                (Some(ai), _) => ai.trim_end_matches('/').to_string(),
                (None, Some(ac)) => format!(
                    "<the AI base URL found at {}/ac/openapi/v2/center>",
                    ac.trim_end_matches('/')
                ),
                (None, None) => return Err("the account has no endpoints.ai or .ac".into()),
            };
            Ok(Described {
                method: "POST",
                url: format!(
                    "{base}{}?instanceServiceId={}",
                    crate::cloud::scnet::restart::RESTART_PATH,
                    p("instance_service_id")
                ),
                body: None,
                auth: "a cluster token from the SCNet token service (not shown)".into(),
            })
        }
        other => Err(format!("opsgate cannot describe `{other}` requests")),
    }
}

fn huawei_base(account: &Account, service: Service) -> Result<String, String> {
    endpoints::resolve(account, service).map(|e| e.base)
}

fn huawei_auth(account: &Account) -> String {
    match account.auth {
        AuthMethod::Password => format!(
            "X-Auth-Token: an IAM token for user `{}` (not shown)",
            account.iam_user.as_deref().unwrap_or("")
        ),
        AuthMethod::AkSk => {
            "SDK-HMAC-SHA256 signature with the account's access key (not shown)".to_string()
        }
    }
}
