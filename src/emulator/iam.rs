//! Emulated IAM: `POST /v3/auth/tokens` with a password identity.

use std::time::Instant;

use axum::http::{HeaderName, StatusCode};
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use super::reply::Reply;
use super::state::State;
use crate::cloud::huawei::signer::hex_sha256;

/// IAM writes times as UTC ISO-8601 with microseconds, e.g. `2020-01-04T09:05:22.701000Z`.
pub fn iam_time(t: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.format(format).unwrap_or_default()
}

/// A stable 32-hex ID for a name, so the same user always gets the same ID.
fn id_of(kind: &str, name: &str) -> String {
    hex_sha256(format!("{kind}:{name}").as_bytes())[..32].to_string()
}

fn bad_request() -> Reply {
    Reply::iam_error(StatusCode::BAD_REQUEST, "The request body is invalid.")
}

pub fn token(state: &mut State, body: &[u8], now: Instant) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad_request();
    };
    let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str);
    let uses_password = v
        .pointer("/auth/identity/methods")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x == "password"));
    let (Some(user), Some(password), Some(domain)) = (
        s("/auth/identity/password/user/name"),
        s("/auth/identity/password/user/password"),
        s("/auth/identity/password/user/domain/name"),
    ) else {
        return bad_request();
    };
    if !uses_password {
        return bad_request();
    }
    let project_id = s("/auth/scope/project/id");
    let project_name = s("/auth/scope/project/name");
    if project_id.is_none() && project_name.is_none() {
        return bad_request();
    }
    let known = state
        .users
        .get(&(domain.to_string(), user.to_string()))
        .is_some_and(|p| p == password);
    if !known {
        return Reply::iam_error(
            StatusCode::UNAUTHORIZED,
            "The username or password is wrong.",
        );
    }

    let token = state.issue_token(now);
    let issued = OffsetDateTime::now_utc();
    let expires = issued
        .checked_add(time::Duration::try_from(state.token_ttl).unwrap_or(time::Duration::ZERO))
        .unwrap_or(issued);
    let domain_obj = json!({"id": id_of("domain", domain), "name": domain});
    let project_name = project_name
        .map(str::to_string)
        .unwrap_or_else(|| "cn-north-4".into());
    let project_id = project_id
        .map(str::to_string)
        .unwrap_or_else(|| id_of("project", &project_name));
    Reply::json(
        StatusCode::CREATED,
        json!({"token": {
            "expires_at": iam_time(expires),
            "issued_at": iam_time(issued),
            "methods": ["password"],
            "project": {"id": project_id, "name": project_name, "domain": domain_obj},
            "roles": [{"id": id_of("role", "te_admin"), "name": "te_admin"}],
            "user": {
                "domain": domain_obj,
                "id": id_of("user", &format!("{domain}/{user}")),
                "name": user,
                "password_expires_at": "",
            },
        }}),
    )
    .with_header(HeaderName::from_static("x-subject-token"), token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_time_has_microseconds() {
        let t = time::macros::datetime!(2020-01-04 09:05:22.701 UTC);
        assert_eq!(iam_time(t), "2020-01-04T09:05:22.701000Z");
    }
}
