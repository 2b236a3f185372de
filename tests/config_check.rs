//! Config validation: every problem at once, with its place in the file (line, column, the
//! line itself) and key path; unknown keys are errors, with the nearest valid name.

use std::path::Path;

use opsgate::config::Config;

const BROKEN: &str = r#"
[bot]
keep_finished = "a while"
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
    let problems =
        Config::parse(BROKEN, Path::new("c.toml"), &opsgate::cloud::builtins()).unwrap_err();
    let text = problems.to_string();
    for path in [
        "bot.colour: unknown key",
        "accounts.prod.password: unknown key",
        "bot.prefix:",
        "bot.keep_finished: `a while` is not a duration",
        "roles.Bad Name:",
        "accounts.prod.region:",
        "accounts.prod.project_id:",
        "accounts.prod.iam_user: missing",
        "accounts.prod.iam_domain: missing",
        "accounts.other.provider: unknown provider",
        "targets.db.instance_id: must be",
        "targets.db.flavour: unknown key",
        "rules[1].request_roles[2]: unknown role `ghost`",
        "rules[1].channels[1]: unknown channel",
        "rules[1].approver_roles: missing",
        "rules[1].expires:",
        "rules[2]: overlaps rule",
        "rules[3].command: unknown command",
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
    let err = Config::parse(
        "[roles]\noncall = [1]\n",
        Path::new("c.toml"),
        &opsgate::cloud::builtins(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("roles.oncall"), "{err}");
}

#[test]
fn the_example_config_is_valid_and_its_summary_shows_secrets_only_as_set_or_unset() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path, &opsgate::cloud::builtins()).unwrap_or_else(|p| panic!("{p}"));
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
    let config = Config::parse(
        text,
        &dir.path().join("c.toml"),
        &opsgate::cloud::builtins(),
    )
    .unwrap();
    let account = &config.accounts["a"];
    assert_eq!(
        account.password.value.as_ref().unwrap().expose(),
        "s3cret-value"
    );
    assert!(!format!("{config:?}").contains("s3cret-value"));
    assert!(!opsgate::config::summary(&config).contains("s3cret-value"));
}

/// The problem about `path` (its line in `check-config`'s output, and the snippet after it).
fn problem_at(text: &str, path: &str) -> (String, String) {
    let problems = Config::parse(text, Path::new("c.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = problems.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(&format!(" {path}: ")))
        .unwrap_or_else(|| panic!("no problem at {path} in:\n{problems}"));
    (
        lines[i].to_string(),
        lines.get(i + 1).unwrap_or(&"").to_string(),
    )
}

const TYPOS: &str = r#"[roles]
oncall = "10"
dba = "20"

[channels]
ops = "1"

[accounts.prod]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
iam_user = "u"
iam_domain = "d"
password_env = "X"
default = true

[targets.db]
service = "dmd"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"

[targets.db2]
service = "ddm"
acount = "prod"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"

[[rules]]
command = "restart ddm"
modes = ["hard"]
request_roles = ["oncal"]
channels = ["opps"]
approvals = 1
aprover_roles = ["dba"]

[[rules]]
command = "restrat ddm"
request_roles = ["oncall"]
"#;

#[test]
fn every_problem_names_file_line_column_and_path_shows_the_line_and_suggests_a_name() {
    let (line, snippet) = problem_at(TYPOS, "rules[1].aprover_roles");
    assert_eq!(
        line,
        "c.toml:32:1: rules[1].aprover_roles: unknown key; did you mean `approver_roles`?"
    );
    assert_eq!(snippet.trim(), "32 | aprover_roles = [\"dba\"]");
    // The misspelt key is the problem; "approver_roles: missing" would be the same one again.
    let all = Config::parse(TYPOS, Path::new("c.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    assert!(!all.contains("approver_roles: missing"), "{all}");

    let (line, _) = problem_at(TYPOS, "rules[1].request_roles[1]");
    assert!(line.starts_with("c.toml:29:18: "), "{line}");
    assert!(
        line.ends_with("unknown role `oncal`; did you mean `oncall`?"),
        "{line}"
    );
    let (line, _) = problem_at(TYPOS, "rules[1].channels[1]");
    assert!(line.contains("did you mean `ops`?"), "{line}");
    let (line, _) = problem_at(TYPOS, "rules[2].command");
    assert!(line.contains("did you mean `restart ddm`?"), "{line}");
    let (line, _) = problem_at(TYPOS, "targets.db.service");
    assert!(line.starts_with("c.toml:18:1: "), "{line}");
    assert!(line.contains("did you mean `ddm`?"), "{line}");
    let (line, _) = problem_at(TYPOS, "targets.db2.acount");
    assert!(line.contains("did you mean `account`?"), "{line}");
}

#[test]
fn syntax_errors_have_a_column_and_the_usual_mistakes_say_what_was_meant() {
    let (line, snippet) = {
        let text = "[bot]\nprefix = \"!\n";
        let p = Config::parse(text, Path::new("c.toml"), &opsgate::cloud::builtins())
            .unwrap_err()
            .to_string();
        let mut lines = p.lines();
        (
            lines.next().unwrap().to_string(),
            lines.next().unwrap_or_default().to_string(),
        )
    };
    assert!(line.starts_with("c.toml:2:"), "{line}");
    assert!(snippet.contains("prefix = \"!"), "{snippet}");

    let text = "[roles]\noncall = \"10\"\n[rules]\ncommand = \"restart ddm\"\n";
    let err = Config::parse(text, Path::new("c.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.toml:3:1: "), "{err}");
    assert!(
        err.contains("[[rules]] table (two brackets), not [rules]"),
        "{err}"
    );

    let text = "[targets.db]\nservice = \"ddm\"\n[targets.db]\nservice = \"ddm\"\n";
    let err = Config::parse(text, Path::new("c.toml"), &opsgate::cloud::builtins())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml:3:1: duplicate key `db` in table `targets`"),
        "{err}"
    );
    assert!(!err.contains("invalid table header"), "{err}");

    let err = Config::parse(
        "[roles]\noncall = [1]\n",
        Path::new("c.toml"),
        &opsgate::cloud::builtins(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("roles.oncall: must be an ID"), "{err}");
}
