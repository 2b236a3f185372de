//! Chat text -> [`Command`]. Every rejection carries the usage line of what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::grammar::{builtin_by_verb, Builtin, OperationDef, BUILTINS};
use super::{ids, Catalog, Target};
use crate::domain::JobId;
use crate::job::{JobFilter, Verdict};

/// Longest message the parser looks at; anything longer is refused outright.
pub const MAX_INPUT: usize = 1000;
const MAX_REASON: usize = 300;
/// Longest `!freeze`.
const MAX_FREEZE: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Operation(OperationRequest),
    Approve(JobId),
    Deny(JobId, Option<String>),
    Cancel(JobId),
    Status(JobId),
    /// `!status` without a job: freezes, open break-glass reviews, counts.
    Overview,
    Jobs(JobFilter),
    Help(Option<String>),
    WhoAmI,
    /// `!confirm <number> <typed>`: the requester confirms a request that asks for it.
    Confirm(u64, String),
    Review(JobId, Verdict, Option<String>),
    Freeze(std::time::Duration, String),
    Unfreeze,
}

/// A parsed, validated request for a cloud operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRequest {
    pub op: Arc<OperationDef>,
    /// The named target or the raw ID as typed.
    pub target: String,
    /// Account from the named target or from `account=NAME`; `None` means the default.
    pub account: Option<String>,
    pub mode: Option<String>,
    /// Target params, mode and further args, keyed by parameter name.
    pub params: BTreeMap<String, String>,
    /// `--break-glass "reason"`: skip the approvals where the rule allows it.
    pub break_glass: Option<String>,
    /// `--dry-run`: say what would happen; store and send nothing.
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// What was expected; every rejection has one.
    pub usage: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Usage: {}", self.message, self.usage)
    }
}

fn reject(message: impl Into<String>, usage: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        usage: usage.into(),
    }
}

/// Shows user input in a reply safely: no backticks to break out of code spans, bounded length.
pub fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control() && !super::text::is_invisible(*c) && *c != '`')
        .take(40)
        .collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    format!("`{out}`")
}

/// ` Did you mean `restart`?` when a known word is one typo away, else nothing.
fn hint<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match super::suggest::nearest(word, known) {
        Some(w) => format!(" Did you mean `{w}`?"),
        None => String::new(),
    }
}

fn general_usage(prefix: &str) -> String {
    format!("{prefix}help lists the commands")
}

/// Parses one chat message. `Ok(None)` means the message is not addressed to the bot.
pub fn parse(
    text: &str,
    prefix: &str,
    targets: &BTreeMap<String, Target>,
    catalog: &Catalog,
) -> Result<Option<Command>, ParseError> {
    let Some(body) = text.trim_start().strip_prefix(prefix) else {
        return Ok(None);
    };
    // "!" alone, or "! something", is ordinary chat, not a command.
    if body.is_empty() || body.starts_with(char::is_whitespace) {
        return Ok(None);
    }
    if text.len() > MAX_INPUT {
        return Err(reject(
            format!(
                "That message is too long ({} bytes; at most {MAX_INPUT}).",
                text.len()
            ),
            general_usage(prefix),
        ));
    }
    if body.chars().any(|c| c.is_control() && c != '\t') {
        return Err(reject(
            "Control characters are not allowed in commands.",
            general_usage(prefix),
        ));
    }
    let mut words = body.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();

    if let Some(def) = builtin_by_verb(verb) {
        return parse_builtin(def.builtin, def.usage, &args).map(Some);
    }
    if catalog.is_verb(verb) {
        return parse_operation(verb, &args, targets, catalog).map(Some);
    }
    let verbs = BUILTINS
        .iter()
        .map(|b| b.verb)
        .chain(catalog.operations().iter().map(|op| op.verb.as_str()));
    Err(reject(
        format!("Unknown command {}.{}", quote(verb), hint(verb, verbs)),
        general_usage(prefix),
    ))
}

fn job_id(arg: Option<&&str>, usage: &str) -> Result<JobId, ParseError> {
    match arg {
        Some(a) if ids::JOB_ID.matches(a) => a
            .trim_start_matches('#')
            .parse()
            .map_err(|_| reject(format!("{} is not a job number.", quote(a)), usage)),
        Some(a) => Err(reject(
            format!(
                "{} is not a job number; expected {}.",
                quote(a),
                ids::JOB_ID.describe
            ),
            usage,
        )),
        None => Err(reject("Which job? Give its number.", usage)),
    }
}

fn no_more(args: &[&str], from: usize, usage: &str) -> Result<(), ParseError> {
    match args.get(from) {
        Some(extra) => Err(reject(format!("Unexpected {}.", quote(extra)), usage)),
        None => Ok(()),
    }
}

/// Free text after a command (a deny reason, a review note, a freeze reason): shown on the
/// card and in the audit log, so without bidi or invisible characters, bounded, and without
/// the quotes people type around it. `None` when empty.
pub fn reason_text(args: &[&str], usage: &str) -> Result<Option<String>, ParseError> {
    let joined = args.join(" ");
    let quotes: &[char] = &['"', '\'', '“', '”', '‘', '’'];
    let reason = super::text::visible(joined.trim().trim_matches(quotes).trim());
    if reason.chars().count() > MAX_REASON {
        return Err(reject(
            format!("The reason is too long (at most {MAX_REASON} characters)."),
            usage,
        ));
    }
    Ok((!reason.is_empty()).then_some(reason))
}

fn parse_builtin(builtin: Builtin, usage: &str, args: &[&str]) -> Result<Command, ParseError> {
    Ok(match builtin {
        Builtin::Approve => {
            let id = job_id(args.first(), usage)?;
            no_more(args, 1, usage)?;
            Command::Approve(id)
        }
        Builtin::Deny => {
            let id = job_id(args.first(), usage)?;
            Command::Deny(id, reason_text(&args[1.min(args.len())..], usage)?)
        }
        Builtin::Cancel => {
            let id = job_id(args.first(), usage)?;
            no_more(args, 1, usage)?;
            Command::Cancel(id)
        }
        Builtin::Status if args.is_empty() => Command::Overview,
        Builtin::Status => {
            let id = job_id(args.first(), usage)?;
            no_more(args, 1, usage)?;
            Command::Status(id)
        }
        Builtin::Confirm => {
            let id = match args.first() {
                Some(a) => a
                    .trim_start_matches('#')
                    .parse::<u64>()
                    .map_err(|_| reject(format!("{} is not a number.", quote(a)), usage))?,
                None => return Err(reject("Which request? Give its number.", usage)),
            };
            let Some(typed) = args.get(1) else {
                return Err(reject("Type the target's name after the number.", usage));
            };
            no_more(args, 2, usage)?;
            Command::Confirm(id, super::text::visible(typed))
        }
        Builtin::Review => {
            let id = job_id(args.first(), usage)?;
            let verdict = match args.get(1).map(|v| v.to_ascii_lowercase()).as_deref() {
                Some("ok") => Verdict::Ok,
                Some("concern") => Verdict::Concern,
                Some(other) => {
                    return Err(reject(
                        format!("{} is not ok or concern.", quote(other)),
                        usage,
                    ))
                }
                None => return Err(reject("ok or concern?", usage)),
            };
            let note = reason_text(&args[2.min(args.len())..], usage)?;
            if verdict == Verdict::Concern && note.is_none() {
                return Err(reject("Say what the concern is.", usage));
            }
            Command::Review(id, verdict, note)
        }
        Builtin::Freeze => {
            let Some(d) = args.first() else {
                return Err(reject("For how long? e.g. 2h", usage));
            };
            let duration = match humantime::parse_duration(d) {
                Ok(d) if !d.is_zero() && d <= MAX_FREEZE => d,
                Ok(_) => return Err(reject("A freeze lasts between 1s and 14 days.", usage)),
                Err(_) => {
                    return Err(reject(
                        format!("{} is not a duration such as 30m or 2h.", quote(d)),
                        usage,
                    ))
                }
            };
            let Some(reason) = reason_text(&args[1..], usage)? else {
                return Err(reject(
                    "Say why: the reason is shown to everyone refused.",
                    usage,
                ));
            };
            Command::Freeze(duration, reason)
        }
        Builtin::Unfreeze => {
            no_more(args, 0, usage)?;
            Command::Unfreeze
        }
        Builtin::Jobs => {
            let filter = match args.first() {
                None => JobFilter::Active,
                Some(a) => match JobFilter::parse(a) {
                    Some(f) if f != JobFilter::Active => f,
                    _ => return Err(reject(format!("Unknown filter {}.", quote(a)), usage)),
                },
            };
            no_more(args, 1, usage)?;
            Command::Jobs(filter)
        }
        Builtin::Help => {
            let topic = args.join(" ").to_ascii_lowercase();
            if topic.len() > 40 {
                return Err(reject("That help topic is too long.", usage));
            }
            Command::Help((!topic.is_empty()).then_some(topic))
        }
        Builtin::WhoAmI => {
            no_more(args, 0, usage)?;
            Command::WhoAmI
        }
    })
}

fn parse_operation(
    verb: &str,
    args: &[&str],
    targets: &BTreeMap<String, Target>,
    catalog: &Catalog,
) -> Result<Command, ParseError> {
    let op = operation(verb, args.first().copied(), catalog)?;
    let usage = op.usage.as_str();
    let flags = flags(&args[1..], usage)?;
    let (account, positional) = account_option(&flags.words, usage)?;
    let mut rest = positional.into_iter().peekable();
    let Resolved {
        target,
        account,
        mut params,
    } = target(&op, &mut rest, targets, account, usage)?;
    let mode = mode(&op, &mut rest, &mut params, usage)?;
    for param in &op.args {
        let Some(value) = rest.next() else {
            return Err(reject(format!("Missing {}.", param.label), usage));
        };
        if !param.pattern.matches(value) {
            return Err(reject(
                format!(
                    "{} is not valid for {}: expected {}.",
                    quote(value),
                    param.label,
                    param.pattern.describe
                ),
                usage,
            ));
        }
        params.insert(param.name.to_string(), value.to_string());
    }
    if let Some(extra) = rest.next() {
        return Err(reject(format!("Unexpected {}.", quote(extra)), usage));
    }
    if let Some(check) = op.check {
        check(&params).map_err(|msg| reject(msg, usage))?;
    }
    Ok(Command::Operation(OperationRequest {
        op,
        target,
        account,
        mode,
        params,
        break_glass: flags.break_glass,
        dry_run: flags.dry_run,
    }))
}

/// The operation a verb and service name.
fn operation(
    verb: &str,
    service: Option<&str>,
    catalog: &Catalog,
) -> Result<Arc<OperationDef>, ParseError> {
    let Some(service) = service else {
        return Err(reject("Which service?", catalog.usages_for_verb(verb)));
    };
    match catalog.find(verb, service) {
        Some(op) => Ok(op.clone()),
        None => Err(reject(
            format!(
                "Unknown service {} for {}.{}",
                quote(service),
                verb.to_ascii_lowercase(),
                hint(
                    service,
                    catalog.for_verb(verb).map(|op| op.service.as_str())
                )
            ),
            catalog.usages_for_verb(verb),
        )),
    }
}

/// A request's flags, and the words left.
struct Flags<'a> {
    dry_run: bool,
    break_glass: Option<String>,
    words: Vec<&'a str>,
}

/// `--dry-run` may stand anywhere; `--break-glass` takes the rest of the line as its reason.
fn flags<'a>(args: &[&'a str], usage: &str) -> Result<Flags<'a>, ParseError> {
    let mut flags = Flags {
        dry_run: false,
        break_glass: None,
        words: Vec::with_capacity(args.len()),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.eq_ignore_ascii_case("--dry-run") {
            flags.dry_run = true;
        } else if arg.eq_ignore_ascii_case("--break-glass") {
            let reason: Vec<&str> = (args.by_ref())
                .filter(|a| {
                    let flag = a.eq_ignore_ascii_case("--dry-run");
                    flags.dry_run |= flag;
                    !flag
                })
                .copied()
                .collect();
            match reason_text(&reason, usage)? {
                Some(r) => flags.break_glass = Some(r),
                None => {
                    return Err(reject(
                        "--break-glass needs a reason: --break-glass \"the database is down\"",
                        usage,
                    ))
                }
            }
        } else if arg.starts_with("--") {
            return Err(reject(
                format!(
                    "Unknown option {} (--dry-run, --break-glass \"reason\", account=NAME).",
                    quote(arg)
                ),
                usage,
            ));
        } else {
            flags.words.push(arg);
        }
    }
    Ok(flags)
}

/// `account=NAME` may stand anywhere after the service; everything else is positional.
fn account_option<'a>(
    words: &[&'a str],
    usage: &str,
) -> Result<(Option<String>, Vec<&'a str>), ParseError> {
    let mut account = None;
    let mut positional = Vec::with_capacity(words.len());
    for arg in words {
        match arg.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("account") => {
                if !ids::NAME.matches(value) {
                    return Err(reject(
                        format!("{} is not an account name.", quote(value)),
                        usage,
                    ));
                }
                if account.replace(value.to_string()).is_some() {
                    return Err(reject("Give account= only once.", usage));
                }
            }
            Some((key, _)) => {
                return Err(reject(
                    format!("Unknown option {} (only account=NAME).", quote(key)),
                    usage,
                ))
            }
            None => positional.push(*arg),
        }
    }
    Ok((account, positional))
}

type Words<'a> = std::iter::Peekable<std::vec::IntoIter<&'a str>>;

/// What a request acts on.
struct Resolved {
    /// As the request names it: a named target, or the raw IDs.
    target: String,
    account: Option<String>,
    /// The target's parameters.
    params: BTreeMap<String, String>,
}

/// What the request acts on: a named target (with its account and parameters), or the raw
/// IDs of the operation's target parameters.
fn target(
    op: &OperationDef,
    rest: &mut Words<'_>,
    targets: &BTreeMap<String, Target>,
    account: Option<String>,
    usage: &str,
) -> Result<Resolved, ParseError> {
    let Some(first) = rest.peek().copied() else {
        return Err(reject("Which target?", usage));
    };
    if let Some(named) = targets.get(first) {
        if named.service != op.service {
            return Err(reject(
                format!(
                    "{} is a {} target, not {}.",
                    quote(first),
                    named.service,
                    op.service
                ),
                usage,
            ));
        }
        if account.is_some() {
            return Err(reject(
                format!(
                    "{} already names its account; account= goes with raw IDs only.",
                    quote(first)
                ),
                usage,
            ));
        }
        rest.next();
        return Ok(Resolved {
            target: first.to_string(),
            account: Some(named.account.clone()),
            params: named.params.clone(),
        });
    }
    if op.target.iter().any(|p| p.from_target) {
        let named: Vec<&str> = (targets.values())
            .filter(|t| t.service == op.service)
            .map(|t| t.name.as_str())
            .collect();
        return Err(reject(
            format!(
                "{} is not a named {} target, and {} takes named targets only: {}.{}",
                quote(first),
                op.service,
                op.key(),
                if named.is_empty() {
                    "none is configured".to_string()
                } else {
                    named.join(", ")
                },
                hint(first, named.iter().copied())
            ),
            usage,
        ));
    }
    let mut params = BTreeMap::new();
    let mut raw = Vec::with_capacity(op.target.len());
    for param in &op.target {
        let Some(value) = rest.next() else {
            return Err(reject(format!("Missing {}.", param.label), usage));
        };
        if !param.pattern.matches(value) {
            let why = not_a_target(op, param, value, targets);
            return Err(reject(why, usage));
        }
        raw.push(value);
        params.insert(param.name.to_string(), value.to_string());
    }
    Ok(Resolved {
        target: raw.join(" "),
        account,
        params,
    })
}

/// Why `value` is neither a named target nor a valid ID, with the named targets of the
/// service when one ID stands for the target.
fn not_a_target(
    op: &OperationDef,
    param: &super::Param,
    value: &str,
    targets: &BTreeMap<String, Target>,
) -> String {
    let named: Vec<&str> = (targets.values())
        .filter(|t| t.service == op.service)
        .map(|t| t.name.as_str())
        .collect();
    let hint = if named.is_empty() || op.target.len() > 1 {
        String::new()
    } else {
        format!(
            " Named {} targets: {}.{}",
            op.service,
            named.join(", "),
            hint(value, named.iter().copied())
        )
    };
    format!(
        "{} is not a known target or valid ID for {}: expected {}.{hint}",
        quote(value),
        param.label,
        param.pattern.describe
    )
}

/// The mode, when the operation has modes: the one named, or the default.
fn mode(
    op: &OperationDef,
    rest: &mut Words<'_>,
    params: &mut BTreeMap<String, String>,
    usage: &str,
) -> Result<Option<String>, ParseError> {
    let Some(modes) = &op.modes else {
        return Ok(None);
    };
    let chosen = match rest.peek() {
        Some(word) if modes.values.iter().any(|m| m.eq_ignore_ascii_case(word)) => {
            let m = word.to_ascii_lowercase();
            rest.next();
            m
        }
        Some(word) if op.args.is_empty() => {
            return Err(reject(
                format!(
                    "Unknown mode {} (one of: {}).",
                    quote(word),
                    modes.values.join(", ")
                ),
                usage,
            ))
        }
        _ => modes.default.clone(),
    };
    params.insert(modes.param.clone(), chosen.clone());
    Ok(Some(chosen))
}

/// The usage line of a command named by its verb (and service), for help replies.
pub fn usage_of(topic: &str, catalog: &Catalog) -> Option<String> {
    let mut words = topic.split_whitespace();
    let verb = words.next()?.trim_start_matches('!');
    if let Some(b) = builtin_by_verb(verb) {
        return Some(b.usage.to_string());
    }
    match words.next() {
        Some(service) => catalog.find(verb, service).map(|op| op.usage.clone()),
        None => catalog.is_verb(verb).then(|| catalog.usages_for_verb(verb)),
    }
}
