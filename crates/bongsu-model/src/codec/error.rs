/// Why a record payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record too short: expected {expected} more bytes at offset {offset}, found {found}; the record is truncated or not a bongsu record")]
    Truncated {
        offset: usize,
        expected: usize,
        found: usize,
    },
    #[error("bad record magic {found:02x?}, expected {expected:02x?}: this record belongs to another topic or format")]
    BadMagic { expected: [u8; 4], found: [u8; 4] },
    #[error("unsupported record version {found} (this build reads version {supported}): upgrade bongsu to read it")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("malformed varint at offset {offset}: the record is corrupt")]
    BadVarint { offset: usize },
    #[error("{what} count {count} at offset {offset} exceeds what the remaining {remaining} bytes can hold: the record is corrupt")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        offset: usize,
        remaining: usize,
    },
    #[error("symbol reference {index} out of range (table holds {len}): the record is corrupt")]
    BadSymbol { index: u64, len: usize },
    #[error("invalid UTF-8 in {what} at offset {offset}: the record is corrupt")]
    InvalidUtf8 { what: &'static str, offset: usize },
    #[error("invalid label set in series or stream {index}: {reason}")]
    InvalidLabels { index: usize, reason: String },
    #[error("unknown metric kind {0}: the record was written by a newer bongsu")]
    UnknownMetricKind(u8),
    #[error("{0} trailing bytes after the record: the record is corrupt")]
    TrailingBytes(usize),
    #[error("decoded record would expand to more than {limit} bytes of strings: raise the decode limit if this record is legitimate")]
    ExpansionLimit { limit: usize },
}

/// Result of decoding a record payload.
pub type RecordResult<T> = std::result::Result<T, RecordError>;
