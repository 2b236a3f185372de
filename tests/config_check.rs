//! Config validation: every problem at once, with key paths; unknown keys are errors.

use std::path::Path;

use opsgate::config::Config;

const BROKEN: &str = r#"
[bot]
prefix = "!!!!"
colour = "blue"

[roles]
oncall = "10"
"Bad Name" = "x"

[channels]
ops = "100"

[accounts.prod]
provider = "huawei"
region = "mars"
project_id = "short"
auth = "password"
password_env = "X"
password = "hunter2"

[accounts.other]
provider = "nimbus"

[targets.db]
service = "ddm"
account = "prod"
instance_id = "../etc"
flavour = "x"

[[rules]]
command = "restart ddm"
request_roles = ["oncall", "ghost"]
channels = ["nowhere"]
approvals = 2
expires = "soon"

[[rules]]
command = "restart ddm"
request_roles = ["oncall"]

[[rules]]
command = "reboot everything"
request_roles = ["oncall"]
"#;

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let problems = Config::parse(BROKEN, Path::new("c.toml")).unwrap_err();
    let text = problems.to_string();
    for path in [
        "bot.colour: unknown key",
        "accounts.prod.password: unknown key",
        "bot.prefix:",
        "roles.Bad Name:",
        "accounts.prod.region:",
        "accounts.prod.project_id:",
        "accounts.prod.iam_user: missing",
        "accounts.prod.iam_domain: missing",
        "accounts.other.provider: unknown provider",
        "targets.db.instance_id: must be",
        "targets.db.flavour: unknown key",
        "rules[0].request_roles[1]: unknown role `ghost`",
        "rules[0].channels[0]: unknown channel",
        "rules[0].approver_roles: missing",
        "rules[0].expires:",
        "rules[1]: overlaps rule",
        "rules[2].command: unknown command",
    ] {
        assert!(text.contains(path), "missing `{path}` in:\n{text}");
    }
    assert!(
        !text.contains("hunter2"),
        "a secret-looking value must not be echoed"
    );
}

#[test]
fn a_type_error_names_its_path() {
    let err = Config::parse("[roles]\noncall = [1]\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("roles.oncall"), "{err}");
}

#[test]
fn the_example_config_is_valid_and_its_summary_shows_secrets_only_as_set_or_unset() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).unwrap_or_else(|p| panic!("{p}"));
    let summary = opsgate::config::summary(&config);
    assert!(summary.contains("restart ddm [hard]"), "{summary}");
    assert!(
        summary.contains("password unset (env OPSGATE_HUAWEI_PROD_PASSWORD)"),
        "{summary}"
    );
    assert!(summary.contains("orders-db"), "{summary}");
}

#[test]
fn secrets_come_from_files_too_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret-value\n").unwrap();
    let text = r#"
[accounts.a]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
iam_user = "u"
iam_domain = "d"
password_file = "pw"
"#;
    let config = Config::parse(text, &dir.path().join("c.toml")).unwrap();
    let account = &config.accounts["a"];
    assert_eq!(
        account.password.value.as_ref().unwrap().expose(),
        "s3cret-value"
    );
    assert!(!format!("{config:?}").contains("s3cret-value"));
    assert!(!opsgate::config::summary(&config).contains("s3cret-value"));
}
