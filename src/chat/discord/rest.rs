//! The REST side: one `Http` whose every call has a timeout, and what a failed call means
//! (retry, give up, tell someone).

use std::time::Duration;

use serenity::builder::CreateAllowedMentions;
use serenity::http::{Http, HttpBuilder};

use crate::config::Config;

/// Discord's JSON error codes opsgate reacts to.
pub const UNKNOWN_CHANNEL: isize = 10003;
pub const UNKNOWN_MESSAGE: isize = 10008;
pub const MISSING_ACCESS: isize = 50001;
pub const MISSING_PERMISSIONS: isize = 50013;
pub const UNKNOWN_INTERACTION: isize = 10062;
pub const ALREADY_ACKNOWLEDGED: isize = 40060;

/// How a REST call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 50013 / 50001 / 403: the bot lacks a permission or cannot see the channel.
    Permission,
    /// 10008 / 10003 / 404: the message or channel is gone.
    NotFound,
    /// A 429: serenity's rate limiter (on in production) waits and retries these by itself;
    /// opsgate's own send path (`deliver.rs`) sees them and waits as Discord says.
    RateLimited,
    /// 5xx.
    Server,
    /// No answer in time.
    Timeout,
    /// Connection refused, DNS, reset.
    Transport,
    Other,
}

impl Failure {
    pub fn of(e: &serenity::Error) -> Failure {
        let serenity::Error::Http(h) = e else {
            return Failure::Other;
        };
        match h {
            serenity::http::HttpError::UnsuccessfulRequest(r) => {
                Failure::from_status(r.status_code.as_u16(), Some(r.error.code))
            }
            serenity::http::HttpError::Request(r) if r.is_timeout() => Failure::Timeout,
            serenity::http::HttpError::Request(_) => Failure::Transport,
            _ => Failure::Other,
        }
    }

    /// A refusal with HTTP `status` and Discord's JSON error `code`.
    pub fn from_status(status: u16, code: Option<isize>) -> Failure {
        match (code, status) {
            (Some(MISSING_PERMISSIONS | MISSING_ACCESS), _) | (_, 403) => Failure::Permission,
            (Some(UNKNOWN_MESSAGE | UNKNOWN_CHANNEL), _) | (_, 404) => Failure::NotFound,
            (_, 429) => Failure::RateLimited,
            (_, s) if s >= 500 => Failure::Server,
            _ => Failure::Other,
        }
    }

    /// Worth another try: the call may not have happened, or the server was in trouble.
    pub fn transient(self) -> bool {
        matches!(
            self,
            Failure::RateLimited | Failure::Server | Failure::Timeout | Failure::Transport
        )
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Permission => "permission",
            Failure::NotFound => "not_found",
            Failure::RateLimited => "rate_limited",
            Failure::Server => "server",
            Failure::Timeout => "timeout",
            Failure::Transport => "transport",
            Failure::Other => "other",
        }
    }
}

/// The JSON error code of a refused call, if Discord gave one.
pub fn code_of(e: &serenity::Error) -> Option<isize> {
    match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            Some(r.error.code)
        }
        _ => None,
    }
}

/// The bot token, or what to do to provide one.
pub fn token(config: &Config) -> Result<String, String> {
    let token = config
        .discord
        .token
        .require("the Discord bot token")
        .map_err(|e| {
            format!(
                "{e}: put the bot token (Developer Portal > Applications > your app > Bot > Reset \
             Token) in DISCORD_TOKEN, or name another variable or file with [discord] \
             token_env / token_file"
            )
        })?;
    Ok(token.expose().to_string())
}

/// Refuses a token that cannot be a bot token (three dot-separated parts), before any
/// network. A fake Discord (`api_base`) accepts any token.
pub fn check_token_format(config: &Config) -> Result<(), String> {
    let token = token(config)?;
    if config.discord.api_base.is_some() {
        return Ok(());
    }
    let token = token.trim();
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    if serenity::utils::token::validate(token).is_err() {
        let source = config
            .discord
            .token
            .source
            .clone()
            .unwrap_or_else(|| "env DISCORD_TOKEN".into());
        return Err(format!(
            "the Discord bot token in {source} is not in Discord's format (three parts \
             separated by dots); copy it again from the Developer Portal (Applications > your \
             app > Bot > Reset Token)"
        ));
    }
    Ok(())
}

/// An HTTP client whose every request ends within `timeout` (serenity sets none, so one hung
/// call would block its lane forever).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for Discord: {e}"))
}

/// Discord's scheme and host, or the fake Discord's (`[discord] api_base`, tests).
pub fn base(config: &Config) -> &str {
    config
        .discord
        .api_base
        .as_deref()
        .unwrap_or("https://discord.com")
}

/// serenity's HTTP client, with a [`client`]. With `[discord] api_base` (tests) every call
/// goes there and serenity's rate limiter is off.
pub fn build_http(config: &Config, timeout: Duration) -> Result<Http, String> {
    let token = token(config)?;
    let client = client(timeout)?;
    let mut builder = HttpBuilder::new(token)
        .client(client)
        // Nothing the bot posts pings anyone unless a message opts in (approver roles).
        .default_allowed_mentions(CreateAllowedMentions::new());
    if let Some(base) = &config.discord.api_base {
        // serenity's rate limiter ignores the proxy; tests run without it.
        builder = builder.proxy(base.clone()).ratelimiter_disabled(true);
    }
    Ok(builder.build())
}
