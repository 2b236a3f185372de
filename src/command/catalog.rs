//! The command table: one row per command. The parser, `!help`, `!whoami`, config
//! validation and the cloud registry all read this table, so adding a cloud operation is
//! one row here plus one file under `cloud/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ids::{self, IdPattern};
use crate::cloud::registry::AccountClients;
use crate::cloud::{CloudOperation, Provider};

/// One typed argument of an operation.
pub struct Param {
    /// Key in the job's parameters and in a named target's config table.
    pub name: &'static str,
    /// How the usage line shows it, e.g. `<instance>`.
    pub label: &'static str,
    pub pattern: &'static IdPattern,
}

/// A closed set of modes, e.g. soft/hard; the mode is part of what a rule matches.
pub struct Modes {
    pub param: &'static str,
    pub values: &'static [&'static str],
    pub default: &'static str,
}

pub type BuildFn = fn(&AccountClients) -> Result<Arc<dyn CloudOperation>, String>;
pub type CheckFn = fn(&BTreeMap<String, String>) -> Result<(), String>;

/// A cloud operation a user can request.
pub struct OperationDef {
    /// Stable identifier stored in jobs, e.g. `ddm.restart`.
    pub id: &'static str,
    pub verb: &'static str,
    pub service: &'static str,
    /// Other spellings of `service` the parser accepts.
    pub aliases: &'static [&'static str],
    pub provider: Provider,
    /// Parameters that identify what is acted on. A named target supplies them from the
    /// config; otherwise the user types them. They also make up the per-target lock.
    pub target: &'static [Param],
    pub modes: Option<Modes>,
    /// Further positional arguments after the target and mode.
    pub args: &'static [Param],
    pub usage: &'static str,
    pub summary: &'static str,
    /// Extra lines for `!help <command>`: caveats users must know.
    pub notes: &'static str,
    /// Cross-argument checks, e.g. "target version not lower than source".
    pub check: Option<CheckFn>,
    pub build: BuildFn,
}

impl OperationDef {
    /// The name rules use, e.g. `restart ddm`.
    pub fn key(&self) -> String {
        format!("{} {}", self.verb, self.service)
    }

    pub fn answers_to(&self, verb: &str, service: &str) -> bool {
        self.verb.eq_ignore_ascii_case(verb)
            && (self.service.eq_ignore_ascii_case(service)
                || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(service)))
    }

    pub fn mode_values(&self) -> &'static [&'static str] {
        self.modes.as_ref().map_or(&[], |m| m.values)
    }
}

/// Built-in commands that manage jobs rather than touch a cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Approve,
    Deny,
    Cancel,
    Status,
    Jobs,
    Help,
    WhoAmI,
}

pub struct BuiltinDef {
    pub builtin: Builtin,
    pub verb: &'static str,
    pub usage: &'static str,
    pub summary: &'static str,
}

pub static BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        builtin: Builtin::Approve,
        verb: "approve",
        usage: "!approve <job>",
        summary: "approve a pending request (or react ✅ on its message)",
    },
    BuiltinDef {
        builtin: Builtin::Deny,
        verb: "deny",
        usage: "!deny <job> [reason]",
        summary: "reject a pending request (or react ❌ on its message)",
    },
    BuiltinDef {
        builtin: Builtin::Cancel,
        verb: "cancel",
        usage: "!cancel <job>",
        summary: "withdraw your own request before it runs (admins: any request)",
    },
    BuiltinDef {
        builtin: Builtin::Status,
        verb: "status",
        usage: "!status <job>",
        summary: "show a job and its audit history",
    },
    BuiltinDef {
        builtin: Builtin::Jobs,
        verb: "jobs",
        usage: "!jobs [pending|running|mine|all]",
        summary: "list jobs (default: pending and running)",
    },
    BuiltinDef {
        builtin: Builtin::Help,
        verb: "help",
        usage: "!help [command]",
        summary: "list commands, or explain one",
    },
    BuiltinDef {
        builtin: Builtin::WhoAmI,
        verb: "whoami",
        usage: "!whoami",
        summary: "your roles, and what you may run here",
    },
];

pub static OPERATIONS: &[OperationDef] = &[OperationDef {
    id: "ddm.restart",
    verb: "restart",
    service: "ddm",
    aliases: &[],
    provider: Provider::Huawei,
    target: &[Param {
        name: "instance_id",
        label: "<target>",
        pattern: &ids::DDM_INSTANCE,
    }],
    modes: Some(Modes {
        param: "mode",
        values: &["soft", "hard"],
        default: "soft",
    }),
    args: &[],
    usage: "!restart ddm <target> [soft|hard] [account=NAME]",
    summary: "restart a Huawei Cloud DDM instance (soft: processes; hard: reboots the VM)",
    notes: "<target> is a named target from the config, or a DDM instance ID used with the \
            default Huawei account (or account=NAME).",
    check: None,
    build: crate::cloud::huawei::ddm::build,
}];

pub fn operation_by_id(id: &str) -> Option<&'static OperationDef> {
    OPERATIONS.iter().find(|op| op.id == id)
}

pub fn operation_by_key(key: &str) -> Option<&'static OperationDef> {
    let mut words = key.split_whitespace();
    let (verb, service) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    OPERATIONS.iter().find(|op| op.answers_to(verb, service))
}

pub fn is_operation_verb(verb: &str) -> bool {
    OPERATIONS
        .iter()
        .any(|op| op.verb.eq_ignore_ascii_case(verb))
}

pub fn builtin_by_verb(verb: &str) -> Option<&'static BuiltinDef> {
    BUILTINS.iter().find(|b| b.verb.eq_ignore_ascii_case(verb))
}

/// Services (by their main name) that a target of `service` may be used with.
pub fn services() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    OPERATIONS.iter().filter_map(move |op| {
        if seen.contains(&op.service) {
            None
        } else {
            seen.push(op.service);
            Some(op.service)
        }
    })
}

/// The target parameters of a service (shared by all operations on it).
pub fn target_params(service: &str) -> Option<&'static [Param]> {
    OPERATIONS
        .iter()
        .find(|op| op.service == service)
        .map(|op| op.target)
}
