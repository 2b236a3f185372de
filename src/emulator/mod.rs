//! A local emulator of the Huawei IAM and DDM APIs, for `opsgate demo`, `opsgate emulator`
//! and the tests.
//!
//! It answers like the real services (status codes, error bodies, `X-Subject-Token`,
//! AK/SK signature checks with the client's own signer) and can be told, through
//! `/_emulator/`, to misbehave: throttle, be busy, send malformed bodies, or act on a
//! request and then answer too late. It is product code: no input may make it panic.

mod admin;
mod auth;
mod ddm;
mod ecs;
mod faults;
mod iam;
mod rds;
mod reply;
mod sae;
mod scnet;
mod serve;
mod state;
mod taurus;
mod team_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;
use tokio::task::JoinHandle;

pub use faults::OPERATIONS;
use reply::Reply;
use state::{Shared, State};

/// Requests larger than this are refused; real ones are under a kilobyte.
const MAX_REQUEST_BODY: usize = 1 << 20;

/// Credentials the emulator accepts out of the box (more can be added through
/// `POST /_emulator/users` and `POST /_emulator/access-keys`).
pub mod demo {
    pub const IAM_USER: &str = "opsgate-demo";
    pub const IAM_DOMAIN: &str = "opsgate-demo";
    pub const PASSWORD: &str = "demo-password";
    pub const ACCESS_KEY: &str = "DEMOACCESSKEYID00000";
    pub const SECRET_KEY: &str = "demo-secret-access-key";
    /// Any 32-character project ID is accepted; this one is for demo configs.
    pub const PROJECT_ID: &str = "0123456789abcdef0123456789abcdef";
    /// Any ID of the DDM shape names a RUNNING instance; this one is for demo configs.
    pub const DDM_INSTANCE: &str = "28e8841d0b9c4f6a9a30742ee60e1068in09";
    /// Alibaba (SAE) AK/SK; any UUID names an SAE application.
    pub const ALIBABA_ACCESS_KEY: &str = "LTAIdemoAccessKeyId0";
    pub const ALIBABA_SECRET_KEY: &str = "demo-alibaba-access-key-secret";
    pub const SAE_APP: &str = "1daa7236-3844-4f36-b39a-605b0cc0aaaa";
    /// SCNet user, password and orgId (password tokens), and AK/SK (signed tokens).
    pub const SCNET_USER: &str = "opsgate-demo";
    pub const SCNET_PASSWORD: &str = "demo-scnet-password";
    pub const SCNET_ORG_ID: &str = "demo-org-0001";
    pub const SCNET_ACCESS_KEY: &str = "85f96a42b13f4d2c8b760d2775bbcca8";
    pub const SCNET_SECRET_KEY: &str = "demo-scnet-secret-key";
    /// The cluster the demo tokens and the center API name; any 32-hex ID is a container.
    pub const SCNET_CLUSTER_ID: &str = "11250";
    pub const SCNET_CLUSTER_NAME: &str = "demo-cluster";
    pub const SCNET_INSTANCE: &str = "4c1f43ddb030483e89b55413bee6c004";
    /// A team's own API (HTTP accounts): the bearer token or X-Api-Key it accepts.
    pub const TEAM_TOKEN: &str = "demo-team-api-token";
}

#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// How long a restart keeps the instance RESTARTING and its job Running.
    pub job_duration: Duration,
    /// Lifetime of issued IAM tokens.
    pub token_ttl: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            job_duration: Duration::from_secs(3),
            token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// A started emulator. The server runs on a spawned task until this is dropped.
pub struct RunningEmulator {
    addr: SocketAddr,
    task: Option<JoinHandle<std::io::Result<()>>>,
    shared: Arc<Shared>,
}

impl RunningEmulator {
    /// When each `operation` request arrived, with the ID it acted on (benchmarks use this to
    /// measure line-to-cloud latency on one clock).
    pub fn arrivals(&self, operation: &str) -> Vec<(String, Instant)> {
        self.shared
            .lock()
            .arrivals
            .iter()
            .filter(|(op, _, _)| *op == operation)
            .map(|(_, id, at)| (id.clone(), *at))
            .collect()
    }

    /// How many `operation` requests have arrived (cheap enough to poll in a tight loop).
    pub fn arrival_count(&self, operation: &str) -> usize {
        let shared = self.shared.lock();
        shared
            .arrivals
            .iter()
            .filter(|(op, _, _)| *op == operation)
            .count()
    }

    /// When the latest `operation` request for `target` arrived, if one has.
    pub fn arrival_of(&self, operation: &str, target: &str) -> Option<Instant> {
        let shared = self.shared.lock();
        shared
            .arrivals
            .iter()
            .rev()
            .find(|(op, id, _)| *op == operation && id == target)
            .map(|(_, _, at)| *at)
    }

    /// Every request received so far, in order (the emulator's own `/_emulator` API aside).
    pub fn requests(&self) -> Vec<Received> {
        self.shared.lock().requests.clone()
    }

    /// `http://IP:PORT`, to use as `endpoints.iam` / `endpoints.ddm` in the config.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the server fails (for `opsgate emulator`, which runs nothing else).
    pub async fn wait(mut self) -> std::io::Result<()> {
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and serves on a spawned task.
pub async fn start(opts: EmulatorOptions, addr: SocketAddr) -> std::io::Result<RunningEmulator> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(State::new(&opts)));
    let app = Router::new()
        .nest("/_emulator", admin::router())
        .merge(sae::router(shared.clone()))
        .merge(scnet::router(shared.clone()))
        .merge(team_api::router(shared.clone()))
        .fallback(cloud_api)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ))
        .with_state(shared.clone());
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    tracing::info!(%addr, "cloud emulator listening");
    Ok(RunningEmulator {
        addr,
        task: Some(task),
        shared,
    })
}

/// Keeps every request as it arrived (its headers left out: they hold credentials), so a
/// test can compare what was sent with what a dry run said would be.
async fn record_request(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if !parts.uri.path().starts_with("/_emulator") {
        shared.lock().requests.push(Received {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or(String::new(), |p| p.to_string()),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    next.run(axum::extract::Request::from_parts(parts, body.into()))
        .await
}

/// A request as it arrived at the emulator, without its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// Still percent-encoded, as on the wire.
    pub path_and_query: String,
    pub body: String,
}

/// A received cloud API request, as the signature check needs it.
pub(crate) struct Incoming {
    pub method: Method,
    /// The raw (still percent-encoded) path.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The emulated APIs, by method and path.
enum Route {
    Token,
    Restart { instance: String },
    Instance { project: String, instance: String },
    Job { job: String },
    TaurusRestart { instance: String, proxy: String },
    TaurusUpgrade { instance: String, proxy: String },
    TaurusJob,
    TaurusProxies { instance: String },
    RdsRestart { instance: String },
    RdsInstances,
    EcsReboot,
    EcsJob { job: String },
}

impl Route {
    fn parse(method: &Method, raw_path: &str) -> Option<Route> {
        let segs: Vec<String> = raw_path
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        Some(match (method.as_str(), segs.as_slice()) {
            ("POST", ["v3", "auth", "tokens"]) => Route::Token,
            ("POST", ["v1", _, "instances", i, "action"]) => Route::Restart {
                instance: i.to_string(),
            },
            ("GET", ["v1", p, "instances", i]) => Route::Instance {
                project: p.to_string(),
                instance: i.to_string(),
            },
            ("GET", ["v3", _, "jobs", j]) => Route::Job { job: j.to_string() },
            ("POST", ["v3", _, "instances", i, "proxy", p, "restart"]) => Route::TaurusRestart {
                instance: i.to_string(),
                proxy: p.to_string(),
            },
            ("POST", ["v3", _, "instances", i, "proxy", p, "upgrade-version"]) => {
                Route::TaurusUpgrade {
                    instance: i.to_string(),
                    proxy: p.to_string(),
                }
            }
            // TaurusDB's and RDS's job API (the same path on their own hosts).
            ("GET", ["v3", _, "jobs"]) => Route::TaurusJob,
            ("POST", ["v3", _, "instances", i, "action"]) => Route::RdsRestart {
                instance: i.to_string(),
            },
            ("GET", ["v3", _, "instances"]) => Route::RdsInstances,
            ("POST", ["v1", _, "cloudservers", "action"]) => Route::EcsReboot,
            ("GET", ["v1", _, "jobs", j]) => Route::EcsJob { job: j.to_string() },
            ("GET", ["v3", _, "instances", i, "proxies"]) => Route::TaurusProxies {
                instance: i.to_string(),
            },
            _ => return None,
        })
    }

    /// What a mutating call acts on, for the call log; `None` for reads and tokens.
    fn target(&self) -> Option<String> {
        match self {
            Route::Restart { instance } | Route::RdsRestart { instance } => Some(instance.clone()),
            Route::TaurusRestart { instance, proxy } | Route::TaurusUpgrade { instance, proxy } => {
                Some(format!("{instance}/{proxy}"))
            }
            _ => None,
        }
    }

    /// The name faults and call counts use.
    fn operation(&self) -> &'static str {
        match self {
            Route::Token => "iam.token",
            Route::Restart { .. } => "ddm.restart",
            Route::Instance { .. } => "ddm.instance",
            Route::Job { .. } => "ddm.job",
            Route::TaurusRestart { .. } => "taurus.restart",
            Route::TaurusUpgrade { .. } => "taurus.upgrade",
            Route::TaurusJob => "taurus.job",
            Route::TaurusProxies { .. } => "taurus.proxies",
            Route::RdsRestart { .. } => "rds.restart",
            Route::RdsInstances => "rds.instances",
            Route::EcsReboot => "ecs.reboot",
            Route::EcsJob { .. } => "ecs.job",
        }
    }
}

async fn cloud_api(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    // Taken before any of the emulator's own work, so latency benchmarks bill it to nobody.
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BODY).await else {
        return Reply::gateway_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "APIGW.0201",
            "Request entity too large",
        )
        .into_response();
    };
    let req = Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let Some(route) = Route::parse(&req.method, &req.path) else {
        return Reply::no_such_api().into_response();
    };
    let fault = {
        let mut s = shared.lock();
        // RDS and TaurusDB share the job API's path: the job's ID tells whose it is.
        let operation = match &route {
            Route::TaurusJob
                if auth::query_value(req.query.as_deref(), "id")
                    .is_some_and(|id| s.rds.knows_job(&id)) =>
            {
                "rds.job"
            }
            other => other.operation(),
        };
        s.count(operation);
        if let Some(target) = route.target() {
            s.log_call(operation, target);
        }
        if let Route::Restart { instance } = &route {
            s.arrived("ddm.restart", instance, arrived);
        }
        s.take_fault(operation)
    };
    let reply = match fault {
        None => handle(&shared, &route, &req),
        Some(fault) => {
            // With `execute`, the request takes effect before the delay: the client may
            // give up waiting, but the work has started, as with a real lost answer.
            let real = fault.execute.then(|| handle(&shared, &route, &req));
            tokio::time::sleep(fault.delay).await;
            match (fault.reply(), real) {
                (Some(canned), _) => canned,
                (None, Some(real)) => real,
                (None, None) => handle(&shared, &route, &req),
            }
        }
    };
    tracing::debug!(
        operation = route.operation(),
        status = reply.status.as_u16(),
        "emulator answered"
    );
    reply.into_response()
}

fn handle(shared: &Shared, route: &Route, req: &Incoming) -> Reply {
    let now = Instant::now();
    let mut s = shared.lock();
    if let Route::Token = route {
        return iam::token(&mut s, &req.body, now);
    }
    if let Err(refused) = auth::authenticate(&s, req, now) {
        return refused;
    }
    match route {
        Route::Token => Reply::no_such_api(),
        Route::Restart { instance } => ddm::restart(&mut s, instance, &req.body, now),
        Route::Instance { project, instance } => ddm::show_instance(&mut s, project, instance, now),
        Route::Job { job } => ddm::show_job(&s, job, now),
        Route::TaurusRestart { instance, proxy } => {
            taurus::restart(&mut s, instance, proxy, &req.body, now)
        }
        Route::TaurusUpgrade { instance, proxy } => {
            taurus::upgrade(&mut s, instance, proxy, &req.body, now)
        }
        Route::TaurusJob => match auth::query_value(req.query.as_deref(), "id") {
            Some(id) if s.rds.knows_job(&id) => rds::show_job(&s, &id, now),
            _ => taurus::show_job(&mut s, req.query.as_deref(), now),
        },
        Route::RdsRestart { instance } => rds::restart(&mut s, instance, &req.body, now),
        Route::RdsInstances => rds::list(&s, req.query.as_deref(), now),
        Route::EcsReboot => ecs::reboot(&mut s, &req.body, now),
        Route::EcsJob { job } => ecs::show_job(&s, job, now),
        Route::TaurusProxies { instance } => taurus::list_proxies(&mut s, instance, now),
    }
}
