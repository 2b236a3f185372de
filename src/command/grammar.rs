//! The grammar of the commands: what a cloud operation's row says (verb, service,
//! parameters with their patterns, modes, usage, help), and the built-in commands that
//! manage jobs. Each operation module builds its own row; the [`Catalog`](super::Catalog)
//! lists them.

use std::collections::BTreeMap;
use std::fmt;

use super::ids::IdPattern;
use crate::domain::Provider;

/// One typed argument of an operation.
#[derive(Clone, Debug)]
pub struct Param {
    /// Key in the job's parameters and in a named target's config table.
    pub name: String,
    /// How the usage line shows it, e.g. `<instance>`.
    pub label: String,
    pub pattern: IdPattern,
    /// The value comes only from a named target's config table, never typed in chat (a
    /// declared operation's `from_target` parameter): requests must name a target.
    pub from_target: bool,
}

impl Param {
    pub fn new(name: &str, label: &str, pattern: &IdPattern) -> Param {
        Param {
            name: name.to_string(),
            label: label.to_string(),
            pattern: pattern.clone(),
            from_target: false,
        }
    }
}

/// What the per-resource lock of an operation is made of, when it is not the built-ins'
/// "the service and all its target parameters".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Operations with the same group share locks (a declared operation's id by default).
    pub group: String,
    /// The parameters (target, mode or further arguments) whose values name the resource.
    pub params: Vec<String>,
}

/// A closed set of modes, e.g. soft/hard; the mode is part of what a rule matches.
#[derive(Clone, Debug)]
pub struct Modes {
    pub param: String,
    pub values: Vec<String>,
    pub default: String,
}

impl Modes {
    pub fn new(param: &str, values: &[&str], default: &str) -> Modes {
        Modes {
            param: param.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
            default: default.to_string(),
        }
    }
}

/// Cross-argument checks, e.g. "target version not lower than source".
pub type CheckFn = fn(&BTreeMap<String, String>) -> Result<(), String>;

/// What a user can type to request a cloud operation, and how it is explained.
pub struct OperationDef {
    /// Stable identifier stored in jobs, e.g. `ddm.restart`.
    pub id: String,
    pub verb: String,
    pub service: String,
    /// Other spellings of `service` the parser accepts.
    pub aliases: Vec<String>,
    pub provider: Provider,
    /// Parameters that identify what is acted on. A named target supplies them from the
    /// config; otherwise the user types them. They also make up the per-target lock.
    pub target: Vec<Param>,
    pub modes: Option<Modes>,
    /// Further positional arguments after the target and mode.
    pub args: Vec<Param>,
    pub usage: String,
    pub summary: String,
    /// Extra lines for `!help <command>`: caveats users must know.
    pub notes: String,
    pub check: Option<CheckFn>,
    /// `None`: the lock is the service and all target parameters (the built-ins).
    pub lock: Option<Lock>,
    /// Where the row comes from when it is not built in, recorded in each job's audit
    /// entry, e.g. `declared in operations/rds.toml, sha256 1a2b3c4d5e6f7a8b`.
    pub origin: Option<String>,
}

impl OperationDef {
    /// The name rules use, e.g. `restart ddm`.
    pub fn key(&self) -> String {
        format!("{} {}", self.verb, self.service)
    }

    pub fn answers_to(&self, verb: &str, service: &str) -> bool {
        self.verb.eq_ignore_ascii_case(verb) && self.names_service(service)
    }

    /// Whether `service` is this operation's service or one of its aliases.
    pub fn names_service(&self, service: &str) -> bool {
        self.service.eq_ignore_ascii_case(service)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(service))
    }

    pub fn mode_values(&self) -> &[String] {
        self.modes.as_ref().map_or(&[], |m| &m.values)
    }

    /// Each mode a rule may name (`None` alone when the operation has no modes).
    pub fn each_mode(&self) -> Vec<Option<&str>> {
        match &self.modes {
            Some(m) => m.values.iter().map(|v| Some(v.as_str())).collect(),
            None => vec![None],
        }
    }
}

impl PartialEq for OperationDef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for OperationDef {}
impl fmt::Debug for OperationDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
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
    Confirm,
    Review,
    Freeze,
    Unfreeze,
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
        usage: "!status [job]",
        summary: "show a job and its audit history; without a job: freezes, break-glass reviews and counts",
    },
    BuiltinDef {
        builtin: Builtin::Jobs,
        verb: "jobs",
        usage: "!jobs [pending|running|mine|all|review]",
        summary: "list jobs (default: pending and running; review: break-glass jobs awaiting review)",
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
    BuiltinDef {
        builtin: Builtin::Confirm,
        verb: "confirm",
        usage: "!confirm <number> <target>",
        summary: "confirm a request whose rule asks for it, by typing its target's name",
    },
    BuiltinDef {
        builtin: Builtin::Review,
        verb: "review",
        usage: "!review <job> ok|concern <note>",
        summary: "approvers: review a job that ran with --break-glass",
    },
    BuiltinDef {
        builtin: Builtin::Freeze,
        verb: "freeze",
        usage: "!freeze <duration> <reason>",
        summary: "admins: refuse every request for a while, e.g. !freeze 2h release in progress",
    },
    BuiltinDef {
        builtin: Builtin::Unfreeze,
        verb: "unfreeze",
        usage: "!unfreeze",
        summary: "admins: lift the freeze set with !freeze (freezes in the config stay)",
    },
];

pub fn builtin_by_verb(verb: &str) -> Option<&'static BuiltinDef> {
    BUILTINS.iter().find(|b| b.verb.eq_ignore_ascii_case(verb))
}
