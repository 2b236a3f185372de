//! Operations declared in the config: `[[operations]]` tables, and files of them in
//! `[bot] operations_dir`. Each is checked into typed data (a [`Declaration`], which the
//! cloud layer builds an operation from) and a row of the catalog, so the parser, help,
//! rules, locks and the engine treat it as they treat a built-in. Nothing here knows the
//! clouds: what only they know comes in [`Builtins`](super::Builtins).

mod check;
mod command;
mod files;
mod http;
mod params;
pub mod raw;
mod template;
mod types;

use std::path::Path;
use std::sync::Arc;

pub use check::{account_values, AccountAuth};
pub use types::{
    Accepted, Action, AuthKind, Body, CommandRun, Declaration, Errors, Fill, HttpCall, Kind, Poll,
    Reconcile, Refusal, RequestTemplate,
};

use super::problems::Collector;
use super::Builtins;
use crate::command::{Catalog, OperationDef};

/// What the declarations of a config add.
#[derive(Default)]
pub(in crate::config) struct Loaded {
    pub defs: Vec<Arc<OperationDef>>,
    pub list: Vec<Arc<Declaration>>,
}

/// Checks the config's own `[[operations]]` (`inline`), then every `*.toml` of `dir` (by
/// name), each against the built-ins and the ones before it.
pub(in crate::config) fn load(
    inline: &[raw::RawOperation],
    dir: Option<&str>,
    source: &Path,
    base: &Path,
    builtins: &Builtins,
    accounts: &[AccountAuth],
    p: &mut Collector,
) -> Loaded {
    let mut loaded = Loaded::default();
    let mut catalog = builtins.catalog.clone();
    for (i, raw) in inline.iter().enumerate() {
        let at = format!("operations[{i}]");
        add(
            raw,
            source,
            base,
            &mut catalog,
            (builtins, accounts),
            &at,
            &mut loaded,
            p,
        );
    }
    if let Some(dir) = dir {
        for (file, ops, mut problems) in files::read(base, dir, p) {
            for (i, raw) in ops.iter().enumerate() {
                let at = format!("operations[{i}]");
                add(
                    raw,
                    &file.shown,
                    base,
                    &mut catalog,
                    (builtins, accounts),
                    &at,
                    &mut loaded,
                    &mut problems,
                );
            }
            files::report(&file, problems, p);
        }
    }
    loaded
}

#[allow(clippy::too_many_arguments)]
fn add(
    raw: &raw::RawOperation,
    file: &Path,
    base: &Path,
    catalog: &mut Catalog,
    (builtins, accounts): (&Builtins, &[AccountAuth]),
    at: &str,
    loaded: &mut Loaded,
    p: &mut Collector,
) {
    let known = check::Known {
        catalog,
        endpoint_keys: builtins.endpoint_keys,
        accounts,
    };
    if let Some(c) = check::check(raw, file, base, &known, at, p) {
        let def = Arc::new(c.def);
        *catalog = catalog.with([def.clone()]);
        loaded.defs.push(def);
        loaded.list.push(c.declaration);
    }
}
