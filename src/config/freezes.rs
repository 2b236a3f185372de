//! `[[freezes]]`: change freezes from the config, validated into [`Freeze`]s.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::problems::Collector;
use crate::freeze::{parse_time, parse_weekly, Freeze, Window};

const MAX_REASON: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFreeze {
    pub name: Option<String>,
    pub reason: Option<String>,
    /// RFC 3339, e.g. `2026-12-24T00:00:00Z`.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `Fri 16:00 - Mon 08:00` (UTC).
    pub weekly: Option<String>,
    /// Rule names it covers.
    pub rules: Vec<String>,
    /// Tags every one of which the target (or account) must carry.
    pub tags: BTreeMap<String, String>,
}

/// Validates `[[freezes]]` against the rule names that exist.
pub(super) fn freezes(
    raw: Vec<RawFreeze>,
    rule_names: &[&str],
    tags: impl Fn(&BTreeMap<String, String>, &str, &mut Collector) -> BTreeMap<String, String>,
    p: &mut Collector,
) -> Vec<Freeze> {
    let mut out = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("freezes[{i}]");
        let reason = match raw.reason.as_deref().map(crate::command::text::visible) {
            Some(r) if !r.trim().is_empty() && r.chars().count() <= MAX_REASON => r,
            Some(_) => {
                p.add(
                    format!("{path}.reason"),
                    format!("must be 1 to {MAX_REASON} characters"),
                );
                continue;
            }
            None => {
                p.add(
                    format!("{path}.reason"),
                    "missing: say why (it is shown to everyone refused)",
                );
                continue;
            }
        };
        let window = match (&raw.weekly, &raw.start, &raw.end) {
            (Some(w), None, None) => {
                match parse_weekly(w) {
                    Some(w) => w,
                    None => {
                        p.add(
                        format!("{path}.weekly"),
                        format!("`{w}` is not a weekly window such as \"Fri 16:00 - Mon 08:00\" (UTC)"),
                    );
                        continue;
                    }
                }
            }
            (None, Some(s), Some(e)) => {
                let (start, end) = (parse_time(s), parse_time(e));
                for (key, text, value) in [("start", s, start), ("end", e, end)] {
                    if value.is_none() {
                        p.add(
                            format!("{path}.{key}"),
                            format!("`{text}` is not a time such as \"2026-12-24T00:00:00Z\""),
                        );
                    }
                }
                let (Some(start_ms), Some(end_ms)) = (start, end) else {
                    continue;
                };
                if end_ms <= start_ms {
                    p.add(format!("{path}.end"), "must be after start");
                    continue;
                }
                Window::Between { start_ms, end_ms }
            }
            (Some(_), _, _) => {
                p.add(
                    format!("{path}.weekly"),
                    "set weekly, or start and end, not both",
                );
                continue;
            }
            _ => {
                p.add(
                    format!("{path}.start"),
                    "missing: set start and end (RFC 3339), or weekly = \"Fri 16:00 - Mon 08:00\"",
                );
                continue;
            }
        };
        for (j, r) in raw.rules.iter().enumerate() {
            if !rule_names.contains(&r.as_str()) {
                p.add(
                    format!("{path}.rules[{j}]"),
                    format!(
                        "unknown rule `{r}`{}",
                        crate::command::suggest::did_you_mean(r, rule_names.iter().copied())
                    ),
                );
            }
        }
        let tags = tags(&raw.tags, &format!("{path}.tags"), p);
        out.push(Freeze {
            name: raw.name.unwrap_or_else(|| format!("freeze {}", i + 1)),
            reason,
            window,
            rules: raw.rules,
            tags,
        });
    }
    out
}
