//! Slash commands, generated from the command table: one command per operation verb
//! (`/restart`, `/upgrade`, ...) with a choice of service and mode and autocomplete of named
//! targets, plus the built-ins. A slash command becomes the equivalent `!` text, so the
//! engine treats it exactly like a typed command.

use serenity::all::{CommandOptionType, GuildId, Permissions};
use serenity::builder::{CreateAutocompleteResponse, CreateCommand, CreateCommandOption};

use super::render::truncate;
use crate::command::{Catalog, OperationDef, BUILTINS};
use crate::config::Config;

/// Discord's limits.
const MAX_OPTIONS: usize = 25;
const MAX_CHOICES: usize = 25;
const DESCRIPTION_LIMIT: usize = 100;

/// Discord's permission on top of opsgate's own rules when `[discord]
/// slash_commands_need_manage_server` is on: only members with Manage Server (and
/// administrators) see the commands until a server admin opens them to others (Server
/// Settings > Integrations > opsgate). Off (the default), every member of the server sees
/// them, and the role rules decide what anyone may do, for `!` and `/` alike.
pub const MANAGE_SERVER: Permissions = Permissions::MANAGE_GUILD;

/// Built-ins offered as slash commands (the rest of the table stays `!`-only).
const SLASH_BUILTINS: &[&str] = &[
    "approve", "deny", "status", "jobs", "cancel", "help", "whoami", "confirm", "review", "freeze",
    "unfreeze",
];

/// Each built-in's options, in the order its `!` text takes them.
fn builtin_keys(verb: &str) -> &'static [&'static str] {
    match verb {
        "approve" | "status" | "cancel" => &["job"],
        "deny" => &["job", "reason"],
        "jobs" => &["filter"],
        "help" => &["command"],
        "confirm" => &["number", "name"],
        "review" => &["job", "verdict", "note"],
        "freeze" => &["duration", "reason"],
        _ => &[],
    }
}

/// Slash commands whose answer is for the channel (the engine answers these publicly,
/// everything else privately, refusals included): a deferral must already have that
/// visibility.
const PUBLIC_ANSWERS: &[&str] = &["status", "jobs", "review", "freeze", "unfreeze"];

/// Whether `/name`'s answer is public, so its deferral is too.
pub fn answers_publicly(name: &str) -> bool {
    PUBLIC_ANSWERS.contains(&name)
}

/// Option names used by the operation commands themselves.
const RESERVED: &[&str] = &[
    "service",
    "target",
    "mode",
    "account",
    "dry_run",
    "break_glass",
];

/// Operation verbs in catalog order, each once.
fn verbs(catalog: &Catalog) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for op in catalog.operations() {
        let verb = op.verb.as_str();
        if !out.iter().any(|v| v.eq_ignore_ascii_case(verb)) {
            out.push(verb);
        }
    }
    out
}

fn ops_for<'a>(catalog: &'a Catalog, verb: &'a str) -> Vec<&'a OperationDef> {
    catalog.for_verb(verb).map(|op| &**op).collect()
}

/// A valid option or command name: lowercase letters, digits, `-` and `_`, 1 to 32 chars.
fn option_name(name: &str) -> Option<String> {
    let n: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    (!n.is_empty()).then_some(n)
}

/// Modes and further arguments of every operation with this verb, in table order.
fn mode_values<'a>(ops: &[&'a OperationDef]) -> Vec<&'a str> {
    let mut modes: Vec<&str> = Vec::new();
    for op in ops {
        for m in op.mode_values() {
            if !modes.contains(&m.as_str()) {
                modes.push(m);
            }
        }
    }
    modes
}

fn arg_names<'a>(ops: &[&'a OperationDef]) -> Vec<(String, &'a str)> {
    let mut args: Vec<(String, &str)> = Vec::new();
    for op in ops {
        for p in &op.args {
            if let Some(name) = option_name(&p.name) {
                if !RESERVED.contains(&name.as_str()) && !args.iter().any(|(n, _)| *n == name) {
                    args.push((name, &p.label));
                }
            }
        }
    }
    args
}

fn desc(text: &str) -> String {
    truncate(text, DESCRIPTION_LIMIT)
}

/// The slash commands for this config.
pub fn commands(config: &Config) -> Vec<CreateCommand> {
    let mut out = Vec::new();
    for verb in verbs(&config.catalog) {
        let ops = ops_for(&config.catalog, verb);
        let Some(name) = option_name(verb) else {
            continue;
        };
        let services: Vec<&str> = ops.iter().map(|op| op.service.as_str()).collect();
        let mut service =
            CreateCommandOption::new(CommandOptionType::String, "service", "which service")
                .required(true);
        for s in services.iter().take(MAX_CHOICES) {
            service = service.add_string_choice(*s, *s);
        }
        let mut options = vec![
            service,
            CreateCommandOption::new(
                CommandOptionType::String,
                "target",
                "a named target, or the resource ID(s) separated by spaces",
            )
            .required(true)
            .set_autocomplete(true),
        ];
        let modes = mode_values(&ops);
        if !modes.is_empty() {
            let mut mode = CreateCommandOption::new(
                CommandOptionType::String,
                "mode",
                "how (default: the service's default)",
            );
            for m in modes.iter().take(MAX_CHOICES) {
                mode = mode.add_string_choice(*m, *m);
            }
            options.push(mode);
        }
        for (arg, label) in arg_names(&ops) {
            options.push(CreateCommandOption::new(
                CommandOptionType::String,
                arg,
                desc(&format!("{label} (for services that take it)")),
            ));
        }
        if !config.accounts.is_empty() {
            options.push(
                CreateCommandOption::new(
                    CommandOptionType::String,
                    "account",
                    "cloud account for a raw ID (default: the provider's default account)",
                )
                .set_autocomplete(true),
            );
        }
        options.push(CreateCommandOption::new(
            CommandOptionType::Boolean,
            "dry_run",
            "only say what would happen (answered privately; nothing is stored or sent)",
        ));
        options.push(
            CreateCommandOption::new(
                CommandOptionType::String,
                "break_glass",
                "emergency: skip approvals and freezes where the rule allows it; the reason",
            )
            .max_length(300),
        );
        options.truncate(MAX_OPTIONS);
        let summary = format!("{verb} a cloud resource ({})", services.join(", "));
        out.push(
            CreateCommand::new(name)
                .description(desc(&summary))
                .set_options(options),
        );
    }
    for b in BUILTINS.iter().filter(|b| SLASH_BUILTINS.contains(&b.verb)) {
        let job = || {
            CreateCommandOption::new(CommandOptionType::Integer, "job", "job number")
                .required(true)
                .min_int_value(1)
        };
        let text = |name: &str, what: &str| {
            CreateCommandOption::new(CommandOptionType::String, name, what)
        };
        let options = match b.verb {
            "approve" | "cancel" => vec![job()],
            // As `!status`: without a number, the overview.
            "status" => vec![CreateCommandOption::new(
                CommandOptionType::Integer,
                "job",
                "job number (none: the overview of pending and running jobs, freezes, reviews)",
            )
            .min_int_value(1)],
            "deny" => vec![
                job(),
                text("reason", "why (shown on the job)").max_length(300),
            ],
            "jobs" => {
                let mut filter = text("filter", "which jobs (default: pending and running)");
                for f in ["pending", "running", "mine", "all", "review"] {
                    filter = filter.add_string_choice(f, f);
                }
                vec![filter]
            }
            "help" => vec![text("command", "a command, e.g. restart ddm")],
            "confirm" => vec![
                CreateCommandOption::new(
                    CommandOptionType::Integer,
                    "number",
                    "the number in the confirmation prompt",
                )
                .required(true)
                .min_int_value(1),
                text("name", "the target's name, as the prompt asks").required(true),
            ],
            "review" => {
                let mut verdict = text("verdict", "ok, or a concern").required(true);
                for v in ["ok", "concern"] {
                    verdict = verdict.add_string_choice(v, v);
                }
                vec![
                    job(),
                    verdict,
                    text("note", "what you found (needed for a concern)").max_length(300),
                ]
            }
            "freeze" => vec![
                text("duration", "how long, e.g. 2h, 30m, 1d (at most 14 days)").required(true),
                text("reason", "why (announced, shown on refusals)")
                    .required(true)
                    .max_length(300),
            ],
            _ => Vec::new(),
        };
        out.push(
            CreateCommand::new(b.verb)
                .description(desc(b.summary))
                .set_options(options),
        );
    }
    out
}

/// The registration's body: the commands, each with `default_member_permissions` set
/// explicitly (Manage Server when `[discord] slash_commands_need_manage_server` is on, else
/// `null`, which clears a restriction an earlier registration left on the same command).
pub fn registration(config: &Config) -> Vec<serde_json::Value> {
    let permissions = match config.discord.slash_commands_need_manage_server {
        true => serde_json::Value::String(MANAGE_SERVER.bits().to_string()),
        false => serde_json::Value::Null,
    };
    commands(config)
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .map(|mut c| {
            c["default_member_permissions"] = permissions.clone();
            c
        })
        .collect()
}

/// Registers the commands in every configured guild (takes effect at once).
pub async fn register(http: &serenity::http::Http, config: &Config) {
    let commands = registration(config);
    for guild in &config.discord.guilds {
        let Some(g) = (*guild > 0).then(|| GuildId::new(*guild)) else {
            continue;
        };
        match http.create_guild_commands(g, &commands).await {
            Ok(_) => tracing::info!(guild, count = commands.len(), "slash commands registered"),
            Err(e) => tracing::warn!(
                guild,
                error = %e,
                "could not register slash commands (was the bot invited with the applications.commands scope?)"
            ),
        }
    }
}

/// Option text for the `!` line: one line, no control characters.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The `!` text a slash command stands for, from its name and (name, value) options.
pub fn to_text(
    prefix: &str,
    catalog: &Catalog,
    name: &str,
    options: &[(String, String)],
) -> Result<String, String> {
    let get = |key: &str| {
        options
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, v)| clean(v))
            .filter(|v| !v.is_empty())
    };
    let mut words: Vec<String> = vec![format!("{prefix}{name}")];
    if SLASH_BUILTINS.contains(&name) {
        for key in builtin_keys(name) {
            if let Some(v) = get(key) {
                words.push(v);
            }
        }
        return Ok(words.join(" "));
    }
    let ops = ops_for(catalog, name);
    if ops.is_empty() {
        return Err(format!(
            "Unknown command `/{}`.",
            clean(name).replace('`', "'")
        ));
    }
    let service = get("service").ok_or("Which service?")?;
    let target = get("target").ok_or("Which target?")?;
    words.push(service);
    words.push(target);
    if let Some(mode) = get("mode") {
        words.push(mode);
    }
    for (arg, _) in arg_names(&ops) {
        if let Some(v) = get(&arg) {
            words.push(v);
        }
    }
    if let Some(account) = get("account") {
        words.push(format!("account={account}"));
    }
    if get("dry_run").as_deref() == Some("true") {
        words.push("--dry-run".into());
    }
    // Last: `--break-glass` takes the rest of the line as its reason.
    if let Some(reason) = get("break_glass") {
        words.push(format!("--break-glass \"{}\"", reason.replace('"', "'")));
    }
    Ok(words.join(" "))
}

/// Suggestions for an autocompleted option: named targets of the chosen service, or accounts.
pub fn suggest(
    config: &Config,
    option: &str,
    typed: &str,
    service: Option<&str>,
) -> Vec<(String, String)> {
    let typed = typed.trim().to_lowercase();
    match option {
        "target" => {
            let service = service.and_then(|s| config.catalog.service_named(s));
            config
                .targets
                .values()
                .filter(|t| service.is_none_or(|s| t.service == s))
                .filter(|t| typed.is_empty() || t.name.to_lowercase().contains(&typed))
                .take(MAX_CHOICES)
                .map(|t| {
                    let label = match &t.description {
                        Some(d) => format!("{} — {} ({})", t.name, d, t.service),
                        None => format!("{} ({})", t.name, t.service),
                    };
                    (truncate(&label, 100), t.name.clone())
                })
                .collect()
        }
        "account" => config
            .accounts
            .keys()
            .filter(|a| typed.is_empty() || a.to_lowercase().contains(&typed))
            .take(MAX_CHOICES)
            .map(|a| (a.clone(), a.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

pub fn autocomplete_response(choices: Vec<(String, String)>) -> CreateAutocompleteResponse {
    choices
        .into_iter()
        .fold(CreateAutocompleteResponse::new(), |r, (name, value)| {
            r.add_string_choice(name, value)
        })
}

/// Whether the catalog knows `verb` as an operation (used to route autocomplete).
pub fn is_operation(catalog: &Catalog, verb: &str) -> bool {
    catalog.is_verb(verb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[roles]
oncall = "1"
[accounts.acct]
provider = "huawei"
region = "cn-north-4"
project_id = "0123456789abcdef0123456789abcdef"
default = true
iam_user = "u"
iam_domain = "d"
password_env = "OPSGATE_SLASH_TEST_UNSET"
[targets.orders-db]
service = "ddm"
instance_id = "28e8841d0b9c4f6a9a30742ee60e1068in09"
description = "orders"
[targets.billing-db]
service = "ddm"
instance_id = "5d2f6a0c9b1e4c7d8a3f2e1d0c9b8a7fin09"
"#;

    fn config() -> Config {
        match Config::parse(CONFIG, Path::new("t.toml"), &crate::cloud::builtins()) {
            Ok(c) => c,
            Err(p) => panic!("{p}"),
        }
    }

    fn catalog() -> Catalog {
        crate::cloud::builtins().catalog
    }

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn every_operation_verb_and_the_builtins_become_commands() {
        let cmds = commands(&config());
        let json: Vec<serde_json::Value> = cmds
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect();
        let names: Vec<&str> = json.iter().filter_map(|c| c["name"].as_str()).collect();
        for verb in verbs(&config().catalog) {
            assert!(names.contains(&verb), "{verb} missing: {names:?}");
        }
        for b in [
            "approve", "deny", "status", "jobs", "cancel", "confirm", "review", "freeze",
            "unfreeze",
        ] {
            assert!(names.contains(&b), "{b} missing");
        }
        let restart = json
            .iter()
            .find(|c| c["name"] == "restart")
            .cloned()
            .unwrap_or_default();
        let service = &restart["options"][0];
        assert_eq!(service["name"], "service");
        let choices: Vec<&str> = service["choices"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["value"].as_str()).collect())
            .unwrap_or_default();
        for op in config().catalog.for_verb("restart") {
            assert!(
                choices.contains(&op.service.as_str()),
                "{} missing",
                op.service
            );
        }
        assert_eq!(restart["options"][1]["autocomplete"], true);
        for c in &json {
            let d = c["description"].as_str().unwrap_or_default();
            assert!(!d.is_empty() && d.chars().count() <= 100, "{c}");
            // Discord wants required options first.
            let opts = c["options"].as_array().cloned().unwrap_or_default();
            let first_optional = opts
                .iter()
                .position(|o| o["required"] != true)
                .unwrap_or(opts.len());
            assert!(
                opts[first_optional..].iter().all(|o| o["required"] != true),
                "{c}"
            );
            assert!(opts.len() <= MAX_OPTIONS);
        }
        // `/status` without a number is the overview, as `!status`.
        let status = json
            .iter()
            .find(|c| c["name"] == "status")
            .cloned()
            .unwrap_or_default();
        assert_eq!(status["options"][0]["name"], "job");
        assert_ne!(status["options"][0]["required"], true, "{status}");
        assert_eq!(
            to_text("!", &catalog(), "status", &[]),
            Ok("!status".to_string())
        );
    }

    #[test]
    fn the_commands_are_for_every_member_unless_manage_server_is_asked_for() {
        let mut c = config();
        let open = registration(&c);
        assert!(!open.is_empty());
        for cmd in &open {
            // Present and null: clears what an earlier registration set.
            assert_eq!(
                cmd.get("default_member_permissions"),
                Some(&serde_json::Value::Null),
                "{cmd}"
            );
        }
        c.discord.slash_commands_need_manage_server = true;
        for cmd in &registration(&c) {
            assert_eq!(cmd["default_member_permissions"], "32", "{cmd}");
        }
    }

    #[test]
    fn slash_options_become_the_same_text_as_typed() {
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "restart",
                &opts(&[
                    ("service", "ddm"),
                    ("target", "orders-db"),
                    ("mode", "hard")
                ])
            ),
            Ok("!restart ddm orders-db hard".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "restart",
                &opts(&[("service", "ddm"), ("target", "x"), ("account", "acct")])
            ),
            Ok("!restart ddm x account=acct".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "deny",
                &opts(&[("job", "4"), ("reason", "not now\nplease")])
            ),
            Ok("!deny 4 not now please".to_string())
        );
        assert_eq!(
            to_text("!", &catalog(), "jobs", &[]),
            Ok("!jobs".to_string())
        );
        assert_eq!(
            to_text("?", &catalog(), "approve", &opts(&[("job", "9")])),
            Ok("?approve 9".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "restart",
                &opts(&[
                    ("service", "ddm"),
                    ("target", "orders-db"),
                    ("mode", "hard"),
                    ("dry_run", "true"),
                    ("break_glass", "db \"down\"\nnow"),
                ])
            ),
            Ok("!restart ddm orders-db hard --dry-run --break-glass \"db 'down' now\"".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "restart",
                &opts(&[("service", "ddm"), ("target", "x"), ("dry_run", "false")])
            ),
            Ok("!restart ddm x".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "confirm",
                &opts(&[("name", "orders-db"), ("number", "482")])
            ),
            Ok("!confirm 482 orders-db".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "review",
                &opts(&[("note", "looked fine"), ("verdict", "ok"), ("job", "7")])
            ),
            Ok("!review 7 ok looked fine".to_string())
        );
        assert_eq!(
            to_text(
                "!",
                &catalog(),
                "freeze",
                &opts(&[("reason", "release"), ("duration", "2h")])
            ),
            Ok("!freeze 2h release".to_string())
        );
        assert_eq!(
            to_text("!", &catalog(), "unfreeze", &[]),
            Ok("!unfreeze".to_string())
        );
        assert!(to_text("!", &catalog(), "restart", &opts(&[("service", "ddm")])).is_err());
        assert!(to_text("!", &catalog(), "frobnicate", &[]).is_err());
    }

    #[test]
    fn targets_are_suggested_by_service_and_typed_text() {
        let c = config();
        let all = suggest(&c, "target", "", Some("ddm"));
        assert_eq!(all.len(), 2);
        let some = suggest(&c, "target", "ORD", Some("ddm"));
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].1, "orders-db");
        assert!(some[0].0.contains("orders"));
        let other: Vec<&str> = (c.catalog.services().into_iter())
            .filter(|s| *s != "ddm")
            .collect();
        if let Some(s) = other.first() {
            assert!(suggest(&c, "target", "", Some(s)).is_empty());
        }
        assert_eq!(
            suggest(&c, "account", "", None),
            vec![("acct".to_string(), "acct".to_string())]
        );
    }

    #[test]
    fn declared_operations_get_slash_commands_and_autocomplete_like_the_built_ins() {
        let text = format!(
            "{CONFIG}\n{}\n[targets.orders-rds]\nservice = \"rds\"\ninstance_id = \"0123456789abcdef0123456789abcdefin01\"\n\
             [[operations]]\nverb = \"rollout\"\nservice = \"deployment\"\nprovider = \"local\"\n\
             program = \"/usr/local/bin/kubectl\"\nargv = [\"{{name}}\"]\n\
             [[operations.params]]\nname = \"name\"\npattern = \"^[a-z]+$\"\n",
            include_str!("../../../operations/huawei-rds-restart.toml")
        );
        let c = match Config::parse(&text, Path::new("t.toml"), &crate::cloud::builtins()) {
            Ok(c) => c,
            Err(p) => panic!("{p}"),
        };
        let json: Vec<serde_json::Value> = commands(&c)
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect();
        let rollout = json.iter().find(|c| c["name"] == "rollout");
        assert!(rollout.is_some(), "{json:?}");
        let restart = json.iter().find(|c| c["name"] == "restart").cloned();
        let choices = restart.map(|r| r["options"][0]["choices"].to_string());
        assert!(choices.is_some_and(|c| c.contains("\"rds\"")));
        let rds = suggest(&c, "target", "", Some("rds"));
        assert_eq!(rds.len(), 1);
        assert_eq!(rds[0].1, "orders-rds");
        assert!(is_operation(&c.catalog, "rollout"));
    }
}
