//! opsgate command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::path::Path;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use opsgate::app::backup_cli::Target;
use opsgate::app::jobs_cli::ApiEndpoint;
use opsgate::app::logging::{self, Verbosity};
use opsgate::app::{self, backup_cli, jobs_cli, ShellArgs};
use opsgate::config::store::Backend;
use opsgate::config::{Config, LogFormat, Use};
use opsgate::job::JobFilter;
use opsgate::store::postgres::Url;

#[derive(Parser)]
#[command(
    name = "opsgate",
    version,
    about = "Chat-ops bot: approved, audited, restart-safe cloud operations"
)]
struct Cli {
    /// Log format (default: `[log] format` from the config, else human).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Append logs to FILE instead of writing them to stderr.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

/// The config file, for every subcommand that reads one.
#[derive(clap::Args)]
struct ConfigFile {
    /// The config file (TOML; config.example.toml documents every key).
    #[arg(long = "config", env = "OPSGATE_CONFIG", value_name = "FILE")]
    path: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Direction {
    ToPostgres,
    ToSled,
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
    /// Serve /healthz, /readyz, /metrics and the job API here (overrides `[http] listen`;
    /// port 0 picks one).
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
    #[command(flatten)]
    config: ConfigFile,
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
        #[command(flatten)]
        config: ConfigFile,
        /// Data directory (default: `[bot] data_dir` from the config).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Serve /healthz, /readyz and /metrics here (overrides `[http] listen`).
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Terminal chat with the bot: stdin lines in, one stdout line per bot message.
    Shell {
        #[command(flatten)]
        config: ConfigFile,
        #[command(flatten)]
        identity: Identity,
    },
    /// The shell with the example config and a local cloud emulator: no Discord, no cloud account.
    Demo {
        #[command(flatten)]
        identity: Identity,
    },
    /// Check a config file: every problem with its place in the file (exit 78), or a summary.
    CheckConfig {
        /// The config file to check.
        #[arg(env = "OPSGATE_CONFIG", value_name = "FILE")]
        file: PathBuf,
        /// Skip reading the secrets the config names (for CI, where they are not set).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Exit 0 if the running bot's /healthz answers 200, else 1 (a container HEALTHCHECK).
    Health {
        /// Ask here instead of the config's `[http] listen` (0.0.0.0 means this host).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// The config file, for its `[http] listen`.
        #[arg(long = "config", env = "OPSGATE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print a shell completion script (e.g. `opsgate completions bash > /etc/bash_completion.d/opsgate`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
    /// Show one job's audit log (`opsgate audit JOB`), or export every audit entry since a
    /// date as JSON lines (`opsgate audit export --since DATE`), oldest first, each with its
    /// job's operation, account, target and parameters: for keeping the audit log elsewhere
    /// before `[bot] keep_finished` removes old jobs.
    Audit {
        /// A job's number, or `export`.
        #[arg(value_name = "JOB|export")]
        what: String,
        /// With `export`: a date (2026-12-01, midnight UTC) or a time (2026-12-01T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Write a consistent backup of the data directory to FILE (through the running bot's
    /// HTTP endpoint while it holds the directory), or of the database (PostgreSQL).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        store: Store,
    },
    /// Restore a backup into a new or empty data directory, or (with a config whose
    /// `[store]` is PostgreSQL) into an empty database.
    Restore {
        file: PathBuf,
        /// The directory to create; refused if it holds anything.
        #[arg(long, required_unless_present = "config")]
        data: Option<PathBuf>,
        /// A config whose `[store] backend = "postgres"`: restore into its database.
        #[arg(long, value_name = "FILE", conflicts_with = "data")]
        config: Option<PathBuf>,
    },
    /// Copy a sled data directory into the empty PostgreSQL database of the config's
    /// `[store]` (`to-postgres`), or that database into a new data directory (`to-sled`).
    /// Stop the bot (every replica) first.
    Migrate {
        #[arg(value_enum)]
        direction: Direction,
        #[command(flatten)]
        config: ConfigFile,
        /// The data directory to read (`to-postgres`) or create (`to-sled`).
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

fn load(path: &Path, usage: Use) -> Result<Config, String> {
    Config::load_for(path, usage, &opsgate::cloud::builtins())
        .map_err(|p| format!("{CONFIG_MARK}{p}"))
}

fn log_format(flag: Option<LogFormatArg>, config: Option<&Config>) -> LogFormat {
    match flag {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Human) => LogFormat::Human,
        None => config.map_or(LogFormat::Human, |c| c.log_format),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flag = cli.log_format;
    let log_file = cli.log_file.clone();
    let init = |config: Option<&Config>, verbosity: Verbosity| {
        logging::init(log_format(flag, config), verbosity, log_file.as_deref())
    };
    let result = match cli.command {
        Cmd::Run { config, data, http } => load(&config.path, Use::Run).and_then(|config| {
            init(Some(&config), Verbosity::Normal)?;
            let rt = runtime()?;
            app::run_discord(config, data, http, &rt)
        }),
        Cmd::CheckConfig { file, no_secrets } => {
            let usage = Use::Check {
                secrets: !no_secrets,
            };
            load(&file, usage).map(|config| print!("{}", opsgate::config::summary(&config)))
        }
        Cmd::Shell { config, identity } => load(&config.path, Use::Shell).and_then(|config| {
            init(Some(&config), Verbosity::Normal)?;
            let rt = runtime()?;
            app::run_shell(config, identity.into_args(), &rt)
        }),
        Cmd::Demo { identity } => init(None, Verbosity::Quiet)
            .and_then(|()| runtime())
            .and_then(|rt| app::run_demo(identity.into_args(), &rt)),
        Cmd::Jobs {
            store,
            filter,
            limit,
        } => init(None, Verbosity::Normal).and_then(|()| {
            match JobFilter::parse(&filter).filter(|f| *f != JobFilter::Mine) {
                None => Err(format!(
                    "unknown filter `{filter}` (active, pending, running or all)"
                )),
                Some(filter) => with_source(&store, |source, config, rt| {
                    jobs_cli::jobs(source, &config.catalog, filter, limit, store.json, rt)
                }),
            }
        }),
        Cmd::Audit { what, since, store } => {
            init(None, Verbosity::Normal).and_then(|()| match (what.as_str(), since) {
                ("export", Some(since)) => {
                    let since = jobs_cli::parse_since(&since)?;
                    with_source(&store, |source, _, rt| jobs_cli::export(source, since, rt))
                }
                ("export", None) => Err("export needs --since DATE (e.g. 2026-12-01)".into()),
                (job, None) => {
                    let job: opsgate::domain::JobId =
                        job.trim_start_matches('#').parse().map_err(|_| {
                            format!("`{job}` is not a job number (or `export --since DATE`)")
                        })?;
                    with_source(&store, |source, _, rt| {
                        jobs_cli::audit(source, job, store.json, rt)
                    })
                }
                (_, Some(_)) => Err("--since goes with `opsgate audit export`".into()),
            })
        }
        Cmd::Backup { file, store } => init(None, Verbosity::Normal).and_then(|()| {
            let config = load(&store.config.path, Use::Check { secrets: false })?;
            let rt = runtime()?;
            let done = backup_cli::backup(source(&store, &config)?, &file, &rt)?;
            print!("{done}");
            Ok(())
        }),
        Cmd::Restore { file, data, config } => init(None, Verbosity::Normal).and_then(|()| {
            let done = match (data, config) {
                (Some(data), _) => backup_cli::restore(&file, Target::Directory(&data))?,
                (None, Some(path)) => {
                    let config = load(&path, Use::Check { secrets: false })?;
                    let url = database_url(&config)?;
                    backup_cli::restore(&file, Target::Database(&url))?
                }
                (None, None) => return Err("give --data DIR or --config FILE".into()),
            };
            print!("{done}");
            Ok(())
        }),
        Cmd::Migrate {
            direction,
            config,
            data,
        } => init(None, Verbosity::Normal).and_then(|()| {
            let config = load(&config.path, Use::Check { secrets: false })?;
            let url = database_url(&config)?;
            let done = match direction {
                Direction::ToPostgres => backup_cli::to_postgres(&data, &url)?,
                Direction::ToSled => backup_cli::to_sled(&url, &data)?,
            };
            print!("{done}");
            Ok(())
        }),
        Cmd::Health {
            http,
            config,
            timeout,
        } => init(None, Verbosity::Normal).and_then(|()| {
            let addr = match (http, config) {
                (Some(addr), _) => addr,
                (None, Some(path)) => load(&path, Use::Check { secrets: false })?
                    .http_listen
                    .ok_or("the config has no [http] listen address to ask")?,
                (None, None) => return Err("give --http ADDR or --config FILE".to_string()),
            };
            let rt = runtime()?;
            app::health::check(addr, timeout, &rt).map(|answer| println!("{answer}"))
        }),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "opsgate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Emulator {
            listen,
            job_duration,
        } => init(None, Verbosity::Normal)
            .and_then(|()| runtime())
            .and_then(|rt| {
                let opts = opsgate::emulator::EmulatorOptions {
                    job_duration,
                    ..Default::default()
                };
                app::run_emulator(listen, opts, &rt)
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging may not be set up yet (the config did not load): the flag decides.
            let _ = init(None, Verbosity::Normal);
            match e.strip_prefix(CONFIG_MARK) {
                Some(problems) => {
                    logging::report(logging::Level::Error, problems);
                    ExitCode::from(EXIT_CONFIG)
                }
                None => {
                    logging::line(logging::Level::Error, &e);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    app::runtime().map_err(|e| format!("cannot start the runtime: {e}"))
}

fn with_source(
    store: &Store,
    show: impl FnOnce(&jobs_cli::Source, &Config, &tokio::runtime::Runtime) -> Result<String, String>,
) -> Result<(), String> {
    let config = load(&store.config.path, Use::Check { secrets: false })?;
    let rt = runtime()?;
    let source = source(store, &config)?;
    print!("{}", show(&source, &config, &rt)?);
    Ok(())
}

/// Where `jobs`, `audit` and `backup` read: the database (PostgreSQL), or the data
/// directory's private copy, or the running bot that holds it.
fn source(store: &Store, config: &Config) -> Result<jobs_cli::Source, String> {
    match &config.store {
        Backend::Postgres(pg) => jobs_cli::database(pg),
        Backend::Sled => jobs_cli::source(data_dir(store, config)?, ApiEndpoint::of(config)),
    }
}

/// The connection string of a config whose `[store]` is PostgreSQL.
fn database_url(config: &Config) -> Result<Url, String> {
    match &config.store {
        Backend::Postgres(pg) => {
            let url = pg.url.require("the PostgreSQL connection string")?;
            Url::parse(url.expose())
        }
        Backend::Sled => Err(format!(
            "{} has no [store] backend = \"postgres\" to name the database",
            config.source.display()
        )),
    }
}

fn data_dir(store: &Store, config: &Config) -> Result<PathBuf, String> {
    store
        .data
        .clone()
        .or_else(|| config.data_dir.clone())
        .ok_or_else(|| "no data directory: give --data or set [bot] data_dir".to_string())
}
