//! A declared request template filled for one job: each placeholder's value from the job
//! (its validated parameters), the account (`project_id`, `region`) or the cloud's answer
//! (`job_id`). The body is built by the JSON serializer with each value typed by its
//! parameter, never pasted into text.

use reqwest::Method;
use serde_json::Value;

use crate::cloud::plausible_id;
use crate::config::declared::{Body, Fill, Kind, RequestTemplate};
use crate::config::{Account, Declaration};
use crate::domain::JobSpec;

/// A request ready for a vendor's client: the path unencoded (every segment is RFC 3986
/// unreserved characters, so encoding leaves it as it is and no value adds a segment).
#[derive(Clone, Debug)]
pub struct Filled {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Filled {
    pub fn path(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        out
    }
}

/// Where values come from.
pub struct Values<'a> {
    pub decl: &'a Declaration,
    pub spec: &'a JobSpec,
    pub account: &'a Account,
    pub job_id: Option<&'a str>,
}

impl Values<'_> {
    /// The value of `name` and its JSON type, or why there is none.
    fn get(&self, name: &str) -> Result<(String, Kind), String> {
        if let Some(v) = self.spec.params.get(name) {
            let kind = self.decl.kinds.get(name).copied().unwrap_or(Kind::Text);
            return Ok((self.decl.wire_value(name, v).to_string(), kind));
        }
        let from_account = match name {
            "project_id" => self.account.project_id.clone(),
            "region" => Some(self.account.region.clone()).filter(|r| !r.is_empty()),
            "job_id" => self.job_id.map(str::to_string),
            _ => None,
        };
        from_account
            .map(|v| (v, Kind::Text))
            .ok_or_else(|| format!("the job has no value for `{{{name}}}`"))
    }
}

fn segment_safe(v: &str) -> bool {
    !v.is_empty()
        && !matches!(v, "." | "..")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

pub fn fill(t: &RequestTemplate, values: &Values<'_>) -> Result<Filled, String> {
    let method = Method::from_bytes(t.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut segments = Vec::with_capacity(t.path.len());
    for f in &t.path {
        let v = match f {
            Fill::Literal(l) => l.clone(),
            Fill::Value(name) => values.get(name)?.0,
        };
        // Parameters are checked against this when typed; the account's values and the
        // cloud's job ID are checked here.
        if !segment_safe(&v) {
            return Err(format!(
                "a value for the URL path is not a plain identifier: {}",
                crate::cloud::http::clean(&v)
            ));
        }
        segments.push(v);
    }
    let mut query = Vec::with_capacity(t.query.len());
    for (k, f) in &t.query {
        let v = match f {
            Fill::Literal(l) => l.clone(),
            Fill::Value(name) => values.get(name)?.0,
        };
        query.push((k.clone(), v));
    }
    let body = match &t.body {
        Some(b) => Some(serde_json::to_vec(&json(b, values)?).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok(Filled {
        method,
        segments,
        query,
        headers: t.headers.clone(),
        body,
    })
}

fn json(b: &Body, values: &Values<'_>) -> Result<Value, String> {
    Ok(match b {
        Body::Literal(v) => v.clone(),
        Body::Value(name) => {
            let (v, kind) = values.get(name)?;
            match kind {
                Kind::Text => Value::String(v),
                Kind::Integer => v
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| format!("`{name}` is not a whole number"))?,
                Kind::Boolean => Value::Bool(v == "true"),
            }
        }
        Body::Object(fields) => {
            let mut map = serde_json::Map::new();
            for (k, v) in fields {
                map.insert(k.clone(), json(v, values)?);
            }
            Value::Object(map)
        }
        Body::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| json(i, values))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The cloud's job ID at `pointer`, if the answer carries a plain one there.
pub fn job_id_at(body: &Value, pointer: &str) -> Option<String> {
    let id = match body.pointer(pointer)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    plausible_id(&id).then_some(id)
}

/// Text at `pointer` (a string, a number or a boolean), made safe to show.
pub fn text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(crate::cloud::http::clean(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_read_ids_and_text() {
        let v: Value = serde_json::json!({"job_id": "ab-1", "job": {"status": "Running"}, "n": 7, "bad": "../x"});
        assert_eq!(job_id_at(&v, "/job_id").as_deref(), Some("ab-1"));
        assert_eq!(job_id_at(&v, "/n").as_deref(), Some("7"));
        assert_eq!(job_id_at(&v, "/bad"), None);
        assert_eq!(job_id_at(&v, "/missing"), None);
        assert_eq!(text_at(&v, "/job/status").as_deref(), Some("Running"));
        assert!(segment_safe("abc-1_2.3~"));
        for bad in ["", ".", "..", "a/b", "a%2Fb", "a b", "a?b"] {
            assert!(!segment_safe(bad), "{bad}");
        }
    }
}
