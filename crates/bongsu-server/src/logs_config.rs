//! `[logs]`: the log store fed from the `logs` topic, its limits and its query defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration_text;
use crate::{Error, Result};

/// `[logs]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsSettings {
    /// Delete stored logs older than this; `0s` keeps them forever.
    #[serde(with = "duration_text")]
    pub retention: Duration,
    /// Delete the oldest stored logs while the store is larger than this; -1 = no size limit.
    pub retention_bytes: i64,
    /// How far behind its stream's newest entry an entry may be and still be stored.
    #[serde(with = "duration_text")]
    pub out_of_order_window: Duration,
    /// Most streams (distinct stream label sets); pushes creating more are refused with 400.
    pub max_streams: usize,
    /// Most labels in one stream's label set; more is refused with 400.
    pub max_labels_per_stream: usize,
    /// Longest stream label name or value, in bytes; longer is refused with 400.
    pub max_label_bytes: usize,
    /// Write stored lines to a segment (and advance the replay checkpoint) at least this often.
    #[serde(with = "duration_text")]
    pub flush_interval: Duration,
    /// How often the store cuts chunks, writes segments when due and applies retention.
    #[serde(with = "duration_text")]
    pub maintain_interval: Duration,
    /// Entries a log query returns when it gives no `limit`.
    pub default_limit: usize,
    /// The largest `limit` a log query may ask for.
    pub max_entries_limit: usize,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_bytes: -1,
            out_of_order_window: Duration::from_secs(3600),
            max_streams: 10_000,
            max_labels_per_stream: 15,
            max_label_bytes: 1024,
            flush_interval: Duration::from_secs(60),
            maintain_interval: Duration::from_secs(1),
            default_limit: 100,
            max_entries_limit: 5000,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::ConfigValue {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl LogsSettings {
    /// Checks ranges.
    pub(crate) fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("logs.max_streams", self.max_streams),
            ("logs.max_labels_per_stream", self.max_labels_per_stream),
            ("logs.max_label_bytes", self.max_label_bytes),
            ("logs.default_limit", self.default_limit),
            ("logs.max_entries_limit", self.max_entries_limit),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.default_limit > self.max_entries_limit {
            return Err(invalid(
                "logs.default_limit",
                format!(
                    "{} is above logs.max_entries_limit ({}): lower it or raise max_entries_limit",
                    self.default_limit, self.max_entries_limit
                ),
            ));
        }
        if self.retention_bytes < -1 || self.retention_bytes == 0 {
            return Err(invalid(
                "logs.retention_bytes",
                format!(
                    "{} is invalid: use a positive number of bytes or -1 for unlimited",
                    self.retention_bytes
                ),
            ));
        }
        for (key, d) in [
            ("logs.flush_interval", self.flush_interval),
            ("logs.maintain_interval", self.maintain_interval),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be positive, e.g. \"1s\""));
            }
        }
        Ok(())
    }

    /// The log store's settings; `max_line_bytes` comes from `ingest.max_line_bytes`.
    pub fn store_config(&self, max_line_bytes: usize) -> bongsu_logstore::Config {
        bongsu_logstore::Config {
            max_streams: self.max_streams,
            max_labels_per_stream: self.max_labels_per_stream,
            max_label_bytes: self.max_label_bytes,
            max_line_bytes,
            out_of_order_window_ns: nanos(self.out_of_order_window),
            flush_interval_ns: nanos(self.flush_interval),
            retention_ns: (!self.retention.is_zero()).then(|| nanos(self.retention)),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            default_limit: self.default_limit,
            // The server compacts in its maintenance task (plan and install under the lock,
            // the heavy merge without it), not inside `maintain`.
            compaction: false,
            ..bongsu_logstore::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_map_to_the_store_config() {
        let s = LogsSettings::default();
        let c = s.store_config(4096);
        assert_eq!(c.max_line_bytes, 4096);
        assert_eq!(c.retention_ns, Some(7 * 24 * 3600 * 1_000_000_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.out_of_order_window_ns, 3600 * 1_000_000_000);
        let s = LogsSettings {
            retention: Duration::ZERO,
            retention_bytes: 1 << 30,
            ..LogsSettings::default()
        };
        let c = s.store_config(1);
        assert_eq!(c.retention_ns, None);
        assert_eq!(c.retention_bytes, Some(1 << 30));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let s = LogsSettings {
            max_streams: 0,
            ..LogsSettings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("logs.max_streams"));
        let s = LogsSettings {
            default_limit: 10_000,
            ..LogsSettings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("logs.default_limit"));
        let s = LogsSettings {
            retention_bytes: 0,
            ..LogsSettings::default()
        };
        assert!(s.validate().is_err());
        assert!(LogsSettings::default().validate().is_ok());
    }
}
