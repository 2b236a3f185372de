//! What the emulator answers: a status, a raw body, and the few headers it sets. Bodies are
//! kept as raw strings so a fault can send bytes that are not JSON at all.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    /// Any body, sent as given. Labelled JSON only if it parses as JSON.
    pub fn raw(status: StatusCode, body: String) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// DDM's error shape.
    pub fn ddm_error(status: StatusCode, code: &str, message: &str) -> Reply {
        Reply::json(status, json!({"errCode": code, "externalMessage": message}))
    }

    /// The API gateway's (and TaurusDB's) error shape.
    pub fn gateway_error(status: StatusCode, code: &str, message: &str) -> Reply {
        Reply::json(status, json!({"error_code": code, "error_msg": message}))
    }

    /// IAM's error shape.
    pub fn iam_error(status: StatusCode, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {
                "code": status.as_u16(),
                "message": message,
                "title": status.canonical_reason().unwrap_or("Error"),
            }}),
        )
    }

    /// The gateway's answer for a path no API is published on.
    pub fn no_such_api() -> Reply {
        Reply::gateway_error(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment",
        )
    }

    /// The emulator's own admin API errors.
    pub fn admin_error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({"error": message.into()}))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = if serde_json::from_str::<Value>(&self.body).is_ok() {
            "application/json;charset=UTF-8"
        } else {
            "text/plain;charset=UTF-8"
        };
        let mut resp = (self.status, self.body).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}
