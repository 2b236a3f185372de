//! Change freezes: a reason, a window (fixed start and end times, or a weekly window in
//! UTC) and what it covers (rules by name, tags, or everything). During a freeze a covered
//! request is refused unless its rule allows break-glass and the request uses it. Freezes
//! come from the config (`[[freezes]]`) and from chat (`!freeze`, one at a time).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::time::{format_utc, relative};
use crate::domain::Person;

const MINUTES_PER_WEEK: u32 = 7 * 24 * 60;
const MS_PER_MINUTE: u64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// From `start_ms` (inclusive) to `end_ms` (exclusive), Unix milliseconds.
    Between { start_ms: u64, end_ms: u64 },
    /// Minutes since Monday 00:00 UTC; `start > end` wraps over the week's end.
    Weekly { start: u32, end: u32 },
}

impl Window {
    /// When the window that holds `now_ms` ends, or `None` if it does not hold it.
    pub fn ends_after(&self, now_ms: u64) -> Option<u64> {
        match *self {
            Window::Between { start_ms, end_ms } => {
                (start_ms <= now_ms && now_ms < end_ms).then_some(end_ms)
            }
            Window::Weekly { start, end } => {
                let week_ms = u64::from(MINUTES_PER_WEEK) * MS_PER_MINUTE;
                // 1970-01-01 was a Thursday: the first Monday 00:00 came 4 days later.
                let monday = 4 * 24 * 60 * MS_PER_MINUTE;
                let since = now_ms.checked_sub(monday)?;
                let week_start = now_ms - since % week_ms;
                let minute = ((since % week_ms) / MS_PER_MINUTE) as u32;
                let inside = if start < end {
                    start <= minute && minute < end
                } else {
                    minute >= start || minute < end
                };
                if !inside {
                    return None;
                }
                let mut end_ms = week_start + u64::from(end) * MS_PER_MINUTE;
                if end_ms <= now_ms {
                    end_ms += week_ms;
                }
                Some(end_ms)
            }
        }
    }

    /// `every week Fri 16:00 - Mon 08:00 UTC` or `2026-12-24 00:00 - 2026-12-27 00:00 UTC`.
    pub fn describe(&self) -> String {
        match *self {
            Window::Between { start_ms, end_ms } => {
                format!("{} - {}", format_utc(start_ms), format_utc(end_ms))
            }
            Window::Weekly { start, end } => {
                format!("every week {} - {} UTC", week_time(start), week_time(end))
            }
        }
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn week_time(minute: u32) -> String {
    let day = DAYS[(minute / (24 * 60)) as usize % 7];
    let rest = minute % (24 * 60);
    format!("{day} {:02}:{:02}", rest / 60, rest % 60)
}

/// `Fri 16:00` -> minutes since Monday 00:00.
fn parse_week_time(text: &str) -> Option<u32> {
    let (day, clock) = text.trim().split_once(char::is_whitespace)?;
    let day = DAYS.iter().zip(FULL_DAYS).position(|(short, full)| {
        short.eq_ignore_ascii_case(day) || full.eq_ignore_ascii_case(day)
    })?;
    let (h, m) = clock.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(day as u32 * 24 * 60 + h * 60 + m)
}

/// `Fri 16:00 - Mon 08:00`.
pub fn parse_weekly(text: &str) -> Option<Window> {
    let (a, b) = text.split_once('-')?;
    let (start, end) = (parse_week_time(a)?, parse_week_time(b)?);
    (start != end).then_some(Window::Weekly { start, end })
}

/// An RFC 3339 time, e.g. `2026-12-24T00:00:00Z`, in Unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[derive(Clone, Debug)]
pub struct Freeze {
    pub name: String,
    pub reason: String,
    pub window: Window,
    /// Rule names it covers; with `tags` empty too, it covers every request.
    pub rules: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl Freeze {
    /// Whether a request under `rule` on something carrying `tags` is covered.
    pub fn covers(&self, rule: &str, tags: &BTreeMap<&str, &str>) -> bool {
        if self.rules.is_empty() && self.tags.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| r == rule)
            || (!self.tags.is_empty()
                && self
                    .tags
                    .iter()
                    .all(|(k, v)| tags.get(k.as_str()) == Some(&v.as_str())))
    }
}

impl Freeze {
    /// `freeze `release` (every week Fri 16:00 - Mon 08:00 UTC; covers every request):
    /// release weekend · in force until ... (in 2h00m)`, for `!status`.
    pub fn describe_at(&self, now: u64) -> String {
        let state = match self.window.ends_after(now) {
            Some(end) => format!(
                "in force until {} ({})",
                format_utc(end),
                relative(end, now)
            ),
            None => "not in force now".to_string(),
        };
        let covers = if self.rules.is_empty() && self.tags.is_empty() {
            "every request".to_string()
        } else {
            let mut parts: Vec<String> = self.rules.iter().map(|r| format!("rule `{r}`")).collect();
            if !self.tags.is_empty() {
                let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                parts.push(format!("where {}", tags.join(", ")));
            }
            parts.join(", ")
        };
        format!(
            "freeze `{}` ({}; covers {covers}): {} · {state}",
            self.name,
            self.window.describe(),
            self.reason
        )
    }
}

/// The freeze set with `!freeze` (one at a time; a new one replaces it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatFreeze {
    pub reason: String,
    pub by: Person,
    pub set_ms: u64,
    pub ends_ms: u64,
}

impl ChatFreeze {
    /// `!freeze by root (covers every request): ... · in force until ...`, for `!status`.
    pub fn describe_at(&self, now: u64) -> String {
        format!(
            "!freeze by {} (covers every request): {} · in force until {} ({})",
            self.by.name,
            self.reason,
            format_utc(self.ends_ms),
            relative(self.ends_ms, now)
        )
    }
}

/// The freeze a request falls under.
pub struct FreezeHit {
    pub reason: String,
    pub ends_ms: u64,
    /// `freeze `release weekend`` or `!freeze by root`.
    pub source: String,
}

/// The freeze covering a request under `rule` on something carrying `tags` at `now` (the
/// one that ends last), from the config's freezes and the one set in chat.
pub fn hit(
    freezes: &[Freeze],
    chat: Option<&ChatFreeze>,
    rule: &str,
    tags: &BTreeMap<&str, &str>,
    now: u64,
) -> Option<FreezeHit> {
    let mut hits: Vec<FreezeHit> = freezes
        .iter()
        .filter(|f| f.covers(rule, tags))
        .filter_map(|f| {
            Some(FreezeHit {
                reason: f.reason.clone(),
                ends_ms: f.window.ends_after(now)?,
                source: format!("freeze `{}`", f.name),
            })
        })
        .collect();
    if let Some(f) = chat.filter(|f| f.ends_ms > now) {
        hits.push(FreezeHit {
            reason: f.reason.clone(),
            ends_ms: f.ends_ms,
            source: format!("!freeze by {}", f.by.name),
        });
    }
    hits.into_iter().max_by_key(|h| h.ends_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> u64 {
        parse_time(text).unwrap()
    }

    #[test]
    fn a_weekly_window_over_the_weekend_holds_friday_evening_to_monday_morning() {
        let w = parse_weekly("Fri 16:00 - Mon 08:00").unwrap();
        // 2026-11-27 is a Friday.
        assert_eq!(w.ends_after(at("2026-11-27T15:59:00Z")), None);
        let monday = at("2026-11-30T08:00:00Z");
        assert_eq!(w.ends_after(at("2026-11-27T16:00:00Z")), Some(monday));
        assert_eq!(w.ends_after(at("2026-11-29T12:00:00Z")), Some(monday));
        assert_eq!(w.ends_after(at("2026-11-30T07:59:59Z")), Some(monday));
        assert_eq!(w.ends_after(monday), None);
        assert_eq!(w.describe(), "every week Fri 16:00 - Mon 08:00 UTC");
    }

    #[test]
    fn a_weekly_window_inside_one_week_and_bad_spellings() {
        let w = parse_weekly("tue 09:30-Tue 10:00").unwrap();
        assert_eq!(
            w.ends_after(at("2026-12-01T09:45:00Z")),
            Some(at("2026-12-01T10:00:00Z"))
        );
        assert_eq!(w.ends_after(at("2026-12-01T10:00:00Z")), None);
        for bad in [
            "Fri 16:00",
            "Fri 25:00 - Mon 08:00",
            "Xyz 10:00 - Mon 08:00",
            "Frü 10:00 - Mon 08:00",
            "Mon 08:00 - Mon 08:00",
            "",
        ] {
            assert!(parse_weekly(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_fixed_window_holds_from_start_to_end() {
        let w = Window::Between {
            start_ms: 1_000,
            end_ms: 2_000,
        };
        assert_eq!(w.ends_after(999), None);
        assert_eq!(w.ends_after(1_000), Some(2_000));
        assert_eq!(w.ends_after(2_000), None);
    }
}
