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

pub static OPERATIONS: &[OperationDef] = &[
    OperationDef {
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
        summary: "restart a Huawei Cloud DDM instance (soft, the default: processes; hard: reboots the VM)",
        notes: "<target> is a named target from the config, or a DDM instance ID used with the \
            default Huawei account (or account=NAME).",
        check: None,
        build: crate::cloud::huawei::ddm::build,
    },
    OperationDef {
        id: "taurus-proxy.restart",
        verb: "restart",
        service: "taurus-proxy",
        aliases: &["gaussdb-proxy"],
        provider: Provider::Huawei,
        target: TAURUS_PROXY_TARGET,
        modes: None,
        args: &[],
        usage: "!restart taurus-proxy <instance> <proxy> [account=NAME]",
        summary: "restart a Huawei Cloud TaurusDB (GaussDB for MySQL) proxy instance",
        notes: "Instead of <instance> <proxy> (a TaurusDB instance ID ending in in07 and a proxy \
            ID ending in po01, used with the default Huawei account or account=NAME), give a \
            named taurus-proxy target from the config. Connections through the proxy drop \
            while it restarts.",
        check: None,
        build: crate::cloud::huawei::taurus_restart::build,
    },
    OperationDef {
        id: "taurus-proxy.upgrade",
        verb: "upgrade",
        service: "taurus-proxy",
        aliases: &["gaussdb-proxy"],
        provider: Provider::Huawei,
        target: TAURUS_PROXY_TARGET,
        modes: None,
        args: &[
            Param {
                name: "source_version",
                label: "<source_version>",
                pattern: &ids::PROXY_VERSION,
            },
            Param {
                name: "target_version",
                label: "<target_version>",
                pattern: &ids::PROXY_VERSION,
            },
        ],
        usage: "!upgrade taurus-proxy <instance> <proxy> <source_version> <target_version> \
            [account=NAME]",
        summary: "upgrade the kernel version of a Huawei Cloud TaurusDB proxy instance",
        notes: "<source_version> is the proxy's current kernel version and <target_version> the \
            new one, e.g. 2.23.12.000 2.24.03.000; the target may not be lower than the \
            source. <instance> <proxy> may be replaced by a named taurus-proxy target. \
            TaurusDB may refuse the upgrade (REJECT); its reason is shown as it is.",
        check: Some(crate::cloud::huawei::taurus_upgrade::check),
        build: crate::cloud::huawei::taurus_upgrade::build,
    },
    OperationDef {
        id: "sae.restart",
        verb: "restart",
        service: "sae",
        aliases: &[],
        provider: Provider::Alibaba,
        target: &[Param {
            name: "app_id",
            label: "<app>",
            pattern: &ids::SAE_APP,
        }],
        modes: None,
        args: &[Param {
            name: "instance_ids",
            label: "<instance>[,<instance>...]",
            pattern: &ids::SAE_INSTANCES,
        }],
        usage: "!restart sae <app> <instance>[,<instance>...] [account=NAME]",
        summary: "restart instances of an Alibaba Cloud SAE application",
        notes: "<app> is a named sae target from the config, or an SAE application ID (a UUID) \
            used with the default Alibaba account (or account=NAME). Instances: 1 to 20 \
            instance IDs of that app, separated by commas without spaces. SAE runs the \
            restart as a change order; if it waits for a batch confirmation or an approval, \
            the job says so here and someone must act in the SAE console.",
        check: Some(crate::cloud::alibaba::sae::check),
        build: crate::cloud::alibaba::sae::build,
    },
    OperationDef {
        id: "scnet.restart",
        verb: "restart",
        service: "scnet",
        aliases: &[],
        provider: Provider::Scnet,
        target: &[Param {
            name: "instance_service_id",
            label: "<instance-service-id>",
            pattern: &ids::SCNET_INSTANCE,
        }],
        modes: None,
        args: &[],
        usage: "!restart scnet <instance-service-id> [account=NAME]",
        summary: "restart (start) an SCNet AI container instance",
        notes: "<instance-service-id> is a named scnet target from the config, or a container \
            instance ID (32 hex characters) used with the default SCNet account (or \
            account=NAME). Caution: SCNet documents this call as starting container \
            instances that are stopped or failed; whether it restarts one that is already \
            Running is UNCONFIRMED. The job succeeds when the instance is Running again.",
        check: None,
        build: crate::cloud::scnet::restart::build,
    },
];

/// The target of both TaurusDB proxy operations (one named target works for both, and the
/// per-target lock covers both).
static TAURUS_PROXY_TARGET: &[Param] = &[
    Param {
        name: "instance_id",
        label: "<instance>",
        pattern: &ids::TAURUS_INSTANCE,
    },
    Param {
        name: "proxy_id",
        label: "<proxy>",
        pattern: &ids::TAURUS_PROXY,
    },
];

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
