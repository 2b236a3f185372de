//! IAM password tokens: fetched once, shared by every operation of an account, renewed
//! early, and dropped when a service says it was refused.
//!
//! The cache is a tokio mutex held across the fetch, so a burst of jobs after start-up
//! makes one token request, not one each.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::endpoints::{self, Service};
use super::errors;
use crate::cloud::http::{self, Outgoing, SendError};
use crate::config::Account;
use crate::ports::cloud::CloudError;
use crate::secret::Secret;

/// Renew this long before the token expires (tokens live 24 h).
const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Used when IAM's `expires_at` cannot be read; a 401 renews it earlier if need be.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(60 * 60);

pub const SUBJECT_TOKEN: &str = "x-subject-token";

/// A token and how long it may be used from the moment it was received.
pub struct Token {
    pub value: Secret,
    pub lifetime: Duration,
}

struct Cached {
    value: Secret,
    renew_at: Instant,
}

#[derive(Default)]
pub struct TokenCache {
    slot: Mutex<Option<Cached>>,
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// The cached token, or a new one if there is none or it is due for renewal.
    pub async fn get(
        &self,
        http: &crate::cloud::http::Http,
        account: &Account,
    ) -> Result<Secret, SendError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref() {
            if Instant::now() < cached.renew_at {
                return Ok(cached.value.clone());
            }
        }
        let token = fetch(http, account).await?;
        let margin = RENEW_MARGIN.min(token.lifetime / 2);
        *slot = Some(Cached {
            value: token.value.clone(),
            renew_at: Instant::now() + token.lifetime.saturating_sub(margin),
        });
        Ok(token.value)
    }

    /// Forgets `used` after a service refused it (401). Another task may already have
    /// replaced it with a fresh token; that one is kept.
    pub async fn invalidate(&self, used: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| &c.value == used) {
            *slot = None;
        }
    }
}

/// `POST {iam}/v3/auth/tokens?nocatalog=true`, scoped to the account's project by ID.
///
/// A token request changes nothing in the cloud, so every transport failure here is
/// `NotSent` from the point of view of the operation that needed the token.
pub async fn fetch(http: &crate::cloud::http::Http, account: &Account) -> Result<Token, SendError> {
    let local = |m: String| SendError::Failed(CloudError::local(m));
    let endpoint = endpoints::resolve(account, Service::Iam).map_err(local)?;
    let user = account
        .iam_user
        .as_deref()
        .ok_or_else(|| local(format!("accounts.{}.iam_user is not set", account.name)))?;
    let domain = account
        .iam_domain
        .as_deref()
        .ok_or_else(|| local(format!("accounts.{}.iam_domain is not set", account.name)))?;
    let project_id = account
        .project_id
        .as_deref()
        .ok_or_else(|| local(format!("accounts.{}.project_id is not set", account.name)))?;
    let password = account
        .password
        .require(&format!("the IAM password of account `{}`", account.name))
        .map_err(local)?;
    let url = Url::parse(&format!("{}/v3/auth/tokens?nocatalog=true", endpoint.base))
        .map_err(|e| local(format!("bad IAM endpoint `{}`: {e}", endpoint.base)))?;
    let body = json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {
                "name": user,
                "password": password.expose(),
                "domain": {"name": domain},
            }},
        },
        "scope": {"project": {"id": project_id}},
    }});
    let out = Outgoing {
        method: Method::POST,
        url,
        headers: vec![(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf8"),
        )],
        body: body.to_string().into_bytes(),
        timeout: account.request_timeout,
    };
    let received = match http::exchange(http, out).await {
        Ok(r) => r,
        Err(SendError::Indeterminate(m)) => return Err(SendError::NotSent(format!("IAM: {m}"))),
        Err(other) => return Err(other),
    };
    let status = received.status;
    if status == 429 || status >= 500 {
        let e = errors::from_answer(&received.into_answer());
        return Err(SendError::NotSent(format!(
            "IAM could not issue a token: {e}"
        )));
    }
    if !(200..300).contains(&status) {
        let e = errors::from_answer(&received.into_answer());
        return Err(SendError::Failed(CloudError::local(format!(
            "IAM refused a token for account `{}` ({e}); check its iam_user, iam_domain, \
             project_id and password",
            account.name
        ))));
    }
    let Some(value) = received
        .headers
        .get(HeaderName::from_static(SUBJECT_TOKEN))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Err(SendError::Failed(CloudError::new(
            Some(status),
            None,
            "IAM answered without an X-Subject-Token header",
        )));
    };
    let lifetime = lifetime(&received.body).unwrap_or_else(|| {
        tracing::warn!(account = %account.name, "IAM token expiry unreadable; renewing within the hour");
        UNKNOWN_LIFETIME
    });
    tracing::debug!(account = %account.name, lifetime_s = lifetime.as_secs(), "IAM token issued");
    Ok(Token {
        value: Secret::new(value),
        lifetime,
    })
}

/// `expires_at - issued_at` from the token body. Both come from IAM's clock, so a skewed
/// local clock does not shorten or stretch the cache; without `issued_at`, now is used.
fn lifetime(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let at = |key: &str| {
        v.pointer(&format!("/token/{key}"))
            .and_then(|s| s.as_str())
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    let expires = at("expires_at")?;
    let issued = at("issued_at").unwrap_or_else(OffsetDateTime::now_utc);
    let secs = (expires - issued).whole_milliseconds();
    Some(Duration::from_millis(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_is_measured_on_iam_clock() {
        let body = br#"{"token":{"expires_at":"2020-01-04T09:05:22.701000Z","issued_at":"2020-01-03T09:05:22.701000Z"}}"#;
        assert_eq!(lifetime(body), Some(Duration::from_secs(24 * 3600)));
        let past = br#"{"token":{"expires_at":"2020-01-04T09:05:22.701000Z","issued_at":"2020-01-05T09:05:22.701000Z"}}"#;
        assert_eq!(lifetime(past), Some(Duration::ZERO));
        assert_eq!(lifetime(b"{}"), None);
        assert_eq!(lifetime(b"not json"), None);
        assert_eq!(lifetime(br#"{"token":{"expires_at":"tomorrow"}}"#), None);
    }
}
