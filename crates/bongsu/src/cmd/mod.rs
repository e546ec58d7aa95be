//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod agents;
pub(crate) mod config;
pub(crate) mod logs;
pub(crate) mod query;
pub(crate) mod server;
pub(crate) mod stream;
pub(crate) mod token;

use std::path::PathBuf;

use anyhow::Context as _;
use bongsu_server::Config;
use clap::{Args, Subcommand};

/// bongsu's subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: HTTP API, /metrics, health checks.
    Server(server::ServerArgs),
    /// Run the host agent: collect metrics, tail logs, run checks, ship to a server.
    Agent(agent::AgentArgs),
    /// Manage enrolled agents directly in the data directory (works while the server runs).
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Check or print configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Evaluate a PromQL expression on a running server and print the result.
    Query(query::QueryArgs),
    /// Manage API tokens directly in the data directory (works while the server runs).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Work with the embedded stream in the data directory: topics, produce, consume, groups
    /// (the server must not be running on the same data directory).
    Stream {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        cmd: stream::StreamCommand,
    },
    /// Query or live-tail logs of a running server (LogQL over its Loki API).
    Logs(logs::LogsArgs),
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Agents(c) => agents::run(c),
        Command::Config(c) => config::run(c),
        Command::Token(c) => token::run(c),
        Command::Query(a) => query::run(a),
        Command::Stream { config, cmd } => {
            let config = config.load(None)?;
            stream::run(cmd, &config.server.stream_dir())
        }
        Command::Logs(args) => logs::run(args),
    }
}

/// Where the configuration comes from; shared by subcommands that need it.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Configuration file (TOML); without it, defaults and BONGSU_* variables apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory; overrides server.data_dir.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// Defaults < file < BONGSU_* environment < flags.
    pub(crate) fn load(&self, listen: Option<String>) -> anyhow::Result<Config> {
        let config = Config::load(self.config.as_deref(), std::env::vars())
            .context("cannot load the configuration")?;
        Ok(config.with_flags(listen, self.data_dir.clone())?)
    }
}

/// Logs go to stderr; the filter comes from BONGSU_LOG, else RUST_LOG, else `info`.
pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("BONGSU_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
