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

/// A config with a declared operation in a file of `operations_dir`, each line of
/// `declaration` as written; the problems check-config would print.
fn declared_problems(declaration: &str, accounts: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ops")).unwrap();
    std::fs::write(dir.path().join("ops/team.toml"), declaration).unwrap();
    let text = format!("[bot]\noperations_dir = \"ops\"\n[roles]\noncall = \"1\"\n{accounts}");
    let path = dir.path().join("c.toml");
    match Config::parse(&text, &path, &opsgate::cloud::builtins()) {
        Ok(_) => String::new(),
        Err(p) => p.to_string(),
    }
}

const HW: &str = r#"
[accounts.hw]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
auth = "aksk"
access_key_env = "X_AK"
secret_key_env = "X_SK"
[accounts.team]
provider = "http"
auth = "bearer"
token_env = "X_TOKEN"
endpoints = { api = "http://127.0.0.1:1" }
"#;

#[test]
fn declared_operations_are_refused_with_file_line_and_suggestion() {
    // (declaration, the line the problem is on, what the message must say)
    let cases: &[(&str, u32, &str)] = &[
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\npath = \"/x/{nme}\"\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            7,
            "unknown placeholder `{nme}` (known here: {name}); did you mean `name`?",
        ),
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\npath = \"/x/{name}\"\n[[operations.params]]\nname = \"name\"\n",
            8,
            "parameter `name` has no pattern: give it pattern = \"^...$\"",
        ),
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\npath = \"/x/id-{name}\"\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            7,
            "placeholder outside a path segment in `id-{name}`: a placeholder must be a whole segment",
        ),
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"header\"\nendpoint = \"api\"\npath = \"/x/{name}\"\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            5,
            "auth `header` fits none of the http accounts: team (auth = \"bearer\"); use auth = \"bearer\"",
        ),
        (
            "[[operations]]\nverb = \"restart\"\nservice = \"ddm\"\nprovider = \"huawei\"\nendpoint = \"ddm\"\npath = \"/x/{name}\"\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            3,
            "`restart ddm` is already an operation (`ddm.restart`, built in); pick another service name or alias",
        ),
        (
            "[[operations]]\nverb = \"approve\"\nservice = \"x\"\nprovider = \"local\"\nprogram = \"/bin/true\"\nargv = [\"{name}\"]\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            2,
            "`approve` is a built-in command; pick another verb",
        ),
        (
            "[[operations]]\nverb = \"rollout\"\nservice = \"deployment\"\nprovider = \"local\"\nprogram = \"kubectl\"\nargv = [\"{name}\"]\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            5,
            "`kubectl` is a relative program path: give the absolute path (e.g. /usr/local/bin/kubectl",
        ),
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\npath = \"/x/{name}\"\naccepted = { id = \"job_id\" }\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            8,
            "`job_id` is not a JSON Pointer (RFC 6901): it starts with / (e.g. `/job/status`)",
        ),
        (
            "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\npath = \"/x/{name}\"\n[operations.poll]\npath = \"/y/{job_id}\"\nstate = \"/a/~2\"\nsucceeded = [\"done\"]\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            10,
            "`/a/~2` is not a JSON Pointer (RFC 6901)",
        ),
    ];
    for (declaration, line, says) in cases {
        let text = declared_problems(declaration, HW);
        let at = format!("ops/team.toml:{line}:");
        assert!(
            text.lines().any(|l| l.contains(&at) && l.contains(says)),
            "expected `{at} ... {says}` in:\n{text}"
        );
    }
    // Two declarations of one verb and service: the second is refused, naming the first.
    let twice = "[[operations]]\nverb = \"poke\"\nservice = \"svc\"\nprovider = \"local\"\nprogram = \"/bin/true\"\nargv = [\"{name}\"]\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n";
    let text = declared_problems(&format!("{twice}{twice}"), HW);
    assert!(
        text.contains("ops/team.toml:12:")
            && text.contains("`poke svc` is already an operation (`svc.poke`, declared in"),
        "{text}"
    );
}

#[test]
fn the_example_operations_are_valid_and_hashed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "[bot]\noperations_dir = {:?}\n[roles]\noncall = \"1\"\n{HW}",
        root.join("operations").display().to_string()
    );
    let config = Config::parse(&text, &root.join("c.toml"), &opsgate::cloud::builtins())
        .unwrap_or_else(|p| panic!("{p}"));
    let ids: Vec<&str> = config.declared.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["ecs.reboot", "rds.restart", "deployment.rollout"]);
    for d in &config.declared {
        assert_eq!(d.hash.len(), 64);
    }
}

#[test]
fn two_hundred_declarations_load_quickly_enough_to_measure() {
    // Not a timed assertion: the figure is printed for BENCHMARKS.md; the check is that 200
    // declarations all load.
    let mut text = String::from("[roles]\noncall = \"1\"\n");
    text.push_str(HW);
    for i in 0..200 {
        text.push_str(&format!(
            "[[operations]]\nverb = \"poke\"\nservice = \"svc{i}\"\nprovider = \"http\"\nauth = \"bearer\"\nendpoint = \"api\"\nmethod = \"POST\"\npath = \"/services/{{name}}/restart\"\nbody = {{ reason = \"{{reason}}\", n = 1 }}\naccepted = {{ status = [202], id = \"/operation/id\" }}\n[operations.poll]\npath = \"/operations/{{job_id}}\"\nstate = \"/state\"\nrunning = [\"running\"]\nsucceeded = [\"done\"]\n[[operations.params]]\nname = \"name\"\npattern = \"^[a-z0-9-]{{1,{}}}$\"\n[[operations.params]]\nname = \"reason\"\nrole = \"arg\"\nvalues = [\"deploy\", \"incident\"]\n",
            // A pattern of its own each, so no compilation is shared.
            10 + i % 54
        ));
    }
    let base = "[roles]\noncall = \"1\"\n".to_string() + HW;
    let builtins = opsgate::cloud::builtins();
    let time = |t: &str| {
        let start = std::time::Instant::now();
        for _ in 0..5 {
            Config::parse(t, Path::new("c.toml"), &builtins).unwrap_or_else(|p| panic!("{p}"));
        }
        start.elapsed() / 5
    };
    let without = time(&base);
    let with = time(&text);
    let config = Config::parse(&text, Path::new("c.toml"), &builtins).unwrap();
    assert_eq!(config.declared.len(), 200);
    println!("config parse: without declarations {without:?}, with 200 {with:?}");
}
