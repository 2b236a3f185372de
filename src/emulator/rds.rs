//! Emulated Huawei RDS, for operations declared in the config (opsgate has no built-in RDS
//! operation): reboot an instance (`POST /v3/{project_id}/instances/{instance_id}/action`
//! with `{"restart": {}}`, answered `{"job_id": ...}`), and show a job
//! (`GET /v3/{project_id}/jobs?id=`, the path TaurusDB's job API shares: `handle` asks RDS
//! first). Shapes from Huawei's RDS API reference ("Rebooting a DB Instance", "Obtaining
//! Information About a Task with a Specified ID"), and list one instance
//! (`GET /v3/{project_id}/instances?id=`, "Querying DB Instances").
//!
//! Any ID of the documented shape (32 hex characters, then `in01` MySQL, `in03`
//! PostgreSQL or `in04` SQL Server) names an instance that exists and is ACTIVE. While its
//! reboot job runs, another reboot gets 409 `DBS.200019`, as DDM's and TaurusDB's do.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::iam::iam_time;
use super::reply::Reply;
use super::state::{new_job_id, Job, State};

/// Everything the emulator remembers about RDS.
#[derive(Default)]
pub struct Rds {
    jobs: HashMap<String, Job>,
    /// Instance -> its running job.
    busy: HashMap<String, String>,
}

fn instance_ok(id: &str) -> bool {
    id.len() == 36
        && id[..32]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && matches!(&id[32..], "in01" | "in03" | "in04")
}

fn parameter_error() -> Reply {
    Reply::gateway_error(StatusCode::BAD_REQUEST, "DBS.200001", "Parameter error.")
}

impl Rds {
    pub fn knows_job(&self, id: &str) -> bool {
        self.jobs.contains_key(id)
    }

    fn running(&self, instance: &str, now: Instant) -> bool {
        (self.busy.get(instance))
            .and_then(|j| self.jobs.get(j))
            .is_some_and(|j| j.progress(now).0 == "Running")
    }
}

/// `POST /v3/{project_id}/instances/{instance_id}/action`, body `{"restart": {...}}`.
pub fn restart(state: &mut State, instance_id: &str, body: &[u8], now: Instant) -> Reply {
    if !instance_ok(instance_id) {
        return Reply::gateway_error(
            StatusCode::NOT_FOUND,
            "DBS.200823",
            "The DB instance does not exist.",
        );
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("restart").is_some_and(Value::is_object) => {}
        _ => return parameter_error(),
    }
    let duration = state.job_duration;
    if state.rds.running(instance_id, now) {
        return Reply::gateway_error(
            StatusCode::CONFLICT,
            "DBS.200019",
            "Another operation is being performed on the DB instance.",
        );
    }
    let job_id = new_job_id();
    state.rds.jobs.insert(
        job_id.clone(),
        Job {
            instance_id: instance_id.to_string(),
            started: now,
            duration,
            created: time::OffsetDateTime::now_utc(),
        },
    );
    state
        .rds
        .busy
        .insert(instance_id.to_string(), job_id.clone());
    Reply::json(StatusCode::OK, json!({ "job_id": job_id }))
}

/// `GET /v3/{project_id}/instances?id=`: the instance, REBOOTING while its reboot runs,
/// else ACTIVE (no `id`, or one of another shape: an empty list).
pub fn list(state: &State, query: Option<&str>, now: Instant) -> Reply {
    let instances = match super::auth::query_value(query, "id") {
        Some(id) if instance_ok(&id) => {
            let status = if state.rds.running(&id, now) {
                "REBOOTING"
            } else {
                "ACTIVE"
            };
            vec![json!({"id": id, "name": format!("rds-{}", &id[..8]), "status": status})]
        }
        _ => Vec::new(),
    };
    Reply::json(
        StatusCode::OK,
        json!({"total_count": instances.len(), "instances": instances}),
    )
}

/// `GET /v3/{project_id}/jobs?id=` for a job RDS started.
pub fn show_job(state: &State, id: &str, now: Instant) -> Reply {
    let Some(job) = state.rds.jobs.get(id) else {
        return Reply::gateway_error(
            StatusCode::NOT_FOUND,
            "DBS.200011",
            "The job does not exist.",
        );
    };
    let (status, process, ended) = job.progress(now);
    let mut out = json!({
        "id": id,
        "name": "RestartInstance",
        "status": status,
        "created": iam_time(job.created),
        "instance": {"id": job.instance_id, "name": format!("rds-{}", &job.instance_id[..8])},
        "fail_reason": "",
    });
    if let Some(p) = process {
        out["process"] = json!(p);
    }
    if let Some(end) = ended {
        out["ended"] = json!(iam_time(end));
    }
    Reply::json(StatusCode::OK, json!({ "job": out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_have_the_documented_shape() {
        assert!(instance_ok("0123456789abcdef0123456789abcdefin01"));
        assert!(instance_ok("0123456789abcdef0123456789abcdefin03"));
        assert!(!instance_ok("0123456789abcdef0123456789abcdefin09"));
        assert!(!instance_ok("0123456789ABCDEF0123456789abcdefin01"));
        assert!(!instance_ok("x"));
    }
}
