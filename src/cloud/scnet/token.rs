//! SCNet tokens: fetched by password or by AK/SK, one per cluster (plus the platform token
//! `clusterId "0"` / `clusterName "ac"` for platform APIs), cached per account, renewed
//! shortly before the `expireTime` in the JWT payload, and dropped when a call answers
//! code 10008.
//!
//! The cache is a tokio mutex held across the fetch, so a burst of jobs makes one token
//! request, not one each.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderName, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;
use tokio::sync::Mutex;

use super::envelope;
use super::sign;
use crate::cloud::http::clean;
use crate::cloud::http::{self, header_value, secret_header, Outgoing, SendError};
use crate::config::{Account, AuthMethod};
use crate::ports::cloud::CloudError;
use crate::secret::Secret;

/// Renew this long before expiry (or at half the remaining life, if that is sooner).
const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Used when the token's `expireTime` cannot be read; a 10008 renews it earlier anyway.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(60 * 60);

pub const PASSWORD_PATH: &str = "/ac/openapi/v2/tokens";
pub const AKSK_PATH: &str = "/api/user/v3/tokens";

/// The tokens one token request gives, for the account's cluster.
#[derive(Clone)]
pub struct Tokens {
    /// For the cluster's APIs (AI containers).
    pub cluster: Secret,
    /// For platform APIs (`/ac/openapi/v2/center`), when the answer had one.
    pub platform: Option<Secret>,
}

struct Cached {
    tokens: Tokens,
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

    pub async fn get(
        &self,
        http: &crate::cloud::http::Http,
        account: &Account,
        base: &str,
    ) -> Result<Tokens, SendError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref() {
            if Instant::now() < cached.renew_at {
                return Ok(cached.tokens.clone());
            }
        }
        let (tokens, lifetime) = fetch(http, account, base).await?;
        let margin = RENEW_MARGIN.min(lifetime / 2);
        *slot = Some(Cached {
            tokens: tokens.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(tokens)
    }

    /// Forgets the tokens after `used` was refused; a newer set fetched meanwhile is kept.
    pub async fn invalidate(&self, used: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| &c.tokens.cluster == used || c.tokens.platform.as_ref() == Some(used))
        {
            *slot = None;
        }
    }
}

/// How the account's cluster is picked out of the token list.
pub fn cluster_label(account: &Account) -> String {
    match (&account.settings.cluster_id, &account.settings.cluster_name) {
        (Some(id), _) => format!("cluster id {id}"),
        (None, Some(name)) => format!("cluster `{name}`"),
        (None, None) => "no cluster".to_string(),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Does a token-list or center entry name the account's cluster?
pub fn is_our_cluster(
    account: &Account,
    entry: &Value,
    id_keys: &[&str],
    name_keys: &[&str],
) -> bool {
    if let Some(id) = &account.settings.cluster_id {
        return id_keys
            .iter()
            .any(|k| text(entry, k).as_deref() == Some(id.as_str()));
    }
    if let Some(name) = &account.settings.cluster_name {
        return name_keys
            .iter()
            .any(|k| text(entry, k).as_deref() == Some(name.as_str()));
    }
    false
}

/// `(tokens, lifetime)` from the token list in `data`.
fn pick(account: &Account, data: &Value) -> Result<(Tokens, Duration), CloudError> {
    let list = data
        .as_array()
        .ok_or_else(|| CloudError::local("the token answer had no token list"))?;
    let platform = list
        .iter()
        .find(|e| {
            text(e, "clusterId").as_deref() == Some("0")
                || text(e, "clusterName").as_deref() == Some("ac")
        })
        .and_then(|e| e.get("token")?.as_str())
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let Some(entry) = list
        .iter()
        .find(|e| is_our_cluster(account, e, &["clusterId"], &["clusterName"]))
    else {
        let known: Vec<String> = list
            .iter()
            .map(|e| {
                format!(
                    "{} ({})",
                    clean(&text(e, "clusterId").unwrap_or_default()),
                    clean(&text(e, "clusterName").unwrap_or_default())
                )
            })
            .collect();
        return Err(CloudError::local(format!(
            "the token answer has no token for {} of account `{}` (it has: {})",
            cluster_label(account),
            account.name,
            known.join(", ")
        )));
    };
    let Some(token) = entry
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err(CloudError::local(format!(
            "SCNet gave no token for {} (token is null): the account may be suspended or in \
             arrears for that region; top it up first",
            cluster_label(account)
        )));
    };
    let lifetime = lifetime(token, time::OffsetDateTime::now_utc()).unwrap_or_else(|| {
        tracing::warn!(account = %account.name, "SCNet token expiry unreadable; renewing within the hour");
        UNKNOWN_LIFETIME
    });
    Ok((
        Tokens {
            cluster: Secret::new(token),
            platform,
        },
        lifetime,
    ))
}

/// The remaining life of a JWT from its payload's `expireTime` (Unix milliseconds), read
/// without verifying the token. `None` if the token or the field cannot be read.
pub fn lifetime(token: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let expire_ms: i128 = match v.get("expireTime")? {
        Value::Number(n) => i128::from(n.as_i64()?),
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    let now_ms = now.unix_timestamp_nanos() / 1_000_000;
    let left = u64::try_from(expire_ms.saturating_sub(now_ms)).unwrap_or(0);
    Some(Duration::from_millis(left))
}

/// One token request. It changes nothing in the cloud, so every transport failure is
/// `NotSent` for the operation that needed the token.
pub async fn fetch(
    http: &crate::cloud::http::Http,
    account: &Account,
    base: &str,
) -> Result<(Tokens, Duration), SendError> {
    let local = |m: String| SendError::Failed(CloudError::local(m));
    let user = account
        .settings
        .scnet_user
        .as_deref()
        .ok_or_else(|| local(format!("accounts.{}.scnet_user is not set", account.name)))?;
    let what = |k: &str| format!("the {k} of account `{}`", account.name);
    let mut headers = vec![
        (CONTENT_TYPE, header_value("application/json")?),
        (HeaderName::from_static("user"), header_value(user)?),
    ];
    let path = match account.auth {
        AuthMethod::Password => {
            let org = account
                .settings
                .org_id
                .as_deref()
                .ok_or_else(|| local(format!("accounts.{}.org_id is not set", account.name)))?;
            let password = account.password.require(&what("password")).map_err(local)?;
            headers.push((
                HeaderName::from_static("password"),
                secret_header(password.expose())?,
            ));
            headers.push((HeaderName::from_static("orgid"), header_value(org)?));
            PASSWORD_PATH
        }
        AuthMethod::AkSk => {
            let access = account
                .access_key
                .require(&what("access key"))
                .map_err(local)?;
            let secret = account
                .secret_key
                .require(&what("secret key"))
                .map_err(local)?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            let sig = sign::signature(secret.expose(), access.expose(), &ts, user);
            headers.push((
                HeaderName::from_static("accesskey"),
                secret_header(access.expose())?,
            ));
            headers.push((HeaderName::from_static("timestamp"), header_value(&ts)?));
            headers.push((HeaderName::from_static("signature"), secret_header(&sig)?));
            AKSK_PATH
        }
        other => {
            return Err(local(format!(
                "account `{}` has auth = \"{}\", not an SCNet method",
                account.name,
                other.name()
            )))
        }
    };
    let url = Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| local(format!("bad SCNet token endpoint `{base}`: {e}")))?;
    let out = Outgoing {
        method: Method::POST,
        url,
        headers,
        body: Vec::new(),
        timeout: account.request_timeout,
    };
    let answer = match http::exchange(http, out).await {
        Ok(received) => received.into_answer(),
        Err(SendError::Indeterminate(m)) => {
            return Err(SendError::NotSent(format!("SCNet token service: {m}")))
        }
        Err(other) => return Err(other),
    };
    if answer.status == 429 || answer.status >= 500 {
        let e = envelope::data(&answer).err().unwrap_or_else(|| {
            CloudError::new(
                Some(answer.status),
                None,
                "the token service is unavailable",
            )
        });
        return Err(SendError::NotSent(format!(
            "the SCNet token service could not issue a token: {e}"
        )));
    }
    let data = envelope::data(&answer).map_err(|e| {
        SendError::Failed(CloudError::local(format!(
            "SCNet refused a token for account `{}` ({e}); check its user and its password \
             or access key (and org_id)",
            account.name
        )))
    })?;
    let (tokens, lifetime) = pick(account, &data).map_err(SendError::Failed)?;
    tracing::debug!(account = %account.name, lifetime_s = lifetime.as_secs(), "SCNet token issued");
    Ok((tokens, lifetime))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn jwt(payload: &Value) -> String {
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.sig",
            enc(br#"{"alg":"HS256"}"#),
            enc(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn lifetime_comes_from_expire_time_in_ms() {
        let now = time::macros::datetime!(2025-01-01 00:00:00 UTC);
        let ms = now.unix_timestamp() * 1000 + 3_600_000;
        assert_eq!(
            lifetime(&jwt(&json!({"expireTime": ms, "user": "bob"})), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            lifetime(&jwt(&json!({"expireTime": ms.to_string()})), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            lifetime(&jwt(&json!({"expireTime": 0})), now),
            Some(Duration::ZERO)
        );
        assert_eq!(lifetime(&jwt(&json!({"user": "bob"})), now), None);
        assert_eq!(lifetime("not-a-jwt", now), None);
        assert_eq!(lifetime("a.%%%.c", now), None);
        assert_eq!(lifetime("a.bm90IGpzb24.c", now), None);
    }
}
