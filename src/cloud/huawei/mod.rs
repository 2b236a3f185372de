//! Huawei Cloud: one client per account, shared by its operations (DDM, TaurusDB).
//!
//! [`HuaweiClient::send`] is the only way an operation reaches Huawei. It resolves the
//! endpoint, authenticates (IAM token or AK/SK signature), and says precisely what happened:
//! an [`Answer`], or a [`SendError`] that tells "never sent" from "may have been sent".

pub mod ddm;
pub mod endpoints;
pub mod errors;
pub mod iam;
pub mod retry;
pub mod signer;
pub mod taurus_job;
pub mod taurus_restart;
pub mod taurus_upgrade;

use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use reqwest::{Method, Url};

pub use crate::cloud::http::{Answer, SendError};
pub use endpoints::{Endpoint, Service};

use crate::cloud::http::{self, header_value, Outgoing};
use crate::config::{Account, AuthMethod};
use crate::ports::cloud::{CloudError, Described};
use crate::secret::Secret;

/// The URL a request goes to, and the full path that is signed.
fn wire_url(
    endpoint: &Endpoint,
    path: &str,
    query: &[(&str, &str)],
) -> Result<(Url, String), String> {
    endpoint.wire_url(path, query, signer::wire_path, signer::wire_query)
}

const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
const X_PROJECT_ID: HeaderName = HeaderName::from_static("x-project-id");
const X_SDK_DATE: HeaderName = HeaderName::from_static("x-sdk-date");

/// One request to a Huawei service, as an operation builds it: both what is sent and what a
/// dry run shows come from this.
#[derive(Clone, Debug)]
pub struct Request {
    pub service: Service,
    pub method: Method,
    /// Unencoded (IDs in it are validated before they get here).
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Fixed headers besides the ones the client sets (a declared operation's); sent
    /// unsigned, which SDK-HMAC-SHA256 allows.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn post(service: Service, path: String, body: Option<Vec<u8>>) -> Request {
        Request {
            service,
            method: Method::POST,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body,
        }
    }
}

/// What a send is made of besides its body.
struct Parts<'a> {
    service: Service,
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    headers: &'a [(HeaderName, HeaderValue)],
}

pub struct HuaweiClient {
    account: Arc<Account>,
    http: crate::cloud::http::Http,
    tokens: iam::TokenCache,
}

/// How a request is authenticated for one attempt.
enum Credential {
    Token(Secret),
    AkSk { access: Secret, secret: Secret },
}

impl HuaweiClient {
    pub fn new(account: Arc<Account>, http: crate::cloud::http::Http) -> HuaweiClient {
        HuaweiClient {
            account,
            http,
            tokens: iam::TokenCache::new(),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    pub fn endpoint(&self, service: Service) -> Result<Endpoint, String> {
        endpoints::resolve(&self.account, service)
    }

    /// The project every Huawei call of this account is scoped to.
    pub fn project_id(&self) -> Result<&str, CloudError> {
        self.account.project_id.as_deref().ok_or_else(|| {
            CloudError::local(format!(
                "accounts.{}.project_id is not set",
                self.account.name
            ))
        })
    }

    /// Sends `request` once (see [`send`](Self::send)).
    pub async fn send_request(&self, request: &Request) -> Result<Answer, SendError> {
        let query: Vec<(&str, &str)> = (request.query.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut extra = Vec::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|_| {
                SendError::Failed(CloudError::local(format!("bad header name `{name}`")))
            })?;
            extra.push((name, header_value(value)?));
        }
        let request_parts = Parts {
            service: request.service,
            method: request.method.clone(),
            path: &request.path,
            query: &query,
            headers: &extra,
        };
        self.send_parts(request_parts, request.body.clone()).await
    }

    /// `request` as it would go out, without any credential: the URL it is sent to (built
    /// as [`send`](Self::send) builds it), its body, and how it would be authenticated.
    pub fn describe(&self, request: &Request) -> Result<Described, String> {
        let endpoint = self.endpoint(request.service)?;
        let query: Vec<(&str, &str)> = (request.query.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (url, _) = wire_url(&endpoint, &request.path, &query)?;
        let auth = match self.account.auth {
            AuthMethod::Password => format!(
                "X-Auth-Token: an IAM token for user `{}` (not shown)",
                self.account.iam_user.as_deref().unwrap_or("")
            ),
            AuthMethod::AkSk => {
                "SDK-HMAC-SHA256 signature with the account's access key (not shown)".to_string()
            }
            other => format!("auth = \"{}\" is not a Huawei method", other.name()),
        };
        Ok(Described {
            method: request.method.to_string(),
            url: url.to_string(),
            body: (request.body.as_ref()).map(|b| String::from_utf8_lossy(b).into_owned()),
            auth,
            headers: request.headers.clone(),
        })
    }

    /// Sends one request and reads the answer.
    ///
    /// `path` is unencoded (IDs in it are validated before they get here). With password
    /// auth, a 401 means the gateway refused the token before the service saw the request,
    /// so the token is renewed and the request re-sent exactly once.
    pub async fn send(
        &self,
        service: Service,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, SendError> {
        let parts = Parts {
            service,
            method,
            path,
            query,
            headers: &[],
        };
        self.send_parts(parts, body).await
    }

    async fn send_parts(
        &self,
        parts: Parts<'_>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, SendError> {
        let Parts {
            service,
            method,
            path,
            query,
            headers: extra,
        } = parts;
        let failed = |m: String| SendError::Failed(CloudError::local(m));
        let endpoint = self.endpoint(service).map_err(failed)?;
        let body = body.unwrap_or_default();
        match self.account.auth {
            AuthMethod::AkSk => {
                let what = |k: &str| format!("the {k} of account `{}`", self.account.name);
                let access = self
                    .account
                    .access_key
                    .require(&what("access key"))
                    .map_err(failed)?;
                let secret = self
                    .account
                    .secret_key
                    .require(&what("secret key"))
                    .map_err(failed)?;
                let cred = Credential::AkSk {
                    access: access.clone(),
                    secret: secret.clone(),
                };
                self.attempt(&endpoint, &method, path, query, &body, extra, &cred)
                    .await
            }
            AuthMethod::Bearer | AuthMethod::Header | AuthMethod::None => Err(failed(format!(
                "account `{}` has auth = \"{}\", not a Huawei method",
                self.account.name,
                self.account.auth.name()
            ))),
            AuthMethod::Password => {
                let token = self.tokens.get(&self.http, &self.account).await?;
                let answer = self
                    .attempt(
                        &endpoint,
                        &method,
                        path,
                        query,
                        &body,
                        extra,
                        &Credential::Token(token.clone()),
                    )
                    .await?;
                if answer.status != 401 {
                    return Ok(answer);
                }
                tracing::info!(account = %self.account.name, "token refused (401); renewing it and re-sending once");
                self.tokens.invalidate(&token).await;
                let token = self.tokens.get(&self.http, &self.account).await?;
                self.attempt(
                    &endpoint,
                    &method,
                    path,
                    query,
                    &body,
                    extra,
                    &Credential::Token(token),
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        body: &[u8],
        extra: &[(HeaderName, HeaderValue)],
        cred: &Credential,
    ) -> Result<Answer, SendError> {
        let failed = |m: String| SendError::Failed(CloudError::local(m));
        let (url, full_path) = wire_url(endpoint, path, query).map_err(failed)?;
        let host = http::host_header(&url)
            .ok_or_else(|| failed(format!("endpoint `{}` has no host", endpoint.base)))?;
        let content_type = "application/json";

        let mut headers = vec![
            (HOST, header_value(&host)?),
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        ];
        match cred {
            Credential::Token(token) => {
                let mut v = header_value(token.expose())?;
                v.set_sensitive(true);
                headers.push((X_AUTH_TOKEN, v));
            }
            Credential::AkSk { access, secret } => {
                let date = signer::sdk_date(time::OffsetDateTime::now_utc());
                let signed_headers = [
                    ("content-type", content_type),
                    ("host", host.as_str()),
                    ("x-sdk-date", date.as_str()),
                ];
                let input = signer::SigningInput {
                    method: method.as_str(),
                    path: &full_path,
                    query,
                    headers: &signed_headers,
                    body,
                };
                let signed = signer::sign(access.expose(), secret.expose(), &input)
                    .ok_or_else(|| failed("could not sign the request".to_string()))?;
                let mut auth = header_value(&signed.authorization)?;
                auth.set_sensitive(true);
                headers.push((X_SDK_DATE, header_value(&date)?));
                headers.push((AUTHORIZATION, auth));
                // Project-level services want the project when signing with AK/SK.
                if let Some(project) = self.account.project_id.as_deref() {
                    headers.push((X_PROJECT_ID, header_value(project)?));
                }
            }
        }
        headers.extend(extra.iter().cloned());
        tracing::debug!(account = %self.account.name, %method, path = %full_path, "sending");
        let out = Outgoing {
            method: method.clone(),
            url,
            headers,
            body: body.to_vec(),
            timeout: self.account.request_timeout,
        };
        let received = http::exchange(&self.http, out).await?;
        tracing::debug!(account = %self.account.name, %method, path = %full_path, status = received.status, "answered");
        Ok(received.into_answer())
    }
}
