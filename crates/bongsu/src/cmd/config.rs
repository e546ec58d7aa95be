//! `bongsu config check|default`

use std::path::PathBuf;

use bongsu_server::Config;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a configuration file (the file alone, without BONGSU_* variables): prints OK or
    /// the error and exits non-zero on error.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print a fully commented configuration file with every key at its default.
    Default,
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check { file } => {
            Config::load(Some(&file), std::iter::empty())?;
            println!("OK: {}", file.display());
            Ok(())
        }
        ConfigCommand::Default => {
            print!("{}", Config::default_toml());
            Ok(())
        }
    }
}
