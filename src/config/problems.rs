//! What a config's problems are collected in (every part of the config's checks reports
//! through [`Collector`]), and the problem TOML itself reports: a syntax error or a value of
//! the wrong type, at the place the parser stopped.

use super::Problem;

#[derive(Default)]
pub(super) struct Collector(Vec<Problem>);

impl Collector {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    pub(super) fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// Whether a problem was already reported at `path`.
    pub(super) fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|p| p.path == path)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// Paths are shown with 1-based indexes (`rules[1]` is the first `[[rules]]` table), as
/// people count tables in a file; inside, they are 0-based like the parsers'.
pub(super) fn one_based(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(']').unwrap_or(rest.len());
        match rest[..close].parse::<usize>() {
            Ok(i) => out.push_str(&(i + 1).to_string()),
            Err(_) => out.push_str(&rest[..close]),
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// `rules.2.command` (serde's style) as `rules[2].command` (the validator's).
pub(super) fn bracketed(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for segment in path.split('.') {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// A file that is not valid TOML, or a value of the wrong type: one problem at the place
/// the parser stopped, with a hint for the usual mistakes.
pub(super) fn syntax_problem(
    text: &str,
    e: &serde_path_to_error::Error<toml::de::Error>,
) -> Problem {
    let path = e.path().to_string();
    let path = if path == "." {
        String::new()
    } else {
        bracketed(&path)
    };
    let inner = e.inner();
    // toml says "invalid table header" before the line that says what is wrong with it.
    let lines: Vec<&str> = inner
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut message = match lines.as_slice() {
        [first, rest @ ..] if !rest.is_empty() && first.starts_with("invalid table header") => {
            rest.join("; ")
        }
        _ => lines.join("; "),
    };
    let rules_as_table = (message.contains("duplicate key `rules`")
        || (path.starts_with("rules") && message.contains("expected a sequence")))
        && text.lines().any(|l| l.trim() == "[rules]");
    if rules_as_table {
        message.push_str("; each rule is its own [[rules]] table (two brackets), not [rules]");
    }
    if message.contains("untagged enum RawId") {
        message = "must be an ID: a number, or digits in quotes".to_string();
    }
    let mut problem = Problem::new(one_based(&path), message);
    problem.at = inner
        .span()
        .map(|span| super::places::location(text, span.start));
    problem
}
