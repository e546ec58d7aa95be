//! `bongsu agents list|enroll|revoke`: agents in `<data_dir>/state.db`, directly (works while
//! the server runs; a revoked agent is refused within `auth.token_cache_ttl`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bongsu_state::{format_rfc3339_ms, StateStore};
use clap::Subcommand;

use super::ConfigArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsCommand {
    /// Enroll an agent and print its token (once) on stdout.
    Enroll {
        /// A unique name, usually the host name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List agents: id, name, host, version, last seen, status.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke an agent's token by id.
    Revoke {
        /// The agent's id, from `bongsu agents list`.
        id: i64,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn open(config: &ConfigArgs) -> anyhow::Result<StateStore> {
    let config = config.load(None)?;
    let dir = &config.server.data_dir;
    StateStore::open(dir).with_context(|| format!("cannot open the state in {}", dir.display()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn run(command: AgentsCommand) -> anyhow::Result<()> {
    match command {
        AgentsCommand::Enroll { name, config } => {
            let store = open(&config)?;
            let a = store.enroll_agent(&name, now_ms())?;
            eprintln!(
                "enrolled agent {} ({:?}); its token is shown once, below. Run it with\n  bongsu agent --server URL --token TOKEN",
                a.info.id, a.info.name
            );
            println!("{}", a.secret);
        }
        AgentsCommand::List { config } => {
            let store = open(&config)?;
            println!(
                "{:<6} {:<20} {:<24} {:<10} {:<25} STATUS",
                "ID", "NAME", "HOST", "VERSION", "LAST SEEN"
            );
            for a in store.list_agents()? {
                println!(
                    "{:<6} {:<20} {:<24} {:<10} {:<25} {}",
                    a.id,
                    a.name,
                    a.host.as_deref().unwrap_or("-"),
                    a.version.as_deref().unwrap_or("-"),
                    a.last_seen_ms
                        .map(format_rfc3339_ms)
                        .unwrap_or_else(|| "never".to_owned()),
                    if a.revoked { "revoked" } else { "active" }
                );
            }
        }
        AgentsCommand::Revoke { id, config } => {
            let store = open(&config)?;
            let a = store.revoke_agent(id)?;
            println!("revoked agent {} ({:?})", a.id, a.name);
        }
    }
    Ok(())
}
