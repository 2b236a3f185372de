//! `!help` and `!whoami`: the commands, and what the asker may run here, from the catalog
//! and the rules.

use std::fmt::Write;

use super::Engine;
use crate::command::{quote, suggest, usage_of, BUILTINS};
use crate::domain::Actor;
use crate::policy;

impl Engine {
    pub(super) fn help_text(&self, topic: Option<&str>) -> String {
        let p = &self.config.prefix;
        let catalog = &self.config.catalog;
        if let Some(topic) = topic {
            let topic = topic.trim_start_matches(p.as_str());
            let Some(usage) = usage_of(topic, catalog) else {
                let verbs = BUILTINS
                    .iter()
                    .map(|b| b.verb)
                    .chain(catalog.operations().iter().map(|op| op.verb.as_str()));
                let verb = topic.split_whitespace().next().unwrap_or_default();
                let hint = match suggest::nearest(verb, verbs) {
                    Some(v) => format!(" Did you mean `{v}`?"),
                    None => String::new(),
                };
                return format!("No command {}.{hint} {p}help lists them.", quote(topic));
            };
            let mut out = format!("Usage: {usage}");
            let verb = topic.split_whitespace().next().unwrap_or_default();
            for op in catalog.for_verb(verb) {
                if topic
                    .split_whitespace()
                    .nth(1)
                    .is_none_or(|s| op.answers_to(verb, s))
                {
                    let _ = write!(out, "\n{}: {}", op.key(), op.summary);
                    if let Some(modes) = &op.modes {
                        let _ = write!(
                            out,
                            "\n  mode: {}; without one it is {} (the default)",
                            modes.values.join(" or "),
                            modes.default
                        );
                    }
                    if !op.notes.is_empty() {
                        let _ = write!(out, "\n  {}", op.notes);
                    }
                    let policy = &self.config.policy;
                    for rule in policy.rules.iter().filter(|r| r.command == op.key()) {
                        let modes = if rule.modes.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", rule.modes.join("|"))
                        };
                        let _ = write!(
                            out,
                            "\n  rule `{}`:{modes} {}, requested by {}; {}",
                            rule.name,
                            policy::describe_scope(&rule.scope),
                            policy.describe_roles(&rule.request_roles),
                            policy::describe_approval(policy, rule)
                        );
                        if rule.confirm {
                            out.push_str("; the requester confirms by typing the target's name");
                        }
                        if !rule.break_glass_roles.is_empty() {
                            let _ = write!(
                                out,
                                "; --break-glass \"reason\" allowed for {}",
                                policy.describe_roles(&rule.break_glass_roles)
                            );
                        }
                    }
                    let targets: Vec<&str> = self
                        .config
                        .targets
                        .values()
                        .filter(|t| t.service == op.service)
                        .map(|t| t.name.as_str())
                        .collect();
                    if !targets.is_empty() {
                        let _ = write!(out, "\n  named targets: {}", targets.join(", "));
                    }
                    let _ = write!(
                        out,
                        "\n  add --dry-run to see what would happen without doing it"
                    );
                }
            }
            for b in BUILTINS
                .iter()
                .filter(|b| b.verb.eq_ignore_ascii_case(verb))
            {
                let _ = write!(out, "\n{}", b.summary);
            }
            return out;
        }
        let mut out = String::from("Commands:");
        for op in catalog.operations() {
            let _ = write!(out, "\n  {} — {}", op.usage, op.summary);
        }
        for b in BUILTINS {
            let _ = write!(out, "\n  {} — {}", b.usage, b.summary);
        }
        let _ = write!(out, "\nApprove or deny a request by reacting ✅ or ❌ on its message. Add --dry-run to a request to see what would happen without doing it, or --break-glass \"reason\" where a rule allows skipping its approvals. {p}help <command> explains one.");
        out
    }

    pub(super) fn whoami_text(&self, actor: &Actor, channel: &str) -> String {
        let policy = &self.config.policy;
        let roles: Vec<String> = actor
            .roles
            .iter()
            .map(|r| {
                policy
                    .role_name(*r)
                    .map_or_else(|| r.to_string(), str::to_string)
            })
            .collect();
        let mut out = format!(
            "{} in #{} · roles: {}{}",
            if actor.name == actor.id {
                actor.name.clone()
            } else {
                format!("{} ({})", actor.name, actor.id)
            },
            policy.channel_name(channel),
            if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            },
            if policy.is_admin(&actor.roles) {
                " · admin"
            } else {
                ""
            }
        );
        for op in self.config.catalog.operations() {
            for mode in op.each_mode() {
                let name = match mode {
                    Some(m) => format!("{} {m}", op.key()),
                    None => op.key(),
                };
                let scoped =
                    policy::scoped_verdicts(policy, &actor.roles, channel, &op.key(), mode);
                let verdict =
                    match policy::check_request(policy, &actor.roles, channel, &op.key(), mode) {
                        Ok(rule) => format!("yes, {}", policy::describe_approval(policy, rule)),
                        // Scoped rules may still allow it somewhere; they follow.
                        Err(_) if !scoped.is_empty() => "no: no rule covers it".to_string(),
                        Err(why) => format!("no: {why}"),
                    };
                if scoped.is_empty() {
                    let _ = write!(out, "\n  {name}: {verdict}");
                } else {
                    let _ = write!(out, "\n  {name}:");
                    for (scope, v) in &scoped {
                        let v = match v {
                            Ok(rule) => format!(
                                "yes, {} (rule `{}`)",
                                policy::describe_approval(policy, rule),
                                rule.name
                            ),
                            Err(why) => format!("no: {why}"),
                        };
                        let _ = write!(out, "\n    {scope}: {v}");
                    }
                    let _ = write!(out, "\n    anywhere else: {verdict}");
                }
            }
        }
        let approver_of: Vec<&str> = policy
            .rules
            .iter()
            .filter(|r| r.approvals > 0 && actor.roles.iter().any(|x| r.approver_roles.contains(x)))
            .map(|r| r.name.as_str())
            .collect();
        if !approver_of.is_empty() {
            let _ = write!(out, "\n  you may approve: {}", approver_of.join(", "));
        }
        out
    }
}
