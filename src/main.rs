//! opsgate command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use opsgate::app::{self, ShellArgs};
use opsgate::config::Config;

#[derive(Parser)]
#[command(
    name = "opsgate",
    version,
    about = "Chat-ops bot: approved, audited, restart-safe cloud operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
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
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
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
    /// Run the local cloud emulator on its own (for tests and experiments).
    Emulator {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// How long an emulated cloud job takes.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        job_duration: Duration,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,opsgate=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Cmd::CheckConfig { file } => app::check_config(&file).map(|summary| print!("{summary}")),
        Cmd::Shell { config, identity } => {
            let rt = match app::runtime() {
                Ok(rt) => rt,
                Err(e) => return fail(&format!("cannot start the runtime: {e}")),
            };
            Config::load(&config)
                .map_err(|p| p.to_string())
                .and_then(|config| app::run_shell(config, identity.into_args(), &rt))
        }
        Cmd::Demo { identity } => app::runtime()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|rt| app::run_demo(identity.into_args(), &rt)),
        Cmd::Emulator {
            listen,
            job_duration,
        } => app::runtime()
            .map_err(|e| format!("cannot start the runtime: {e}"))
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
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("opsgate: {}", message.trim_end());
    ExitCode::FAILURE
}
