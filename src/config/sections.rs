//! The `[discord]`, `[incidents]`, `[http]` and `[log]` sections: raw form and validation.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Collector;
use super::raw::RawId;
use super::secrets::SecretRef;
use crate::command::Catalog;
use crate::domain::{ChannelId, Severity};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDiscord {
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub guilds: Vec<RawId>,
    pub mention_approvers: bool,
    pub api_base: Option<String>,
    pub edit_interval: Option<String>,
    pub slash_commands_need_manage_server: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIncidents {
    pub default: Option<String>,
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRoute {
    pub services: Vec<String>,
    pub severities: Vec<String>,
    pub channel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub api_token_env: Option<String>,
    pub api_token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLog {
    pub format: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Discord {
    /// The file has a `[discord]` section (so `check-config` checks its token).
    pub configured: bool,
    /// The bot token: `DISCORD_TOKEN` unless the config names another variable or a file.
    pub token: SecretRef,
    /// Guilds where slash commands are registered.
    pub guilds: Vec<u64>,
    /// Ping approver roles on approval requests (off: nothing the bot posts pings anyone).
    pub mention_approvers: bool,
    /// Tests only: a fake Discord's base URL (disables serenity's rate limiter).
    pub api_base: Option<String>,
    /// At most one edit of a job's message per this interval.
    pub edit_interval: Duration,
    /// Register the slash commands for members with Manage Server only (Discord's
    /// `default_member_permissions`); off: every member of the server sees them.
    pub slash_commands_need_manage_server: bool,
}

#[derive(Clone, Debug)]
pub struct IncidentRoute {
    /// Services (`ddm`, ...) this route takes; empty means all.
    pub services: Vec<String>,
    /// Severities this route takes; empty means all.
    pub severities: Vec<Severity>,
    pub channel: ChannelId,
}

#[derive(Clone, Debug, Default)]
pub struct Incidents {
    /// Catch-all channel for notifications no route takes.
    pub default: Option<ChannelId>,
    pub routes: Vec<IncidentRoute>,
}

impl Incidents {
    /// The channel for a notification about `service` at `severity`: the first route that
    /// takes it, else the catch-all.
    pub fn channel_for(&self, service: &str, severity: Severity) -> Option<&ChannelId> {
        self.routes
            .iter()
            .find(|r| {
                (r.services.is_empty() || r.services.iter().any(|s| s == service))
                    && (r.severities.is_empty() || r.severities.contains(&severity))
            })
            .map(|r| &r.channel)
            .or(self.default.as_ref())
    }

    /// Every channel that takes critical notifications: where opsgate says it is stopping.
    pub fn all_channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.routes
            .iter()
            .filter(|r| r.severities.is_empty() || r.severities.contains(&Severity::Critical))
            .map(|r| &r.channel)
            .chain(self.default.as_ref())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

pub fn discord(raw: Option<RawDiscord>, base: &Path, p: &mut Collector) -> Discord {
    let configured = raw.is_some();
    let raw = raw.unwrap_or_default();
    if raw.token_env.is_some() && raw.token_file.is_some() {
        p.add("discord.token_env", "set token_env or token_file, not both");
    }
    let env = match (&raw.token_env, &raw.token_file) {
        (None, None) => Some("DISCORD_TOKEN"),
        (env, _) => env.as_deref(),
    };
    let token = SecretRef::load(env, raw.token_file.as_deref(), base);
    let mut guilds = Vec::new();
    for (i, g) in raw.guilds.iter().enumerate() {
        match g {
            RawId::Number(n) if *n > 0 => guilds.push(*n as u64),
            RawId::Text(s) if s.parse::<u64>().is_ok_and(|v| v > 0) => {
                guilds.push(s.parse().unwrap_or_default())
            }
            _ => p.add(
                format!("discord.guilds[{i}]"),
                "must be a guild ID (a positive number)",
            ),
        }
    }
    if let Some(url) = &raw.api_base {
        if !url.starts_with("http://127.0.0.1") && !url.starts_with("http://localhost") {
            p.add(
                "discord.api_base",
                "is for tests only and must point at 127.0.0.1",
            );
        }
    }
    let edit_interval = match raw.edit_interval.as_deref() {
        Some(t) => humantime::parse_duration(t).unwrap_or_else(|_| {
            p.add(
                "discord.edit_interval",
                format!("`{t}` is not a duration such as 2s"),
            );
            Duration::from_secs(2)
        }),
        None => Duration::from_secs(2),
    };
    Discord {
        configured,
        token,
        guilds,
        mention_approvers: raw.mention_approvers,
        api_base: raw.api_base.map(|u| u.trim_end_matches('/').to_string()),
        edit_interval,
        slash_commands_need_manage_server: raw.slash_commands_need_manage_server,
    }
}

pub fn incidents(
    raw: RawIncidents,
    channels: &std::collections::BTreeMap<String, ChannelId>,
    catalog: &Catalog,
    p: &mut Collector,
) -> Incidents {
    let channel = |name: &str, path: String, p: &mut Collector| -> Option<ChannelId> {
        let id = channels.get(name.trim_start_matches('#')).cloned();
        if id.is_none() {
            p.add(
                path,
                format!(
                    "unknown channel `{name}` (add it under [channels]){}",
                    crate::command::suggest::did_you_mean(
                        name,
                        channels.keys().map(String::as_str)
                    )
                ),
            );
        }
        id
    };
    let default = raw
        .default
        .as_deref()
        .and_then(|c| channel(c, "incidents.default".into(), p));
    let mut routes = Vec::new();
    let services: Vec<&str> = catalog.services();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let path = format!("incidents.routes[{i}]");
        for (j, s) in r.services.iter().enumerate() {
            if !services.contains(&s.as_str()) {
                p.add(
                    format!("{path}.services[{j}]"),
                    format!(
                        "unknown service `{s}` (one of: {}){}",
                        services.join(", "),
                        crate::command::suggest::did_you_mean(s, services.iter().copied())
                    ),
                );
            }
        }
        let mut severities = Vec::new();
        for (j, s) in r.severities.iter().enumerate() {
            match Severity::parse(s) {
                Some(v) => severities.push(v),
                None => p.add(
                    format!("{path}.severities[{j}]"),
                    format!("unknown severity `{s}` (info, warning or critical)"),
                ),
            }
        }
        let Some(name) = r.channel.as_deref() else {
            p.add(format!("{path}.channel"), "missing");
            continue;
        };
        if let Some(channel) = channel(name, format!("{path}.channel"), p) {
            routes.push(IncidentRoute {
                services: r.services,
                severities,
                channel,
            });
        }
    }
    Incidents { default, routes }
}

/// The `[http]` section: where the endpoint listens and the job API's bearer token.
pub struct Http {
    pub listen: Option<SocketAddr>,
    pub api_token: SecretRef,
}

/// The job API's token: `OPSGATE_API_TOKEN` unless the config names another variable or a
/// file. Unset, the job API answers only to connections from this host (loopback).
pub fn http(raw: RawHttp, base: &Path, p: &mut Collector) -> Http {
    if raw.api_token_env.is_some() && raw.api_token_file.is_some() {
        p.add(
            "http.api_token_env",
            "set api_token_env or api_token_file, not both",
        );
    }
    let env = match (&raw.api_token_env, &raw.api_token_file) {
        (None, None) => Some("OPSGATE_API_TOKEN"),
        (env, _) => env.as_deref(),
    };
    let mut api_token = SecretRef::load(env, raw.api_token_file.as_deref(), base);
    if raw.api_token_env.is_none() && raw.api_token_file.is_none() {
        // Optional by default: an unset default variable is no problem at start-up.
        api_token.missing = None;
    }
    Http {
        listen: listen(raw.listen, p),
        api_token,
    }
}

fn listen(listen: Option<String>, p: &mut Collector) -> Option<SocketAddr> {
    let listen = listen?;
    match listen.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.add(
                "http.listen",
                format!("`{listen}` is not an address such as 127.0.0.1:9184"),
            );
            None
        }
    }
}

pub fn log(raw: RawLog, p: &mut Collector) -> LogFormat {
    match raw.format.as_deref() {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.add(
                "log.format",
                format!("unknown format `{other}` (human or json)"),
            );
            LogFormat::Human
        }
    }
}
