//! Times as opsgate keeps them (milliseconds since the Unix epoch) and shows them.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock, in milliseconds. Only the driver and the tools around it read it; the
/// engine is handed the time with each event.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `2026-11-23 16:40:05 UTC`
pub fn format_utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{secs}"),
    }
}

/// `1.2s`, `3m05s`
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// `in 14m`, `3m ago`: a time relative to `now`, to the minute (seconds under one).
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    let (secs, future) = if at_ms >= now_ms {
        ((at_ms - now_ms) / 1000, true)
    } else {
        ((now_ms - at_ms) / 1000, false)
    };
    let span = match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}
