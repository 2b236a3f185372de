//! Where each key of the config file is: key paths (`rules[2].approver_roles`) to a line and
//! column, so that every problem can point at the line to fix and show it.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use super::{Location, Problem};

/// Byte ranges of every key, table header and array element, by key path.
pub struct Places<'a> {
    text: &'a str,
    spans: HashMap<String, Range<usize>>,
}

impl<'a> Places<'a> {
    /// Indexes `text`; a file that does not parse has no places (its syntax error has one).
    pub fn of(text: &'a str) -> Places<'a> {
        let mut spans = HashMap::new();
        if let Ok(doc) = ImDocument::parse(text) {
            table(doc.as_table(), "", &mut spans);
        }
        Places { text, spans }
    }

    /// The location of `path`, or of its nearest ancestor that is in the file (a missing key
    /// points at its table).
    pub fn find(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(span) = self.spans.get(path) {
                return Some(self.at(span.start));
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    /// The location of byte offset `at`.
    pub fn at(&self, at: usize) -> Location {
        location(self.text, at)
    }

    /// Gives every problem its place in the file.
    pub fn locate(&self, problems: &mut [Problem]) {
        // A problem of another file (a file of declared operations) is placed by that file.
        for p in problems
            .iter_mut()
            .filter(|p| p.at.is_none() && p.file.is_none())
        {
            p.at = self.find(&p.path);
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`, and that line, with a value
/// that looks secret redacted.
pub fn location(text: &str, at: usize) -> Location {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    Location {
        line: text[..at].matches('\n').count() + 1,
        column: text[start..at].chars().count() + 1,
        text: redact(text[start..end].trim_end()),
    }
}

/// A line that sets a key named like a secret (`password = "..."`, `url = "..."` under
/// `[store]`: mistakes the config rejects) or whose value is an address with credentials in
/// it (`postgresql://user:password@host/db`) is shown without its value.
fn redact(line: &str) -> String {
    let Some((key, value)) = line.split_once('=') else {
        return line.to_string();
    };
    let name = key.trim().to_ascii_lowercase();
    let named = ["_env", "_file"].iter().any(|s| name.ends_with(s));
    let secret = [
        "password",
        "secret",
        "token",
        "key",
        "url",
        "dsn",
        "connection",
    ]
    .iter()
    .any(|w| name.contains(w));
    let credentials = value.split_once("://").is_some_and(|(_, rest)| {
        rest.split(['/', '"', '\'', ' '])
            .next()
            .is_some_and(|authority| authority.contains('@'))
    });
    if (secret && !named) || credentials {
        format!("{}= <redacted>", key)
    } else {
        line.to_string()
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn table(t: &Table, path: &str, spans: &mut HashMap<String, Range<usize>>) {
    for (name, item) in t.iter() {
        let here = join(path, name);
        let key_span = t.key(name).and_then(|k| k.span());
        if let Some(span) = key_span.clone().or_else(|| item.span()) {
            spans.insert(here.clone(), span);
        }
        match item {
            Item::Table(sub) => {
                if let Some(span) = sub.span() {
                    spans.insert(here.clone(), span);
                }
                table(sub, &here, spans);
            }
            Item::ArrayOfTables(array) => {
                for (i, sub) in array.iter().enumerate() {
                    let at = format!("{here}[{i}]");
                    if let Some(span) = sub.span() {
                        spans.insert(at.clone(), span);
                    }
                    table(sub, &at, spans);
                }
            }
            Item::Value(v) => value(v, &here, spans),
            Item::None => {}
        }
    }
}

fn value(v: &Value, path: &str, spans: &mut HashMap<String, Range<usize>>) {
    match v {
        Value::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if let Some(span) = element.span() {
                    spans.insert(at.clone(), span);
                }
                value(element, &at, spans);
            }
        }
        Value::InlineTable(t) => {
            for (name, element) in t.iter() {
                let at = join(path, name);
                if let Some(span) = t
                    .key(name)
                    .and_then(|k| k.span())
                    .or_else(|| element.span())
                {
                    spans.insert(at.clone(), span);
                }
                value(element, &at, spans);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[bot]\nprefix = \"!\"\n\n[[rules]]\ncommand = \"x\"\n\n[[rules]]\n  request_roles = [\"a\", \"b\"]\n";

    #[test]
    fn keys_tables_and_elements_have_their_line_and_column() {
        let places = Places::of(TEXT);
        let at = places.find("bot.prefix").unwrap();
        assert_eq!(
            (at.line, at.column, at.text.as_str()),
            (2, 1, "prefix = \"!\"")
        );
        let at = places.find("rules[1].request_roles[1]").unwrap();
        assert_eq!((at.line, at.column), (8, 25));
        // A missing key points at its table's header.
        let at = places.find("rules[1].approver_roles").unwrap();
        assert_eq!((at.line, at.text.as_str()), (7, "[[rules]]"));
        assert!(places.find("nowhere").is_none());
    }

    #[test]
    fn secret_looking_values_are_not_shown() {
        assert_eq!(redact("password = \"hunter2\""), "password = <redacted>");
        assert_eq!(redact("password_env = \"X\""), "password_env = \"X\"");
        assert_eq!(
            redact("url = \"postgresql://u:pw@h/d\""),
            "url = <redacted>"
        );
        assert_eq!(redact("url_env = \"DB\""), "url_env = \"DB\"");
        assert_eq!(
            redact("api_base = \"http://u:pw@127.0.0.1:9/\""),
            "api_base = <redacted>"
        );
        assert_eq!(
            redact("api_base = \"http://127.0.0.1:9/a@b\""),
            "api_base = \"http://127.0.0.1:9/a@b\""
        );
    }
}
