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
use std::time::Duration;

use crate::command::Catalog;
use crate::domain::{ChannelId, RoleId};

/// Names and tags, as the config gives them.
pub type Tags = BTreeMap<String, String>;

/// Everything the rules are checked against: the rules themselves and the names they and
/// their refusals use. Built from the config.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub admin_roles: Vec<RoleId>,
    /// Role name -> Discord role ID. Authorization always compares IDs.
    pub roles: BTreeMap<String, RoleId>,
    /// Channel name -> channel ID (a Discord snowflake, or the name itself in the shell).
    pub channels: BTreeMap<String, ChannelId>,
    /// Every account, with its tags (`[accounts.X] tags`), which rules can scope by.
    pub accounts: BTreeMap<String, Tags>,
    /// Every named target: its account, and its own tags over its account's.
    pub targets: BTreeMap<String, (String, Tags)>,
}

impl Policy {
    /// The display name of a channel ID (the ID itself when it has no name).
    pub fn channel_name<'a>(&'a self, id: &'a ChannelId) -> &'a str {
        self.channels
            .iter()
            .find(|(_, v)| *v == id)
            .map_or(id.as_str(), |(k, _)| k.as_str())
    }

    /// The display name of a role ID.
    pub fn role_name(&self, id: RoleId) -> Option<&str> {
        self.roles
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.as_str())
    }

    /// `dba or sre-lead`: role IDs by name, for replies.
    pub fn describe_roles(&self, ids: &[RoleId]) -> String {
        let names: Vec<&str> = ids.iter().filter_map(|id| self.role_name(*id)).collect();
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(" or ")
        }
    }

    pub fn is_admin(&self, roles: &[RoleId]) -> bool {
        roles.iter().any(|r| self.admin_roles.contains(r))
    }
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    /// Canonical command key, e.g. `restart ddm`.
    pub command: String,
    /// Modes this rule covers; empty means every mode.
    pub modes: Vec<String>,
    pub request_roles: Vec<RoleId>,
    /// Channel IDs where the command may be requested; empty means anywhere.
    pub channels: Vec<ChannelId>,
    pub approvals: u32,
    pub approver_roles: Vec<RoleId>,
    pub expires: Duration,
    /// What the rule acts on; the most specific matching rule wins.
    pub scope: Scope,
    /// The requester types the target's name (`!confirm`) before the request is posted.
    pub confirm: bool,
    /// Roles that may use `--break-glass` under this rule (skipping its approvals and any
    /// freeze); empty means break-glass is not allowed.
    pub break_glass_roles: Vec<RoleId>,
    /// Jobs under this rule get a thread on their card.
    pub thread: bool,
}

/// What a rule acts on. At most one kind is set; none means everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Named targets.
    pub targets: Vec<String>,
    /// Accounts (named targets on them, and raw IDs used with them).
    pub accounts: Vec<String>,
    /// Tags every one of which the target (or, for raw IDs, the account) must carry.
    pub tags: Tags,
}

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
pub fn tags_of<'a>(policy: &'a Policy, subject: &Subject<'_>) -> BTreeMap<&'a str, &'a str> {
    let mut tags = BTreeMap::new();
    if let Some(account) = policy.accounts.get(subject.account) {
        tags.extend(account.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some((_, target)) = subject.target.and_then(|t| policy.targets.get(t)) {
        tags.extend(target.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    tags
}

/// Whether `scope` covers `subject`.
pub fn covers(policy: &Policy, scope: &Scope, subject: &Subject<'_>) -> bool {
    match level(scope) {
        3 => subject
            .target
            .is_some_and(|t| scope.targets.iter().any(|x| x == t)),
        2 => {
            let tags = tags_of(policy, subject);
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
    policy: &'a Policy,
    command: &str,
    mode: Option<&str>,
    subject: &Subject<'_>,
) -> Vec<&'a Rule> {
    let matching: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| r.command == command && mode_matches(r, mode))
        .filter(|r| covers(policy, &r.scope, subject))
        .collect();
    let rank = |r: &Rule| (level(&r.scope), !r.modes.is_empty());
    let Some(top) = matching.iter().map(|r| rank(r)).max() else {
        return Vec::new();
    };
    matching.into_iter().filter(|r| rank(r) == top).collect()
}

/// The rule for a command and mode on anything no scoped rule covers: one that lists the
/// mode beats one that covers every mode.
pub fn rule_for<'a>(policy: &'a Policy, command: &str, mode: Option<&str>) -> Option<&'a Rule> {
    tier(policy, command, mode, &Subject::ANYTHING_ELSE)
        .into_iter()
        .next()
}

/// Whether someone with `roles` may request `command` (in `mode`) in `channel`, on anything
/// no scoped rule covers. See [`check_request_on`].
pub fn check_request<'a>(
    policy: &'a Policy,
    roles: &[RoleId],
    channel: &ChannelId,
    command: &str,
    mode: Option<&str>,
) -> Result<&'a Rule, String> {
    check_request_on(
        policy,
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
    policy: &'a Policy,
    roles: &[RoleId],
    channel: &ChannelId,
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
    let tier = tier(policy, command, mode, subject);
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
        let mut needed: Vec<RoleId> = tier.iter().flat_map(|r| r.request_roles.clone()).collect();
        needed.sort_unstable();
        needed.dedup();
        return Err(format!(
            "You may not request {}{}: it needs the role {}.",
            what(),
            on(),
            policy.describe_roles(&needed)
        ));
    };
    if !rule.channels.is_empty() && !rule.channels.iter().any(|c| c == channel) {
        let allowed: Vec<String> = rule
            .channels
            .iter()
            .map(|c| format!("#{}", policy.channel_name(c)))
            .collect();
        return Err(format!(
            "{} cannot be requested in #{}; use {}.",
            what(),
            policy.channel_name(channel),
            allowed.join(" or ")
        ));
    }
    Ok(rule)
}

/// Pairs of rules (by index) that could both apply to one request: same tier for some
/// target or account, and a request role in common. Checked on every named target, every
/// account (raw IDs) and anything else; each pair once, with the subject it was found on.
pub fn ambiguities(policy: &Policy, catalog: &Catalog) -> Vec<(usize, usize, String)> {
    let mut subjects: Vec<(Subject<'_>, String)> = vec![(
        Subject::ANYTHING_ELSE,
        "anything no scoped rule covers".into(),
    )];
    for (name, (account, _)) in &policy.targets {
        subjects.push((
            Subject {
                target: Some(name),
                account,
            },
            format!("target {name}"),
        ));
    }
    for a in policy.accounts.keys() {
        subjects.push((
            Subject {
                target: None,
                account: a,
            },
            format!("raw IDs on account {a}"),
        ));
    }
    let index = |r: &Rule| policy.rules.iter().position(|x| std::ptr::eq(x, r));
    let mut found: Vec<(usize, usize, String)> = Vec::new();
    for op in catalog.operations() {
        let modes = op.each_mode();
        let key = op.key();
        for (subject, label) in &subjects {
            for mode in &modes {
                let tier = tier(policy, &key, *mode, subject);
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
pub fn describe_approval(policy: &Policy, rule: &Rule) -> String {
    if rule.approvals == 0 {
        "runs at once".to_string()
    } else {
        format!(
            "needs {} approval{} from {} within {}",
            rule.approvals,
            if rule.approvals == 1 { "" } else { "s" },
            policy.describe_roles(&rule.approver_roles),
            humantime::format_duration(rule.expires)
        )
    }
}

/// For `!whoami`: each scope some rule for `command` and `mode` has (beyond unscoped ones),
/// the rule that would apply to someone with `roles` there, or why none would.
pub fn scoped_verdicts<'a>(
    policy: &'a Policy,
    roles: &[RoleId],
    channel: &ChannelId,
    command: &str,
    mode: Option<&str>,
) -> Vec<(String, Result<&'a Rule, String>)> {
    let scoped: Vec<&'a Rule> = policy
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
                        policy.channel_name(channel),
                        r.name
                    ))
                }
                Some(r) => Ok(r),
                None => {
                    let mut needed: Vec<RoleId> =
                        group.iter().flat_map(|r| r.request_roles.clone()).collect();
                    needed.sort_unstable();
                    needed.dedup();
                    Err(format!("needs the role {}", policy.describe_roles(&needed)))
                }
            };
            (describe_scope(scope), verdict)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONCALL: RoleId = RoleId(10);
    const DBA: RoleId = RoleId(20);
    const GUEST: RoleId = RoleId(30);

    fn rule(modes: &[&str], request_roles: &[RoleId], approvals: u32) -> Rule {
        Rule {
            name: format!("r{approvals}"),
            command: "restart ddm".into(),
            modes: modes.iter().map(|m| m.to_string()).collect(),
            request_roles: request_roles.to_vec(),
            channels: vec![ChannelId::from("100")],
            approvals,
            approver_roles: if approvals > 0 { vec![DBA] } else { vec![] },
            expires: Duration::from_secs(1800),
            scope: Scope::default(),
            confirm: false,
            break_glass_roles: vec![],
            thread: false,
        }
    }

    fn policy() -> Policy {
        Policy {
            rules: vec![rule(&[], &[ONCALL, DBA], 0), rule(&["hard"], &[DBA], 1)],
            roles: [("oncall", ONCALL), ("dba", DBA), ("guest", GUEST)]
                .into_iter()
                .map(|(n, id)| (n.to_string(), id))
                .collect(),
            channels: [("ops", "100"), ("random", "200")]
                .into_iter()
                .map(|(n, id)| (n.to_string(), ChannelId::from(id)))
                .collect(),
            ..Policy::default()
        }
    }

    #[test]
    fn the_mode_specific_rule_wins() {
        let p = policy();
        assert_eq!(
            rule_for(&p, "restart ddm", Some("hard")).unwrap().approvals,
            1
        );
        assert_eq!(
            rule_for(&p, "restart ddm", Some("soft")).unwrap().approvals,
            0
        );
        assert!(rule_for(&p, "restart nothing", None).is_none());
    }

    #[test]
    fn requests_are_checked_by_role_id_and_channel_id() {
        let p = policy();
        assert!(check_request(
            &p,
            &[ONCALL],
            &ChannelId::from("100"),
            "restart ddm",
            Some("soft")
        )
        .is_ok());
        let e = check_request(
            &p,
            &[ONCALL],
            &ChannelId::from("100"),
            "restart ddm",
            Some("hard"),
        )
        .unwrap_err();
        assert!(e.contains("needs the role dba"), "{e}");
        let e = check_request(
            &p,
            &[GUEST],
            &ChannelId::from("100"),
            "restart ddm",
            Some("soft"),
        )
        .unwrap_err();
        assert!(e.contains("oncall or dba"), "{e}");
        let e = check_request(
            &p,
            &[ONCALL],
            &ChannelId::from("200"),
            "restart ddm",
            Some("soft"),
        )
        .unwrap_err();
        assert!(e.contains("use #ops"), "{e}");
    }
}
