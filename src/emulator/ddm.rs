//! Emulated DDM: restart an instance, show an instance, show a job.
//!
//! Any ID of the documented shape names an instance that exists and is RUNNING. A restart
//! makes it RESTARTING and starts a job; after the configured duration both are done.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::iam::iam_time;
use super::reply::Reply;
use super::state::{new_job_id, Job, State};
use crate::command::ids;

fn parameter_error() -> Reply {
    Reply::ddm_error(StatusCode::BAD_REQUEST, "DBS.280001", "Parameter error.")
}

fn name_of(instance_id: &str) -> String {
    format!("ddm-{}", &instance_id[..8.min(instance_id.len())])
}

/// `POST /v1/{project_id}/instances/{instance_id}/action`
pub fn restart(state: &mut State, instance_id: &str, body: &[u8], now: Instant) -> Reply {
    if !ids::DDM_INSTANCE.matches(instance_id) {
        return parameter_error();
    }
    // `restart` and its `type` are both optional and default to a soft restart; an empty
    // body is taken as `{}`.
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return parameter_error(),
        }
    };
    match v.get("restart") {
        None => {}
        Some(Value::Object(r)) => match r.get("type") {
            None => {}
            Some(Value::String(t)) if t == "soft" || t == "hard" => {}
            Some(_) => return parameter_error(),
        },
        Some(_) => return parameter_error(),
    }
    let duration = state.job_duration;
    let instance = state.instance(instance_id);
    let status = instance.status(now);
    if status != "RUNNING" && status != "ERROR" {
        return Reply::ddm_error(
            StatusCode::CONFLICT,
            "DBS.200019",
            "Another operation is being performed on the instance.",
        );
    }
    instance.forced = None;
    instance.restarting_until = Some(now.checked_add(duration).unwrap_or(now));
    let job_id = new_job_id();
    state.jobs.insert(
        job_id.clone(),
        Job {
            instance_id: instance_id.to_string(),
            started: now,
            duration,
            created: time::OffsetDateTime::now_utc(),
        },
    );
    Reply::json(
        StatusCode::OK,
        json!({
            "instanceId": instance_id,
            "instanceName": name_of(instance_id),
            "jobId": job_id,
        }),
    )
}

/// `GET /v1/{project_id}/instances/{instance_id}`
pub fn show_instance(
    state: &mut State,
    project_id: &str,
    instance_id: &str,
    now: Instant,
) -> Reply {
    if !ids::DDM_INSTANCE.matches(instance_id) {
        return parameter_error();
    }
    let status = state.instance(instance_id).status(now);
    let node_status = if status == "RUNNING" {
        "normal"
    } else {
        "abnormal"
    };
    Reply::json(
        StatusCode::OK,
        json!({
            "id": instance_id,
            "name": name_of(instance_id),
            "status": status,
            "project_id": project_id,
            "engine_version": "3.0.8.3",
            "node_count": 2,
            "node_status": node_status,
            "nodes": [
                {"node_id": format!("{}no01", &instance_id[..32]), "status": node_status, "port": "5066"},
                {"node_id": format!("{}no02", &instance_id[..32]), "status": node_status, "port": "5066"},
            ],
        }),
    )
}

/// `GET /v3/{project_id}/jobs/{job_id}`
pub fn show_job(state: &State, job_id: &str, now: Instant) -> Reply {
    let plausible = !job_id.is_empty()
        && job_id.len() <= 64
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plausible {
        return parameter_error();
    }
    let Some(job) = state.jobs.get(job_id) else {
        // The emulator's own code: the real one for "job not found" is not documented.
        return Reply::ddm_error(StatusCode::NOT_FOUND, "EMU.404", "The job does not exist.");
    };
    let (status, process, ended) = job.progress(now);
    let mut body = json!({"job": {
        "id": job_id,
        "name": "RESTART_INSTANCE",
        "status": status,
        "created_time": iam_time(job.created),
        "instance": {"id": job.instance_id, "name": name_of(&job.instance_id)},
    }});
    if let Some(p) = process {
        body["job"]["process"] = json!(p);
    }
    if let Some(end) = ended {
        body["job"]["end_time"] = json!(iam_time(end));
    }
    Reply::json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::emulator::EmulatorOptions;

    const ID: &str = "28e8841d0b9c4f6a9a30742ee60e1068in09";

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
    fn restart_then_busy_then_done() {
        let mut s = state();
        let now = Instant::now();
        let r = restart(&mut s, ID, br#"{"restart":{"type":"hard"}}"#, now);
        assert_eq!(r.status, StatusCode::OK);
        let job_id = body(&r)["jobId"].as_str().unwrap().to_string();
        assert_eq!(
            body(&show_instance(&mut s, "p", ID, now))["status"],
            "RESTARTING"
        );
        assert_eq!(
            body(&show_job(&s, &job_id, now))["job"]["status"],
            "Running"
        );

        let busy = restart(&mut s, ID, b"{}", now);
        assert_eq!(busy.status, StatusCode::CONFLICT);
        assert_eq!(body(&busy)["errCode"], "DBS.200019");

        let later = now + Duration::from_secs(10);
        assert_eq!(
            body(&show_instance(&mut s, "p", ID, later))["status"],
            "RUNNING"
        );
        assert_eq!(
            body(&show_job(&s, &job_id, later))["job"]["status"],
            "Completed"
        );
        assert_eq!(restart(&mut s, ID, b"", later).status, StatusCode::OK);
    }

    #[test]
    fn bad_input_is_a_parameter_error() {
        let mut s = state();
        let now = Instant::now();
        for b in [
            &br#"{"restart":{"type":"warm"}}"#[..],
            br#"{"restart":"soft"}"#,
            br#"[1]"#,
            b"{not json",
            &[0xff, 0x00],
        ] {
            let r = restart(&mut s, ID, b, now);
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert_eq!(body(&r)["errCode"], "DBS.280001");
        }
        assert_eq!(
            restart(&mut s, "../etc", b"{}", now).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            show_instance(&mut s, "p", "x", now).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(show_job(&s, "a/b", now).status, StatusCode::BAD_REQUEST);
        assert_eq!(
            show_job(&s, "1eb697c0-1842", now).status,
            StatusCode::NOT_FOUND
        );
    }
}
