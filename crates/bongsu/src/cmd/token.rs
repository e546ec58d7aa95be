//! `bongsu token create|list|revoke`: work on `<data_dir>/state.db` directly, so they also
//! work while the server runs (SQLite WAL, busy timeout). A token revoked here stops working in
//! a running server within `auth.token_cache_ttl`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bongsu_state::{format_rfc3339_ms, Scope, StateStore};
use clap::{Subcommand, ValueEnum};

use super::ConfigArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it (once) on stdout.
    Create {
        /// Who or what uses the token, e.g. "grafana".
        #[arg(long)]
        name: String,
        /// What the token may do: read ⊂ write ⊂ admin.
        #[arg(long, value_enum)]
        scope: ScopeArg,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id, from `bongsu token list`.
        id: i64,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ScopeArg {
    Read,
    Write,
    Admin,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Write => Scope::Write,
            ScopeArg::Admin => Scope::Admin,
        }
    }
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

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            config,
        } => {
            let store = open(&config)?;
            let t = store.create_token(&name, scope.into(), now_ms())?;
            eprintln!(
                "created token {} ({:?}, scope {}); it is shown once, below:",
                t.info.id, t.info.name, t.info.scope
            );
            println!("{}", t.secret);
        }
        TokenCommand::List { config } => {
            let store = open(&config)?;
            println!(
                "{:<6} {:<24} {:<6} {:<25} {:<25} STATUS",
                "ID", "NAME", "SCOPE", "CREATED", "LAST USED"
            );
            for t in store.list_tokens()? {
                println!(
                    "{:<6} {:<24} {:<6} {:<25} {:<25} {}",
                    t.id,
                    t.name,
                    t.scope.as_str(),
                    format_rfc3339_ms(t.created_at_ms),
                    t.last_used_ms
                        .map(format_rfc3339_ms)
                        .unwrap_or_else(|| "never".to_owned()),
                    if t.revoked { "revoked" } else { "active" }
                );
            }
        }
        TokenCommand::Revoke { id, config } => {
            let store = open(&config)?;
            let t = store.revoke_token(id)?;
            println!("revoked token {} ({:?})", t.id, t.name);
        }
    }
    Ok(())
}
