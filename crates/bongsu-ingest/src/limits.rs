/// Bounds every decoder applies to untrusted input. Field names are the configuration keys
/// (`ingest.<field>`); defaults are documented in `docs/ingest.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted as sent (compressed). Default 10 MiB.
    pub max_body_bytes: usize,
    /// Largest body after decompression (snappy, gzip). Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Most labels in one series or stream. Default 64.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes. Default 1024.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes. Default 4096.
    pub max_label_value_bytes: usize,
    /// Most samples in one remote_write request or one scrape. Default 1,000,000.
    pub max_samples_per_request: usize,
    /// Most streams in one Loki push request. Default 10,000.
    pub max_streams_per_request: usize,
    /// Most log entries in one Loki push request. Default 1,000,000.
    pub max_entries_per_request: usize,
    /// Longest log line (Loki push entry, syslog message), in bytes. Default 256 KiB.
    pub max_line_bytes: usize,
    /// Longest line of a scraped exposition, in bytes. Default 64 KiB.
    pub max_exposition_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 << 20,
            max_decompressed_bytes: 64 << 20,
            max_labels_per_series: 64,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
            max_samples_per_request: 1_000_000,
            max_streams_per_request: 10_000,
            max_entries_per_request: 1_000_000,
            max_line_bytes: 256 << 10,
            max_exposition_line_bytes: 64 << 10,
        }
    }
}

pub(crate) const KEY_BODY: &str = "ingest.max_body_bytes";
pub(crate) const KEY_DECOMPRESSED: &str = "ingest.max_decompressed_bytes";
pub(crate) const KEY_LABELS: &str = "ingest.max_labels_per_series";
pub(crate) const KEY_LABEL_NAME: &str = "ingest.max_label_name_bytes";
pub(crate) const KEY_LABEL_VALUE: &str = "ingest.max_label_value_bytes";
pub(crate) const KEY_SAMPLES: &str = "ingest.max_samples_per_request";
pub(crate) const KEY_STREAMS: &str = "ingest.max_streams_per_request";
pub(crate) const KEY_ENTRIES: &str = "ingest.max_entries_per_request";
pub(crate) const KEY_LINE: &str = "ingest.max_line_bytes";
pub(crate) const KEY_EXPO_LINE: &str = "ingest.max_exposition_line_bytes";
