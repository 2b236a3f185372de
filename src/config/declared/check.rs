//! One `[[operations]]` table -> its [`Declaration`] (for the cloud layer) and its row in
//! the catalog (for the parser, help, rules and the engine), or the problems that stop it.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::raw::RawOperation;
use super::types::{Action, AuthKind, Declaration};
use super::{command, http, params};
use crate::command::ids::{self, Guards};
use crate::command::{builtin_by_verb, suggest, Catalog, Lock, OperationDef};
use crate::config::problems::Collector;
use crate::domain::Provider;

/// Values the account fills, by provider: a template may use them, a parameter may not be
/// named so.
pub fn account_values(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Huawei => &["project_id", "region"],
        Provider::Alibaba => &["region"],
        _ => &[],
    }
}

/// Names filled by opsgate rather than the job: the account's values and the cloud's job ID.
const RESERVED: &[&str] = &["project_id", "region", "job_id"];

/// The placeholders used as whole segments of the raw paths (their values get the
/// path-segment guard).
fn path_placeholders(raw: &RawOperation) -> Vec<String> {
    let paths = [
        raw.path.as_deref(),
        raw.poll.as_ref().and_then(|p| p.path.as_deref()),
        raw.reconcile.as_ref().and_then(|r| r.path.as_deref()),
    ];
    paths
        .into_iter()
        .flatten()
        .flat_map(|path| path.split('/'))
        .filter_map(|seg| super::template::placeholder(seg).ok().flatten())
        .map(str::to_string)
        .collect()
}

/// Lowercase hex SHA-256 of what the declaration says.
fn hash(raw: &RawOperation) -> String {
    let bytes = serde_json::to_vec(raw).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// An account as far as a declaration needs it: which provider, and how it authenticates.
pub struct AccountAuth {
    pub name: String,
    pub provider: Provider,
    pub method: crate::config::AuthMethod,
}

/// What a declaration is checked against besides itself.
pub struct Known<'a> {
    /// The built-ins and the declarations before it.
    pub catalog: &'a Catalog,
    pub endpoint_keys: fn(Provider) -> &'static [&'static str],
    pub accounts: &'a [AccountAuth],
}

pub struct Checked {
    pub declaration: Arc<Declaration>,
    pub def: OperationDef,
}

/// `file`: where it was declared, as shown in messages and the audit log.
pub fn check(
    raw: &RawOperation,
    file: &Path,
    base: &Path,
    known: &Known<'_>,
    at: &str,
    p: &mut Collector,
) -> Option<Checked> {
    let (catalog, endpoint_keys) = (known.catalog, known.endpoint_keys);
    let before = p.len();
    let key = |k: &str| format!("{at}.{k}");
    let word = |k: &str, v: &Option<String>, p: &mut Collector| -> Option<String> {
        match v {
            Some(v) if ids::NAME.matches(v) => Some(v.clone()),
            Some(v) => {
                p.add(key(k), format!("`{v}` must be {}", ids::NAME.describe));
                None
            }
            None => {
                p.add(
                    key(k),
                    format!(
                        "missing (e.g. {})",
                        if k == "verb" {
                            "\"restart\""
                        } else {
                            "\"rds\""
                        }
                    ),
                );
                None
            }
        }
    };
    let verb = word("verb", &raw.verb, p);
    let service = word("service", &raw.service, p);
    let provider = match raw.provider.as_deref() {
        Some(name) => match Provider::parse(name) {
            Some(pr) => Some(pr),
            None => {
                let all: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                p.add(
                    key("provider"),
                    format!(
                        "unknown provider `{name}` (one of: {}){}",
                        all.join(", "),
                        suggest::did_you_mean(name, all.iter().copied())
                    ),
                );
                None
            }
        },
        None => {
            p.add(
                key("provider"),
                "missing: huawei, alibaba, scnet, http (an HTTP call) or local (a command)",
            );
            None
        }
    };
    let (verb, service, provider) = (verb?, service?, provider?);
    let id = raw
        .id
        .clone()
        .unwrap_or_else(|| format!("{service}.{verb}"));
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if !id_ok {
        p.add(
            key("id"),
            "an id is lowercase letters, digits, . - and _ (at most 64)",
        );
    }
    clashes(&verb, &service, &raw.aliases, &id, catalog, at, p);

    let in_path = path_placeholders(raw);
    let local = provider == Provider::Local;
    let guard = |name: &str| Guards {
        path_segment: in_path.iter().any(|n| n == name),
        no_leading_dash: local,
        argv_element: local,
        ..Guards::default()
    };
    let checked = params::check(&raw.params, raw.modes.as_ref(), RESERVED, &guard, at, p);
    let mut names = checked.names();
    names.extend(account_values(provider).iter().map(|s| s.to_string()));

    let action = if local {
        for k in command::http_keys_set(raw) {
            p.add(
                key(k),
                "only for HTTP operations (this one is provider = \"local\", a command)",
            );
        }
        command::check(raw, &checked.names(), base, at, p).map(Action::Command)
    } else {
        for k in command::command_keys_set(raw) {
            p.add(key(k), "only for commands (provider = \"local\")");
        }
        let call = http::check(raw, provider, endpoint_keys(provider), &names, at, p);
        if let Some(call) = &call {
            fits_an_account(call.auth, provider, known.accounts, at, p);
        }
        call.map(|c| Action::Http(Box::new(c)))
    };
    let lock = lock(raw, &id, &checked, at, p);
    if p.len() > before {
        return None;
    }
    let hash = hash(raw);
    let usage = usage(&verb, &service, &checked, local);
    let summary = raw
        .summary
        .clone()
        .unwrap_or_else(|| format!("{verb} {service} (declared in {})", file.display()));
    let def = OperationDef {
        id: id.clone(),
        verb,
        service,
        aliases: raw.aliases.clone(),
        provider,
        target: checked.target,
        modes: checked.modes,
        args: checked.args,
        usage,
        summary,
        notes: raw.notes.clone().unwrap_or_default(),
        check: None,
        lock: Some(lock),
        origin: Some(format!("declared in {}, sha256 {hash}", file.display())),
    };
    let declaration = Declaration {
        id,
        provider,
        file: file.to_path_buf(),
        hash,
        kinds: checked.kinds,
        mode_send: checked.mode_send,
        action: action?,
    };
    Some(Checked {
        declaration: Arc::new(declaration),
        def,
    })
}

/// A call whose authentication fits none of the accounts of its provider could never run:
/// refused, with the authentications that would fit them.
fn fits_an_account(
    auth: AuthKind,
    provider: Provider,
    accounts: &[AccountAuth],
    at: &str,
    p: &mut Collector,
) {
    let mine: Vec<&AccountAuth> = accounts.iter().filter(|a| a.provider == provider).collect();
    if mine.is_empty() {
        p.add(
            format!("{at}.provider"),
            format!(
                "no {} account is configured for this call: add [accounts.NAME] with provider = \"{}\"",
                provider.name(),
                provider.name()
            ),
        );
        return;
    }
    if mine.iter().any(|a| auth.misfit(a.method).is_none()) {
        return;
    }
    let fitting: Vec<String> = (AuthKind::ALL.iter())
        .filter(|k| k.provider() == provider && mine.iter().any(|a| k.misfit(a.method).is_none()))
        .map(|k| format!("\"{}\"", k.name()))
        .collect();
    let accounts: Vec<String> = (mine.iter())
        .map(|a| format!("{} (auth = \"{}\")", a.name, a.method.name()))
        .collect();
    p.add(
        format!("{at}.auth"),
        format!(
            "auth `{}` fits none of the {} accounts: {}; use auth = {}",
            auth.name(),
            provider.name(),
            accounts.join(", "),
            if fitting.is_empty() {
                "one that fits them".to_string()
            } else {
                fitting.join(" or ")
            }
        ),
    );
}

/// A verb, service or alias already taken (by a built-in or an earlier declaration), a verb
/// of the built-in commands, or an id in use.
fn clashes(
    verb: &str,
    service: &str,
    aliases: &[String],
    id: &str,
    catalog: &Catalog,
    at: &str,
    p: &mut Collector,
) {
    if builtin_by_verb(verb).is_some() {
        p.add(
            format!("{at}.verb"),
            format!("`{verb}` is a built-in command; pick another verb"),
        );
    }
    for name in std::iter::once(service).chain(aliases.iter().map(String::as_str)) {
        if let Some(op) = catalog.find(verb, name) {
            let whose = match &op.origin {
                Some(origin) => origin.clone(),
                None => "built in".to_string(),
            };
            p.add(
                format!("{at}.service"),
                format!(
                    "`{verb} {name}` is already an operation (`{}`, {whose}); pick another service \
                     name or alias",
                    op.id
                ),
            );
        }
    }
    for (i, a) in aliases.iter().enumerate() {
        if !ids::NAME.matches(a) {
            p.add(
                format!("{at}.aliases[{i}]"),
                format!("must be {}", ids::NAME.describe),
            );
        }
    }
    if catalog.by_id(id).is_some() {
        p.add(
            format!("{at}.id"),
            format!("the id `{id}` is already used; set another id"),
        );
    }
}

fn lock(
    raw: &RawOperation,
    id: &str,
    checked: &params::Checked,
    at: &str,
    p: &mut Collector,
) -> Lock {
    let known = checked.names();
    let params = match &raw.lock {
        Some(list) => {
            for (i, name) in list.iter().enumerate() {
                if !known.contains(name) {
                    p.add(
                        format!("{at}.lock[{i}]"),
                        format!(
                            "unknown parameter `{name}`{}",
                            suggest::did_you_mean(name, known.iter().map(String::as_str))
                        ),
                    );
                }
            }
            list.clone()
        }
        None => checked.target.iter().map(|p| p.name.clone()).collect(),
    };
    let group = match &raw.lock_group {
        Some(g) if ids::NAME.matches(g) => format!("lock group {g}"),
        Some(g) => {
            p.add(
                format!("{at}.lock_group"),
                format!("`{g}` must be {}", ids::NAME.describe),
            );
            id.to_string()
        }
        None => id.to_string(),
    };
    Lock { group, params }
}

fn usage(verb: &str, service: &str, checked: &params::Checked, local: bool) -> String {
    let mut out = format!("!{verb} {service}");
    for p in &checked.target {
        out.push(' ');
        out.push_str(&p.label);
    }
    if let Some(m) = &checked.modes {
        out.push_str(&format!(" [{}]", m.values.join("|")));
    }
    for p in &checked.args {
        out.push(' ');
        out.push_str(&p.label);
    }
    if !local {
        out.push_str(" [account=NAME]");
    }
    out
}
