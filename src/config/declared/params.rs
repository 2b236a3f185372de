//! A declared operation's parameters: each typed by an anchored regex, a list of values, an
//! integer range or a boolean (a parameter without one is refused), and guarded beyond what
//! its regex says where it is used (a URL path segment, an argv element).

use std::collections::BTreeMap;

use super::raw::{RawModes, RawParam};
use super::types::Kind;
use crate::command::ids::{Guards, IdPattern};
use crate::command::{Modes, Param};
use crate::config::problems::Collector;

/// Longest value a declared parameter takes unless it says (`max_length`, at most 1,024).
const DEFAULT_MAX_LEN: usize = 128;
const MAX_MAX_LEN: i64 = 1024;

/// The parameters of one declaration, split as the grammar wants them.
#[derive(Default)]
pub struct Checked {
    pub target: Vec<Param>,
    pub args: Vec<Param>,
    pub kinds: BTreeMap<String, Kind>,
    pub modes: Option<Modes>,
    pub mode_send: Option<(String, BTreeMap<String, String>)>,
}

impl Checked {
    /// Every name a template may use for a value of the job.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = (self.target.iter().chain(&self.args))
            .map(|p| p.name.clone())
            .collect();
        if let Some(m) = &self.modes {
            out.push(m.param.clone());
        }
        out
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `reserved`: names the account or the cloud fill (`project_id`, `job_id`, ...).
/// `guard(name)`: the guards the parameter's uses ask for.
pub fn check(
    raw: &[RawParam],
    modes: Option<&RawModes>,
    reserved: &[&str],
    guard: &dyn Fn(&str) -> Guards,
    at: &str,
    p: &mut Collector,
) -> Checked {
    let mut out = Checked::default();
    for (i, rp) in raw.iter().enumerate() {
        let path = format!("{at}.params[{i}]");
        let Some(name) = rp.name.clone() else {
            p.add(format!("{path}.name"), "missing (e.g. \"instance_id\")");
            continue;
        };
        if !name_ok(&name) {
            p.add(
                format!("{path}.name"),
                "a parameter name is lowercase letters, digits and _, starting with a letter",
            );
            continue;
        }
        if reserved.contains(&name.as_str()) || out.kinds.contains_key(&name) {
            p.add(
                format!("{path}.name"),
                format!("`{name}` is already used (by another parameter, or filled by opsgate)"),
            );
            continue;
        }
        let Some((pattern, kind)) = pattern(rp, &name, &path, p) else {
            continue;
        };
        let pattern = pattern.guarded(guard(&name));
        let label = rp.label.clone().unwrap_or_else(|| format!("<{name}>"));
        let mut param = Param::new(&name, &label, &pattern);
        param.from_target = rp.from_target;
        out.kinds.insert(name.clone(), kind);
        match rp.role.as_deref().unwrap_or("target") {
            "target" => out.target.push(param),
            "arg" if rp.from_target => p.add(
                format!("{path}.from_target"),
                "only a target parameter comes from a named target",
            ),
            "arg" => out.args.push(param),
            other => p.add(
                format!("{path}.role"),
                format!("unknown role `{other}` (target or arg)"),
            ),
        }
    }
    if out.target.is_empty() && !raw.is_empty() {
        p.add(
            format!("{at}.params"),
            "at least one parameter has role = \"target\" (what the operation acts on)",
        );
    } else if raw.is_empty() {
        p.add(
            format!("{at}.params"),
            "missing: declare the parameters, e.g. [[operations.params]] name = \"instance_id\"",
        );
    }
    if let Some(m) = modes {
        check_modes(m, &mut out, reserved, guard, at, p);
    }
    out
}

/// The parameter's pattern and JSON type, from exactly one of its kinds.
fn pattern(rp: &RawParam, name: &str, path: &str, p: &mut Collector) -> Option<(IdPattern, Kind)> {
    let kinds = [
        rp.pattern.is_some(),
        rp.values.is_some(),
        rp.integer.is_some(),
        rp.boolean,
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => {
            p.add(
                path,
                format!(
                    "parameter `{name}` has no pattern: give it pattern = \"^...$\", values = \
                     [...], integer = {{ min = .., max = .. }} or boolean = true"
                ),
            );
            return None;
        }
        1 => {}
        _ => {
            p.add(
                path,
                format!(
                    "parameter `{name}` has more than one of pattern, values, integer, boolean"
                ),
            );
            return None;
        }
    }
    let max_len = match rp.max_length {
        None => DEFAULT_MAX_LEN,
        Some(n) if (1..=MAX_MAX_LEN).contains(&n) => n as usize,
        Some(_) => {
            p.add(
                format!("{path}.max_length"),
                format!("must be between 1 and {MAX_MAX_LEN}"),
            );
            DEFAULT_MAX_LEN
        }
    };
    let describe = |fallback: String| rp.describe.clone().unwrap_or(fallback);
    let built = if let Some(src) = &rp.pattern {
        IdPattern::declared(src, describe(format!("a value matching `{src}`")), max_len)
            .map(|pat| (pat, Kind::Text))
    } else if let Some(values) = &rp.values {
        if values.is_empty()
            || values
                .iter()
                .any(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()))
        {
            Err("values must be a non-empty list of printable ASCII words".to_string())
        } else {
            let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
            IdPattern::declared(
                &format!("^(?:{})$", alternatives.join("|")),
                describe(format!("one of: {}", values.join(", "))),
                max_len,
            )
            .map(|pat| (pat, Kind::Text))
        }
    } else if let Some(range) = &rp.integer {
        match (range.min, range.max) {
            (Some(min), Some(max)) if min <= max => IdPattern::declared(
                r"^-?[0-9]{1,19}$",
                describe(format!("a whole number from {min} to {max}")),
                20,
            )
            .map(|pat| {
                let guard = Guards {
                    integer: Some((min, max)),
                    ..Guards::default()
                };
                (pat.guarded(guard), Kind::Integer)
            }),
            _ => Err("integer needs min and max, with min <= max".to_string()),
        }
    } else {
        IdPattern::declared("^(?:true|false)$", describe("true or false".into()), 5)
            .map(|pat| (pat, Kind::Boolean))
    };
    match built {
        Ok(b) => Some(b),
        Err(e) => {
            p.add(path, e);
            None
        }
    }
}

fn check_modes(
    m: &RawModes,
    out: &mut Checked,
    reserved: &[&str],
    guard: &dyn Fn(&str) -> Guards,
    at: &str,
    p: &mut Collector,
) {
    let path = format!("{at}.modes");
    let param = m.name.clone().unwrap_or_else(|| "mode".to_string());
    if !name_ok(&param) || reserved.contains(&param.as_str()) || out.kinds.contains_key(&param) {
        p.add(
            format!("{path}.name"),
            format!("`{param}` is not a free parameter name"),
        );
        return;
    }
    let word = |v: &str| {
        !v.is_empty()
            && v.len() <= 32
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if m.values.is_empty() || !m.values.iter().all(|v| word(v)) {
        p.add(
            format!("{path}.values"),
            "modes are a list of lowercase words (letters, digits, - or _), e.g. [\"soft\", \"hard\"]",
        );
        return;
    }
    let default = m.default.clone().unwrap_or_else(|| m.values[0].clone());
    if !m.values.contains(&default) {
        p.add(
            format!("{path}.default"),
            format!("`{default}` is not one of the modes"),
        );
    }
    for (word, sent) in &m.send {
        if !m.values.contains(word) {
            p.add(
                format!("{path}.send.{word}"),
                format!("`{word}` is not one of the modes"),
            );
        }
        if sent.is_empty()
            || !sent.bytes().all(|b| b.is_ascii_graphic())
            || sent.contains(['{', '}'])
        {
            p.add(
                format!("{path}.send.{word}"),
                "a mode is sent as fixed printable ASCII",
            );
        }
        if guard(&param).path_segment
            && !sent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            p.add(
                format!("{path}.send.{word}"),
                "this mode fills a path segment: letters, digits, - _ . ~ only",
            );
        }
    }
    let values: Vec<&str> = m.values.iter().map(String::as_str).collect();
    out.kinds.insert(param.clone(), Kind::Text);
    out.modes = Some(Modes::new(&param, &values, &default));
    out.mode_send = Some((param, m.send.clone()));
}
