//! `[bot] operations_dir`: a directory of `*.toml` files, each holding `[[operations]]`
//! tables. Each file is parsed and checked on its own, and its problems name it, its line
//! and its column, like the config's own.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::raw::RawOperation;
use crate::config::places::Places;
use crate::config::problems::{self, Collector};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFile {
    pub operations: Vec<RawOperation>,
}

/// A file of declarations: where it is, how messages show it, and its text.
pub struct File {
    pub shown: PathBuf,
    pub text: String,
}

/// Files of most this many bytes; a declaration is a few hundred.
const MAX_FILE: u64 = 1 << 20;

/// Every `*.toml` of `dir` (relative to the config's directory), in name order, with its
/// declarations and the problems found while reading it.
pub fn read(
    base: &Path,
    dir: &str,
    p: &mut Collector,
) -> Vec<(File, Vec<RawOperation>, Collector)> {
    let full = base.join(dir);
    let entries = match std::fs::read_dir(&full) {
        Ok(e) => e,
        Err(e) => {
            p.add(
                "bot.operations_dir",
                format!("cannot read the directory {}: {e}", full.display()),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let shown = full.join(path.file_name().unwrap_or_default());
        let text = match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE => Err(format!("{} is larger than 1 MiB", shown.display())),
            _ => std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", shown.display())),
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                p.add("bot.operations_dir", e);
                continue;
            }
        };
        let mut problems = Collector::default();
        let ops = parse(&text, &mut problems);
        out.push((File { shown, text }, ops, problems));
    }
    out
}

fn parse(text: &str, p: &mut Collector) -> Vec<RawOperation> {
    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let mut on_unknown =
        |path: serde_ignored::Path| unknown.push(problems::bracketed(&path.to_string()));
    let de = serde_ignored::Deserializer::new(de, &mut on_unknown);
    let raw: RawFile = match serde_path_to_error::deserialize(de) {
        Ok(raw) => raw,
        Err(e) => {
            p.push(problems::syntax_problem(text, &e));
            return Vec::new();
        }
    };
    crate::config::known_keys::unknown_keys(unknown, p);
    raw.operations
}

/// The file's problems, placed in it and named by it, added to the config's.
pub fn report(file: &File, problems: Collector, p: &mut Collector) {
    let mut list = problems.into_vec();
    if list.is_empty() {
        return;
    }
    Places::of(&file.text).locate(&mut list);
    for mut problem in list {
        problem.file = Some(file.shown.clone());
        p.push(problem);
    }
}
