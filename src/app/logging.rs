//! Logs through tracing to stderr (or a file): human-readable by default, JSON for log
//! pipelines. In JSON every line carries its spans, so `job{id}` lets one job's whole story
//! be filtered.
//!
//! A few lines are printed whatever `RUST_LOG` says, because tools and people wait for them
//! (where the HTTP endpoint listens, why the process stops). [`line`] prints those in the
//! same format as the logs, so that with JSON logs every line is JSON.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The default filter when `RUST_LOG` is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// opsgate's own INFO and up, warnings from libraries.
    Normal,
    /// Errors only: the demo, whose terminal is the chat.
    Quiet,
}

struct Sink {
    format: LogFormat,
    file: Option<Mutex<File>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets up logging once; a second call (tests, a mode that initialises twice) keeps the first.
/// `file`: append logs there instead of stderr.
pub fn init(format: LogFormat, verbosity: Verbosity, file: Option<&Path>) -> Result<(), String> {
    let file = match file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let default = match verbosity {
        Verbosity::Normal => "warn,opsgate=info",
        Verbosity::Quiet => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let to_file = file.is_some();
    let writer_file = match &file {
        Some(f) => Some(f.try_clone().map_err(|e| e.to_string())?),
        None => None,
    };
    if SINK
        .set(Sink {
            format,
            file: file.map(Mutex::new),
        })
        .is_err()
    {
        return Ok(());
    }
    let writer = match writer_file {
        Some(f) => BoxMakeWriter::new(Mutex::new(f)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(!to_file && std::io::stderr().is_terminal())
            .try_init(),
    };
    Ok(())
}

/// Severity of a [`line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Prints one line whatever the filter: `opsgate: TEXT` in human format, a JSON object
/// shaped like tracing's (`timestamp`, `level`, `fields.message`, `target`) in JSON. A
/// message of several lines becomes several JSON objects.
pub fn line(level: Level, text: &str) {
    write(level, text, true)
}

/// Like [`line`], for text whose lines name their own place (the config problems, each
/// starting with the file's name): no `opsgate:` prefix in human format.
pub fn report(level: Level, text: &str) {
    write(level, text, false)
}

fn write(level: Level, text: &str, prefix: bool) {
    let (format, file) = match SINK.get() {
        Some(sink) => (sink.format, sink.file.as_ref()),
        None => (LogFormat::Human, None),
    };
    let mut out = String::new();
    match format {
        LogFormat::Human => {
            if prefix {
                out.push_str("opsgate: ");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        LogFormat::Json => {
            let timestamp = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let level = match level {
                Level::Info => "INFO",
                Level::Error => "ERROR",
            };
            // An indented line continues the one before (a config problem's snippet): one
            // JSON object per message, not per line of it.
            let mut messages: Vec<String> = Vec::new();
            for l in text.lines().filter(|l| !l.trim().is_empty()) {
                match messages.last_mut() {
                    Some(last) if l.starts_with(' ') => {
                        last.push('\n');
                        last.push_str(l);
                    }
                    _ => messages.push(l.to_string()),
                }
            }
            for l in &messages {
                let value = serde_json::json!({
                    "timestamp": timestamp,
                    "level": level,
                    "fields": { "message": l },
                    "target": "opsgate",
                });
                out.push_str(&value.to_string());
                out.push('\n');
            }
        }
    }
    match file {
        Some(f) => {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(out.as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(out.as_bytes());
        }
    }
}
