//! The layers of ARCHITECTURE.md, checked on the source: which top-level module may use
//! which, read from the `crate::` paths of every file under `src/` (test modules after a
//! `#[cfg(test)]` line excluded), and no cycle between top-level modules at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Who may use whom, from the bottom up. A module missing from this table fails the test:
/// a new top-level module is placed in a layer on purpose.
const ALLOWED: &[(&str, &[&str])] = &[
    // The core's words, and the leaves beside them.
    ("domain", &[]),
    ("metrics", &[]),
    ("secret", &[]),
    // The rules: pure functions of the words.
    ("job", &["domain"]),
    ("freeze", &["domain"]),
    ("command", &["domain", "job"]),
    ("approval", &["domain", "job"]),
    ("policy", &["domain", "command"]),
    // TOML into the words and rules.
    (
        "config",
        &["domain", "job", "command", "policy", "freeze", "secret"],
    ),
    // The seams between the engine and the world.
    ("ports", &["domain", "job", "freeze"]),
    // Decisions, without IO.
    (
        "engine",
        &[
            "domain", "job", "freeze", "command", "approval", "policy", "config", "ports",
            "metrics",
        ],
    ),
    // What the seams stand for: never each other, never the engine or the driver.
    ("store", &["domain", "job", "freeze", "ports"]),
    (
        "cloud",
        &["domain", "job", "command", "config", "ports", "secret"],
    ),
    (
        "chat",
        &["domain", "job", "command", "config", "ports", "metrics"],
    ),
    // Runs the engine against the seams.
    (
        "driver",
        &["domain", "job", "config", "ports", "engine", "metrics"],
    ),
    // The local cloud for the demo and the tests: the clouds' own signers and patterns.
    ("emulator", &["cloud", "command"]),
    // Wiring.
    (
        "app",
        &[
            "domain", "job", "freeze", "command", "approval", "policy", "config", "ports",
            "engine", "driver", "store", "cloud", "chat", "emulator", "metrics", "secret",
        ],
    ),
];

/// Top-level module -> the top-level modules its code names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let used = uses.entry(module.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            used.extend(named_modules(line).filter(|m| *m != module));
        }
    }
    uses
}

/// The top-level modules a line names: `crate::x`, and `x` inside `use crate::{x, y::z}`.
fn named_modules(line: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("");
                if !name.is_empty() {
                    out.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out.into_iter()
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, used) in graph() {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "`{module}` has no place in the layers of this test"
            ));
            continue;
        };
        for u in used.iter().filter(|u| allowed.contains_key(u.as_str())) {
            if !may.contains(&u.as_str()) {
                wrong.push(format!("`{module}` uses `{u}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn no_two_top_level_modules_use_each_other_even_indirectly() {
    let graph = graph();
    for start in graph.keys() {
        // Everything reachable from `start`; reaching `start` again is a cycle.
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert!(m != start, "`{start}` reaches itself through its imports");
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
}
