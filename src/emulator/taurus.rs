//! Emulated TaurusDB (GaussDB for MySQL) proxy APIs: restart a proxy, upgrade its kernel,
//! show a job (`GET /v3/{project_id}/jobs?id=`), list an instance's proxies.
//!
//! Any ID of the documented shapes names a proxy that exists, is ACTIVE and runs kernel
//! [`DEFAULT_PROXY_VERSION`]. A restart or an accepted upgrade starts a job that runs for the
//! configured job duration (with `process` as progress); while it runs, another request on
//! the proxy gets 409 `DBS.200019`. A new job answers "not found" for its first
//! [`NOT_VISIBLE_FOR`], as the real one is not queryable for a few seconds. An upgrade is
//! REJECTed (HTTP 200, `state: REJECT`) when the target is lower than the source, when the
//! source is not the proxy's version, or when the proxy already runs the target.
//! Error codes the documentation does not give are the emulator's own (`EMU.*`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::auth::decode_query;
use super::iam::iam_time;
use super::reply::Reply;
use super::state::{new_job_id, Job, State};
use crate::cloud::huawei::taurus_upgrade::compare_versions;
use crate::command::ids;

/// The kernel version every proxy starts with.
pub const DEFAULT_PROXY_VERSION: &str = "2.23.12.000";
/// How long a new job answers "not found".
pub const NOT_VISIBLE_FOR: Duration = Duration::from_secs(1);

/// Everything the emulator remembers about TaurusDB.
#[derive(Default)]
pub struct Taurus {
    proxies: HashMap<String, Proxy>,
    jobs: HashMap<String, ProxyJob>,
}

struct Proxy {
    instance_id: String,
    version: String,
    /// The job running on the proxy, if any.
    job: Option<String>,
}

struct ProxyJob {
    job: Job,
    proxy_id: String,
    name: &'static str,
    /// For an upgrade: the version the proxy runs once the job completes.
    target_version: Option<String>,
}

impl Taurus {
    /// Applies finished jobs: the proxy is free again and runs its new version.
    fn settle(&mut self, now: Instant) {
        for proxy in self.proxies.values_mut() {
            let Some(job) = proxy.job.as_ref().and_then(|id| self.jobs.get(id)) else {
                proxy.job = None;
                continue;
            };
            if job.job.progress(now).0 == "Completed" {
                if let Some(v) = &job.target_version {
                    proxy.version.clone_from(v);
                }
                proxy.job = None;
            }
        }
    }

    fn proxy(&mut self, instance_id: &str, proxy_id: &str) -> &mut Proxy {
        self.proxies
            .entry(proxy_id.to_string())
            .or_insert_with(|| Proxy {
                instance_id: instance_id.to_string(),
                version: DEFAULT_PROXY_VERSION.to_string(),
                job: None,
            })
    }

    /// The proxy's kernel version now.
    #[cfg(test)]
    pub fn version_of(&mut self, proxy_id: &str, now: Instant) -> String {
        self.settle(now);
        self.proxies
            .get(proxy_id)
            .map_or_else(|| DEFAULT_PROXY_VERSION.to_string(), |p| p.version.clone())
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn parameter_error(message: &str) -> Reply {
    Reply::gateway_error(StatusCode::BAD_REQUEST, "EMU.400", message)
}

fn busy() -> Reply {
    Reply::gateway_error(
        StatusCode::CONFLICT,
        "DBS.200019",
        "Another operation is being performed on the proxy instance. Try again later.",
    )
}

fn valid_ids(instance_id: &str, proxy_id: &str) -> Result<(), Reply> {
    if !ids::TAURUS_INSTANCE.matches(instance_id) {
        return Err(parameter_error("Invalid instance ID."));
    }
    if !ids::TAURUS_PROXY.matches(proxy_id) {
        return Err(parameter_error("Invalid proxy ID."));
    }
    Ok(())
}

fn start_job(
    state: &mut State,
    instance_id: &str,
    proxy_id: &str,
    name: &'static str,
    target_version: Option<String>,
    now: Instant,
) -> String {
    let job_id = new_job_id();
    let job = Job {
        instance_id: instance_id.to_string(),
        started: now,
        duration: state.job_duration,
        created: time::OffsetDateTime::now_utc(),
    };
    state.taurus.jobs.insert(
        job_id.clone(),
        ProxyJob {
            job,
            proxy_id: proxy_id.to_string(),
            name,
            target_version,
        },
    );
    state.taurus.proxy(instance_id, proxy_id).job = Some(job_id.clone());
    job_id
}

/// `POST /v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}/restart` (no body; an
/// empty JSON object is accepted too).
pub fn restart(
    state: &mut State,
    instance_id: &str,
    proxy_id: &str,
    body: &[u8],
    now: Instant,
) -> Reply {
    if let Err(r) = valid_ids(instance_id, proxy_id) {
        return r;
    }
    if !body.iter().all(u8::is_ascii_whitespace)
        && !matches!(serde_json::from_slice(body), Ok(Value::Object(_)))
    {
        return parameter_error("Invalid request body.");
    }
    state.taurus.settle(now);
    if state.taurus.proxy(instance_id, proxy_id).job.is_some() {
        return busy();
    }
    let job_id = start_job(state, instance_id, proxy_id, "RestartProxy", None, now);
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

/// `POST /v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}/upgrade-version`
pub fn upgrade(
    state: &mut State,
    instance_id: &str,
    proxy_id: &str,
    body: &[u8],
    now: Instant,
) -> Reply {
    if let Err(r) = valid_ids(instance_id, proxy_id) {
        return r;
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return parameter_error("Invalid request body."),
    };
    let version = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|s| ids::PROXY_VERSION.matches(s))
            .map(str::to_string)
    };
    let (Some(source), Some(target)) = (version("source_version"), version("target_version"))
    else {
        return parameter_error("source_version and target_version are required versions.");
    };
    state.taurus.settle(now);
    let proxy = state.taurus.proxy(instance_id, proxy_id);
    if proxy.job.is_some() {
        return busy();
    }
    let current = proxy.version.clone();
    let refusal = if compare_versions(&target, &source) == Some(Ordering::Less) {
        Some(format!(
            "The target version {target} is lower than the source version {source}."
        ))
    } else if compare_versions(&current, &target) == Some(Ordering::Equal) {
        Some(format!(
            "The proxy instance is already at the target version {target}."
        ))
    } else if compare_versions(&current, &source) != Some(Ordering::Equal) {
        Some(format!(
            "The source version {source} does not match the current version {current} of the proxy instance."
        ))
    } else {
        None
    };
    let entry = match refusal {
        Some(message) => json!({
            "instance_id": instance_id,
            "workflow_id": "",
            "state": "REJECT",
            "error_message": message,
        }),
        None => {
            let job_id = start_job(
                state,
                instance_id,
                proxy_id,
                "UpgradeProxyVersion",
                Some(target),
                now,
            );
            json!({
                "instance_id": instance_id,
                "workflow_id": job_id,
                "state": "ACCEPT",
                "error_message": null,
            })
        }
    };
    Reply::json(StatusCode::OK, json!({ "update_result": [entry] }))
}

/// `GET /v3/{project_id}/jobs?id={job_id}`
pub fn show_job(state: &mut State, query: Option<&str>, now: Instant) -> Reply {
    let id = decode_query(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v);
    let Some(id) = id.filter(|j| ids::HUAWEI_JOB_ID.matches(j)) else {
        return parameter_error("The job ID is missing or invalid.");
    };
    state.taurus.settle(now);
    let not_found = || {
        Reply::gateway_error(
            StatusCode::NOT_FOUND,
            "EMU.404",
            "The job does not exist or cannot be queried yet.",
        )
    };
    let Some(pj) = state.taurus.jobs.get(&id) else {
        return not_found();
    };
    if now.saturating_duration_since(pj.job.started) < NOT_VISIBLE_FOR {
        return not_found();
    }
    let (status, process, ended) = pj.job.progress(now);
    let mut job = json!({
        "id": id,
        "name": pj.name,
        "status": status,
        "created": iam_time(pj.job.created),
        "instance": {"id": pj.job.instance_id, "name": format!("taurus-{}", short(&pj.job.instance_id))},
        "entities": {"proxy_id": pj.proxy_id},
    });
    if let Some(p) = process {
        job["process"] = json!(p);
    }
    if let Some(end) = ended {
        job["ended"] = json!(iam_time(end));
    }
    Reply::json(StatusCode::OK, json!({ "job": job }))
}

/// `GET /v3/{project_id}/instances/{instance_id}/proxies`: the proxies of the instance the
/// emulator has seen, ACTIVE, or UPGRADING / RESTARTING while a job runs on them.
pub fn list_proxies(state: &mut State, instance_id: &str, now: Instant) -> Reply {
    if !ids::TAURUS_INSTANCE.matches(instance_id) {
        return parameter_error("Invalid instance ID.");
    }
    state.taurus.settle(now);
    let taurus = &state.taurus;
    let mut list: Vec<(&String, &Proxy)> = taurus
        .proxies
        .iter()
        .filter(|(_, p)| p.instance_id == instance_id)
        .collect();
    list.sort_by(|a, b| a.0.cmp(b.0));
    let proxies: Vec<Value> = list
        .into_iter()
        .map(|(id, p)| {
            let status = match p.job.as_ref().and_then(|j| taurus.jobs.get(j)) {
                Some(j) if j.target_version.is_some() => "UPGRADING",
                Some(_) => "RESTARTING",
                None => "ACTIVE",
            };
            json!({"proxy": {
                "pool_id": id,
                "name": format!("proxy-{}", short(id)),
                "status": status,
                "version": p.version,
                "node_num": 2,
            }})
        })
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({"total_count": proxies.len(), "proxy_list": proxies}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::EmulatorOptions;

    const INSTANCE: &str = "61a4ea66210545909d74a05c27a7179ein07";
    const PROXY: &str = "151c14381ac14ecfb9703a745b992677po01";

    fn state() -> State {
        State::new(&EmulatorOptions {
            job_duration: Duration::from_secs(10),
            ..EmulatorOptions::default()
        })
    }

    fn body(r: &Reply) -> Value {
        serde_json::from_str(&r.body).unwrap()
    }

    #[test]
    fn restart_job_is_hidden_then_runs_then_completes() {
        let mut s = state();
        let now = Instant::now();
        let r = restart(&mut s, INSTANCE, PROXY, b"", now);
        assert_eq!(r.status, StatusCode::OK);
        let job = body(&r)["job_id"].as_str().unwrap().to_string();
        let q = format!("id={job}");
        assert_eq!(
            show_job(&mut s, Some(&q), now).status,
            StatusCode::NOT_FOUND
        );
        let later = now + Duration::from_secs(4);
        let shown = body(&show_job(&mut s, Some(&q), later));
        assert_eq!(shown["job"]["status"], "Running");
        assert_eq!(shown["job"]["process"], "40%");

        let again = restart(&mut s, INSTANCE, PROXY, b"{}", later);
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(body(&again)["error_code"], "DBS.200019");
        assert_eq!(
            body(&list_proxies(&mut s, INSTANCE, later))["proxy_list"][0]["proxy"]["status"],
            "RESTARTING"
        );

        let done = now + Duration::from_secs(10);
        assert_eq!(
            body(&show_job(&mut s, Some(&q), done))["job"]["status"],
            "Completed"
        );
        assert_eq!(
            restart(&mut s, INSTANCE, PROXY, b"", done).status,
            StatusCode::OK
        );
    }

    #[test]
    fn upgrade_accepts_then_rejects_the_same_target() {
        let mut s = state();
        let now = Instant::now();
        let up = br#"{"source_version":"2.23.12.000","target_version":"2.24.03.000"}"#;
        let r = body(&upgrade(&mut s, INSTANCE, PROXY, up, now));
        assert_eq!(r["update_result"][0]["state"], "ACCEPT");
        assert!(r["update_result"][0]["error_message"].is_null());
        let done = now + Duration::from_secs(10);
        assert_eq!(s.taurus.version_of(PROXY, done), "2.24.03.000");

        let same = br#"{"source_version":"2.24.03.000","target_version":"2.24.03.000"}"#;
        let r = body(&upgrade(&mut s, INSTANCE, PROXY, same, done));
        assert_eq!(r["update_result"][0]["state"], "REJECT");
        assert!(r["update_result"][0]["error_message"]
            .as_str()
            .unwrap()
            .contains("already at the target version"));

        let down = br#"{"source_version":"2.24.03.000","target_version":"2.23.12.000"}"#;
        let r = body(&upgrade(&mut s, INSTANCE, PROXY, down, done));
        assert!(r["update_result"][0]["error_message"]
            .as_str()
            .unwrap()
            .contains("lower than"));
    }

    #[test]
    fn bad_input_is_a_parameter_error() {
        let mut s = state();
        let now = Instant::now();
        assert_eq!(
            restart(&mut s, "../x", PROXY, b"", now).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            restart(&mut s, INSTANCE, PROXY, b"[1]", now).status,
            StatusCode::BAD_REQUEST
        );
        for b in [
            &b"{}"[..],
            b"not json",
            br#"{"source_version":"2.23.12.000","target_version":"latest"}"#,
            &[0xff, 0x00],
        ] {
            assert_eq!(
                upgrade(&mut s, INSTANCE, PROXY, b, now).status,
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(show_job(&mut s, None, now).status, StatusCode::BAD_REQUEST);
        assert_eq!(
            show_job(&mut s, Some("id=a%2Fb"), now).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            show_job(&mut s, Some("id=unknown-job"), now).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            list_proxies(&mut s, "x", now).status,
            StatusCode::BAD_REQUEST
        );
    }
}
