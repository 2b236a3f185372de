//! Who may request what, where, and with how many approvals: a lookup over the config's
//! rules by role ID and channel ID. Commands without a rule are refused (deny by default).

use crate::config::{Config, Rule};

/// The rule for a command and mode: one that lists the mode beats one that covers every mode.
pub fn rule_for<'a>(config: &'a Config, command: &str, mode: Option<&str>) -> Option<&'a Rule> {
    let mut general = None;
    for rule in config.rules.iter().filter(|r| r.command == command) {
        if rule.modes.is_empty() {
            general = Some(rule);
        } else if mode.is_some_and(|m| rule.modes.iter().any(|x| x == m)) {
            return Some(rule);
        }
    }
    general
}

fn role_names(config: &Config, ids: &[u64]) -> String {
    let names: Vec<&str> = ids.iter().filter_map(|id| config.role_name(*id)).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(" or ")
    }
}

/// Whether someone with `roles` may request `command` (in `mode`) in `channel`. On refusal,
/// the reply text says what would be needed.
pub fn check_request<'a>(
    config: &'a Config,
    roles: &[u64],
    channel: &str,
    command: &str,
    mode: Option<&str>,
) -> Result<&'a Rule, String> {
    let what = match mode {
        Some(m) => format!("`{command} {m}`"),
        None => format!("`{command}`"),
    };
    let Some(rule) = rule_for(config, command, mode) else {
        return Err(format!(
            "No rule allows {what}; ask an admin to add one to the config."
        ));
    };
    if !roles.iter().any(|r| rule.request_roles.contains(r)) {
        return Err(format!(
            "You may not request {what}: it needs the role {}.",
            role_names(config, &rule.request_roles)
        ));
    }
    if !rule.channels.is_empty() && !rule.channels.iter().any(|c| c == channel) {
        let allowed: Vec<String> = rule
            .channels
            .iter()
            .map(|c| format!("#{}", config.channel_name(c)))
            .collect();
        return Err(format!(
            "{what} cannot be requested in #{}; use {}.",
            config.channel_name(channel),
            allowed.join(" or ")
        ));
    }
    Ok(rule)
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
