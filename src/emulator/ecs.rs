//! Emulated Huawei ECS, for operations declared in the config: reboot servers in a batch
//! (`POST /v1/{project_id}/cloudservers/action` with `{"reboot": {"type": "SOFT" | "HARD",
//! "servers": [{"id": ...}]}}`, answered `{"job_id": ...}`), and show that job
//! (`GET /v1/{project_id}/jobs/{job_id}`: `status` INIT, RUNNING, SUCCESS or FAIL). Shapes
//! from Huawei's ECS API reference ("Rebooting ECSs in a Batch", "Querying Task Execution
//! Status"). Any UUID names a server that exists; errors are `{"error": {"code",
//! "message"}}`.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::reply::Reply;
use super::state::{new_job_id, Job, State};

/// Everything the emulator remembers about ECS.
#[derive(Default)]
pub struct Ecs {
    jobs: HashMap<String, Job>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

fn uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// The one server a reboot names, if the body is the documented shape.
fn server_of(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let reboot = v.get("reboot")?;
    let kind = reboot.get("type")?.as_str()?;
    if kind != "SOFT" && kind != "HARD" {
        return None;
    }
    match reboot.get("servers")?.as_array()?.as_slice() {
        [one] => one.get("id")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `POST /v1/{project_id}/cloudservers/action`
pub fn reboot(state: &mut State, body: &[u8], now: Instant) -> Reply {
    let Some(server) = server_of(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Ecs.0005",
            "Invalid parameter: the request body is not a reboot of one server.",
        );
    };
    if !uuid(&server) {
        return error(StatusCode::NOT_FOUND, "Ecs.0114", "The ECS does not exist.");
    }
    let job_id = format!("ff80808{}", &new_job_id().replace('-', "")[..25]);
    let duration = state.job_duration;
    state.ecs.jobs.insert(
        job_id.clone(),
        Job {
            instance_id: server,
            started: now,
            duration,
            created: time::OffsetDateTime::now_utc(),
        },
    );
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

/// `GET /v1/{project_id}/jobs/{job_id}`
pub fn show_job(state: &State, job_id: &str, now: Instant) -> Reply {
    let Some(job) = state.ecs.jobs.get(job_id) else {
        return error(StatusCode::NOT_FOUND, "Ecs.0014", "The job does not exist.");
    };
    let status = match job.progress(now).0 {
        "Completed" => "SUCCESS",
        _ => "RUNNING",
    };
    Reply::json(
        StatusCode::OK,
        json!({
            "job_id": job_id,
            "job_type": "rebootServer",
            "status": status,
            "entities": {"sub_jobs_total": 1, "sub_jobs": [{"status": status, "entities": {"server_id": job.instance_id}}]},
            "fail_reason": null,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reboot_names_one_server() {
        let ok = br#"{"reboot":{"type":"SOFT","servers":[{"id":"3e2a5b4c-1d2e-4f60-8a9b-0c1d2e3f4a5b"}]}}"#;
        assert_eq!(
            server_of(ok).as_deref(),
            Some("3e2a5b4c-1d2e-4f60-8a9b-0c1d2e3f4a5b")
        );
        assert!(server_of(br#"{"reboot":{"type":"soft","servers":[{"id":"x"}]}}"#).is_none());
        assert!(server_of(br#"{"reboot":{"type":"SOFT","servers":[]}}"#).is_none());
        assert!(uuid("3e2a5b4c-1d2e-4f60-8a9b-0c1d2e3f4a5b"));
        assert!(!uuid("3e2a5b4c-1d2e-4f60-8a9b-0c1d2e3f4a5"));
    }
}
