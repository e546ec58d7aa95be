/// Errors from parsing, planning or evaluating a PromQL query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text is not valid PromQL.
    #[error("parse error: {0}")]
    Parse(String),
    /// The query is valid PromQL but cannot be evaluated (wrong argument, bad label, ...).
    #[error("{0}")]
    Eval(String),
    /// Too many samples would be loaded into memory.
    #[error(
        "query processing would load too many samples into memory ({loaded} samples, limit {limit}): narrow the selectors or the time range, or raise the max samples limit"
    )]
    TooManySamples { loaded: usize, limit: usize },
    /// Too many series were selected.
    #[error(
        "query selects too many series ({selected}, limit {limit}): add label matchers or raise the max series limit"
    )]
    TooManySeries { selected: usize, limit: usize },
    /// The query ran past its deadline.
    #[error("query timed out after {0:?}: narrow the query or raise the query timeout")]
    Timeout(std::time::Duration),
    /// The storage failed to answer a select.
    #[error("storage error: {0}")]
    Storage(String),
    /// A label set could not be built.
    #[error("invalid label set: {0}")]
    Labels(#[from] bongsu_model::Error),
    /// The range query parameters are not usable.
    #[error("invalid query range: {0}")]
    Range(String),
}

pub type Result<T> = std::result::Result<T, Error>;
