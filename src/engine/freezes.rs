//! Change freezes: the refusal a frozen request gets, and `!freeze` / `!unfreeze`. A freeze
//! set or lifted is written into the group's writes like any job change, so it is durable
//! before the reply that announces it.

use std::fmt::Write;

use super::Engine;
use crate::domain::time::{format_utc, relative};
use crate::domain::{Actor, Severity};
use crate::freeze::{ChatFreeze, FreezeHit};
use crate::job::AuditEntry;
use crate::policy::Rule;
use crate::ports::chat::Origin;

impl Engine {
    /// The refusal for a request that a freeze covers.
    pub(super) fn frozen_text(&self, what: &str, rule: &Rule, hit: &FreezeHit, now: u64) -> String {
        let mut out = format!(
            "🧊 {what} is frozen until {} ({}): {} ({}).",
            format_utc(hit.ends_ms),
            relative(hit.ends_ms, now),
            hit.reason,
            hit.source
        );
        if !rule.break_glass_roles.is_empty() {
            let _ = write!(
                out,
                " Rule `{}` allows {}: add --break-glass \"reason\" to run it anyway.",
                rule.name,
                self.config.policy.describe_roles(&rule.break_glass_roles)
            );
        }
        out
    }

    pub(super) fn on_freeze(
        &mut self,
        actor: &Actor,
        origin: &Origin,
        duration: std::time::Duration,
        reason: String,
        now: u64,
    ) {
        if self.refuse_unless_admin(actor, origin, "freeze") {
            return;
        }
        let freeze = ChatFreeze {
            reason,
            by: actor.person(),
            set_ms: now,
            ends_ms: now.saturating_add(duration.as_millis() as u64),
        };
        self.writes.put_chat_freeze(Some(freeze.clone()));
        let detail = format!("until {}: {}", format_utc(freeze.ends_ms), freeze.reason);
        self.ops_event(actor, "freeze", detail, now);
        let text = format!(
            "🧊 Freeze set by {} until {} ({}): {}. Every request is refused until then, except with --break-glass where a rule allows it; {}unfreeze lifts it.",
            actor.name,
            format_utc(freeze.ends_ms),
            relative(freeze.ends_ms, now),
            freeze.reason,
            self.config.prefix
        );
        self.chat_freeze = Some(freeze);
        self.reply(origin, text.clone(), false);
        self.ops_notice(Severity::Warning, text);
    }

    pub(super) fn on_unfreeze(&mut self, actor: &Actor, origin: &Origin, now: u64) {
        if self.refuse_unless_admin(actor, origin, "unfreeze") {
            return;
        }
        let Some(freeze) = self.chat_freeze.take().filter(|f| f.ends_ms > now) else {
            let msg = self.nothing_to_unfreeze(now);
            return self.refuse(origin, msg);
        };
        self.writes.put_chat_freeze(None);
        let detail = format!(
            "lifted the freeze set by {}: {}",
            freeze.by.name, freeze.reason
        );
        self.ops_event(actor, "unfreeze", detail, now);
        let text = format!(
            "☀️ Freeze lifted by {} (it was set by {}: {}).",
            actor.name, freeze.by.name, freeze.reason
        );
        self.reply(origin, text.clone(), false);
        self.ops_notice(Severity::Info, text);
    }

    fn nothing_to_unfreeze(&self, now: u64) -> String {
        let mut msg = format!("No {}freeze is in force.", self.config.prefix);
        let config_freezes: Vec<String> = (self.config.freezes.iter())
            .filter_map(|f| f.window.ends_after(now).map(|end| (f, end)))
            .map(|(f, end)| format!("`{}` until {}", f.name, format_utc(end)))
            .collect();
        if !config_freezes.is_empty() {
            let _ = write!(
                msg,
                " Freezes from the config stay until they end ({}); change the config to lift them.",
                config_freezes.join(", ")
            );
        }
        msg
    }

    /// Records an event that belongs to no job (a freeze set or lifted).
    fn ops_event(&mut self, actor: &Actor, event: &str, detail: String, now: u64) {
        let entry = AuditEntry {
            at_ms: now,
            actor: Some(actor.audit_name()),
            event: event.to_string(),
            detail,
        };
        self.writes.put_ops_event(self.ops_seq, entry);
        self.ops_seq += 1;
    }

    fn refuse_unless_admin(&mut self, actor: &Actor, origin: &Origin, verb: &str) -> bool {
        if self.config.policy.is_admin(&actor.roles) {
            return false;
        }
        let msg = format!(
            "{}: only an admin can {}{verb}.",
            actor.name, self.config.prefix
        );
        self.refuse(origin, msg);
        true
    }

    /// A notice about no job in particular, to the incident channel for `severity`.
    fn ops_notice(&mut self, severity: Severity, text: String) {
        if let Some(channel) = self.config.incidents.channel_for("", severity) {
            let channel = channel.clone();
            self.notice(&channel, None, text);
        }
    }
}
