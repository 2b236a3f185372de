//! Alibaba Cloud: one client per account, shared by its operations (SAE restart today).
//!
//! [`AlibabaClient::send`] is the only way an operation reaches Alibaba. It waits for the
//! account's call budget, resolves the endpoint, signs with ACS3-HMAC-SHA256 (a fresh
//! nonce and date per attempt) and says precisely what happened: an [`Answer`], or a
//! [`SendError`] that tells "never sent" from "may have been sent".

pub mod errors;
pub mod limiter;
pub mod sae;
pub mod signer;

use std::borrow::Cow;
use std::sync::Arc;

use reqwest::header::{HeaderName, ACCEPT, AUTHORIZATION, HOST};
use reqwest::{Method, Url};

pub use crate::cloud::http::{Answer, SendError};
pub use limiter::RateLimiter;

use crate::cloud::http::{self, header_value, secret_header, Endpoint, Outgoing};
use crate::config::Account;
use crate::ports::cloud::{CloudError, Described};

/// The URL a request goes to, and the full path that is signed.
fn wire_url(
    endpoint: &Endpoint,
    path: &str,
    query: &[(&str, &str)],
) -> Result<(Url, String), String> {
    endpoint.wire_url(path, query, signer::canonical_uri, signer::canonical_query)
}

/// SAE's documented limit: 60 API calls per minute per user, across all SAE APIs.
pub const DEFAULT_CALLS_PER_MINUTE: u32 = 60;

/// An Alibaba product API: which endpoint key and which version (the built-ins' are
/// constants; a declared operation's come from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// Key of `account.endpoints`, and the host prefix (`sae.{region}.aliyuncs.com`).
    pub service: Cow<'static, str>,
    pub version: Cow<'static, str>,
}

pub const SAE: Api = Api {
    service: Cow::Borrowed("sae"),
    version: Cow::Borrowed("2019-05-06"),
};

/// One request to an Alibaba API, as an operation builds it: both what is sent and what a
/// dry run shows come from this.
#[derive(Clone, Debug)]
pub struct Request {
    pub api: Api,
    /// The API's action (`x-acs-action`), e.g. `RestartInstances`.
    pub action: Cow<'static, str>,
    pub method: Method,
    /// Unencoded.
    pub path: Cow<'static, str>,
    pub query: Vec<(String, String)>,
}

impl Request {
    fn query(&self) -> Vec<(&str, &str)> {
        (self.query.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

pub struct AlibabaClient {
    account: Arc<Account>,
    http: crate::cloud::http::Http,
    /// Shared by every call of every operation of this account.
    pub limiter: RateLimiter,
}

impl AlibabaClient {
    pub fn new(account: Arc<Account>, http: crate::cloud::http::Http) -> AlibabaClient {
        let per_minute = account
            .settings
            .calls_per_minute
            .unwrap_or(DEFAULT_CALLS_PER_MINUTE);
        AlibabaClient {
            account,
            http,
            limiter: RateLimiter::per_minute(per_minute),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// `endpoints.<service>` if set, else `https://<service>.<region>.aliyuncs.com`.
    pub fn endpoint(&self, api: &Api) -> Result<Endpoint, String> {
        if let Some(base) = self.account.endpoints.get(api.service.as_ref()) {
            return Ok(Endpoint {
                base: base.trim_end_matches('/').to_string(),
                overridden: true,
            });
        }
        let region = &self.account.region;
        if region.is_empty() {
            return Err(format!(
                "account `{}` has no region; set accounts.{}.region or endpoints.{}",
                self.account.name, self.account.name, api.service
            ));
        }
        Ok(Endpoint {
            base: format!("https://{}.{region}.aliyuncs.com", api.service),
            overridden: false,
        })
    }

    /// `request` as it would go out, without any credential.
    pub fn describe(&self, request: &Request) -> Result<Described, String> {
        let endpoint = self.endpoint(&request.api)?;
        let (url, _) = wire_url(&endpoint, &request.path, &request.query())?;
        Ok(Described {
            method: request.method.to_string(),
            url: url.to_string(),
            body: None,
            auth: format!(
                "ACS3-HMAC-SHA256 signature of `{}` with the account's access key (not shown)",
                request.action
            ),
            headers: Vec::new(),
        })
    }

    /// Sends `request` once (see [`send`](Self::send)).
    pub async fn send_request(&self, request: &Request) -> Result<Answer, SendError> {
        let query = request.query();
        (self.send(
            &request.api,
            &request.action,
            request.method.clone(),
            &request.path,
            &query,
        ))
        .await
    }

    /// Sends one signed request (no body) and reads the answer. `path` is unencoded; the
    /// query is sent exactly as it is signed (RFC 3986, sorted).
    pub async fn send(
        &self,
        api: &Api,
        action: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer, SendError> {
        let failed = |m: String| SendError::Failed(CloudError::local(m));
        let what = |k: &str| format!("the {k} of account `{}`", self.account.name);
        let access = self
            .account
            .access_key
            .require(&what("access key"))
            .map_err(failed)?
            .clone();
        let secret = self
            .account
            .secret_key
            .require(&what("secret key"))
            .map_err(failed)?
            .clone();
        let endpoint = self.endpoint(api).map_err(failed)?;
        let (url, full_path) = wire_url(&endpoint, path, query).map_err(failed)?;
        let host = http::host_header(&url)
            .ok_or_else(|| failed(format!("endpoint `{}` has no host", endpoint.base)))?;

        let waited = self.limiter.acquire().await;
        if !waited.is_zero() {
            tracing::debug!(account = %self.account.name, waited_ms = waited.as_millis() as u64, "waited for the call budget");
        }
        // Date and nonce are taken after the wait, so a long wait cannot stale them.
        let date = signer::acs_date(time::OffsetDateTime::now_utc());
        let nonce = signer::new_nonce();
        let payload_hash = signer::hex_sha256(b"");
        let signed_headers = [
            ("host", host.as_str()),
            (signer::ACTION_HEADER, action),
            (signer::CONTENT_SHA_HEADER, payload_hash.as_str()),
            (signer::DATE_HEADER, date.as_str()),
            (signer::NONCE_HEADER, nonce.as_str()),
            (signer::VERSION_HEADER, api.version.as_ref()),
        ];
        let input = signer::SigningInput {
            method: method.as_str(),
            path: &full_path,
            query,
            headers: &signed_headers,
            payload_hash: &payload_hash,
        };
        let signed = signer::sign(access.expose(), secret.expose(), &input);
        let mut headers = vec![(ACCEPT, header_value("application/json")?)];
        for (name, value) in signed_headers {
            let name = if name == "host" {
                HOST
            } else {
                HeaderName::from_static(name)
            };
            headers.push((name, header_value(value)?));
        }
        headers.push((AUTHORIZATION, secret_header(&signed.authorization)?));
        tracing::debug!(account = %self.account.name, %method, action, path = %full_path, "sending");
        let out = Outgoing {
            method: method.clone(),
            url,
            headers,
            body: Vec::new(),
            timeout: self.account.request_timeout,
        };
        let answer = http::exchange(&self.http, out).await?.into_answer();
        tracing::debug!(account = %self.account.name, action, status = answer.status, "answered");
        Ok(answer)
    }
}
