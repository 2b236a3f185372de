//! The HTTP part of a declaration: endpoint, authentication by name, the request, and how
//! its answers are read (accepted, refused, polled, reconciled).

use std::time::Duration;

use super::raw::RawOperation;
use super::template::{self, Names};
use super::types::{Accepted, AuthKind, Errors, HttpCall, Poll, Reconcile, Refusal};
use crate::config::problems::Collector;
use crate::domain::Provider;

const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_POLL_DEADLINE: Duration = Duration::from_secs(2 * 3600);

pub fn check(
    raw: &RawOperation,
    provider: Provider,
    endpoint_keys: &[&str],
    names: &[String],
    at: &str,
    p: &mut Collector,
) -> Option<HttpCall> {
    let key = |k: &str| format!("{at}.{k}");
    let auth = match raw.auth.as_deref() {
        Some(name) => match AuthKind::parse(name) {
            Some(kind) if kind.provider() == provider => Some(kind),
            Some(kind) => {
                p.add(
                    key("auth"),
                    format!(
                        "auth `{name}` is for {} accounts, but the operation runs on a {} account",
                        kind.provider().name(),
                        provider.name()
                    ),
                );
                None
            }
            None => {
                let all: Vec<&str> = AuthKind::ALL.iter().map(|k| k.name()).collect();
                p.add(
                    key("auth"),
                    format!(
                        "unknown auth `{name}` (one of: {}){}",
                        all.join(", "),
                        crate::command::suggest::did_you_mean(name, all.iter().copied())
                    ),
                );
                None
            }
        },
        None => match AuthKind::default_for(provider) {
            Some(kind) => Some(kind),
            None => {
                p.add(
                    key("auth"),
                    "missing: bearer, header or none (how the HTTP account authenticates)",
                );
                None
            }
        },
    };
    let endpoint = endpoint(raw, provider, endpoint_keys, &key("endpoint"), p);
    let alibaba = alibaba(raw, provider, at, p);
    if matches!(provider, Provider::Alibaba | Provider::Scnet) {
        if raw.body.is_some() {
            p.add(
                key("body"),
                format!(
                    "a declared {} call sends no body (not supported yet)",
                    provider.name()
                ),
            );
        }
        if !raw.headers.is_empty() {
            p.add(
                key("headers"),
                format!(
                    "a declared {} call sends no extra headers (not supported yet)",
                    provider.name()
                ),
            );
        }
    }
    let job_names: Vec<String> = names
        .iter()
        .cloned()
        .chain(["job_id".to_string()])
        .collect();
    let submit_names = Names { known: names };
    let poll_names = Names { known: &job_names };
    let submit = template::request(
        raw.method.as_deref(),
        raw.path.as_deref(),
        &raw.query,
        &raw.headers,
        raw.body.as_ref(),
        at,
        &submit_names,
        p,
    );
    let accepted = match &raw.accepted {
        Some(a) => Accepted {
            statuses: statuses(&a.status, &key("accepted.status"), p),
            id: a
                .id
                .as_deref()
                .map(|t| template::pointer(t, &key("accepted.id"), p)),
        },
        None => Accepted {
            statuses: vec![200],
            id: None,
        },
    };
    let errors = match &raw.errors {
        Some(e) => Errors {
            code: e
                .code
                .as_deref()
                .map(|t| template::pointer(t, &key("errors.code"), p)),
            message: e
                .message
                .as_deref()
                .map(|t| template::pointer(t, &key("errors.message"), p)),
            refused: e
                .refused
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let rpath = key(&format!("errors.refused[{i}]"));
                    let status = match r.status {
                        Some(s) if (400..=599).contains(&s) => s as u16,
                        _ => {
                            p.add(
                                format!("{rpath}.status"),
                                "missing or not an HTTP error status (400 to 599)",
                            );
                            return None;
                        }
                    };
                    if r.code.is_some() && e.code.is_none() {
                        p.add(
                            format!("{rpath}.code"),
                            "a code needs errors.code, the JSON Pointer to the vendor's code",
                        );
                    }
                    Some(Refusal {
                        status,
                        code: r.code.clone(),
                        retry: r.retry,
                    })
                })
                .collect(),
        },
        None => Errors::default(),
    };
    let poll = raw.poll.as_ref().map(|r| {
        let at = key("poll");
        let request = template::request(
            r.method.as_deref(),
            r.path.as_deref(),
            &r.query,
            &r.headers,
            None,
            &at,
            &poll_names,
            p,
        );
        if r.succeeded.is_empty() {
            p.add(
                format!("{at}.succeeded"),
                "missing: the state values that mean the work succeeded",
            );
        }
        Poll {
            request,
            state: state(r.state.as_deref(), &at, p),
            running: r.running.clone(),
            succeeded: r.succeeded.clone(),
            failed: r.failed.clone(),
            message: r
                .message
                .as_deref()
                .map(|t| template::pointer(t, &format!("{at}.message"), p)),
            progress: r
                .progress
                .as_deref()
                .map(|t| template::pointer(t, &format!("{at}.progress"), p)),
            interval: duration(
                r.interval.as_deref(),
                DEFAULT_POLL_INTERVAL,
                &format!("{at}.interval"),
                p,
            ),
            deadline: duration(
                r.deadline.as_deref(),
                DEFAULT_POLL_DEADLINE,
                &format!("{at}.deadline"),
                p,
            ),
        }
    });
    if let (Some(poll), None) = (&poll, &accepted.id) {
        if poll
            .request
            .path
            .iter()
            .chain(poll.request.query.iter().map(|(_, f)| f))
            .any(|f| *f == super::types::Fill::Value("job_id".into()))
        {
            p.add(
                key("accepted.id"),
                "the poll uses {job_id}: say where the accepted answer carries it (a JSON Pointer)",
            );
        }
    }
    let reconcile = raw.reconcile.as_ref().map(|r| {
        let at = key("reconcile");
        let request = template::request(
            r.method.as_deref(),
            r.path.as_deref(),
            &r.query,
            &r.headers,
            None,
            &at,
            &submit_names,
            p,
        );
        if request.method != "GET" {
            p.add(format!("{at}.method"), "a reconcile only reads: GET");
        }
        if r.running.is_empty() || r.settled.is_empty() {
            p.add(
                format!("{at}.running"),
                "list the state values meaning the work is under way (running) and over (settled)",
            );
        }
        Reconcile {
            request,
            state: state(r.state.as_deref(), &at, p),
            running: r.running.clone(),
            settled: r.settled.clone(),
        }
    });
    Some(HttpCall {
        auth: auth?,
        endpoint: endpoint?,
        alibaba,
        submit,
        accepted,
        errors,
        poll,
        reconcile,
    })
}

fn state(raw: Option<&str>, at: &str, p: &mut Collector) -> String {
    match raw {
        Some(t) => template::pointer(t, &format!("{at}.state"), p),
        None => {
            p.add(
                format!("{at}.state"),
                "missing: the JSON Pointer to the state, e.g. \"/job/status\"",
            );
            String::new()
        }
    }
}

fn statuses(raw: &[i64], path: &str, p: &mut Collector) -> Vec<u16> {
    if raw.is_empty() {
        return vec![200];
    }
    raw.iter()
        .filter_map(|s| {
            if (200..=299).contains(s) {
                Some(*s as u16)
            } else {
                p.add(path, format!("{s} is not a success status (200 to 299)"));
                None
            }
        })
        .collect()
}

pub fn duration(raw: Option<&str>, default: Duration, path: &str, p: &mut Collector) -> Duration {
    match raw {
        None => default,
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if d >= Duration::from_millis(50) => d,
            _ => {
                p.add(
                    path,
                    format!("`{t}` is not a duration such as 500ms, 10s or 30m"),
                );
                default
            }
        },
    }
}

fn endpoint(
    raw: &RawOperation,
    provider: Provider,
    keys: &[&str],
    path: &str,
    p: &mut Collector,
) -> Option<String> {
    let name_like = |e: &str| {
        !e.is_empty()
            && e.len() <= 40
            && e.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    match (provider, raw.endpoint.as_deref()) {
        (Provider::Scnet, None | Some("ai")) => Some("ai".into()),
        (Provider::Scnet, Some(other)) => {
            p.add(
                path,
                format!("`{other}`: declared SCNet calls go to the AI API (endpoint = \"ai\")"),
            );
            None
        }
        (Provider::Huawei, Some(e)) if keys.contains(&e) && e != "iam" => Some(e.into()),
        (Provider::Huawei, Some(e)) => {
            let usable: Vec<&str> = keys.iter().copied().filter(|k| *k != "iam").collect();
            p.add(
                path,
                format!(
                    "unknown Huawei endpoint `{e}` (one of: {}){}",
                    usable.join(", "),
                    crate::command::suggest::did_you_mean(e, usable.iter().copied())
                ),
            );
            None
        }
        (_, Some(e)) if name_like(e) => Some(e.into()),
        (_, Some(e)) => {
            p.add(
                path,
                format!("`{e}` is not an endpoint name (lowercase letters, digits, -)"),
            );
            None
        }
        (_, None) => {
            p.add(
                path,
                "missing: the account's endpoint the call goes to (e.g. \"rds\")",
            );
            None
        }
    }
}

fn alibaba(
    raw: &RawOperation,
    provider: Provider,
    at: &str,
    p: &mut Collector,
) -> Option<(String, String)> {
    if provider != Provider::Alibaba {
        for (k, set) in [
            ("action", raw.action.is_some()),
            ("version", raw.version.is_some()),
        ] {
            if set {
                p.add(format!("{at}.{k}"), "only for Alibaba operations");
            }
        }
        return None;
    }
    let action = raw.action.clone().unwrap_or_default();
    let version = raw.version.clone().unwrap_or_default();
    if action.is_empty() || action.len() > 64 || !action.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        p.add(
            format!("{at}.action"),
            "missing or not an API action name (e.g. \"RebootInstance\")",
        );
    }
    let date = version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !date {
        p.add(
            format!("{at}.version"),
            "missing or not an API version such as \"2014-05-26\"",
        );
    }
    Some((action, version))
}
