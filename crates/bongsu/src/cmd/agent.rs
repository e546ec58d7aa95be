//! `bongsu agent --server URL --token TOKEN [--config agent.toml]`: runs the host agent until
//! SIGTERM or SIGINT (agent.toml is documented in docs/agent.md).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bongsu_agent::{run_agent, AgentConfig, ShipTarget, SystemClock};
use bongsu_server::shutdown_signal;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The server's base URL, e.g. http://127.0.0.1:9400.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The agent token from `bongsu agents enroll` (or BONGSU_AGENT_TOKEN).
    #[arg(long, env = "BONGSU_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Agent configuration (TOML, an `[agent]` table); without it, defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            AgentConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => AgentConfig::default(),
    };
    if !(args.server.starts_with("http://") || args.server.starts_with("https://")) {
        anyhow::bail!(
            "--server {:?} is not an http(s) URL: pass e.g. http://127.0.0.1:9400",
            args.server
        );
    }
    // The agent is small: two worker threads are plenty (checks, HTTP, queue I/O).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("bongsu-agent")
        .build()
        .context("cannot start the async runtime")?;
    let target = ShipTarget {
        server: args.server,
        token: args.token,
    };
    runtime.block_on(async move {
        tracing::info!(server = %target.server, "agent starting");
        run_agent(config, target, Arc::new(SystemClock), shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
