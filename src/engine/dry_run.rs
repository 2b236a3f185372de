//! The private answer to `--dry-run`: the rule that would apply, what stands in the way,
//! and the request that would be sent, as the operation itself builds it. Nothing is stored
//! or sent.

use std::fmt::Write;

use super::confirmations::WINDOW_MS;
use super::requests::Gates;
use super::Engine;
use crate::command::OperationRequest;
use crate::domain::time::{format_utc, relative};
use crate::domain::{Actor, JobSpec};
use crate::policy::{self, Rule};

impl Engine {
    /// The private answer to `--dry-run`: what would apply and what would be sent.
    pub(super) fn dry_run_text(
        &self,
        actor: &Actor,
        spec: &JobSpec,
        rule: &Rule,
        req: &OperationRequest,
        gates: &Gates,
        now: u64,
    ) -> String {
        let c = &self.config;
        let mut out = format!(
            "🧪 Dry run of {}: nothing was stored or sent.\n  rule `{}` ({}): {}",
            self.action(spec),
            rule.name,
            policy::describe_scope(&rule.scope),
            policy::describe_approval(&c.policy, rule)
        );
        let _ = write!(out, "\n  {}", self.dry_run_break_glass(actor, rule, req));
        if rule.confirm {
            let _ = write!(
                out,
                "\n  confirmation: you would first type `{}confirm <number> {}` within {} s",
                c.prefix,
                spec.target,
                WINDOW_MS / 1000
            );
        }
        match &gates.busy {
            Some(b) => {
                let _ = write!(out, "\n  lock: {b}");
            }
            None => out.push_str("\n  lock: free"),
        }
        match &gates.freeze {
            Some(hit) => {
                let _ = write!(
                    out,
                    "\n  freeze: 🧊 until {} ({}): {} ({})",
                    format_utc(hit.ends_ms),
                    relative(hit.ends_ms, now),
                    hit.reason,
                    hit.source
                );
            }
            None => out.push_str("\n  freeze: none"),
        }
        match self.operations.describe(spec) {
            Ok(d) => {
                let _ = write!(out, "\n  would send: {}", d.lines());
            }
            Err(e) => {
                let _ = write!(out, "\n  would send: cannot tell ({e})");
            }
        }
        let verdict = match gates.refusal() {
            Some(r) => format!("would be refused: {r}"),
            None if req.break_glass.is_some() || rule.approvals == 0 => "would run at once".into(),
            None => "would be posted for approval".into(),
        };
        let _ = write!(out, "\n  outcome: {verdict}");
        out
    }

    /// What break-glass would do for this request, or whether the rule allows it at all.
    fn dry_run_break_glass(&self, actor: &Actor, rule: &Rule, req: &OperationRequest) -> String {
        match (&req.break_glass, rule.break_glass_roles.is_empty()) {
            (Some(_), _) => match self.break_glass_refusal(rule, actor) {
                None => "--break-glass: would skip the approvals and any freeze, post a critical notice, and mark the job for review".to_string(),
                Some(why) => format!("--break-glass: refused: {why}"),
            },
            (None, false) => format!(
                "break-glass: allowed for {}",
                self.config.policy.describe_roles(&rule.break_glass_roles)
            ),
            (None, true) => "break-glass: not allowed by this rule".to_string(),
        }
    }
}
