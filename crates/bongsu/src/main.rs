//! The bongsu binary (minimal: only the `stream` subcommand lives here for now).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod cmd {
    pub(crate) mod stream;
}

#[derive(Parser)]
#[command(
    name = "bongsu",
    version,
    about = "self-hosted monitoring and log management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the embedded stream (topics, produce, consume, groups).
    Stream {
        /// Data directory of the embedded stream.
        #[arg(long, env = "BONGSU_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[command(subcommand)]
        cmd: cmd::stream::StreamCommand,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Stream { data_dir, cmd } => cmd::stream::run(cmd, &data_dir),
    }
}
