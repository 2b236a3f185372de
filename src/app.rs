//! Start-up and wiring for the command-line modes: shell, demo, emulator, check-config,
//! jobs and audit.

mod backend;
pub mod backup_cli;
mod demo_ops;
mod driver_thread;
pub mod health;
pub mod http;
pub mod jobs_cli;
pub mod logging;
mod run;
mod signals;

pub use run::run_discord;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::chat::shell::{self, JobWatch, ShellChat, ShellOptions};
use crate::cloud::Registry;
use crate::config::{Config, SecretRef};
use crate::domain::Provider;
use crate::driver::{Driver, Seams};
use crate::emulator;
use crate::metrics::Metrics;
use crate::ports::inbox::{EngineEvent, EngineHandle};
use backend::Backend;
use http::Health;
use std::sync::atomic::Ordering;

/// The example config, built in so `opsgate demo` works from any directory.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.example.toml");

pub struct ShellArgs {
    pub data: Option<PathBuf>,
    pub user: String,
    pub roles: Vec<String>,
    pub channel: String,
    pub wait_timeout: Duration,
    pub drain_timeout: Duration,
    /// Health/metrics endpoint address; overrides `[http] listen`.
    pub http: Option<SocketAddr>,
}

/// One async worker: the engine has a thread of its own, and everything async here (cloud
/// calls, Discord, the HTTP endpoint) is light I/O. One worker keeps a request and its
/// connection task on one thread (no cross-thread wakeups on the path to the cloud).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

/// How long SIGTERM waits for submits in flight to record the cloud's answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the terminal chat on `config` until the end of input (or SIGTERM / Ctrl-C).
pub fn run_shell(
    config: Config,
    args: ShellArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<(), String> {
    let data = args
        .data
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("opsgate-data"));
    if !config
        .policy
        .channels
        .contains_key(args.channel.trim_start_matches('#'))
    {
        return Err(shell::unknown_channel(&config, &args.channel));
    }
    let backend = Backend::open(&config.store, &data)?;
    let place = backend.describe(&data);
    let reader = backend.archive();
    let health = Arc::new(Health::default());
    let metrics = Arc::new(Metrics::new());
    // The shell on PostgreSQL leads like `run` does: it waits while another replica leads.
    let leading = backend.lead(&health, &metrics)?;
    let jobs = leading.history.clone();
    let config = Arc::new(config);
    let watch = Arc::new(JobWatch::default());
    let seams = Seams {
        store: leading.store,
        history: leading.history,
        operations: Arc::new(Registry::from_config(&config)),
        chat: Arc::new(ShellChat::new(config.clone())),
        observer: Some(watch.clone()),
        runtime: rt.handle().clone(),
        metrics: metrics.clone(),
        leads: leading.holds.clone(),
    };
    let (driver, handle, rx) = Driver::new(config.clone(), seams).map_err(|e| e.to_string())?;

    health.store_open.store(true, Ordering::Relaxed);
    if let Some(addr) = args.http.or(config.http_listen) {
        let server = rt
            .block_on(http::serve(
                addr,
                health.clone(),
                metrics,
                reader,
                None,
                config.api_token.value.clone(),
            ))
            .map_err(|e| format!("cannot listen on {addr} for health and metrics: {e}"))?;
        http::announce(server.addr);
    }

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(exit_on_signal(handle.clone(), done_rx));
    health.chat_ready.store(true, Ordering::Relaxed);
    tracing::info!("shell ready; jobs are kept in the {place}");

    let opts = ShellOptions {
        user: args.user,
        roles: args.roles,
        channel: args.channel,
        wait_timeout: args.wait_timeout,
        drain_timeout: args.drain_timeout,
    };
    let engine = driver_thread::spawn(driver, rx, health, done_tx)?;
    // `/wait N` asks the store for a job that is not moving.
    let stored_state = move |id| jobs.job(id).ok().flatten().map(|j| j.state);
    let stdin = std::io::stdin();
    let read = || shell::run(stdin.lock(), &config, &handle, &watch, &stored_state, opts);
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).is_err() {
        driver_thread::exit_after_panic("the terminal input panicked; stopping");
    }
    handle.send(EngineEvent::Shutdown);
    // The engine stops once it has flushed; on SIGTERM `exit_on_signal` ends the process.
    let _ = engine.join();
    Ok(())
}

/// SIGTERM or Ctrl-C: drain the engine (no new commands; submits in flight record their
/// answer, bounded), wait until it has flushed and stopped, then exit 0. Jobs still running
/// resume polling on the next start.
async fn exit_on_signal(engine: EngineHandle, stopped: tokio::sync::oneshot::Receiver<()>) {
    signals::terminated().await;
    tracing::info!("termination requested; draining");
    engine.send(EngineEvent::Drain {
        timeout: DRAIN_TIMEOUT,
    });
    let _ = stopped.await;
    tracing::info!("stopped cleanly");
    std::process::exit(0);
}

/// The example config pointed at a local emulator, with the emulator's demo credentials.
/// `scratch` is a directory of the demo's own, for the script its declared command runs.
pub fn demo_config(emulator_url: &str, scratch: &Path) -> Result<Config, String> {
    let builtins = crate::cloud::builtins();
    let script = demo_ops::write_script(scratch)?;
    let text = format!("{EXAMPLE_CONFIG}\n{}", demo_ops::toml(&script));
    let mut config = Config::parse(&text, Path::new("config.example.toml"), &builtins)
        .map_err(|p| format!("the built-in example config is invalid:\n{p}"))?;
    for account in config.accounts.values_mut() {
        let mut a = (**account).clone();
        if a.provider == Provider::Huawei {
            for service in ["iam", "ddm", "gaussdb", "rds", "ecs"] {
                a.endpoints
                    .insert(service.to_string(), emulator_url.to_string());
            }
            a.iam_user = Some(emulator::demo::IAM_USER.to_string());
            a.iam_domain = Some(emulator::demo::IAM_DOMAIN.to_string());
            a.password = SecretRef::from_value("demo", emulator::demo::PASSWORD);
            a.access_key = SecretRef::from_value("demo", emulator::demo::ACCESS_KEY);
            a.secret_key = SecretRef::from_value("demo", emulator::demo::SECRET_KEY);
        }
        if a.provider == Provider::Alibaba {
            a.endpoints
                .insert("sae".to_string(), emulator_url.to_string());
            a.access_key = SecretRef::from_value("demo", emulator::demo::ALIBABA_ACCESS_KEY);
            a.secret_key = SecretRef::from_value("demo", emulator::demo::ALIBABA_SECRET_KEY);
        }
        if a.provider == Provider::Scnet {
            // Tokens and the center API on the emulator; the AI URL is found through the
            // center API, as it would be without endpoints.ai.
            a.endpoints.remove("ai");
            for service in ["token", "ac"] {
                a.endpoints
                    .insert(service.to_string(), emulator_url.to_string());
            }
            a.settings.scnet_user = Some(emulator::demo::SCNET_USER.to_string());
            a.settings.org_id = Some(emulator::demo::SCNET_ORG_ID.to_string());
            a.settings.cluster_id = Some(emulator::demo::SCNET_CLUSTER_ID.to_string());
            a.settings.cluster_name = None;
            a.password = SecretRef::from_value("demo", emulator::demo::SCNET_PASSWORD);
            a.access_key = SecretRef::from_value("demo", emulator::demo::SCNET_ACCESS_KEY);
            a.secret_key = SecretRef::from_value("demo", emulator::demo::SCNET_SECRET_KEY);
        }
        a.poll_interval = Some(Duration::from_millis(500));
        *account = Arc::new(a);
    }
    config.data_dir = None;
    // The demo serves HTTP only when asked (--http), so two demos never compete for a port.
    config.http_listen = None;
    Ok(config)
}

pub fn run_demo(args: ShellArgs, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let emu = rt
        .block_on(emulator::start(
            emulator::EmulatorOptions::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .map_err(|e| format!("cannot start the cloud emulator: {e}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("opsgate-demo-script-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let config = demo_config(&emu.base_url(), scratch.path())?;
    let tmp;
    let data = match args.data.clone() {
        Some(d) => d,
        None => {
            tmp = tempfile::Builder::new()
                .prefix("opsgate-demo-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary data directory: {e}"))?;
            tmp.path().to_path_buf()
        }
    };
    if std::io::stdin().is_terminal() {
        // On stdout, with the chat: stderr is for logs (errors only unless RUST_LOG asks).
        println!(
            "opsgate demo: cloud emulator at {}, data in {}.\n\
             You are {} ({}) in #{}. Try:\n  \
             !help\n  !restart ddm orders-db hard\n  /as bob dba\n  /react 1 ✅\n  /wait 1\n  \
             !restart rds orders-rds    (an operation declared in the config)\n  \
             !rollout deployment shop checkout    (a declared command)\n\
             End with Ctrl-D. Logs go to stderr, errors only (RUST_LOG=info for more).",
            emu.base_url(),
            data.display(),
            args.user,
            args.roles.join(","),
            args.channel
        );
    }
    let result = run_shell(
        config,
        ShellArgs {
            data: Some(data),
            ..args
        },
        rt,
    );
    drop(emu);
    result
}

/// `opsgate emulator`: the cloud emulator on its own, until killed.
pub fn run_emulator(
    listen: SocketAddr,
    opts: emulator::EmulatorOptions,
    rt: &tokio::runtime::Runtime,
) -> Result<(), String> {
    rt.block_on(async {
        let emu = emulator::start(opts, listen)
            .await
            .map_err(|e| format!("cannot start the emulator on {listen}: {e}"))?;
        println!("emulator listening on {}", emu.base_url());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        drop(emu);
        Ok(())
    })
}
