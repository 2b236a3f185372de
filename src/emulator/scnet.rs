//! Emulated SCNet: tokens by password or by AK/SK (one per cluster plus the platform
//! token), the center API listing an enabled `aiUrls` entry that points back at the
//! emulator (ending in `/ai`, after a disabled entry, to exercise the client's choices),
//! and the AI container restart and detail APIs.
//!
//! Tokens are JWT-shaped with `expireTime` (ms) in the payload and live in the shared token
//! table, so `/_emulator/tokens/revoke` and the token TTL setting apply to them; a revoked,
//! expired or unknown token gets envelope code 10008 with HTTP 200, as do all SCNet errors.
//!
//! Any 32-hex ID names a container instance that is Running. A restart makes it Waiting
//! (first third of the job duration), then Deploying, then Running again. A restart while
//! it is Waiting or Deploying gets code 716868. Whether the real API restarts a Running
//! instance is UNCONFIRMED; the emulator accepts it. Error codes other than 10008 follow
//! the documented table; the emulator's choice for a wrong password is 10001.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

use super::auth::decode_query;
use super::demo;
use super::reply::Reply;
use super::serve::{header, incoming, query_target, too_large, with_faults};
use super::state::{IssuedToken, Shared};
use super::Incoming;
use crate::cloud::scnet::sign;
use crate::command::ids;

const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

pub struct Cluster {
    pub id: &'static str,
    pub name: &'static str,
}

/// The clusters every user has a token for (besides the platform, `0` / `ac`).
pub const CLUSTERS: &[Cluster] = &[
    Cluster {
        id: demo::SCNET_CLUSTER_ID,
        name: demo::SCNET_CLUSTER_NAME,
    },
    Cluster {
        id: "11276",
        name: "demo-cluster-west",
    },
];

struct Container {
    restarted: Option<Instant>,
    duration: Duration,
}

impl Container {
    fn status(&self, now: Instant) -> &'static str {
        match self.restarted {
            Some(at) => {
                let e = now.saturating_duration_since(at);
                if e >= self.duration {
                    "Running"
                } else if e < self.duration / 3 {
                    "Waiting"
                } else {
                    "Deploying"
                }
            }
            None => "Running",
        }
    }
}

#[derive(Default)]
struct Scnet {
    /// user -> (password, orgId)
    users: HashMap<String, (String, String)>,
    /// AK -> (SK, user)
    keys: HashMap<String, (String, String)>,
    /// token -> cluster ID it is for ("0" for the platform)
    scopes: HashMap<String, String>,
    containers: HashMap<String, Container>,
}

pub struct ScnetEmu {
    shared: Arc<Shared>,
    scnet: Mutex<Scnet>,
}

impl ScnetEmu {
    fn lock(&self) -> MutexGuard<'_, Scnet> {
        self.scnet.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router<S>(shared: Arc<Shared>) -> Router<S> {
    let mut s = Scnet::default();
    s.users.insert(
        demo::SCNET_USER.to_string(),
        (
            demo::SCNET_PASSWORD.to_string(),
            demo::SCNET_ORG_ID.to_string(),
        ),
    );
    s.keys.insert(
        demo::SCNET_ACCESS_KEY.to_string(),
        (
            demo::SCNET_SECRET_KEY.to_string(),
            demo::SCNET_USER.to_string(),
        ),
    );
    let emu = Arc::new(ScnetEmu {
        shared,
        scnet: Mutex::new(s),
    });
    Router::new()
        .route("/ac/openapi/v2/tokens", post(token_by_password))
        .route("/api/user/v3/tokens", post(token_by_aksk))
        .route("/ac/openapi/v2/center", get(center))
        .route(
            "/ai/openapi/v2/instance-service/task/actions/restart",
            post(restart),
        )
        .route("/ai/openapi/v2/instance-service/{id}/detail", get(detail))
        .with_state(emu)
}

fn envelope(code: &str, msg: &str, data: Value) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({"code": code, "msg": msg, "data": data}),
    )
}

fn success(data: Value) -> Reply {
    envelope("0", "success", data)
}

fn refused_token() -> Reply {
    envelope("10008", "权限不足", Value::Null)
}

fn jwt(payload: &Value) -> String {
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let sig: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(43)
        .collect();
    format!(
        "{}.{}.{sig}",
        enc(br#"{"alg":"HS256","typ":"JWT"}"#),
        enc(payload.to_string().as_bytes())
    )
}

/// Issues the platform token and one per cluster for `user`.
fn issue(emu: &ScnetEmu, s: &mut Scnet, user: &str, org: &str, now: Instant) -> Reply {
    let mut shared = emu.shared.lock();
    let ttl = shared.token_ttl;
    let expire_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
        + i128::try_from(ttl.as_millis()).unwrap_or(0);
    let mut list = Vec::new();
    let all = std::iter::once(("0", "ac")).chain(CLUSTERS.iter().map(|c| (c.id, c.name)));
    for (id, name) in all {
        let token = jwt(&json!({
            "expireTime": expire_ms,
            "clusterId": id,
            "user": user,
            "invoker": org,
            "accountStatus": "Normal",
            "jti": fastrand::u64(..).to_string(),
        }));
        shared.tokens.insert(
            token.clone(),
            IssuedToken {
                expires: now.checked_add(ttl).unwrap_or(now),
                revoked: false,
            },
        );
        s.scopes.insert(token.clone(), id.to_string());
        list.push(json!({"clusterId": id, "clusterName": name, "token": token}));
    }
    success(Value::Array(list))
}

async fn token_by_password(State(emu): State<Arc<ScnetEmu>>, req: Request) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    with_faults(&shared, "scnet.token", None, || {
        let (Some(user), Some(password), Some(org)) = (
            header(&req, "user"),
            header(&req, "password"),
            header(&req, "orgid"),
        ) else {
            return envelope("10003", "参数不全", Value::Null);
        };
        let mut s = emu.lock();
        let known = s
            .users
            .get(user)
            .is_some_and(|(p, o)| p == password && o == org);
        if !known {
            return envelope("10001", "用户名或密码错误", Value::Null);
        }
        issue(&emu, &mut s, user, org, Instant::now())
    })
    .await
    .into_response()
}

async fn token_by_aksk(State(emu): State<Arc<ScnetEmu>>, req: Request) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    with_faults(&shared, "scnet.token", None, || {
        let (Some(user), Some(ak), Some(ts), Some(sig)) = (
            header(&req, "user"),
            header(&req, "accesskey"),
            header(&req, "timestamp"),
            header(&req, "signature"),
        ) else {
            return envelope("10003", "参数不全", Value::Null);
        };
        let Ok(when) = ts.parse::<i64>() else {
            return envelope("10004", "参数无效", Value::Null);
        };
        let skew = (time::OffsetDateTime::now_utc().unix_timestamp() - when).unsigned_abs();
        if skew > MAX_SKEW.as_secs() {
            return envelope("10004", "参数无效: timestamp", Value::Null);
        }
        let mut s = emu.lock();
        let Some((sk, owner)) = s.keys.get(ak).cloned() else {
            return envelope("10009", "没有权限访问接口", Value::Null);
        };
        if owner != user || !sign::verify(&sk, ak, ts, user, sig) {
            return envelope("10009", "没有权限访问接口", Value::Null);
        }
        let org = s
            .users
            .get(user)
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        issue(&emu, &mut s, user, &org, Instant::now())
    })
    .await
    .into_response()
}

/// The cluster a valid token is for, or `None` if it is unknown, revoked or expired.
fn token_scope(emu: &ScnetEmu, s: &Scnet, req: &Incoming, now: Instant) -> Option<String> {
    let token = header(req, "token")?;
    let valid = emu
        .shared
        .lock()
        .tokens
        .get(token)
        .is_some_and(|t| !t.revoked && now < t.expires);
    valid.then(|| s.scopes.get(token).cloned()).flatten()
}

async fn center(State(emu): State<Arc<ScnetEmu>>, req: Request) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    with_faults(&shared, "scnet.center", None, || {
        let s = emu.lock();
        if token_scope(&emu, &s, &req, Instant::now()).as_deref() != Some("0") {
            return refused_token();
        }
        let host = header(&req, "host").unwrap_or("127.0.0.1");
        let regions: Vec<Value> = CLUSTERS
            .iter()
            .map(|c| {
                json!({
                    "clusterId": c.id,
                    "clusterName": c.name,
                    "clusterUserInfo": {"userName": demo::SCNET_USER, "homePath": format!("/public/home/{}", demo::SCNET_USER)},
                    "hpcUrls": [{"url": format!("http://{host}/hpc"), "enable": true}],
                    "efileUrls": [{"url": format!("http://{host}/efile"), "enable": true}],
                    "aiUrls": [
                        {"url": "http://ai-disabled.invalid/ai", "enable": false},
                        {"url": format!("http://{host}/ai"), "enable": true},
                    ],
                })
            })
            .collect();
        success(Value::Array(regions))
    })
    .await
    .into_response()
}

fn cluster_token_ok(scope: Option<&str>) -> bool {
    scope.is_some_and(|c| CLUSTERS.iter().any(|k| k.id == c))
}

async fn restart(State(emu): State<Arc<ScnetEmu>>, req: Request) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    let target = query_target(&req, &["instanceServiceId"]);
    with_faults(&shared, "scnet.restart", Some(target), || {
        let now = Instant::now();
        let mut s = emu.lock();
        if !cluster_token_ok(token_scope(&emu, &s, &req, now).as_deref()) {
            return refused_token();
        }
        let query = decode_query(req.query.as_deref().unwrap_or("")).unwrap_or_default();
        let Some((_, id)) = query.iter().find(|(k, _)| k == "instanceServiceId") else {
            return envelope("10003", "参数不全", Value::Null);
        };
        if !ids::SCNET_INSTANCE.matches(id) {
            return envelope("10004", "参数无效", Value::Null);
        }
        let duration = emu.shared.lock().job_duration;
        let c = s.containers.entry(id.clone()).or_insert(Container {
            restarted: None,
            duration,
        });
        if c.status(now) != "Running" {
            return envelope("716868", "启动任务错误", Value::Null);
        }
        c.restarted = Some(now);
        c.duration = duration;
        envelope("0", "操作成功", Value::String(id.clone()))
    })
    .await
    .into_response()
}

async fn detail(State(emu): State<Arc<ScnetEmu>>, req: Request) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    with_faults(&shared, "scnet.detail", None, || {
        let now = Instant::now();
        let s = emu.lock();
        if !cluster_token_ok(token_scope(&emu, &s, &req, now).as_deref()) {
            return refused_token();
        }
        let id = req
            .path
            .trim_start_matches("/ai/openapi/v2/instance-service/")
            .trim_end_matches("/detail");
        if !ids::SCNET_INSTANCE.matches(id) {
            return envelope("10004", "参数无效", Value::Null);
        }
        let status = s.containers.get(id).map_or("Running", |c| c.status(now));
        success(json!({
            "id": id,
            "instanceServiceName": format!("notebook-{}", &id[..6]),
            "status": status,
            "taskType": "jupyter",
            "acceleratorType": "DCU",
            "imagePath": "jupyterlab-pytorch:2.1.0-ubuntu20.04-dtk24.04-py310",
            "containerPortInfoList": [{
                "accessUrl": format!("https://notebook.example.invalid/{id}"),
                "containerPort": 8888,
                "protocolType": "http",
            }],
        }))
    })
    .await
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_go_waiting_deploying_running() {
        let start = Instant::now();
        let c = Container {
            restarted: Some(start),
            duration: Duration::from_secs(9),
        };
        assert_eq!(c.status(start), "Waiting");
        assert_eq!(c.status(start + Duration::from_secs(4)), "Deploying");
        assert_eq!(c.status(start + Duration::from_secs(9)), "Running");
    }

    #[test]
    fn tokens_carry_expire_time() {
        let t = jwt(&json!({"expireTime": 4_102_444_800_000_i64}));
        let left = crate::cloud::scnet::token::lifetime(&t, time::OffsetDateTime::now_utc());
        assert!(left.is_some_and(|d| d > Duration::from_secs(3600)));
    }
}
