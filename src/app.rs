//! Start-up and wiring for the command-line modes: shell, demo, emulator, check-config.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::chat::shell::{self, JobWatch, ShellChat, ShellOptions};
use crate::cloud::{Provider, Registry};
use crate::config::{Config, SecretRef};
use crate::emulator;
use crate::engine::{Engine, EngineEvent};
use crate::store::Store;

/// The example config, built in so `opsgate demo` works from any directory.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.example.toml");

pub struct ShellArgs {
    pub data: Option<PathBuf>,
    pub user: String,
    pub roles: Vec<String>,
    pub channel: String,
    pub wait_timeout: Duration,
    pub drain_timeout: Duration,
}

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `opsgate check-config FILE`: every problem at once, or a summary.
pub fn check_config(path: &Path) -> Result<String, String> {
    Config::load(path)
        .map(|c| crate::config::summary(&c))
        .map_err(|p| p.to_string())
}

/// Runs the terminal chat on `config` until the end of input.
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
    let store = Store::open(&data).map_err(|e| e.to_string())?;
    let config = Arc::new(config);
    let registry = Arc::new(Registry::from_config(&config));
    let chat = Arc::new(ShellChat::new(config.clone()));
    let watch = Arc::new(JobWatch::default());
    let (engine, handle, rx) = Engine::new(
        config.clone(),
        store,
        registry,
        chat,
        Some(watch.clone()),
        rt.handle().clone(),
    )
    .map_err(|e| e.to_string())?;
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine.run(rx))
        .map_err(|e| format!("cannot start the engine thread: {e}"))?;
    tracing::info!(data = %data.display(), "shell ready");

    let opts = ShellOptions {
        user: args.user,
        roles: args.roles,
        channel: args.channel,
        wait_timeout: args.wait_timeout,
        drain_timeout: args.drain_timeout,
    };
    let stdin = std::io::stdin();
    shell::run(stdin.lock(), &config, &handle, &watch, opts);
    handle.send(EngineEvent::Shutdown);
    engine_thread
        .join()
        .map_err(|_| "the engine thread panicked".to_string())?;
    Ok(())
}

/// The example config pointed at a local emulator, with the emulator's demo credentials.
pub fn demo_config(emulator_url: &str) -> Result<Config, String> {
    let mut config = Config::parse(EXAMPLE_CONFIG, Path::new("config.example.toml"))
        .map_err(|p| format!("the built-in example config is invalid:\n{p}"))?;
    for account in config.accounts.values_mut() {
        let mut a = (**account).clone();
        if a.provider == Provider::Huawei {
            for service in ["iam", "ddm", "gaussdb"] {
                a.endpoints
                    .insert(service.to_string(), emulator_url.to_string());
            }
            a.iam_user = Some(emulator::demo::IAM_USER.to_string());
            a.iam_domain = Some(emulator::demo::IAM_DOMAIN.to_string());
            a.password = SecretRef::from_value("demo", emulator::demo::PASSWORD);
            a.access_key = SecretRef::from_value("demo", emulator::demo::ACCESS_KEY);
            a.secret_key = SecretRef::from_value("demo", emulator::demo::SECRET_KEY);
        }
        a.poll_interval = Some(Duration::from_millis(500));
        *account = Arc::new(a);
    }
    config.data_dir = None;
    Ok(config)
}

pub fn run_demo(args: ShellArgs, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let emu = rt
        .block_on(emulator::start(
            emulator::EmulatorOptions::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .map_err(|e| format!("cannot start the cloud emulator: {e}"))?;
    let config = demo_config(&emu.base_url())?;
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
        eprintln!(
            "opsgate demo: cloud emulator at {}, data in {}.\n\
             You are {} ({}) in #{}. Try:\n  \
             !help\n  !restart ddm orders-db hard\n  /as bob dba\n  /react 1 ✅\n  /wait 1\n\
             End with Ctrl-D.",
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
