//! opsgate command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use opsgate::app::{self, backup_cli, jobs_cli, logging, ShellArgs};
use opsgate::command::JobFilter;
use opsgate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "opsgate",
    version,
    about = "Chat-ops bot: approved, audited, restart-safe cloud operations"
)]
struct Cli {
    /// Log format on stderr (default: `[log] format` from the config, else human).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(clap::Args)]
struct Identity {
    /// Data directory (sled); only one process may open it at a time.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Who you are in the terminal chat.
    #[arg(long, default_value = "alice")]
    user: String,
    /// Your roles, by name from the config (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "oncall")]
    roles: Vec<String>,
    /// The channel you type in, by name from the config.
    #[arg(long, default_value = "ops")]
    channel: String,
    /// How long `/wait JOB` waits.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    wait_timeout: Duration,
    /// How long the end of input waits for running jobs to finish.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Serve /healthz, /readyz and /metrics here (overrides `[http] listen`; port 0 picks one).
    #[arg(long)]
    http: Option<SocketAddr>,
}

impl Identity {
    fn into_args(self) -> ShellArgs {
        ShellArgs {
            data: self.data,
            user: self.user,
            roles: self.roles,
            channel: self.channel,
            wait_timeout: self.wait_timeout,
            drain_timeout: self.drain_timeout,
            http: self.http,
        }
    }
}

#[derive(clap::Args)]
struct Store {
    #[arg(long)]
    config: PathBuf,
    /// Data directory (default: `[bot] data_dir` from the config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bot in Discord (token from DISCORD_TOKEN or `[discord] token_env/token_file`).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Data directory (default: `[bot] data_dir` from the config).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Serve /healthz, /readyz and /metrics here (overrides `[http] listen`).
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Terminal chat with the bot: stdin lines in, one stdout line per bot message.
    Shell {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        identity: Identity,
    },
    /// The shell with the example config and a local cloud emulator: no Discord, no cloud account.
    Demo {
        #[command(flatten)]
        identity: Identity,
    },
    /// Check a config file: every problem with its key path, or a summary.
    CheckConfig { file: PathBuf },
    /// List jobs (from the data directory, or through the running bot's HTTP endpoint).
    Jobs {
        #[command(flatten)]
        store: Store,
        /// active (default), pending, running or all.
        #[arg(long, default_value = "active")]
        filter: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one job's audit log.
    Audit {
        job: u64,
        #[command(flatten)]
        store: Store,
    },
    /// Write a consistent backup of the data directory to FILE (through the running bot's
    /// HTTP endpoint while it holds the directory).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        store: Store,
    },
    /// Restore a backup into a new or empty data directory.
    Restore {
        file: PathBuf,
        /// The directory to create; refused if it holds anything.
        #[arg(long)]
        data: PathBuf,
    },
    /// Run the local cloud emulator on its own (for tests and experiments).
    Emulator {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// How long an emulated cloud job takes.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        job_duration: Duration,
    },
}

/// Exit status for an invalid config (sysexits EX_CONFIG): the systemd unit does not
/// restart-loop on it.
const EXIT_CONFIG: u8 = 78;
const CONFIG_MARK: &str = "\u{0}config:";

fn load(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path).map_err(|p| format!("{CONFIG_MARK}{p}"))
}

fn log_format(flag: Option<LogFormatArg>, config: Option<&Config>) -> LogFormat {
    match flag {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Human) => LogFormat::Human,
        None => config.map_or(LogFormat::Human, |c| c.log_format),
    }
}

fn main() -> ExitCode {
    app::allocator::tune();
    let cli = Cli::parse();
    let flag = cli.log_format;
    let result = match cli.command {
        Cmd::Run { config, data, http } => load(&config).and_then(|config| {
            logging::init(log_format(flag, Some(&config)));
            let rt = app::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
            app::run_discord(config, data, http, &rt)
        }),
        Cmd::CheckConfig { file } => app::check_config(&file).map(|summary| print!("{summary}")),
        Cmd::Shell { config, identity } => load(&config).and_then(|config| {
            logging::init(log_format(flag, Some(&config)));
            let rt = app::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
            app::run_shell(config, identity.into_args(), &rt)
        }),
        Cmd::Demo { identity } => {
            logging::init(log_format(flag, None));
            app::runtime()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|rt| app::run_demo(identity.into_args(), &rt))
        }
        Cmd::Jobs {
            store,
            filter,
            limit,
        } => {
            logging::init(log_format(flag, None));
            match JobFilter::parse(&filter).filter(|f| *f != JobFilter::Mine) {
                None => Err(format!(
                    "unknown filter `{filter}` (active, pending, running or all)"
                )),
                Some(filter) => with_source(&store, |source, rt| {
                    jobs_cli::jobs(source, filter, limit, store.json, rt)
                }),
            }
        }
        Cmd::Audit { job, store } => {
            logging::init(log_format(flag, None));
            with_source(&store, |source, rt| {
                jobs_cli::audit(source, job, store.json, rt)
            })
        }
        Cmd::Backup { file, store } => {
            logging::init(log_format(flag, None));
            let config = load(&store.config);
            config.and_then(|config| {
                let data = data_dir(&store, &config)?;
                let rt = app::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
                let done = backup_cli::backup(&data, config.http_listen, &file, &rt)?;
                print!("{done}");
                Ok(())
            })
        }
        Cmd::Restore { file, data } => {
            logging::init(log_format(flag, None));
            backup_cli::restore(&file, &data).map(|done| print!("{done}"))
        }
        Cmd::Emulator {
            listen,
            job_duration,
        } => {
            logging::init(log_format(flag, None));
            app::runtime()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|rt| {
                    let opts = opsgate::emulator::EmulatorOptions {
                        job_duration,
                        ..Default::default()
                    };
                    app::run_emulator(listen, opts, &rt)
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.strip_prefix(CONFIG_MARK) {
            Some(problems) => {
                eprintln!("opsgate: {}", problems.trim_end());
                ExitCode::from(EXIT_CONFIG)
            }
            None => {
                eprintln!("opsgate: {}", e.trim_end());
                ExitCode::FAILURE
            }
        },
    }
}

fn with_source(
    store: &Store,
    show: impl FnOnce(&jobs_cli::Source, &tokio::runtime::Runtime) -> Result<String, String>,
) -> Result<(), String> {
    let config = load(&store.config)?;
    let data = data_dir(store, &config)?;
    let rt = app::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let source = jobs_cli::source(data, config.http_listen)?;
    print!("{}", show(&source, &rt)?);
    Ok(())
}

fn data_dir(store: &Store, config: &Config) -> Result<PathBuf, String> {
    store
        .data
        .clone()
        .or_else(|| config.data_dir.clone())
        .ok_or_else(|| "no data directory: give --data or set [bot] data_dir".to_string())
}
