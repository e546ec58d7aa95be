//! `bongsu server`

use std::io::Write as _;

use anyhow::Context as _;
use bongsu_server::{shutdown_signal, Server};
use clap::Args;

use super::ConfigArgs;

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address, IP:PORT; overrides server.listen. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub(crate) fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.config.load(args.listen)?;
    // Before any thread of the runtime allocates (see bongsu_server::allocator).
    bongsu_server::allocator::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bongsu")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let data_dir = config.server.data_dir.clone();
        let mut server = Server::start(config).await?;
        let addr = server.local_addr()?;
        if let Some(token) = server.take_admin_token() {
            announce_admin_token(&token.secret);
        }
        tracing::info!(data_dir = %data_dir.display(), "listening on http://{addr}");
        let mut out = std::io::stdout().lock();
        writeln!(out, "bongsu: listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        server.serve(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

/// Shows the first-start admin token: a notice on stderr and one line on stdout.
fn announce_admin_token(secret: &str) {
    eprintln!(
        "\n================================================================\n\
         FIRST START: an admin API token was created. It is shown ONCE and\n\
         only its hash is stored. Keep it somewhere safe:\n\n    {secret}\n\n\
         Use it as `Authorization: Bearer <token>`. Lost it? Run\n\
         `bongsu token create --name admin --scope admin` on this data dir.\n\
         ================================================================\n"
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "bongsu: admin token (shown once): {secret}");
    let _ = out.flush();
}
