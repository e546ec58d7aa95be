//! The `bongsu` command: parses arguments and calls into the libraries.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// bongsu: self-hosted monitoring and log management in one binary.
#[derive(Debug, Parser)]
#[command(name = "bongsu", version)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
