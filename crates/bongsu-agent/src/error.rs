use std::path::PathBuf;

/// Errors from the agent's collectors, tailer, checks and configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}: check that it exists and the agent may read it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}: check free space and permissions of its directory")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed {what} in {path}: {detail}")]
    Parse {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("checkpoint file {path} is corrupt ({detail}): delete it to re-read logs from the configured start")]
    Checkpoint { path: PathBuf, detail: String },
    #[error("invalid regex {pattern:?} in {field}: {source}")]
    Regex {
        field: &'static str,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("cannot parse agent configuration: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("cannot run {program}: {source}")]
    Command {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid label set: {0}")]
    Labels(#[from] bongsu_model::Error),
    #[error("cannot build the http client: {0}")]
    Http(String),
    #[error("malformed agent batch: {0}")]
    Batch(String),
    #[error("agent queue {path} is corrupt ({detail}): move it away to start with an empty queue")]
    Queue { path: PathBuf, detail: String },
    #[error("cannot ship to the server: {0}")]
    Ship(String),
    #[error("the {call} system call failed: {source}: disable the {collector} collector with collectors.disabled if the host forbids it")]
    Syscall {
        call: &'static str,
        collector: &'static str,
        source: std::io::Error,
    },
    #[error("malformed exposition text at line {line}: {detail}")]
    Exposition { line: usize, detail: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(
        what: &'static str,
        path: impl Into<PathBuf>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Parse {
            what,
            path: path.into(),
            detail: detail.into(),
        }
    }
}
