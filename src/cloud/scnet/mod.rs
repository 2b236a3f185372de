//! SCNet (超算互联网 / Sugon "accloud"): one client per account, shared by its operations
//! (container restart today).
//!
//! [`ScnetClient::ai_send`] is the only way an operation reaches the AI APIs: it gets the
//! cluster's token (cached, renewed before the JWT's `expireTime`), the AI base URL
//! (`endpoints.ai`, or discovered once from the center API), sends with the `token`
//! header, and on envelope code 10008 renews the token and sends once more (the call was
//! refused, so nothing started).

pub mod center;
pub mod envelope;
pub mod restart;
pub mod sign;
pub mod token;

use std::sync::Arc;

use reqwest::header::{HeaderName, CONTENT_TYPE};
use reqwest::{Method, Url};
use tokio::sync::Mutex;

use crate::cloud::http::{self, header_value, secret_header, Answer, Outgoing, SendError};
use crate::config::Account;
use crate::ports::cloud::{CloudError, Described};
use crate::secret::Secret;

const TOKEN_HEADER: HeaderName = HeaderName::from_static("token");
pub const CENTER_PATH: &str = "/ac/openapi/v2/center";

pub struct ScnetClient {
    account: Arc<Account>,
    http: crate::cloud::http::Http,
    tokens: token::TokenCache,
    /// The AI base URL once known (from the config, or discovered).
    ai_base: Mutex<Option<String>>,
}

/// Which token a call uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Cluster,
    Platform,
}

impl ScnetClient {
    pub fn new(account: Arc<Account>, http: crate::cloud::http::Http) -> ScnetClient {
        let ai = account.endpoints.get("ai").map(|u| center::normalise(u));
        ScnetClient {
            account,
            http,
            tokens: token::TokenCache::new(),
            ai_base: Mutex::new(ai),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// The token service base: `endpoints.token`, else `endpoints.ac`.
    pub fn token_base(&self) -> Result<String, String> {
        self.account
            .endpoints
            .get("token")
            .or_else(|| self.account.endpoints.get("ac"))
            .map(|b| b.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                format!(
                    "account `{}` needs endpoints.token (or endpoints.ac) for SCNet tokens",
                    self.account.name
                )
            })
    }

    /// True when the AI base is set in the config or `endpoints.ac` lets it be discovered.
    pub fn check_endpoints(&self) -> Result<(), String> {
        self.token_base()?;
        if !self.account.endpoints.contains_key("ai") && !self.account.endpoints.contains_key("ac")
        {
            return Err(format!(
                "account `{}` needs endpoints.ai, or endpoints.ac to find it",
                self.account.name
            ));
        }
        Ok(())
    }

    /// Every endpoint of SCNet is configured, so any of them may be local; the poll floor
    /// is relaxed only when the AI base is a loopback address (the emulator).
    pub fn is_local(&self) -> bool {
        ["ai", "ac", "token"].iter().any(|k| {
            self.account.endpoints.get(*k).is_some_and(|u| {
                u.starts_with("http://127.0.0.1") || u.starts_with("http://localhost")
            })
        })
    }

    async fn tokens(&self) -> Result<token::Tokens, SendError> {
        let base = self
            .token_base()
            .map_err(|m| SendError::Failed(CloudError::local(m)))?;
        self.tokens.get(&self.http, &self.account, &base).await
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        token: &Secret,
    ) -> Result<Answer, SendError> {
        let out = Outgoing {
            method: method.clone(),
            url: url.clone(),
            headers: vec![
                (CONTENT_TYPE, header_value("application/json")?),
                (TOKEN_HEADER, secret_header(token.expose())?),
            ],
            body: Vec::new(),
            timeout: self.account.request_timeout,
        };
        tracing::debug!(account = %self.account.name, %method, path = %url.path(), "sending");
        let answer = http::exchange(&self.http, out).await?.into_answer();
        tracing::debug!(account = %self.account.name, path = %url.path(), status = answer.status, "answered");
        Ok(answer)
    }

    /// Sends with the scope's token; on code 10008 renews the tokens and sends once more.
    async fn send_with_token(
        &self,
        scope: Scope,
        method: Method,
        url: Url,
    ) -> Result<Answer, SendError> {
        let pick = |t: token::Tokens| -> Result<Secret, SendError> {
            match scope {
                Scope::Cluster => Ok(t.cluster),
                Scope::Platform => t.platform.ok_or_else(|| {
                    SendError::Failed(CloudError::local(
                        "the token answer had no platform token (clusterId 0 / ac) for the \
                         center API; set endpoints.ai instead",
                    ))
                }),
            }
        };
        let token = pick(self.tokens().await?)?;
        let answer = self.send_once(&method, &url, &token).await?;
        if !envelope::token_refused(&answer) {
            return Ok(answer);
        }
        tracing::info!(account = %self.account.name, "SCNet refused the token (10008); renewing it and sending once more");
        self.tokens.invalidate(&token).await;
        let token = pick(self.tokens().await?)?;
        self.send_once(&method, &url, &token).await
    }

    /// The AI base URL, discovering it from the center API the first time if need be.
    pub async fn ai_base(&self) -> Result<String, SendError> {
        let mut slot = self.ai_base.lock().await;
        if let Some(base) = slot.as_ref() {
            return Ok(base.clone());
        }
        let local = |m: String| SendError::Failed(CloudError::local(m));
        let ac = self.account.endpoints.get("ac").ok_or_else(|| {
            local(format!(
                "account `{}` needs endpoints.ai or endpoints.ac",
                self.account.name
            ))
        })?;
        let url = Url::parse(&format!("{}{CENTER_PATH}", ac.trim_end_matches('/')))
            .map_err(|e| local(format!("bad endpoint `{ac}`: {e}")))?;
        // A look-up changes nothing: a lost answer only means "not known yet".
        let answer = match self
            .send_with_token(Scope::Platform, Method::GET, url)
            .await
        {
            Err(SendError::Indeterminate(m)) => {
                return Err(SendError::NotSent(format!("center: {m}")))
            }
            other => other?,
        };
        if answer.status == 429 || answer.status >= 500 {
            return Err(SendError::NotSent(format!(
                "the center API is unavailable (HTTP {})",
                answer.status
            )));
        }
        let data = envelope::data(&answer).map_err(SendError::Failed)?;
        let base = center::ai_base_from_center(&self.account, &data).map_err(local)?;
        tracing::info!(account = %self.account.name, ai = %base, "SCNet AI base URL from the center API");
        *slot = Some(base.clone());
        Ok(base)
    }

    /// Sends one request to `{ai}{path}?{query}` with the cluster token.
    pub async fn ai_send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer, SendError> {
        let base = self.ai_base().await?;
        let url =
            ai_url(&base, path, query).map_err(|e| SendError::Failed(CloudError::local(e)))?;
        self.send_with_token(Scope::Cluster, method, url).await
    }

    /// A request to the AI API as it would go out, without the token. Before the AI base URL
    /// has been found through the center API, the URL says where it will be found.
    pub fn describe_ai(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Described, String> {
        let known = self.ai_base.try_lock().ok().and_then(|base| base.clone());
        let url = match known {
            Some(base) => ai_url(&base, path, query)?.to_string(),
            None => {
                let ac = self.account.endpoints.get("ac").ok_or_else(|| {
                    format!("account `{}` has no endpoints.ai or .ac", self.account.name)
                })?;
                // The same path and query on a stand-in base, shown after where the base
                // will come from.
                let url = ai_url("https://ai.invalid", path, query)?;
                let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
                format!(
                    "<the AI base URL found at {}{CENTER_PATH}>{}{query}",
                    ac.trim_end_matches('/'),
                    url.path()
                )
            }
        };
        Ok(Described {
            method: method.to_string(),
            url,
            body: None,
            auth: "a cluster token from the SCNet token service (not shown)".into(),
            headers: Vec::new(),
        })
    }
}

/// `{base}{path}?{query}`, the query form-encoded, as every AI request is sent.
fn ai_url(base: &str, path: &str, query: &[(&str, &str)]) -> Result<Url, String> {
    let mut url = Url::parse(&format!("{base}{path}"))
        .map_err(|e| format!("bad AI endpoint `{base}`: {e}"))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) fn test_account() -> Account {
    use std::collections::BTreeMap;
    use std::time::Duration;
    Account {
        name: "s".into(),
        provider: crate::domain::Provider::Scnet,
        region: String::new(),
        project_id: None,
        default: false,
        auth: crate::config::AuthMethod::Password,
        iam_user: None,
        iam_domain: None,
        password: Default::default(),
        access_key: Default::default(),
        secret_key: Default::default(),
        token: Default::default(),
        endpoints: BTreeMap::new(),
        poll_interval: None,
        request_timeout: Duration::from_secs(30),
        settings: Default::default(),
    }
}
