//! Emulated Alibaba SAE: RestartInstances, DescribeChangeOrder and ListChangeOrders, behind
//! an ACS3-HMAC-SHA256 check of the exact request received (the client's own signer is
//! used to verify), with nonce replay refused, clock skew checked, and SAE's 60 calls per
//! minute per access key enforced with `Throttling.User` (HTTP 400, as SAE sends it).
//!
//! Any UUID names an application that exists. A restart creates a change order that is
//! preparing (0) for the first quarter of the job duration, executing (1) until the end,
//! then succeeded (2). While an order of the app is unfinished, another restart is refused
//! with `Application.ChangerOrderRunning`.
//!
//! Stricter than the real service on one point: the query must arrive RFC 3986 encoded
//! exactly as it is signed (`InstanceIds=a%2Cb`), so the client is held to sending what it
//! signs. Error codes for signature problems follow Alibaba's common errors; those for V3
//! nonce reuse and clock skew are UNCONFIRMED (docs/cloud-apis.md §6.4).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::auth::{decode_path, decode_query};
use super::demo;
use super::reply::Reply;
use super::serve::{header, incoming, query_target, too_large, with_faults};
use super::state::{new_job_id, Shared};
use super::Incoming;
use crate::cloud::alibaba::signer::{self, SigningInput};
use crate::command::ids;

pub const VERSION: &str = "2019-05-06";
/// Allowed difference between `x-acs-date` and the emulator's clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// SAE's limit per user (here: per access key).
pub const CALLS_PER_MINUTE: usize = 60;
const MAX_ORDERS: usize = 10_000;

struct Order {
    id: String,
    app_id: String,
    instance_ids: String,
    started: Instant,
    duration: Duration,
    created: OffsetDateTime,
}

impl Order {
    fn status(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.duration {
            2
        } else if elapsed < self.duration / 4 {
            0
        } else {
            1
        }
    }
}

#[derive(Default)]
struct Sae {
    keys: HashMap<String, String>,
    /// Nonces seen within the skew window, and when.
    nonces: HashMap<String, Instant>,
    /// Calls per access key within the last minute.
    calls: HashMap<String, VecDeque<Instant>>,
    /// Newest last.
    orders: Vec<Order>,
}

pub struct SaeEmu {
    shared: Arc<Shared>,
    sae: Mutex<Sae>,
}

impl SaeEmu {
    fn lock(&self) -> MutexGuard<'_, Sae> {
        self.sae.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router<S>(shared: Arc<Shared>) -> Router<S> {
    let mut sae = Sae::default();
    sae.keys.insert(
        demo::ALIBABA_ACCESS_KEY.to_string(),
        demo::ALIBABA_SECRET_KEY.to_string(),
    );
    let emu = Arc::new(SaeEmu {
        shared,
        sae: Mutex::new(sae),
    });
    Router::new()
        .route("/pop/v1/sam/app/restartInstances", put(restart))
        .route("/pop/v1/sam/changeorder/DescribeChangeOrder", get(describe))
        .route("/pop/v1/sam/changeorder/ListChangeOrders", get(list))
        .with_state(emu)
}

fn request_id() -> String {
    new_job_id().to_ascii_uppercase()
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "RequestId": request_id(),
            "Code": code,
            "Message": message,
            "Success": false,
            "ErrorCode": code,
            "TraceId": "0a98a02315955564772843261e0000",
        }),
    )
}

fn ok(data: Value) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({
            "RequestId": request_id(),
            "Message": "success",
            "TraceId": "0a98a02315955564772843261e0000",
            "Data": data,
            "Code": "200",
            "Success": true,
        }),
    )
}

fn mismatch(detail: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "SignatureDoesNotMatch",
        &format!("Specified signature does not match our calculation. ({detail})"),
    )
}

fn sae_time(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(f).unwrap_or_default()
}

/// Checks the ACS3 signature and the SAE rules around it. `Ok(access key)` if accepted.
fn authenticate(
    emu: &SaeEmu,
    sae: &mut Sae,
    req: &Incoming,
    action: &str,
    now: Instant,
) -> Result<(), Reply> {
    let auth = header(req, "authorization").ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "MissingAuthorization",
            "Authorization is mandatory for this action.",
        )
    })?;
    let parsed = signer::parse_authorization(auth).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    })?;
    for required in signer::REQUIRED_SIGNED {
        if !parsed.signed_headers.iter().any(|h| h == required) {
            return Err(mismatch(&format!("{required} must be signed")));
        }
    }
    for (name, _) in &req.headers {
        if name.as_str().starts_with("x-acs-")
            && !parsed.signed_headers.iter().any(|h| h == name.as_str())
        {
            return Err(mismatch(&format!("{name} is sent but not signed")));
        }
    }
    if header(req, signer::VERSION_HEADER) != Some(VERSION) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    if header(req, signer::ACTION_HEADER) != Some(action) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        ));
    }
    let date = header(req, signer::DATE_HEADER)
        .and_then(signer::parse_acs_date)
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        })?;
    if (OffsetDateTime::now_utc() - date).unsigned_abs() > MAX_SKEW {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    let body_hash = signer::hex_sha256(&req.body);
    if header(req, signer::CONTENT_SHA_HEADER) != Some(body_hash.as_str()) {
        return Err(mismatch("x-acs-content-sha256 is not the hash of the body"));
    }
    let secret = sae
        .keys
        .get(&parsed.access)
        .cloned()
        .or_else(|| emu.shared.lock().keys.get(&parsed.access).cloned())
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        })?;
    let mut signed = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        for value in req.headers.get_all(name.as_str()) {
            let value = value
                .to_str()
                .map_err(|_| mismatch("a signed header is not text"))?;
            signed.push((name.as_str(), value));
        }
        if req.headers.get(name.as_str()).is_none() {
            return Err(mismatch(&format!("signed header {name} is missing")));
        }
    }
    let path = decode_path(&req.path).ok_or_else(|| mismatch("malformed path"))?;
    let raw_query = req.query.as_deref().unwrap_or("");
    let query = decode_query(raw_query).ok_or_else(|| mismatch("malformed query"))?;
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if signer::canonical_query(&pairs) != raw_query {
        return Err(mismatch(
            "the query string is not sent RFC 3986 encoded and sorted as signed (emulator check)",
        ));
    }
    let payload_hash = header(req, signer::CONTENT_SHA_HEADER).unwrap_or_default();
    let input = SigningInput {
        method: req.method.as_str(),
        path: &path,
        query: &pairs,
        headers: &signed,
        payload_hash,
    };
    if !signer::verify(&secret, &input, &parsed.signature) {
        return Err(mismatch("signature"));
    }
    let nonce = header(req, signer::NONCE_HEADER)
        .unwrap_or_default()
        .to_string();
    sae.nonces
        .retain(|_, seen| now.saturating_duration_since(*seen) < 2 * MAX_SKEW);
    if nonce.is_empty() || sae.nonces.insert(nonce, now).is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    let window = sae.calls.entry(parsed.access).or_default();
    while window
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
    {
        window.pop_front();
    }
    if window.len() >= CALLS_PER_MINUTE {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ));
    }
    window.push_back(now);
    Ok(())
}

fn param(query: &[(String, String)], key: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn required(query: &[(String, String)], key: &str) -> Result<String, Reply> {
    match param(query, key) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter.NotEmpty",
            &format!("You must specify the parameter {key}."),
        )),
    }
}

fn invalid(key: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidParameter.Obviously",
        &format!("The specified parameter is invalid {{{key}}}."),
    )
}

fn order_json(o: &Order, now: Instant) -> Value {
    let status = o.status(now);
    let finish = (status == 2)
        .then(|| {
            time::Duration::try_from(o.duration)
                .ok()
                .and_then(|d| o.created.checked_add(d))
                .map(sae_time)
        })
        .flatten();
    json!({
        "ChangeOrderId": o.id,
        "AppId": o.app_id,
        "Status": status,
        "SubStatus": 0,
        "ErrorMessage": "",
        "CoType": "Restart instances",
        "CoTypeCode": "CoRestartInstances",
        "Description": format!("Restart instances {}", o.instance_ids),
        "CreateTime": sae_time(o.created),
        "FinishTime": finish,
        "BatchCount": 1,
        "BatchWaitTime": 0,
        "Source": "pop",
    })
}

/// What an action does once the request is authenticated: (emulator, state, query, now).
type Handler = fn(&SaeEmu, &mut Sae, &[(String, String)], Instant) -> Reply;

/// Runs an action; `mutates` names the query keys that identify what a mutating action acts
/// on (for the call log), `None` for reads.
async fn run(
    emu: Arc<SaeEmu>,
    req: Request,
    operation: &'static str,
    action: &'static str,
    mutates: Option<&[&str]>,
    body: Handler,
) -> Response {
    let Some(req) = incoming(req).await else {
        return too_large().into_response();
    };
    let shared = emu.shared.clone();
    let target = mutates.map(|keys| query_target(&req, keys));
    with_faults(&shared, operation, target, || {
        let now = Instant::now();
        let mut sae = emu.lock();
        if let Err(refused) = authenticate(&emu, &mut sae, &req, action, now) {
            return refused;
        }
        let query = decode_query(req.query.as_deref().unwrap_or("")).unwrap_or_default();
        body(&emu, &mut sae, &query, now)
    })
    .await
    .into_response()
}

async fn restart(State(emu): State<Arc<SaeEmu>>, req: Request) -> Response {
    run(
        emu,
        req,
        "sae.restart",
        "RestartInstances",
        Some(&["AppId", "InstanceIds"]),
        |emu, sae, query, now| {
            let app = match required(query, "AppId") {
                Ok(a) => a,
                Err(r) => return r,
            };
            if !ids::SAE_APP.matches(&app) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApplication.NotFound",
                    "The current application does not exist.",
                );
            }
            let instances = match required(query, "InstanceIds") {
                Ok(i) => i,
                Err(r) => return r,
            };
            if !ids::SAE_INSTANCES.matches(&instances) {
                return invalid("InstanceIds");
            }
            if sae
                .orders
                .iter()
                .any(|o| o.app_id == app && o.status(now) != 2)
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Application.ChangerOrderRunning",
                    "An application change process is in progress. Please try again later.",
                );
            }
            if sae.orders.len() >= MAX_ORDERS {
                sae.orders.retain(|o| o.status(now) != 2);
            }
            let id = new_job_id();
            sae.orders.push(Order {
                id: id.clone(),
                app_id: app,
                instance_ids: instances,
                started: now,
                duration: emu.shared.lock().job_duration,
                created: OffsetDateTime::now_utc(),
            });
            ok(json!({"ChangeOrderId": id}))
        },
    )
    .await
}

async fn describe(State(emu): State<Arc<SaeEmu>>, req: Request) -> Response {
    run(
        emu,
        req,
        "sae.changeorder",
        "DescribeChangeOrder",
        None,
        |_, sae, query, now| {
            let id = match required(query, "ChangeOrderId") {
                Ok(i) => i,
                Err(r) => return r,
            };
            match sae.orders.iter().find(|o| o.id == id) {
                Some(o) => ok(order_json(o, now)),
                None => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidChangeOrder.NotFound",
                    "The current change order does not exist.",
                ),
            }
        },
    )
    .await
}

async fn list(State(emu): State<Arc<SaeEmu>>, req: Request) -> Response {
    run(
        emu,
        req,
        "sae.changeorders",
        "ListChangeOrders",
        None,
        |_, sae, query, now| {
            let app = match required(query, "AppId") {
                Ok(a) => a,
                Err(r) => return r,
            };
            if !ids::SAE_APP.matches(&app) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApplication.NotFound",
                    "The current application does not exist.",
                );
            }
            let size = param(query, "PageSize")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(10)
                .clamp(1, 100);
            let orders: Vec<Value> = sae
                .orders
                .iter()
                .rev()
                .filter(|o| o.app_id == app)
                .map(|o| order_json(o, now))
                .collect();
            let total = orders.len();
            ok(json!({
                "CurrentPage": 1,
                "PageSize": size,
                "TotalSize": total,
                "ChangeOrderList": orders.into_iter().take(size).collect::<Vec<_>>(),
            }))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_progress_0_1_2() {
        let start = Instant::now();
        let o = Order {
            id: "x".into(),
            app_id: "a".into(),
            instance_ids: "i".into(),
            started: start,
            duration: Duration::from_secs(8),
            created: OffsetDateTime::now_utc(),
        };
        assert_eq!(o.status(start), 0);
        assert_eq!(o.status(start + Duration::from_secs(3)), 1);
        assert_eq!(o.status(start + Duration::from_secs(8)), 2);
        let v = order_json(&o, start + Duration::from_secs(9));
        assert_eq!(v["Status"], 2);
        assert!(v["FinishTime"].is_string());
    }
}
