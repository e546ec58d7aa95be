/// Errors from building model values out of untrusted input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("duplicate label name {0:?}: a label set holds each name once")]
    DuplicateLabel(String),
    #[error("empty label name: every label needs a name")]
    EmptyLabelName,
}

pub type Result<T> = std::result::Result<T, Error>;
