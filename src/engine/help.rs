//! `!help` and `!whoami`: the commands, and what the asker may run here, from the catalog
//! and the rules.

use std::fmt::Write;

use super::Engine;
use crate::command::{quote, suggest, usage_of, OperationDef, BUILTINS};
use crate::domain::{Actor, ChannelId};
use crate::policy::{self, Rule};

impl Engine {
    pub(super) fn help_text(&self, topic: Option<&str>) -> String {
        match topic {
            Some(topic) => self.help_on(topic.trim_start_matches(self.config.prefix.as_str())),
            None => self.help_overview(),
        }
    }

    /// Every command, one line each.
    fn help_overview(&self) -> String {
        let mut out = String::from("Commands:");
        for op in self.config.catalog.operations() {
            let _ = write!(out, "\n  {} — {}", op.usage, op.summary);
        }
        for b in BUILTINS {
            let _ = write!(out, "\n  {} — {}", b.usage, b.summary);
        }
        let _ = write!(out, "\nApprove or deny a request by reacting ✅ or ❌ on its message. Add --dry-run to a request to see what would happen without doing it, or --break-glass \"reason\" where a rule allows skipping its approvals. {}help <command> explains one.", self.config.prefix);
        out
    }

    /// One command (a verb, or a verb and a service): its usage, what it does, and the
    /// rules and named targets that go with it.
    fn help_on(&self, topic: &str) -> String {
        let catalog = &self.config.catalog;
        let verb = topic.split_whitespace().next().unwrap_or_default();
        let Some(usage) = usage_of(topic, catalog) else {
            let verbs = (BUILTINS.iter().map(|b| b.verb))
                .chain(catalog.operations().iter().map(|op| op.verb.as_str()));
            let hint = match suggest::nearest(verb, verbs) {
                Some(v) => format!(" Did you mean `{v}`?"),
                None => String::new(),
            };
            let p = &self.config.prefix;
            return format!("No command {}.{hint} {p}help lists them.", quote(topic));
        };
        let mut out = format!("Usage: {usage}");
        let service = topic.split_whitespace().nth(1);
        for op in catalog.for_verb(verb) {
            if service.is_none_or(|s| op.answers_to(verb, s)) {
                self.help_on_operation(op, &mut out);
            }
        }
        for b in BUILTINS
            .iter()
            .filter(|b| b.verb.eq_ignore_ascii_case(verb))
        {
            let _ = write!(out, "\n{}", b.summary);
        }
        out
    }

    fn help_on_operation(&self, op: &OperationDef, out: &mut String) {
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
        let rules = &self.config.policy;
        for rule in rules.rules.iter().filter(|r| r.command == op.key()) {
            let _ = write!(out, "\n  {}", self.describe_rule(rule));
        }
        let targets: Vec<&str> = (self.config.targets.values())
            .filter(|t| t.service == op.service)
            .map(|t| t.name.as_str())
            .collect();
        if !targets.is_empty() {
            let _ = write!(out, "\n  named targets: {}", targets.join(", "));
        }
        out.push_str("\n  add --dry-run to see what would happen without doing it");
    }

    /// `rule `hard`: hard on orders-db, requested by oncall; needs 1 approval from dba ...`
    fn describe_rule(&self, rule: &Rule) -> String {
        let rules = &self.config.policy;
        let modes = if rule.modes.is_empty() {
            String::new()
        } else {
            format!(" {}", rule.modes.join("|"))
        };
        let mut out = format!(
            "rule `{}`:{modes} {}, requested by {}; {}",
            rule.name,
            policy::describe_scope(&rule.scope),
            rules.describe_roles(&rule.request_roles),
            policy::describe_approval(rules, rule)
        );
        if rule.confirm {
            out.push_str("; the requester confirms by typing the target's name");
        }
        if !rule.break_glass_roles.is_empty() {
            let _ = write!(
                out,
                "; --break-glass \"reason\" allowed for {}",
                rules.describe_roles(&rule.break_glass_roles)
            );
        }
        out
    }

    pub(super) fn whoami_text(&self, actor: &Actor, channel: &ChannelId) -> String {
        let rules = &self.config.policy;
        let roles: Vec<String> = (actor.roles.iter())
            .map(|r| {
                rules
                    .role_name(*r)
                    .map_or_else(|| r.to_string(), str::to_string)
            })
            .collect();
        let mut out = format!(
            "{} in #{} · roles: {}{}",
            if actor.id == actor.name.as_str() {
                actor.name.clone()
            } else {
                format!("{} ({})", actor.name, actor.id)
            },
            rules.channel_name(channel),
            if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            },
            if rules.is_admin(&actor.roles) {
                " · admin"
            } else {
                ""
            }
        );
        for op in self.config.catalog.operations() {
            for mode in op.each_mode() {
                self.whoami_verdict(actor, channel, op, mode, &mut out);
            }
        }
        let approver_of: Vec<&str> = (rules.rules.iter())
            .filter(|r| r.approvals > 0 && actor.roles.iter().any(|x| r.approver_roles.contains(x)))
            .map(|r| r.name.as_str())
            .collect();
        if !approver_of.is_empty() {
            let _ = write!(out, "\n  you may approve: {}", approver_of.join(", "));
        }
        out
    }

    /// Whether `actor` may request `op` in `mode` here: on anything, and under each scope a
    /// rule for it has.
    fn whoami_verdict(
        &self,
        actor: &Actor,
        channel: &ChannelId,
        op: &OperationDef,
        mode: Option<&str>,
        out: &mut String,
    ) {
        let rules = &self.config.policy;
        let key = op.key();
        let name = match mode {
            Some(m) => format!("{key} {m}"),
            None => key.clone(),
        };
        let scoped = policy::scoped_verdicts(rules, &actor.roles, channel, &key, mode);
        let verdict = match policy::check_request(rules, &actor.roles, channel, &key, mode) {
            Ok(rule) => format!("yes, {}", policy::describe_approval(rules, rule)),
            // Scoped rules may still allow it somewhere; they follow.
            Err(_) if !scoped.is_empty() => "no: no rule covers it".to_string(),
            Err(why) => format!("no: {why}"),
        };
        if scoped.is_empty() {
            let _ = write!(out, "\n  {name}: {verdict}");
            return;
        }
        let _ = write!(out, "\n  {name}:");
        for (scope, v) in &scoped {
            let v = match v {
                Ok(rule) => format!(
                    "yes, {} (rule `{}`)",
                    policy::describe_approval(rules, rule),
                    rule.name
                ),
                Err(why) => format!("no: {why}"),
            };
            let _ = write!(out, "\n    {scope}: {v}");
        }
        let _ = write!(out, "\n    anywhere else: {verdict}");
    }
}
