//! How a declared call reaches its cloud: through the vendor's own client (so it is signed
//! and authenticated exactly as the built-ins are), or, for an HTTP account, through the
//! one HTTP exchange with the account's bearer or header token. The host is always the
//! account's configured or the provider's regional endpoint.

use std::sync::Arc;

use reqwest::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;

use super::fill::Filled;
use crate::cloud::alibaba::{self, AlibabaClient};
use crate::cloud::http::{
    self, encode, header_value, secret_header, Answer, Http, Outgoing, SendError,
};
use crate::cloud::huawei::{self, HuaweiClient, Service};
use crate::cloud::scnet::ScnetClient;
use crate::config::{Account, AuthMethod};
use crate::ports::cloud::{CloudError, Described};

pub enum Transport {
    Huawei {
        client: Arc<HuaweiClient>,
        service: Service,
    },
    Alibaba {
        client: Arc<AlibabaClient>,
        api: alibaba::Api,
        action: String,
    },
    Scnet {
        client: Arc<ScnetClient>,
    },
    Http {
        http: Http,
        account: Arc<Account>,
        /// The account's base URL for the endpoint (no trailing slash).
        base: String,
    },
}

impl Transport {
    /// Whether the endpoint is the config's own (an emulator, a private cloud), which may be
    /// polled faster than a public one.
    pub fn overridden(&self) -> bool {
        match self {
            Transport::Huawei { client, service } => {
                client.endpoint(*service).is_ok_and(|e| e.overridden)
            }
            Transport::Alibaba { client, api, .. } => {
                client.endpoint(api).is_ok_and(|e| e.overridden)
            }
            Transport::Scnet { client } => client.is_local(),
            Transport::Http { base, .. } => {
                base.starts_with("http://127.0.0.1") || base.starts_with("http://localhost")
            }
        }
    }

    pub async fn send(&self, f: &Filled) -> Result<Answer, SendError> {
        match self {
            Transport::Huawei { client, service } => {
                client.send_request(&huawei_request(*service, f)).await
            }
            Transport::Alibaba {
                client,
                api,
                action,
            } => client.send_request(&alibaba_request(api, action, f)).await,
            Transport::Scnet { client } => {
                let query = pairs(&f.query);
                client.ai_send(f.method.clone(), &f.path(), &query).await
            }
            Transport::Http {
                http,
                account,
                base,
            } => {
                let url = http_url(base, f).map_err(|m| SendError::Failed(CloudError::local(m)))?;
                let mut headers = Vec::new();
                if f.body.is_some() {
                    headers.push((CONTENT_TYPE, header_value("application/json")?));
                }
                for (name, value) in &f.headers {
                    let name = HeaderName::try_from(name.as_str()).map_err(|_| {
                        SendError::Failed(CloudError::local(format!("bad header name `{name}`")))
                    })?;
                    headers.push((name, header_value(value)?));
                }
                if let Some(auth) = http_auth(account)? {
                    headers.push(auth);
                }
                tracing::debug!(account = %account.name, method = %f.method, path = %url.path(), "sending");
                let out = Outgoing {
                    method: f.method.clone(),
                    url,
                    headers,
                    body: f.body.clone().unwrap_or_default(),
                    timeout: account.request_timeout,
                };
                Ok(http::exchange(http, out).await?.into_answer())
            }
        }
    }

    /// What [`send`](Self::send) would send, without any credential.
    pub fn describe(&self, f: &Filled) -> Result<Described, String> {
        match self {
            Transport::Huawei { client, service } => client.describe(&huawei_request(*service, f)),
            Transport::Alibaba {
                client,
                api,
                action,
            } => client.describe(&alibaba_request(api, action, f)),
            Transport::Scnet { client } => {
                client.describe_ai(f.method.clone(), &f.path(), &pairs(&f.query))
            }
            Transport::Http { account, base, .. } => Ok(Described {
                method: f.method.to_string(),
                url: http_url(base, f)?.to_string(),
                body: f
                    .body
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                auth: match account.auth {
                    AuthMethod::Bearer => {
                        "Authorization: Bearer with the account's token (not shown)".into()
                    }
                    AuthMethod::Header => format!(
                        "{}: the account's token (not shown)",
                        account.settings.auth_header.as_deref().unwrap_or("?")
                    ),
                    _ => "none".into(),
                },
                headers: f.headers.clone(),
            }),
        }
    }
}

fn pairs(query: &[(String, String)]) -> Vec<(&str, &str)> {
    query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn huawei_request(service: Service, f: &Filled) -> huawei::Request {
    huawei::Request {
        service,
        method: f.method.clone(),
        path: f.path(),
        query: f.query.clone(),
        headers: f.headers.clone(),
        body: f.body.clone(),
    }
}

fn alibaba_request(api: &alibaba::Api, action: &str, f: &Filled) -> alibaba::Request {
    alibaba::Request {
        api: api.clone(),
        action: action.to_string().into(),
        method: f.method.clone(),
        path: f.path().into(),
        query: f.query.clone(),
    }
}

/// The account's base URL with the path's segments, each percent-encoded as one segment,
/// and the query (RFC 3986 encoded, in the declared order).
fn http_url(base: &str, f: &Filled) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| format!("bad endpoint `{base}`: {e}"))?;
    let mut path = url.path().trim_end_matches('/').to_string();
    for s in &f.segments {
        path.push('/');
        path.push_str(&encode(s));
    }
    url.set_path(&path);
    let query: Vec<String> = (f.query.iter())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    url.set_query((!query.is_empty()).then(|| query.join("&")).as_deref());
    Ok(url)
}

/// The header that authenticates a call of an HTTP account, if it has one.
fn http_auth(
    account: &Account,
) -> Result<Option<(HeaderName, reqwest::header::HeaderValue)>, SendError> {
    let failed = |m: String| SendError::Failed(CloudError::local(m));
    let token = || {
        account
            .token
            .require(&format!("the token of account `{}`", account.name))
            .map_err(failed)
    };
    Ok(match account.auth {
        AuthMethod::Bearer => Some((
            AUTHORIZATION,
            secret_header(&format!("Bearer {}", token()?.expose()))?,
        )),
        AuthMethod::Header => {
            let name = account.settings.auth_header.as_deref().unwrap_or_default();
            let name = HeaderName::try_from(name).map_err(|_| {
                failed(format!(
                    "account `{}` has no valid auth_header",
                    account.name
                ))
            })?;
            Some((name, secret_header(token()?.expose())?))
        }
        _ => None,
    })
}
