use crate::Label;

/// One log line of a stream. The stream's own labels travel beside it (see `Labels`);
/// `structured_metadata` carries high-cardinality values that must not become stream labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub timestamp_ns: i64,
    pub line: String,
    pub structured_metadata: Vec<Label>,
}

impl LogEntry {
    pub fn new(timestamp_ns: i64, line: impl Into<String>) -> Self {
        Self {
            timestamp_ns,
            line: line.into(),
            structured_metadata: Vec::new(),
        }
    }
}
