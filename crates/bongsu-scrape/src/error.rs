//! Errors of the scraper: configuration problems (refused at load) and sink failures.

use std::path::PathBuf;

/// Why a scrape configuration could not be loaded, or a scrape could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read scrape config {path}: {source}: check scrape.config_file")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid scrape config{}: {message}", location(.path))]
    Config {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("cannot append a scrape to the metrics topic: {0}")]
    Sink(String),
}

fn location(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::Config {
            path: None,
            message: message.into(),
        }
    }

    /// A sink failure with a message for the log.
    pub fn sink(message: impl std::fmt::Display) -> Error {
        Error::Sink(message.to_string())
    }

    pub(crate) fn with_path(self, path: &std::path::Path) -> Error {
        match self {
            Error::Config {
                path: None,
                message,
            } => Error::Config {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        }
    }
}

/// Result of the scraper's fallible operations.
pub type Result<T> = std::result::Result<T, Error>;
