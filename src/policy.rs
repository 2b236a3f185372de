//! Who may request what, where, on what, and with how many approvals: a lookup over the
//! config's rules by role ID, channel ID and the resource a request acts on. Commands without
//! a rule are refused (deny by default).
//!
//! A rule may be scoped to named targets, to accounts, or to tags (`env = "prod"`) carried by
//! targets and accounts. For a request, the most specific rules that match its command, mode
//! and resource form its tier (targets beat tags beat accounts beat unscoped; within that, a
//! rule that lists the mode beats one that does not); of those, the one whose request roles
//! the requester has applies. A less specific rule never stands in for a more specific one
//! the requester lacks the role for: "production needs a DBA" cannot be side-stepped by a
//! general rule. Two rules of one tier that could both apply to one requester are a config
//! error (see `ambiguities`).

use std::collections::BTreeMap;

use crate::config::{Config, Rule, Scope};

/// What a request acts on: a named target (if one was used) and the account.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub target: Option<&'a str>,
    pub account: &'a str,
}

impl Subject<'_> {
    /// A subject no scoped rule matches: what unscoped rules cover.
    pub const ANYTHING_ELSE: Subject<'static> = Subject {
        target: None,
        account: "",
    };
}

/// How specific a scope is: 3 targets, 2 tags, 1 accounts, 0 unscoped.
pub fn level(scope: &Scope) -> u8 {
    if !scope.targets.is_empty() {
        3
    } else if !scope.tags.is_empty() {
        2
    } else if !scope.accounts.is_empty() {
        1
    } else {
        0
    }
}

/// The tags of a subject: the account's, overlaid with the named target's.
pub fn tags_of<'a>(config: &'a Config, subject: &Subject<'_>) -> BTreeMap<&'a str, &'a str> {
    let mut tags = BTreeMap::new();
    if let Some(account) = config.account_tags.get(subject.account) {
        tags.extend(account.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(target) = subject.target.and_then(|t| config.targets.get(t)) {
        tags.extend(target.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    tags
}

/// Whether `scope` covers `subject`.
pub fn covers(config: &Config, scope: &Scope, subject: &Subject<'_>) -> bool {
    match level(scope) {
        3 => subject
            .target
            .is_some_and(|t| scope.targets.iter().any(|x| x == t)),
        2 => {
            let tags = tags_of(config, subject);
            scope
                .tags
                .iter()
                .all(|(k, v)| tags.get(k.as_str()) == Some(&v.as_str()))
        }
        1 => scope.accounts.iter().any(|a| a == subject.account),
        _ => true,
    }
}

/// `on orders-db`, `on account huawei-prod`, `where env=prod`, or `anywhere else`.
pub fn describe_scope(scope: &Scope) -> String {
    match level(scope) {
        3 => format!("on {}", scope.targets.join(", ")),
        2 => {
            let tags: Vec<String> = scope.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("where {}", tags.join(", "))
        }
        1 => format!(
            "on account{} {}",
            if scope.accounts.len() == 1 { "" } else { "s" },
            scope.accounts.join(", ")
        ),
        _ => "anywhere else".to_string(),
    }
}

/// Whether `rule` covers `mode` (a rule without modes covers every mode).
pub fn mode_matches(rule: &Rule, mode: Option<&str>) -> bool {
    rule.modes.is_empty() || mode.is_some_and(|m| rule.modes.iter().any(|x| x == m))
}

/// The most specific rules for a command and mode on `subject` (its tier), ignoring who asks.
pub fn tier<'a>(
    config: &'a Config,
    command: &str,
    mode: Option<&str>,
    subject: &Subject<'_>,
) -> Vec<&'a Rule> {
    let matching: Vec<&Rule> = config
        .rules
        .iter()
        .filter(|r| r.command == command && mode_matches(r, mode))
        .filter(|r| covers(config, &r.scope, subject))
        .collect();
    let rank = |r: &Rule| (level(&r.scope), !r.modes.is_empty());
    let Some(top) = matching.iter().map(|r| rank(r)).max() else {
        return Vec::new();
    };
    matching.into_iter().filter(|r| rank(r) == top).collect()
}

/// The rule for a command and mode on anything no scoped rule covers: one that lists the
/// mode beats one that covers every mode.
pub fn rule_for<'a>(config: &'a Config, command: &str, mode: Option<&str>) -> Option<&'a Rule> {
    tier(config, command, mode, &Subject::ANYTHING_ELSE)
        .into_iter()
        .next()
}

fn role_names(config: &Config, ids: &[u64]) -> String {
    let names: Vec<&str> = ids.iter().filter_map(|id| config.role_name(*id)).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(" or ")
    }
}

/// Whether someone with `roles` may request `command` (in `mode`) in `channel`, on anything
/// no scoped rule covers. See [`check_request_on`].
pub fn check_request<'a>(
    config: &'a Config,
    roles: &[u64],
    channel: &str,
    command: &str,
    mode: Option<&str>,
) -> Result<&'a Rule, String> {
    check_request_on(
        config,
        roles,
        channel,
        command,
        mode,
        &Subject::ANYTHING_ELSE,
    )
}

/// Whether someone with `roles` may request `command` (in `mode`) in `channel` on
/// `subject`, and under which rule. On refusal, the reply text says what would be needed.
pub fn check_request_on<'a>(
    config: &'a Config,
    roles: &[u64],
    channel: &str,
    command: &str,
    mode: Option<&str>,
    subject: &Subject<'_>,
) -> Result<&'a Rule, String> {
    // For the refusals only.
    let what = || match mode {
        Some(m) => format!("`{command} {m}`"),
        None => format!("`{command}`"),
    };
    let on = || match subject.target {
        Some(t) => format!(" on {t}"),
        None => String::new(),
    };
    let tier = tier(config, command, mode, subject);
    if tier.is_empty() {
        return Err(format!(
            "No rule allows {}{}; ask an admin to add one to the config.",
            what(),
            on()
        ));
    }
    let Some(rule) = tier
        .iter()
        .copied()
        .find(|r| roles.iter().any(|x| r.request_roles.contains(x)))
    else {
        let mut needed: Vec<u64> = tier.iter().flat_map(|r| r.request_roles.clone()).collect();
        needed.sort_unstable();
        needed.dedup();
        return Err(format!(
            "You may not request {}{}: it needs the role {}.",
            what(),
            on(),
            role_names(config, &needed)
        ));
    };
    if !rule.channels.is_empty() && !rule.channels.iter().any(|c| c == channel) {
        let allowed: Vec<String> = rule
            .channels
            .iter()
            .map(|c| format!("#{}", config.channel_name(c)))
            .collect();
        return Err(format!(
            "{} cannot be requested in #{}; use {}.",
            what(),
            config.channel_name(channel),
            allowed.join(" or ")
        ));
    }
    Ok(rule)
}

/// Pairs of rules (by index) that could both apply to one request: same tier for some
/// target or account, and a request role in common. Checked on every named target, every
/// account (raw IDs) and anything else; each pair once, with the subject it was found on.
pub fn ambiguities(config: &Config) -> Vec<(usize, usize, String)> {
    let mut subjects: Vec<(Subject<'_>, String)> = vec![(
        Subject::ANYTHING_ELSE,
        "anything no scoped rule covers".into(),
    )];
    for t in config.targets.values() {
        subjects.push((
            Subject {
                target: Some(&t.name),
                account: &t.account,
            },
            format!("target {}", t.name),
        ));
    }
    for a in config.accounts.keys() {
        subjects.push((
            Subject {
                target: None,
                account: a,
            },
            format!("raw IDs on account {a}"),
        ));
    }
    let index = |r: &Rule| config.rules.iter().position(|x| std::ptr::eq(x, r));
    let mut found: Vec<(usize, usize, String)> = Vec::new();
    for op in crate::command::catalog::OPERATIONS {
        let modes: Vec<Option<&str>> = match &op.modes {
            Some(m) => m.values.iter().map(|v| Some(*v)).collect(),
            None => vec![None],
        };
        let key = op.key();
        for (subject, label) in &subjects {
            for mode in &modes {
                let tier = tier(config, &key, *mode, subject);
                for (i, a) in tier.iter().enumerate() {
                    for b in &tier[i + 1..] {
                        if !a.request_roles.iter().any(|r| b.request_roles.contains(r)) {
                            continue;
                        }
                        let (Some(ia), Some(ib)) = (index(a), index(b)) else {
                            continue;
                        };
                        let pair = (ia.min(ib), ia.max(ib));
                        if !found.iter().any(|(x, y, _)| (*x, *y) == pair) {
                            found.push((pair.0, pair.1, label.clone()));
                        }
                    }
                }
            }
        }
    }
    found
}

/// `runs at once` or `needs 1 approval from dba within 15m`: what a rule asks for.
pub fn describe_approval(config: &Config, rule: &Rule) -> String {
    if rule.approvals == 0 {
        "runs at once".to_string()
    } else {
        format!(
            "needs {} approval{} from {} within {}",
            rule.approvals,
            if rule.approvals == 1 { "" } else { "s" },
            role_names(config, &rule.approver_roles),
            humantime::format_duration(rule.expires)
        )
    }
}

/// For `!whoami`: each scope some rule for `command` and `mode` has (beyond unscoped ones),
/// the rule that would apply to someone with `roles` there, or why none would.
pub fn scoped_verdicts<'a>(
    config: &'a Config,
    roles: &[u64],
    channel: &str,
    command: &str,
    mode: Option<&str>,
) -> Vec<(String, Result<&'a Rule, String>)> {
    let scoped: Vec<&'a Rule> = config
        .rules
        .iter()
        .filter(|r| r.command == command && mode_matches(r, mode) && level(&r.scope) > 0)
        .collect();
    let mut scopes: Vec<&'a Scope> = Vec::new();
    for r in &scoped {
        if !scopes.contains(&&r.scope) {
            scopes.push(&r.scope);
        }
    }
    scopes
        .into_iter()
        .map(|scope| {
            let group: Vec<&'a Rule> = scoped
                .iter()
                .copied()
                .filter(|r| &r.scope == scope)
                .collect();
            let top = group.iter().any(|r| !r.modes.is_empty());
            let group: Vec<&'a Rule> = group
                .into_iter()
                .filter(|r| r.modes.is_empty() != top)
                .collect();
            let verdict = match group
                .iter()
                .copied()
                .find(|r| roles.iter().any(|x| r.request_roles.contains(x)))
            {
                Some(r) if !r.channels.is_empty() && !r.channels.iter().any(|c| c == channel) => {
                    Err(format!(
                        "not in #{} (rule `{}`)",
                        config.channel_name(channel),
                        r.name
                    ))
                }
                Some(r) => Ok(r),
                None => {
                    let mut needed: Vec<u64> =
                        group.iter().flat_map(|r| r.request_roles.clone()).collect();
                    needed.sort_unstable();
                    needed.dedup();
                    Err(format!("needs the role {}", role_names(config, &needed)))
                }
            };
            (describe_scope(scope), verdict)
        })
        .collect()
}

pub fn is_admin(config: &Config, roles: &[u64]) -> bool {
    roles.iter().any(|r| config.admin_roles.contains(r))
}

pub fn describe_roles(config: &Config, ids: &[u64]) -> String {
    role_names(config, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[roles]
oncall = "10"
dba = "20"
guest = "30"
[channels]
ops = "100"
random = "200"
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_POLICY_TEST_UNSET"
[[rules]]
command = "restart ddm"
request_roles = ["oncall", "dba"]
channels = ["ops"]
[[rules]]
command = "restart ddm"
modes = ["hard"]
request_roles = ["dba"]
channels = ["ops"]
approvals = 1
approver_roles = ["dba"]
"#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn the_mode_specific_rule_wins() {
        let c = config();
        assert_eq!(
            rule_for(&c, "restart ddm", Some("hard")).unwrap().approvals,
            1
        );
        assert_eq!(
            rule_for(&c, "restart ddm", Some("soft")).unwrap().approvals,
            0
        );
        assert!(rule_for(&c, "restart nothing", None).is_none());
    }

    #[test]
    fn requests_are_checked_by_role_id_and_channel_id() {
        let c = config();
        assert!(check_request(&c, &[10], "100", "restart ddm", Some("soft")).is_ok());
        let e = check_request(&c, &[10], "100", "restart ddm", Some("hard")).unwrap_err();
        assert!(e.contains("needs the role dba"), "{e}");
        let e = check_request(&c, &[30], "100", "restart ddm", Some("soft")).unwrap_err();
        assert!(e.contains("oncall or dba"), "{e}");
        let e = check_request(&c, &[10], "200", "restart ddm", Some("soft")).unwrap_err();
        assert!(e.contains("use #ops"), "{e}");
    }
}
