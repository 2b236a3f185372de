//! Request templates from TOML: a path of whole segments, query values, fixed headers, a
//! JSON body tree, and JSON Pointers. A placeholder is `{name}` standing for a whole path
//! segment, query value, body value or argv element, never part of one: that is what makes
//! a value unable to add a segment, a query, a host, a JSON key or an argument.

use std::collections::BTreeMap;

use super::types::{Body, Fill, RequestTemplate};
use crate::command::suggest;
use crate::config::problems::Collector;

/// The placeholders a template may use, for "unknown placeholder" and its suggestion.
pub struct Names<'a> {
    pub known: &'a [String],
}

impl Names<'_> {
    fn check(&self, name: &str, path: &str, p: &mut Collector) {
        if !self.known.iter().any(|k| k == name) {
            p.add(
                path,
                format!(
                    "unknown placeholder `{{{name}}}` (known here: {}){}",
                    self.known
                        .iter()
                        .map(|k| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    suggest::did_you_mean(name, self.known.iter().map(String::as_str))
                ),
            );
        }
    }
}

/// `{name}` -> `Some(name)`; `None` when `text` holds no brace at all; `Err` when it holds
/// braces but is not exactly one placeholder.
pub fn placeholder(text: &str) -> Result<Option<&str>, ()> {
    if !text.contains(['{', '}']) {
        return Ok(None);
    }
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or(())?;
    let ok = !inner.is_empty()
        && inner.len() <= 40
        && inner.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && inner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(Some(inner))
    } else {
        Err(())
    }
}

/// A literal or a whole placeholder; `what` names the place for the message.
pub fn fill(text: &str, what: &str, path: &str, names: &Names<'_>, p: &mut Collector) -> Fill {
    match placeholder(text) {
        Ok(Some(name)) => {
            names.check(name, path, p);
            Fill::Value(name.to_string())
        }
        Ok(None) => Fill::Literal(text.to_string()),
        Err(()) => {
            p.add(
                path,
                format!(
                    "`{text}`: a placeholder must be a whole {what}, as `{{name}}`, never part of \
                     one (no text is pasted together)"
                ),
            );
            Fill::Literal(String::new())
        }
    }
}

fn unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// `/v3/{project_id}/instances/{instance_id}/action` -> segments. Each segment is a literal
/// of RFC 3986 unreserved characters or exactly one placeholder.
pub fn url_path(text: &str, path: &str, names: &Names<'_>, p: &mut Collector) -> Vec<Fill> {
    let Some(rest) = text.strip_prefix('/') else {
        p.add(path, format!("`{text}` must start with /"));
        return Vec::new();
    };
    if text.contains(['?', '#']) {
        p.add(
            path,
            "the path cannot hold a query or a fragment: put query parameters under `query`",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for segment in rest.split('/') {
        match placeholder(segment) {
            Ok(Some(name)) => {
                names.check(name, path, p);
                out.push(Fill::Value(name.to_string()));
            }
            Ok(None)
                if !segment.is_empty() && unreserved(segment) && !matches!(segment, "." | "..") =>
            {
                out.push(Fill::Literal(segment.to_string()))
            }
            Ok(None) => {
                p.add(
                    path,
                    format!(
                        "path segment `{segment}` must be letters, digits, - _ . or ~ (not empty, \
                         . or ..)"
                    ),
                );
            }
            Err(()) => p.add(
                path,
                format!(
                    "placeholder outside a path segment in `{segment}`: a placeholder must be a \
                     whole segment (`/{{name}}/`), e.g. split `inst-{{id}}` into `inst/{{id}}` if \
                     the API allows, or declare the whole value as a parameter"
                ),
            ),
        }
    }
    out
}

/// Header names opsgate sets itself for the signature or the account's authentication.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-type",
    "content-length",
    "x-auth-token",
    "x-sdk-date",
    "x-project-id",
    "token",
];

pub fn headers(
    raw: &BTreeMap<String, String>,
    path: &str,
    p: &mut Collector,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in raw {
        let hpath = format!("{path}.{name}");
        let lower = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            p.add(&hpath, "a header name is letters, digits and -");
            continue;
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-acs-") {
            p.add(
                &hpath,
                format!(
                    "`{name}` is set by opsgate for the signature or the account's credentials"
                ),
            );
            continue;
        }
        if value.contains(['{', '}']) || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            p.add(
                &hpath,
                "a header value is fixed printable ASCII (no placeholder: headers carry no chat \
                 values)",
            );
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    out
}

pub fn query(
    raw: &BTreeMap<String, String>,
    path: &str,
    names: &Names<'_>,
    p: &mut Collector,
) -> Vec<(String, Fill)> {
    raw.iter()
        .map(|(k, v)| {
            let qpath = format!("{path}.{k}");
            if k.is_empty() || k.contains(['{', '}']) || !k.bytes().all(|b| b.is_ascii_graphic()) {
                p.add(&qpath, "a query key is fixed printable ASCII");
            }
            (k.clone(), fill(v, "query value", &qpath, names, p))
        })
        .collect()
}

/// A TOML body template -> a JSON body tree.
pub fn body(raw: &toml::Value, path: &str, names: &Names<'_>, p: &mut Collector) -> Body {
    match raw {
        toml::Value::String(s) => match fill(s, "JSON value", path, names, p) {
            Fill::Value(name) => Body::Value(name),
            Fill::Literal(text) => Body::Literal(serde_json::Value::String(text)),
        },
        toml::Value::Integer(n) => Body::Literal((*n).into()),
        toml::Value::Float(f) => Body::Literal(
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        ),
        toml::Value::Boolean(b) => Body::Literal((*b).into()),
        toml::Value::Datetime(_) => {
            p.add(path, "a date is not a JSON value: write it as a string");
            Body::Literal(serde_json::Value::Null)
        }
        toml::Value::Array(items) => Body::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| body(v, &format!("{path}[{i}]"), names, p))
                .collect(),
        ),
        toml::Value::Table(t) => Body::Object(
            t.iter()
                .map(|(k, v)| {
                    let kpath = format!("{path}.{k}");
                    if k.contains(['{', '}']) {
                        p.add(&kpath, "a JSON key is fixed text (no placeholder)");
                    }
                    (k.clone(), body(v, &kpath, names, p))
                })
                .collect(),
        ),
    }
}

/// RFC 6901: empty (the whole document), or `/`-separated tokens in which `~` is only ever
/// `~0` or `~1`.
pub fn pointer(text: &str, path: &str, p: &mut Collector) -> String {
    let valid = text.is_empty()
        || (text.starts_with('/') && {
            let b = text.as_bytes();
            (0..b.len()).all(|i| b[i] != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
        });
    if !valid {
        p.add(
            path,
            format!(
                "`{text}` is not a JSON Pointer (RFC 6901): it starts with / (e.g. `/job/status`), \
                 and ~ is written ~0, / inside a name ~1"
            ),
        );
    }
    text.to_string()
}

/// GET, POST, PUT, PATCH or DELETE (any case); POST for `None` with a body, else GET.
pub fn method(raw: Option<&str>, default: &str, path: &str, p: &mut Collector) -> String {
    let m = raw.unwrap_or(default).to_ascii_uppercase();
    if !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        p.add(
            path,
            format!("unknown method `{m}` (GET, POST, PUT, PATCH or DELETE)"),
        );
    }
    m
}

/// A request's parts as one template.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method_raw: Option<&str>,
    path_raw: Option<&str>,
    query_raw: &BTreeMap<String, String>,
    headers_raw: &BTreeMap<String, String>,
    body_raw: Option<&toml::Value>,
    at: &str,
    names: &Names<'_>,
    p: &mut Collector,
) -> RequestTemplate {
    let key = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    let default = if body_raw.is_some() { "POST" } else { "GET" };
    let method = method(method_raw, default, &key("method"), p);
    let path = match path_raw {
        Some(t) => url_path(t, &key("path"), names, p),
        None => {
            p.add(
                key("path"),
                "missing (e.g. \"/v3/{project_id}/instances/{instance_id}/action\")",
            );
            Vec::new()
        }
    };
    RequestTemplate {
        method,
        path,
        query: query(query_raw, &key("query"), names, p),
        headers: headers(headers_raw, &key("headers"), p),
        body: body_raw.map(|b| body(b, &key("body"), names, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_whole() {
        assert_eq!(placeholder("{id}"), Ok(Some("id")));
        assert_eq!(placeholder("plain"), Ok(None));
        assert!(placeholder("inst-{id}").is_err());
        assert!(placeholder("{Id}").is_err());
        assert!(placeholder("{a}{b}").is_err());
        assert!(placeholder("{}").is_err());
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let mut p = Collector::default();
        for ok in ["", "/job_id", "/job/status", "/a~0b/c~1d", "/0"] {
            pointer(ok, "x", &mut p);
        }
        assert!(p.is_empty());
        for bad in ["job_id", "/a~2", "/a~", "#/job"] {
            let mut p = Collector::default();
            pointer(bad, "x", &mut p);
            assert!(!p.is_empty(), "{bad}");
        }
    }

    #[test]
    fn paths_are_whole_segments() {
        let known = vec!["id".to_string()];
        let names = Names { known: &known };
        let mut p = Collector::default();
        let segs = url_path("/v1/items/{id}/action", "path", &names, &mut p);
        assert!(p.is_empty());
        assert_eq!(segs[2], Fill::Value("id".into()));
        for bad in [
            "/v1/inst-{id}",
            "v1/{id}",
            "/v1/{id}?x=1",
            "/v1//x",
            "/v1/../x",
            "/v1/{nope}",
        ] {
            let mut p = Collector::default();
            url_path(bad, "path", &names, &mut p);
            assert!(!p.is_empty(), "{bad}");
        }
    }
}
