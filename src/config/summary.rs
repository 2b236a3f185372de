//! The one-screen summary `opsgate check-config` prints for a valid file.

use std::fmt::Write;

use super::Config;
use crate::domain::RoleId;

pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let role_list = |ids: &[RoleId]| -> String {
        let names: Vec<_> = ids
            .iter()
            .map(|id| config.policy.role_name(*id).unwrap_or("?").to_string())
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let _ = writeln!(out, "config {} is valid", config.source.display());
    let _ = writeln!(out, "prefix: {}", config.prefix);
    let kept = match config.keep_finished {
        Some(keep) => format!("for {} after they end", humantime::format_duration(keep)),
        None => "forever".to_string(),
    };
    let _ = writeln!(out, "finished jobs kept: {kept}");
    let _ = writeln!(out, "store: {}", store_line(&config.store));
    let _ = writeln!(out, "roles ({}):", config.policy.roles.len());
    for (name, id) in &config.policy.roles {
        let admin = if config.policy.admin_roles.contains(id) {
            " (admin)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {name:<16} {id}{admin}");
    }
    let _ = writeln!(out, "channels ({}):", config.policy.channels.len());
    for (name, id) in &config.policy.channels {
        let _ = writeln!(out, "  #{name:<15} {id}");
    }
    let _ = writeln!(out, "rules ({}):", config.policy.rules.len());
    for r in &config.policy.rules {
        let modes = if r.modes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", r.modes.join("|"))
        };
        let channels: Vec<_> = r
            .channels
            .iter()
            .map(|c| format!("#{}", config.policy.channel_name(c)))
            .collect();
        let approval = if r.approvals == 0 {
            "no approval".to_string()
        } else {
            format!(
                "{} approval{} from {} within {}",
                r.approvals,
                if r.approvals == 1 { "" } else { "s" },
                role_list(&r.approver_roles),
                humantime::format_duration(r.expires)
            )
        };
        let scope = match crate::policy::level(&r.scope) {
            0 => String::new(),
            _ => format!(" {}", crate::policy::describe_scope(&r.scope)),
        };
        let _ = writeln!(
            out,
            "  {}{modes}{scope} (`{}`): requested by {} in {}; {approval}",
            r.command,
            r.name,
            role_list(&r.request_roles),
            if channels.is_empty() {
                "any channel".to_string()
            } else {
                channels.join(", ")
            },
        );
    }
    let _ = writeln!(out, "targets ({}):", config.targets.len());
    for (name, t) in &config.targets {
        let params: Vec<_> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "  {name:<16} {} on {} ({})",
            t.service,
            t.account,
            params.join(" ")
        );
    }
    let _ = writeln!(out, "declared operations ({}):", config.declared.len());
    for d in &config.declared {
        if let Some(op) = config.catalog.by_id(&d.id) {
            let _ = writeln!(
                out,
                "  {:<24} {} ({}, from {}, sha256 {})",
                op.key(),
                d.id,
                d.provider.name(),
                d.file.display(),
                &d.hash[..16]
            );
        }
    }
    let _ = writeln!(out, "accounts ({}):", config.accounts.len());
    for (name, a) in &config.accounts {
        let default = if a.default { ", default" } else { "" };
        let secrets: Vec<String> = (a.auth.secrets(a).iter())
            .map(|(kind, secret)| format!("{} {}", kind.replace('_', " "), secret.status()))
            .collect();
        let secrets = if secrets.is_empty() {
            "no secrets".to_string()
        } else {
            secrets.join(", ")
        };
        let endpoints = if a.endpoints.is_empty() {
            String::new()
        } else {
            format!(
                "; endpoints overridden: {}",
                a.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let s = &a.settings;
        let mut extra = Vec::new();
        if let Some(n) = s.calls_per_minute {
            extra.push(format!("{n} calls/min"));
        } else if a.provider == crate::domain::Provider::Alibaba {
            extra.push("60 calls/min (default)".to_string());
        }
        if let Some(u) = &s.scnet_user {
            extra.push(format!("user {u}"));
        }
        if let Some(o) = &s.org_id {
            extra.push(format!("org {o}"));
        }
        match (&s.cluster_id, &s.cluster_name) {
            (Some(id), _) => extra.push(format!("cluster id {id}")),
            (None, Some(n)) => extra.push(format!("cluster `{n}`")),
            _ => {}
        }
        if let Some(f) = &s.status_field {
            extra.push(format!("status field {f}"));
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("; {}", extra.join(", "))
        };
        let region = if a.region.is_empty() { "-" } else { &a.region };
        let _ = writeln!(
            out,
            "  {name:<16} {} {region} ({} auth{default}); {secrets}{endpoints}{extra}",
            a.provider.name(),
            a.auth.name(),
        );
    }
    out
}

/// Which store, and for PostgreSQL whether its connection string is set (never its value).
fn store_line(store: &super::store::Backend) -> String {
    match store {
        super::store::Backend::Sled => "sled (the data directory)".to_string(),
        super::store::Backend::Postgres(pg) => format!(
            "postgres, connection string {}, lease {}",
            pg.url.status(),
            humantime::format_duration(pg.lease)
        ),
    }
}
