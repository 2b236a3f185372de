//! The one way opsgate's messages reach Discord: channel messages (replies, refusals,
//! notices, incident notices, thread lines, cards, last words), interaction answers and
//! follow-ups, and the edits of cards, answers and incident messages. Each call:
//!
//! * waits out what Discord says about rate limits: after a 429, the longest of its
//!   `Retry-After`, its `X-RateLimit-Reset-After` and its body's `retry_after`, for the
//!   route (channel, interaction) or, when the 429 says `global` (in the body or as
//!   `X-RateLimit-Global`), for every call on this path but interactions' (which Discord
//!   keeps out of the global limit); after a success that leaves the
//!   route's bucket empty (`X-RateLimit-Remaining: 0`), until `X-RateLimit-Reset-After`;
//! * retries 5xx answers, timeouts and broken connections after a doubling pause
//!   (`Tuning::retry_pause`, at most [`LONGEST_PAUSE`]);
//! * is bounded: at most [`MAX_ATTEMPTS`] tries, all within the send budget
//!   (`Tuning::send_budget`); a wait Discord asks for that would end past the budget is not
//!   waited, the call gives up at once;
//! * never posts a message twice: a message create carries a nonce with `enforce_nonce`, so
//!   Discord answers a repeat with the message the first try made; a call with no such
//!   guard (an interaction follow-up) is repeated only when Discord cannot have acted on
//!   it (429, 502, 503, or no connection made).
//!
//! A message given up on is counted in `opsgate_discord_messages_dropped_total{kind}` and
//! logged at WARN with its channel ([`gave_up`]); every failed try is counted in
//! `opsgate_discord_call_failures_total{call,reason}`, every 429 in
//! `opsgate_discord_rate_limited_total`.
//!
//! These calls bypass serenity's `Http`. Its rate limiter (on in production) retries a 429
//! for as long as Discord keeps answering 429, with no bound, reads only the `Retry-After`
//! header (not the body's `retry_after`, and `global` only as a header), and retries no 5xx
//! or timeout; without the limiter (tests against the fake Discord), a 429 comes back as an
//! error whose headers are gone and whose body did not decode (Discord's 429 body has no
//! `code`: "Could not decode json ... missing field `code`"). Other calls (reactions,
//! member and channel lookups, threads, forms, command registration) still use serenity.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use serenity::all::Nonce;
use serenity::builder::CreateMessage;
use tokio::time::Instant;

use super::rest::Failure;
use super::{lock, Shared};

/// Tries per call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest pause between tries after a 5xx, a timeout or a broken connection.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(8);
/// The wait after a 429 that names none.
const UNSAID_RATE_WAIT: Duration = Duration::from_secs(1);

/// What kind of message a dropped one was (the metric's `kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An answer to a typed command, refusals included.
    Reply,
    /// A notice to a channel (a freeze announced, a job's news for its requester).
    Notice,
    /// An incident notification, or the report that a card could not be posted.
    Incident,
    /// A job's card.
    Card,
    /// A line for a job's thread (its channel fallback).
    ThreadLine,
    /// The notice that opsgate is stopping.
    LastWords,
    /// An answer or follow-up to a slash command, button or form.
    Interaction,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::Notice => "notice",
            Kind::Incident => "incident",
            Kind::Card => "card",
            Kind::ThreadLine => "thread_line",
            Kind::LastWords => "last_words",
            Kind::Interaction => "interaction",
        }
    }
}

/// Whether a call may be sent again after a try whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// A repeat does no harm: an edit, a message create with an enforced nonce, an
    /// interaction's first answer (Discord answers a repeat with 40060).
    Always,
    /// Only when Discord cannot have acted on the try: a 429, a 502 or 503, or no connection.
    IfNotTaken,
}

/// One REST call on this path.
pub(crate) struct Call {
    pub method: Method,
    /// After `/api/v10`, e.g. `/channels/1/messages`.
    pub path: String,
    /// The rate limit bucket: the route and its major parameter.
    pub bucket: String,
    pub body: Option<Value>,
    /// The `call` label of `opsgate_discord_call_failures_total`.
    pub label: &'static str,
    pub repeat: Repeat,
}

impl Call {
    /// An interaction's answer or follow-up (through its ID or its token).
    fn is_interactions(&self) -> bool {
        self.path.starts_with("/interactions/") || self.path.starts_with("/webhooks/")
    }
}

/// Why a call was given up on.
#[derive(Clone, Debug)]
pub(crate) struct Refused {
    pub failure: Failure,
    pub status: Option<u16>,
    /// Discord's JSON error code, when it gave one.
    pub code: Option<isize>,
    pub detail: String,
    pub attempts: u32,
}

impl Refused {
    pub fn new(failure: Failure, detail: impl Into<String>, attempts: u32) -> Refused {
        Refused {
            failure,
            status: None,
            code: None,
            detail: detail.into(),
            attempts,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.code) {
            (Some(s), Some(c)) => write!(f, "HTTP {s} (code {c}): ")?,
            (Some(s), None) => write!(f, "HTTP {s}: ")?,
            _ => {}
        }
        write!(
            f,
            "{} ({} {})",
            self.detail,
            self.attempts,
            if self.attempts == 1 { "try" } else { "tries" }
        )
    }
}

/// Known waits: Discord's global limit and the routes' buckets.
#[derive(Default)]
struct Limits {
    global: Option<Instant>,
    buckets: HashMap<String, Instant>,
}

/// The HTTP side of this path: its own client (with the REST timeout), Discord's API root
/// and the token.
pub(crate) struct Rest {
    client: reqwest::Client,
    /// `https://discord.com/api/v10`, or the fake Discord's in tests.
    root: String,
    /// `Bot <token>`.
    auth: String,
    limits: Mutex<Limits>,
}

impl Rest {
    pub fn new(client: reqwest::Client, base: &str, token: &str) -> Rest {
        let token = token.trim();
        let auth = if token.starts_with("Bot ") || token.starts_with("Bearer ") {
            token.to_string()
        } else {
            format!("Bot {token}")
        };
        Rest {
            client,
            root: format!("{}/api/v10", base.trim_end_matches('/')),
            auth,
            limits: Mutex::new(Limits::default()),
        }
    }

    /// Until when `call` may not be made: its bucket's wait, and the global one unless it is
    /// an interaction's (Discord: "Interaction endpoints are not bound to the bot's Global
    /// Rate Limit").
    fn blocked_until(&self, call: &Call) -> Option<Instant> {
        let limits = lock(&self.limits);
        let now = Instant::now();
        let global = limits.global.filter(|_| !call.is_interactions());
        let until = global.max(limits.buckets.get(&call.bucket).copied())?;
        (until > now).then_some(until)
    }

    fn block(&self, bucket: Option<&str>, until: Instant) {
        let mut limits = lock(&self.limits);
        let now = Instant::now();
        limits.buckets.retain(|_, t| *t > now);
        match bucket {
            None => limits.global = limits.global.max(Some(until)),
            Some(b) => {
                let t = limits.buckets.entry(b.to_string()).or_insert(until);
                *t = (*t).max(until);
            }
        }
    }

    async fn send(&self, call: &Call) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .request(call.method.clone(), format!("{}{}", self.root, call.path))
            .header(AUTHORIZATION, &self.auth)
            .header(USER_AGENT, serenity::constants::USER_AGENT);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

fn seconds(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn duration(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

/// How long a 429 asks to wait (the longest of what it says), and whether for every route.
fn rate_wait(headers: &HeaderMap, body: &Value) -> (Duration, bool) {
    let said = [
        seconds(headers, "retry-after"),
        seconds(headers, "x-ratelimit-reset-after"),
        body["retry_after"].as_f64(),
    ];
    let wait = said
        .into_iter()
        .flatten()
        .filter_map(duration)
        .max()
        .unwrap_or(UNSAID_RATE_WAIT);
    let global = body["global"] == Value::Bool(true)
        || headers
            .get("x-ratelimit-global")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (wait, global)
}

/// The pause before try `next` (2-based) after a 5xx, a timeout or a broken connection:
/// `first`, doubling, at most [`LONGEST_PAUSE`], plus up to a quarter more at random (so
/// lanes that failed together do not come back together).
fn pause(first: Duration, next: u32) -> Duration {
    let base = first
        .saturating_mul(1 << next.saturating_sub(2).min(10))
        .min(LONGEST_PAUSE);
    let jitter = base.as_millis() as u64 / 4;
    base + Duration::from_millis(fastrand::u64(0..=jitter))
}

/// Makes `call`, honouring Discord's rate limits and retrying what may be retried, until
/// `deadline`; returns Discord's JSON answer (`null` when it has none).
pub(crate) async fn call(
    shared: &Shared,
    call: &Call,
    deadline: Instant,
) -> Result<Value, Refused> {
    let rest = &shared.rest;
    let mut attempts = 0u32;
    let mut last: Option<Refused> = None;
    loop {
        if attempts >= MAX_ATTEMPTS {
            return Err(
                last.unwrap_or_else(|| Refused::new(Failure::Other, "no try was made", attempts))
            );
        }
        if let Some(until) = rest.blocked_until(call) {
            if until > deadline {
                let wait = until.saturating_duration_since(Instant::now());
                let mut why = last.unwrap_or_else(|| {
                    Refused::new(Failure::RateLimited, "rate limited", attempts)
                });
                why.detail = format!(
                    "{}; Discord asks to wait {:.1} s, past this call's budget",
                    why.detail,
                    wait.as_secs_f64()
                );
                return Err(why);
            }
            tokio::time::sleep_until(until).await;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last.unwrap_or_else(|| {
                Refused::new(Failure::Timeout, "no time left to try", attempts)
            }));
        }
        if !shared.may_speak() {
            return Err(Refused::new(
                Failure::Other,
                "not sent: this replica may no longer lead (its lease may have ended)",
                attempts,
            ));
        }
        attempts += 1;
        let answer = match tokio::time::timeout(left, rest.send(call)).await {
            Ok(answer) => answer,
            Err(_) => {
                shared.call_failed(call.label, Failure::Timeout);
                return Err(Refused::new(
                    Failure::Timeout,
                    "no answer within this call's budget",
                    attempts,
                ));
            }
        };
        let retry_after_pause = match answer {
            Err(e) => {
                let failure = if e.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Transport
                };
                shared.call_failed(call.label, failure);
                // Connected, the request may have reached Discord.
                let maybe_taken = !e.is_connect();
                // The URL may carry an interaction's token: keep it out of the logs.
                let why = Refused::new(failure, e.without_url().to_string(), attempts);
                if call.repeat == Repeat::IfNotTaken && maybe_taken {
                    return Err(why);
                }
                last = Some(why);
                true
            }
            Ok(a) if a.status.is_success() => {
                let remaining = seconds(&a.headers, "x-ratelimit-remaining");
                let reset = seconds(&a.headers, "x-ratelimit-reset-after").and_then(duration);
                if let (Some(r), Some(reset)) = (remaining, reset) {
                    if r <= 0.0 {
                        rest.block(Some(&call.bucket), Instant::now() + reset);
                    }
                }
                return Ok(serde_json::from_slice(&a.body).unwrap_or(Value::Null));
            }
            Ok(a) => {
                let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                let status = a.status.as_u16();
                let code = body["code"].as_i64().map(|c| c as isize);
                let message = body["message"]
                    .as_str()
                    .map_or_else(|| String::from("no message"), str::to_string);
                let failure = Failure::from_status(status, code);
                shared.call_failed(call.label, failure);
                let why = Refused {
                    failure,
                    status: Some(status),
                    code,
                    detail: message,
                    attempts,
                };
                if a.status == StatusCode::TOO_MANY_REQUESTS {
                    shared.metrics.discord.rate_limited.inc();
                    let (wait, global) = rate_wait(&a.headers, &body);
                    tracing::debug!(
                        call = call.label,
                        wait_ms = wait.as_millis() as u64,
                        global,
                        "Discord rate limit; waiting"
                    );
                    let global = global && !call.is_interactions();
                    let bucket = (!global).then_some(call.bucket.as_str());
                    rest.block(bucket, Instant::now() + wait);
                    last = Some(why);
                    false
                } else if a.status.is_server_error() {
                    let not_taken = matches!(status, 502 | 503);
                    if call.repeat == Repeat::IfNotTaken && !not_taken {
                        return Err(why);
                    }
                    last = Some(why);
                    true
                } else {
                    return Err(why);
                }
            }
        };
        if retry_after_pause && attempts < MAX_ATTEMPTS {
            let p = pause(shared.tuning.retry_pause, attempts + 1);
            if Instant::now() + p >= deadline {
                return Err(last.unwrap_or_else(|| {
                    Refused::new(Failure::Timeout, "no time left to try", attempts)
                }));
            }
            tokio::time::sleep(p).await;
        }
    }
}

/// Posts `msg` in `channel` with a nonce Discord enforces (the same for every try), until
/// `deadline`; returns the message's ID.
pub(crate) async fn post(
    shared: &Shared,
    channel: u64,
    msg: CreateMessage,
    label: &'static str,
    deadline: Instant,
) -> Result<u64, Refused> {
    let nonce = format!("{:016x}", fastrand::u64(1..));
    let msg = msg.nonce(Nonce::String(nonce)).enforce_nonce(true);
    let body = serde_json::to_value(&msg)
        .map_err(|e| Refused::new(Failure::Other, format!("cannot encode: {e}"), 0))?;
    let posted = call(
        shared,
        &Call {
            method: Method::POST,
            path: format!("/channels/{channel}/messages"),
            bucket: format!("messages:{channel}"),
            body: Some(body),
            label,
            repeat: Repeat::Always,
        },
        deadline,
    )
    .await?;
    posted["id"]
        .as_str()
        .and_then(|id| id.parse::<u64>().ok())
        .ok_or_else(|| Refused::new(Failure::Other, "Discord's answer has no message ID", 1))
}

/// Counts and logs a message given up on: WARN with its channel and why (ERROR when opsgate
/// lacks the permission, which someone has to grant).
pub(crate) fn gave_up(shared: &Shared, kind: Kind, channel: &str, why: &Refused) {
    shared.metrics.discord.message_dropped(kind.label());
    if why.failure == Failure::Permission {
        tracing::error!(
            channel,
            kind = kind.label(),
            error = %why,
            "opsgate may not post in this channel (View Channel / Send Messages); message dropped"
        );
    } else {
        tracing::warn!(
            channel,
            kind = kind.label(),
            error = %why,
            "gave up sending a message to Discord; dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_429_waits_the_longest_it_names() {
        let body =
            json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false});
        let (wait, global) = rate_wait(&headers(&[("retry-after", "1")]), &body);
        assert_eq!((wait, global), (Duration::from_secs(1), false));
        let (wait, _) = rate_wait(
            &headers(&[("retry-after", "1"), ("x-ratelimit-reset-after", "2.5")]),
            &body,
        );
        assert_eq!(wait, Duration::from_millis(2500));
        let (wait, _) = rate_wait(&HeaderMap::new(), &json!({"retry_after": 3.25}));
        assert_eq!(wait, Duration::from_millis(3250));
        let (wait, _) = rate_wait(&HeaderMap::new(), &Value::Null);
        assert_eq!(wait, UNSAID_RATE_WAIT);
        // Nonsense is ignored, not obeyed.
        let (wait, _) = rate_wait(
            &headers(&[("retry-after", "-3")]),
            &json!({"retry_after": "x"}),
        );
        assert_eq!(wait, UNSAID_RATE_WAIT);
    }

    #[test]
    fn global_is_read_from_the_body_or_the_header() {
        let (_, global) = rate_wait(&HeaderMap::new(), &json!({"global": true}));
        assert!(global);
        let (_, global) = rate_wait(&headers(&[("x-ratelimit-global", "true")]), &json!({}));
        assert!(global);
        let (_, global) = rate_wait(&HeaderMap::new(), &json!({"global": false}));
        assert!(!global);
    }

    #[test]
    fn pauses_double_up_to_the_longest() {
        let first = Duration::from_millis(500);
        let in_range = |next: u32, base: u64| {
            let p = pause(first, next).as_millis() as u64;
            assert!((base..=base + base / 4).contains(&p), "try {next}: {p} ms");
        };
        in_range(2, 500);
        in_range(3, 1000);
        in_range(4, 2000);
        in_range(5, 4000);
        in_range(30, LONGEST_PAUSE.as_millis() as u64);
    }

    #[test]
    fn a_refusal_reads_as_what_happened() {
        let r = Refused {
            failure: Failure::RateLimited,
            status: Some(429),
            code: None,
            detail: "You are being rate limited.".into(),
            attempts: 1,
        };
        assert_eq!(
            r.to_string(),
            "HTTP 429: You are being rate limited. (1 try)"
        );
    }
}
