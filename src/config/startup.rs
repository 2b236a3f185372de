//! Checks that a config which parses can also work, run by `check-config` and before `shell`
//! and `run` start: every secret it names can be read, it has rules, and a `[discord]`
//! section lists the guilds to register slash commands in. A config that fails here would start and then fail on the
//! first job, so start-up refuses it instead.

use super::{Config, Problem, SecretRef};

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
        // A start only parses declared patterns (compiling 200 of them would cost start-up
        // tens of milliseconds); check-config compiles each, so none fails on first use.
        if matches!(usage, Use::Check { .. }) {
            for op in self
                .catalog
                .operations()
                .iter()
                .filter(|o| o.origin.is_some())
            {
                for param in op.target.iter().chain(&op.args) {
                    if let Err(e) = param.pattern.compiles() {
                        out.push(Problem::new(format!("operations.{}.params", op.id), e));
                    }
                }
            }
        }
        let secrets = !matches!(usage, Use::Check { secrets: false });
        if secrets {
            for account in self.accounts.values() {
                let path = format!("accounts.{}", account.name);
                for (kind, secret) in account.auth.secrets(account) {
                    if let Some(problem) = unreadable(&path, kind, secret) {
                        out.push(problem);
                    }
                }
            }
            // A declared command's secrets, at the key that names them.
            for d in &self.declared {
                if let super::declared::Action::Command(c) = &d.action {
                    for (name, secret) in &c.secret_env {
                        if let Some(why) = &secret.missing {
                            let mut problem = Problem::new(
                                format!("operations.{}.secret_env.{name}", d.id),
                                why.clone(),
                            );
                            problem.file = Some(d.file.clone());
                            out.push(problem);
                        }
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
