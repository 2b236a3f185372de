//! Which base URL the AI (container) APIs of the account's cluster live on:
//! `endpoints.ai` from the config, or the first `aiUrls[]` entry with `enable == true` in
//! `GET {ac}/ac/openapi/v2/center` for the account's cluster (docs/cloud-apis.md §3.2).

use serde_json::Value;

use super::token::{cluster_label, is_our_cluster};
use crate::config::Account;

/// A URL as found in the center answer, made a base: no trailing `/`, and no trailing
/// `/ai` segment (some entries already end in it; every AI path starts with `/ai/`).
pub fn normalise(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    trimmed
        .strip_suffix("/ai")
        .unwrap_or(trimmed)
        .trim_end_matches('/')
        .to_string()
}

fn enabled(entry: &Value) -> bool {
    match entry.get("enable") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The AI base URL for the account's cluster from the center answer's `data`.
pub fn ai_base_from_center(account: &Account, data: &Value) -> Result<String, String> {
    let regions = data
        .as_array()
        .ok_or("the center answer has no region list")?;
    // Field names of a region entry are not fully documented: match the cluster by any of
    // the usual keys; a single region is taken as the account's own.
    let region = regions
        .iter()
        .find(|r| is_our_cluster(account, r, &["clusterId", "id"], &["clusterName", "name"]))
        .or_else(|| (regions.len() == 1).then(|| &regions[0]))
        .ok_or_else(|| {
            format!(
                "the center answer lists no region for {}; set accounts.{}.endpoints.ai",
                cluster_label(account),
                account.name
            )
        })?;
    let url = region
        .get("aiUrls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| enabled(e))
        .find_map(|e| e.get("url")?.as_str().map(normalise))
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| {
            format!(
                "the center answer has no enabled aiUrls entry for {}; set accounts.{}.endpoints.ai",
                cluster_label(account),
                account.name
            )
        })?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn trailing_ai_and_slashes_are_normalised() {
        assert_eq!(
            normalise("https://a.example.com:8443/ai/"),
            "https://a.example.com:8443"
        );
        assert_eq!(
            normalise("https://a.example.com/ai"),
            "https://a.example.com"
        );
        assert_eq!(normalise("https://a.example.com/"), "https://a.example.com");
        assert_eq!(
            normalise("https://a.example.com/api"),
            "https://a.example.com/api"
        );
        assert_eq!(
            normalise("https://ai.example.com"),
            "https://ai.example.com"
        );
    }

    fn account(cluster_id: Option<&str>, cluster_name: Option<&str>) -> Account {
        let mut a = super::super::test_account();
        a.settings.cluster_id = cluster_id.map(str::to_string);
        a.settings.cluster_name = cluster_name.map(str::to_string);
        a
    }

    #[test]
    fn only_enabled_urls_of_our_cluster_count() {
        let data = json!([
            {"clusterId": "1", "clusterName": "east", "aiUrls": [{"url": "https://east/ai", "enable": true}]},
            {"clusterId": "2", "clusterName": "west", "aiUrls": [
                {"url": "https://off/ai", "enable": false},
                {"url": "https://west/ai/", "enable": "true"}
            ]}
        ]);
        assert_eq!(
            ai_base_from_center(&account(Some("2"), None), &data).unwrap(),
            "https://west"
        );
        assert_eq!(
            ai_base_from_center(&account(None, Some("east")), &data).unwrap(),
            "https://east"
        );
        assert!(ai_base_from_center(&account(Some("9"), None), &data).is_err());
        let off = json!([{"clusterId": "2", "aiUrls": [{"url": "https://off", "enable": false}]}]);
        assert!(ai_base_from_center(&account(Some("2"), None), &off).is_err());
        assert!(ai_base_from_center(&account(Some("2"), None), &json!({})).is_err());
        let weird = json!([{"aiUrls": [{"url": "file:///etc", "enable": true}]}]);
        assert!(ai_base_from_center(&account(Some("2"), None), &weird).is_err());
    }
}
