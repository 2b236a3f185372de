//! Rules scoped to what they act on: targets, accounts, tags; the most specific matching
//! rule wins, approvals can depend on who asks, and overlaps that stay ambiguous are config
//! errors naming both rules.

use opsgate::domain::{ChannelId, RoleId};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use opsgate::config::Config;
use opsgate::policy::{self, Subject};

const BASE: &str = r#"
[roles]
oncall = "10"
dba = "20"
[channels]
ops = "ops"
[accounts.prod]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "X"
tags = { env = "prod" }
[accounts.lab]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
iam_user = "u"
iam_domain = "d"
password_env = "X"
[targets.orders-db]
service = "ddm"
account = "prod"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"
[targets.staging-db]
service = "ddm"
account = "prod"
instance_id = "9a8b7c6d5e4f40312a2b3c4d5e6f7a8bin09"
tags = { env = "staging" }
[targets.lab-db]
service = "ddm"
account = "lab"
instance_id = "5d2f6a0c9b1e4c7d8a3f2e1d0c9b8a7fin09"
"#;

const RULES: &str = r#"
[[rules]]
name = "anyone on call, staging"
command = "restart ddm"
tags = { env = "staging" }
request_roles = ["oncall", "dba"]
[[rules]]
name = "prod by on-call"
command = "restart ddm"
tags = { env = "prod" }
request_roles = ["oncall"]
approvals = 1
approver_roles = ["dba"]
[[rules]]
name = "prod by a DBA"
command = "restart ddm"
tags = { env = "prod" }
request_roles = ["dba"]
[[rules]]
name = "orders-db hard"
command = "restart ddm"
targets = ["orders-db"]
modes = ["hard"]
request_roles = ["dba"]
approvals = 2
approver_roles = ["dba"]
[[rules]]
name = "the lab account"
command = "restart ddm"
accounts = ["lab"]
request_roles = ["oncall"]
"#;

fn config(rules: &str) -> Result<Config, String> {
    Config::parse(
        &format!("{BASE}{rules}"),
        Path::new("c.toml"),
        &opsgate::cloud::builtins(),
    )
    .map_err(|p| p.to_string())
}

const ONCALL: RoleId = RoleId(10);
const DBA: RoleId = RoleId(20);

/// The rule name, or the refusal.
fn which(
    config: &Config,
    roles: &[RoleId],
    target: Option<&str>,
    account: &str,
    mode: &str,
) -> String {
    let subject = Subject { target, account };
    match policy::check_request_on(
        &config.policy,
        roles,
        &ChannelId::from("ops"),
        "restart ddm",
        Some(mode),
        &subject,
    ) {
        Ok(rule) => rule.name.clone(),
        Err(why) => format!("refused: {why}"),
    }
}

#[test]
fn the_most_specific_rule_wins_and_approvals_depend_on_who_asks() {
    let c = config(RULES).unwrap_or_else(|e| panic!("{e}"));
    // Tags: the target's own overrides its account's.
    assert_eq!(
        which(&c, &[ONCALL], Some("staging-db"), "prod", "soft"),
        "anyone on call, staging"
    );
    assert_eq!(
        which(&c, &[ONCALL], Some("orders-db"), "prod", "soft"),
        "prod by on-call"
    );
    assert_eq!(
        which(&c, &[DBA], Some("orders-db"), "prod", "soft"),
        "prod by a DBA"
    );
    // Raw IDs carry their account's tags.
    assert_eq!(which(&c, &[DBA], None, "prod", "soft"), "prod by a DBA");
    // A target rule beats the tag rules, for its mode only.
    assert_eq!(
        which(&c, &[DBA], Some("orders-db"), "prod", "hard"),
        "orders-db hard"
    );
    // And the general rules never stand in for a specific one the requester lacks the role for.
    assert_eq!(
        which(&c, &[ONCALL], Some("orders-db"), "prod", "hard"),
        "refused: You may not request `restart ddm hard` on orders-db: it needs the role dba."
    );
    // Accounts.
    assert_eq!(
        which(&c, &[ONCALL], Some("lab-db"), "lab", "hard"),
        "the lab account"
    );
    assert!(which(&c, &[DBA], Some("lab-db"), "lab", "hard").starts_with("refused"));
    // Nothing unscoped: anything else is refused.
    assert!(policy::check_request(
        &c.policy,
        &[DBA],
        &ChannelId::from("ops"),
        "restart ddm",
        Some("soft")
    )
    .is_err());
}

#[test]
fn rules_that_could_both_apply_are_a_config_error_naming_both() {
    let twice = r#"
[[rules]]
name = "prod one"
command = "restart ddm"
tags = { env = "prod" }
request_roles = ["oncall", "dba"]
[[rules]]
name = "prod two"
command = "restart ddm"
tags = { env = "prod" }
request_roles = ["dba"]
approvals = 1
approver_roles = ["dba"]
"#;
    let err = config(twice).unwrap_err();
    assert!(
        err.contains(
            "rules[2]: overlaps rule `prod one` (rules[1]): both apply to target orders-db"
        ),
        "{err}"
    );
    // Different roles, or one scope more specific than the other: no overlap.
    assert!(config(RULES).is_ok());
    // Two unscoped rules for one command and role still overlap.
    let unscoped = r#"
[[rules]]
command = "restart ddm"
request_roles = ["oncall"]
[[rules]]
name = "again"
command = "restart ddm"
request_roles = ["oncall", "dba"]
"#;
    assert!(config(unscoped)
        .unwrap_err()
        .contains("rules[2]: overlaps rule"));
}

#[test]
fn a_scope_names_what_exists_and_only_one_kind() {
    let bad = r#"
[[rules]]
command = "restart ddm"
targets = ["odrers-db"]
request_roles = ["oncall"]
[[rules]]
command = "restart ddm"
accounts = ["prdo"]
request_roles = ["oncall"]
[[rules]]
command = "restart ddm"
targets = ["orders-db"]
tags = { env = "prod" }
request_roles = ["dba"]
"#;
    let err = config(bad).unwrap_err();
    assert!(
        err.contains("rules[1].targets[1]: unknown target `odrers-db`; did you mean `orders-db`?"),
        "{err}"
    );
    assert!(
        err.contains("rules[2].accounts[1]: unknown account `prdo`; did you mean `prod`?"),
        "{err}"
    );
    assert!(
        err.contains("rules[3].targets: scope a rule by one of targets, accounts or tags"),
        "{err}"
    );
}

/// The example config through the demo: staging runs at once, production waits for a DBA,
/// and `!whoami` / `!help` say which rule applies where.
#[test]
fn the_demo_restarts_staging_at_once_and_production_after_an_approval() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsgate"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"!restart ddm staging-db hard\n!restart ddm orders-db hard\n!whoami\n!help restart ddm\n/wait 1\n!cancel 2\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let chat = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{chat}");
    assert!(
        chat.contains("job 1 · submitting · restart ddm staging-db hard"),
        "{chat}"
    );
    assert!(chat.contains("job 1 · succeeded"), "{chat}");
    assert!(
        chat.contains("job 2 · awaiting approval · restart ddm orders-db hard")
            && chat.contains("rule `hard restart` needs an approval from dba or sre-lead"),
        "{chat}"
    );
    assert!(
        chat.contains("where env=staging: yes, runs at once (rule `staging restart`)"),
        "{chat}"
    );
    assert!(
        chat.contains("where env=prod: yes, needs 1 approval from dba or sre-lead within 15m (rule `hard restart`)"),
        "{chat}"
    );
    assert!(
        chat.contains("rule `hard restart`: hard where env=prod, requested by oncall or dba"),
        "{chat}"
    );
}
