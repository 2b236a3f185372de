//! Checks that a config which parses can also work, run by `check-config` and before `shell`
//! and `run` start: every secret it names can be read, it has rules, and a `[discord]`
//! section lists the guilds to register slash commands in. A config that fails here would start and then fail on the
//! first job, so start-up refuses it instead.

use super::{AuthMethod, Config, Problem, SecretRef};
use crate::domain::Provider;

/// What the config is about to be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// `check-config`; `secrets: false` is `--no-secrets` (CI without the real secrets).
    Check { secrets: bool },
    /// The terminal chat: no Discord.
    Shell,
    /// The bot in Discord.
    Run,
}

impl Config {
    /// Everything that stops this config from working for `usage`, one problem each.
    pub fn startup_problems(&self, usage: Use) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.policy.rules.is_empty() {
            out.push(Problem::new(
                "rules",
                "no [[rules]]: every command would be refused; add at least one rule",
            ));
        }
        let secrets = !matches!(usage, Use::Check { secrets: false });
        if secrets {
            for account in self.accounts.values() {
                let path = format!("accounts.{}", account.name);
                let password =
                    account.provider != Provider::Alibaba && account.auth == AuthMethod::Password;
                let needed: &[(&str, &SecretRef)] = if password {
                    &[("password", &account.password)]
                } else {
                    &[
                        ("access_key", &account.access_key),
                        ("secret_key", &account.secret_key),
                    ]
                };
                for (kind, secret) in needed {
                    if let Some(problem) = unreadable(&path, kind, secret) {
                        out.push(problem);
                    }
                }
            }
        }
        if secrets {
            if let Some(problem) = unreadable("http", "api_token", &self.api_token) {
                out.push(problem);
            }
        }
        if let (true, super::store::Backend::Postgres(pg)) = (secrets, &self.store) {
            if let Some(problem) = unreadable("store", "url", &pg.url) {
                out.push(problem);
            }
        }
        let discord = match usage {
            Use::Run => true,
            Use::Check { .. } => self.discord.configured,
            Use::Shell => false,
        };
        if discord && secrets {
            if let Some(problem) = unreadable("discord", "token", &self.discord.token) {
                out.push(problem);
            }
        }
        // Without a [discord] section `run` registers no guild commands (`!` commands only);
        // a section that lists none is a mistake.
        if discord && self.discord.configured && self.discord.guilds.is_empty() {
            out.push(Problem::new(
                "discord.guilds",
                "missing: the guild (server) IDs where opsgate registers its slash commands",
            ));
        }
        out
    }
}

/// A secret that is named but cannot be read, at the key that names it.
fn unreadable(path: &str, kind: &str, secret: &SecretRef) -> Option<Problem> {
    let why = secret.missing.as_ref()?;
    let key = match secret.source.as_deref() {
        Some(s) if s.starts_with("file ") => "file",
        _ => "env",
    };
    Some(Problem::new(format!("{path}.{kind}_{key}"), why.clone()))
}
