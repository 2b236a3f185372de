//! For every built-in operation (and the demo's declared one), `--dry-run` describes
//! exactly the request the operation then sends: the same method, URL (path and query as on
//! the wire) and body, as the cloud emulator received them.

use std::net::SocketAddr;

use opsgate::cloud::catalog::OPERATIONS;
use opsgate::cloud::Registry;
use opsgate::domain::JobSpec;
use opsgate::emulator::{self, EmulatorOptions, Received};
use opsgate::ports::cloud::{Described, Operations, SubmitOutcome};

/// Values for the arguments that come after the target on the command line.
fn sample_arg(name: &str) -> &'static str {
    match name {
        "source_version" => "2.23.12.000",
        "target_version" => "2.24.03.000",
        "instance_ids" => "mysae-1daa7236-3844-4f36-b39a-605b0cc0caa6-x7k2p",
        other => panic!("no sample value for `{other}`: add one"),
    }
}

/// A job for `operation` on the first named target of its service in the example config.
fn spec(config: &opsgate::config::Config, operation: &str) -> JobSpec {
    let op = config.catalog.by_id(operation).unwrap();
    let target = (config.targets.values())
        .find(|t| t.service == op.service)
        .unwrap_or_else(|| panic!("the example config has no {} target", op.service));
    let mut params = target.params.clone();
    if let Some(modes) = &op.modes {
        params.insert(modes.param.clone(), modes.values.last().unwrap().clone());
    }
    for arg in &op.args {
        params.insert(arg.name.clone(), sample_arg(&arg.name).to_string());
    }
    JobSpec {
        operation: operation.to_string(),
        account: target.account.clone(),
        target: target.name.clone(),
        params,
    }
}

/// The request the emulator received at the described URL's path.
fn received_at<'a>(base: &str, described: &Described, received: &'a [Received]) -> &'a Received {
    let path = described.url[base.len()..]
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    received
        .iter()
        .rev()
        .find(|r| r.path_and_query.split('?').next() == Some(path.as_str()))
        .unwrap_or_else(|| panic!("nothing arrived at {path}: {received:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_operations_dry_run_is_the_request_it_sends() {
    let emu = emulator::start(
        EmulatorOptions::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let base = emu.base_url();
    let scratch = tempfile::tempdir().unwrap();
    let config = opsgate::app::demo_config(&base, scratch.path()).unwrap();
    let registry = Registry::from_config(&config);
    // The built-ins, and the demo's declared HTTP call (RDS restart).
    let declared = (config.declared.iter())
        .filter(|d| matches!(d.action, opsgate::config::declared::Action::Http(_)))
        .map(|d| d.id.clone());
    let ids: Vec<String> = OPERATIONS
        .iter()
        .map(|b| (b.def)().id)
        .chain(declared)
        .collect();
    assert!(ids.iter().any(|id| id == "rds.restart"), "{ids:?}");
    for id in ids {
        let spec = spec(&config, &id);
        let op = registry.get(&id, &spec.account).unwrap();
        let before = op.describe(&spec).unwrap();
        let outcome = op.submit(&spec).await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{id}: {outcome:?}"
        );
        let described = op.describe(&spec).unwrap();
        let sent = received_at(&base, &described, &emu.requests()).clone();
        assert_eq!(described.method, sent.method, "{id}");
        assert_eq!(
            described.url,
            format!("{base}{}", sent.path_and_query),
            "{id}"
        );
        assert_eq!(
            described.body.clone().unwrap_or_default(),
            sent.body,
            "{id}"
        );
        assert!(!described.auth.is_empty(), "{id}");
        // Before a first request, an address found at run time (SCNet's AI base URL) is
        // named by where it comes from; all the rest is already the same.
        if before != described {
            let tail = described.url.split_once(&base).map(|(_, t)| t).unwrap();
            let tail = tail.split_once("/ai").map_or(tail, |(_, t)| t);
            assert!(
                before.url.starts_with("<the AI base URL found at "),
                "{id}: {before:?}"
            );
            assert!(
                before.url.ends_with(tail),
                "{id}: {before:?} vs {described:?}"
            );
            assert_eq!(
                (&before.method, &before.body),
                (&described.method, &described.body)
            );
        }
    }
}
