//! bongsu's configuration: TOML file, `BONGSU_*` environment overrides, validation.
//!
//! Precedence, lowest first: built-in defaults < the file < environment < command-line flags.
//! Every key is documented in `docs/configuration.md`; a test keeps that file, the commented
//! default config ([`Config::default_toml`]) and these structs in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The prefix of environment overrides: `BONGSU_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "BONGSU_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: listener, data directory, shutdown.
    pub server: ServerConfig,
    /// `[auth]`: API token checks.
    pub auth: AuthConfig,
    /// `[stream]`: the embedded log's defaults.
    pub stream: StreamSettings,
    /// `[ingest]`: receiver limits and saturation.
    pub ingest: IngestSettings,
    /// `[logs]`: the log store and the Loki query API.
    pub logs: crate::logs_config::LogsSettings,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listen address, `IP:PORT`. Port 0 picks a free port.
    pub listen: String,
    /// Where bongsu keeps its data (state database, stream segments).
    pub data_dir: PathBuf,
    /// How long graceful shutdown may take: in-flight requests get this long to finish, then
    /// the shutdown hooks get this long again.
    #[serde(with = "duration_text")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9700".to_owned(),
            data_dir: PathBuf::from("./data"),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// Where the embedded stream keeps its topics: `<data_dir>/stream`.
    pub fn stream_dir(&self) -> PathBuf {
        self.data_dir.join("stream")
    }

    /// The parsed listen address (validated by [`Config::validate`]).
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|_| Error::ConfigValue {
            key: "server.listen".to_owned(),
            message: format!(
                "{:?} is not an IP:PORT address: write e.g. \"127.0.0.1:9700\" or \"[::1]:9700\"",
                self.listen
            ),
        })
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Serve `/metrics` without a token.
    pub metrics_anonymous: bool,
    /// How long a verified token is trusted without asking the state database again. Tokens
    /// revoked through the HTTP API stop working at once; tokens revoked with the command-line
    /// tool stop working within this time.
    #[serde(with = "duration_text")]
    pub token_cache_ttl: Duration,
}

/// The longest allowed `auth.token_cache_ttl`.
pub const MAX_TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            metrics_anonymous: false,
            token_cache_ttl: Duration::from_secs(2),
        }
    }
}

/// Compression codec for stream batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (default): best ratio at good speed.
    Zstd,
    /// lz4: fastest, lower ratio.
    Lz4,
    /// No compression.
    None,
}

/// `[stream]`: defaults of the embedded log, with Kafka's meanings (`segment.bytes` is
/// `segment_bytes` and so on). Plain values; the stream crate maps them to its own types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSettings {
    /// Partitions of a new topic; 0 means the number of CPU cores.
    pub default_partitions: u32,
    /// A segment file is rolled when it reaches this size.
    pub segment_bytes: u64,
    /// A segment is rolled when its first record is this old, even if not full.
    pub segment_ms: u64,
    /// Segments whose newest record is older than this are deleted; -1 keeps them forever.
    pub retention_ms: i64,
    /// Oldest segments of a partition are deleted while it is bigger than this; -1 = no limit.
    pub retention_bytes: i64,
    /// fsync after this many messages (1 = every append is durable before it is acknowledged).
    pub flush_messages: u64,
    /// fsync at least this often, in milliseconds; 0 leaves it to `flush_messages` alone.
    pub flush_ms: u64,
    /// Batch compression.
    pub compression: Compression,
    /// The largest record batch accepted.
    pub max_message_bytes: u32,
    /// How often retention is enforced.
    pub retention_check_interval_ms: u64,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            default_partitions: 0,
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS as i64,
            retention_bytes: -1,
            flush_messages: 1,
            flush_ms: 0,
            compression: Compression::Zstd,
            max_message_bytes: 1 << 20,
            retention_check_interval_ms: 5 * 60 * 1000,
        }
    }
}

impl StreamSettings {
    /// `default_partitions`, with 0 resolved to the number of CPU cores.
    pub fn effective_partitions(&self) -> u32 {
        if self.default_partitions > 0 {
            return self.default_partitions;
        }
        std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1)
    }
}

/// `[ingest]`: the limits every receiver applies (the fields of `bongsu_ingest::Limits`, same
/// names) and how many appends each receiver may have in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Largest request body as sent (compressed).
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Most labels in one series or stream.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// Most samples in one remote_write request.
    pub max_samples_per_request: usize,
    /// Most streams in one Loki push request.
    pub max_streams_per_request: usize,
    /// Most log entries in one Loki push request.
    pub max_entries_per_request: usize,
    /// Longest log line, in bytes.
    pub max_line_bytes: usize,
    /// Longest line of a scraped exposition, in bytes.
    pub max_exposition_line_bytes: usize,
    /// Requests each receiver decodes and appends at once; more are answered 429.
    pub max_inflight_requests: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        let l = bongsu_ingest::Limits::default();
        IngestSettings {
            max_body_bytes: l.max_body_bytes,
            max_decompressed_bytes: l.max_decompressed_bytes,
            max_labels_per_series: l.max_labels_per_series,
            max_label_name_bytes: l.max_label_name_bytes,
            max_label_value_bytes: l.max_label_value_bytes,
            max_samples_per_request: l.max_samples_per_request,
            max_streams_per_request: l.max_streams_per_request,
            max_entries_per_request: l.max_entries_per_request,
            max_line_bytes: l.max_line_bytes,
            max_exposition_line_bytes: l.max_exposition_line_bytes,
            max_inflight_requests: 64,
        }
    }
}

impl IngestSettings {
    /// The decoders' limits.
    pub fn limits(&self) -> bongsu_ingest::Limits {
        bongsu_ingest::Limits {
            max_body_bytes: self.max_body_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_bytes: self.max_label_name_bytes,
            max_label_value_bytes: self.max_label_value_bytes,
            max_samples_per_request: self.max_samples_per_request,
            max_streams_per_request: self.max_streams_per_request,
            max_entries_per_request: self.max_entries_per_request,
            max_line_bytes: self.max_line_bytes,
            max_exposition_line_bytes: self.max_exposition_line_bytes,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::ConfigValue {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// Reads the configuration: defaults, then `file` if given, then the `BONGSU_*` variables
    /// among `env`; the result is validated.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Config>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_toml_and_env(&text, env)
    }

    /// Parses and validates TOML text alone (no environment).
    pub fn from_toml(text: &str) -> Result<Config> {
        Config::from_toml_and_env(text, std::iter::empty())
    }

    /// Parses TOML text, applies `BONGSU_*` variables from `env`, validates.
    pub fn from_toml_and_env<I>(text: &str, env: I) -> Result<Config>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::ConfigSyntax(e.to_string()))?;
        apply_env(&mut table, env)?;
        let config = from_table(table)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies command-line flags (the highest precedence) and validates again.
    pub fn with_flags(
        mut self,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
    ) -> Result<Config> {
        if let Some(listen) = listen {
            self.server.listen = listen;
        }
        if let Some(dir) = data_dir {
            self.server.data_dir = dir;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<()> {
        self.server.listen_addr()?;
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(invalid(
                "server.data_dir",
                "is empty: give a directory, e.g. \"./data\"",
            ));
        }
        if self.server.shutdown_timeout.is_zero() {
            return Err(invalid(
                "server.shutdown_timeout",
                "must be positive, e.g. \"30s\"",
            ));
        }
        if self.auth.token_cache_ttl > MAX_TOKEN_CACHE_TTL {
            return Err(invalid(
                "auth.token_cache_ttl",
                format!(
                    "{} is longer than the limit of {}: revocations must take effect quickly",
                    duration_text::format(self.auth.token_cache_ttl),
                    duration_text::format(MAX_TOKEN_CACHE_TTL)
                ),
            ));
        }
        let s = &self.stream;
        if s.max_message_bytes == 0 {
            return Err(invalid("stream.max_message_bytes", "must be at least 1"));
        }
        if s.segment_bytes < u64::from(s.max_message_bytes) {
            return Err(invalid(
                "stream.segment_bytes",
                format!(
                    "{} is smaller than stream.max_message_bytes ({}): a segment must hold the \
                     largest message; raise segment_bytes or lower max_message_bytes",
                    s.segment_bytes, s.max_message_bytes
                ),
            ));
        }
        if s.segment_ms == 0 {
            return Err(invalid("stream.segment_ms", "must be at least 1"));
        }
        if s.retention_ms < -1 || s.retention_ms == 0 {
            return Err(invalid(
                "stream.retention_ms",
                format!(
                    "{} is invalid: use a positive number of milliseconds or -1 for unlimited",
                    s.retention_ms
                ),
            ));
        }
        if s.retention_bytes < -1 || s.retention_bytes == 0 {
            return Err(invalid(
                "stream.retention_bytes",
                format!(
                    "{} is invalid: use a positive number of bytes or -1 for unlimited",
                    s.retention_bytes
                ),
            ));
        }
        if s.flush_messages == 0 {
            return Err(invalid(
                "stream.flush_messages",
                "must be at least 1 (1 = fsync every append)",
            ));
        }
        if s.retention_check_interval_ms == 0 {
            return Err(invalid(
                "stream.retention_check_interval_ms",
                "must be at least 1",
            ));
        }
        let i = &self.ingest;
        for (key, value) in [
            ("ingest.max_body_bytes", i.max_body_bytes),
            ("ingest.max_decompressed_bytes", i.max_decompressed_bytes),
            ("ingest.max_labels_per_series", i.max_labels_per_series),
            ("ingest.max_label_name_bytes", i.max_label_name_bytes),
            ("ingest.max_label_value_bytes", i.max_label_value_bytes),
            ("ingest.max_samples_per_request", i.max_samples_per_request),
            ("ingest.max_streams_per_request", i.max_streams_per_request),
            ("ingest.max_entries_per_request", i.max_entries_per_request),
            ("ingest.max_line_bytes", i.max_line_bytes),
            (
                "ingest.max_exposition_line_bytes",
                i.max_exposition_line_bytes,
            ),
            ("ingest.max_inflight_requests", i.max_inflight_requests),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        self.logs.validate()?;
        Ok(())
    }

    /// A fully commented configuration file holding every key at its default.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// The configuration as TOML (e.g. to show what is in effect).
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

const DEFAULT_TOML: &str = r#"# bongsu configuration. Every key is shown at its default; delete what you do not change.
# Environment variables override this file: BONGSU_<SECTION>_<KEY>, e.g.
# BONGSU_SERVER_LISTEN="0.0.0.0:9700". Command-line flags override both.
# Durations are written like "500ms", "30s", "5m", "1h".

[server]
# HTTP listen address, IP:PORT. Port 0 picks a free port (the chosen one is logged).
listen = "127.0.0.1:9700"
# Where bongsu keeps its data: state.db (tokens) and the stream's segments.
data_dir = "./data"
# Graceful shutdown: in-flight requests get this long, then shutdown hooks get this long again.
shutdown_timeout = "30s"

[auth]
# Serve /metrics without a token (for scrapers that cannot send one).
metrics_anonymous = false
# How long a verified token is trusted before the state database is asked again. Tokens revoked
# over the HTTP API stop at once; tokens revoked with `bongsu token revoke` within this time.
# At most "10s".
token_cache_ttl = "2s"

[stream]
# Partitions of a new topic; 0 = the number of CPU cores.
default_partitions = 0
# Roll a segment file when it reaches this size (1 GiB).
segment_bytes = 1073741824
# Roll a segment when its first record is this old (7 days).
segment_ms = 604800000
# Delete segments whose newest record is older than this (7 days); -1 = keep forever.
retention_ms = 604800000
# Delete a partition's oldest segments while it is larger than this; -1 = no size limit.
retention_bytes = -1
# fsync after this many messages; 1 = every append is durable before it is acknowledged.
flush_messages = 1
# fsync at least this often (ms); 0 = only by flush_messages.
flush_ms = 0
# Batch compression: "zstd", "lz4" or "none".
compression = "zstd"
# The largest record batch accepted (1 MiB).
max_message_bytes = 1048576
# How often retention is enforced (5 minutes).
retention_check_interval_ms = 300000

[ingest]
# Largest request body as sent, compressed (10 MiB); larger bodies get 413.
max_body_bytes = 10485760
# Largest body after snappy or gzip decompression (64 MiB).
max_decompressed_bytes = 67108864
# Most labels in one series or log stream.
max_labels_per_series = 64
# Longest label name and label value, in bytes.
max_label_name_bytes = 1024
max_label_value_bytes = 4096
# Most samples in one remote_write request.
max_samples_per_request = 1000000
# Most streams and log entries in one Loki push request.
max_streams_per_request = 10000
max_entries_per_request = 1000000
# Longest log line, in bytes (256 KiB).
max_line_bytes = 262144
# Longest line of a scraped exposition, in bytes (64 KiB).
max_exposition_line_bytes = 65536
# Requests each receiver (remote_write, Loki push) handles at once; more get 429 + Retry-After.
max_inflight_requests = 64

[logs]
# Delete stored logs older than this (7 days); "0s" keeps them forever.
retention = "168h"
# Delete the oldest stored logs while the store is larger than this; -1 = no size limit.
retention_bytes = -1
# How far behind its stream's newest entry an entry may be and still be stored.
out_of_order_window = "1h"
# Most streams (distinct stream label sets); a push creating more gets 400.
max_streams = 10000
# Most labels per stream, and the longest stream label name or value in bytes; more gets 400.
max_labels_per_stream = 15
max_label_bytes = 1024
# Write stored lines to a segment at least this often (replay after a crash starts there).
flush_interval = "60s"
# How often the store cuts chunks, writes due segments and applies retention.
maintain_interval = "1s"
# Entries a log query returns without a limit, and the largest limit allowed.
default_limit = 100
max_entries_limit = 5000
"#;

/// The sections and their default values, used to find env variables and their types.
fn default_table() -> toml::Table {
    match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

fn apply_env<I>(table: &mut toml::Table, env: I) -> Result<()>
where
    I: IntoIterator<Item = (String, String)>,
{
    let defaults = default_table();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, keys)) = defaults.iter().find_map(|(section, keys)| {
            let upper = section.to_ascii_uppercase();
            let rest = rest.strip_prefix(&upper)?.strip_prefix('_')?;
            Some((section.clone(), (rest.to_owned(), keys)))
        }) else {
            // Not a configuration variable (e.g. BONGSU_LOG).
            continue;
        };
        let (key_upper, keys) = keys;
        let Some((key, default)) = keys.as_table().and_then(|t| {
            t.iter()
                .find(|(k, _)| k.to_ascii_uppercase() == key_upper)
                .map(|(k, v)| (k.clone(), v.clone()))
        }) else {
            return Err(Error::ConfigEnv {
                var,
                message: format!(
                    "no key {:?} in section [{section}]: see docs/configuration.md for the keys",
                    key_upper.to_ascii_lowercase()
                ),
            });
        };
        let value = env_value(&raw, &default).map_err(|message| Error::ConfigEnv {
            var: var.clone(),
            message,
        })?;
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, value);
            }
            _ => {
                return Err(Error::ConfigSection {
                    section,
                    message: "must be a table".to_owned(),
                })
            }
        }
    }
    Ok(())
}

/// Converts an environment string to a TOML value of the same type as the key's default.
fn env_value(raw: &str, default: &toml::Value) -> std::result::Result<toml::Value, String> {
    match default {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

fn from_table(table: toml::Table) -> Result<Config> {
    let mut config = Config::default();
    for (section, value) in table {
        match section.as_str() {
            "server" => config.server = section_from(&section, value)?,
            "auth" => config.auth = section_from(&section, value)?,
            "stream" => config.stream = section_from(&section, value)?,
            "ingest" => config.ingest = section_from(&section, value)?,
            "logs" => config.logs = section_from(&section, value)?,
            _ => return Err(Error::ConfigUnknownSection(section)),
        }
    }
    Ok(config)
}

/// Deserializes one section. On a type error, finds the key at fault (every key has a
/// default, so each key can be tried alone) and names it.
fn section_from<T: serde::de::DeserializeOwned>(section: &str, value: toml::Value) -> Result<T> {
    let err = match value.clone().try_into::<T>() {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut message = err.message().trim().to_owned();
    if let toml::Value::Table(keys) = value {
        if !message.starts_with("unknown field") {
            let culprit = keys.into_iter().find(|(k, v)| {
                let mut alone = toml::Table::new();
                alone.insert(k.clone(), v.clone());
                toml::Value::Table(alone).try_into::<T>().is_err()
            });
            if let Some((key, _)) = culprit {
                message = format!("key `{key}`: {message}");
            }
        }
    }
    Err(Error::ConfigSection {
        section: section.to_owned(),
        message,
    })
}

/// Durations as text: an unsigned integer and a unit (`ms`, `s`, `m`, `h`), e.g. `"30s"`.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let help = || {
            format!("invalid duration {s:?}: write a whole number and a unit, e.g. \"500ms\", \"30s\", \"5m\", \"1h\"")
        };
        let n: u64 = num.parse().map_err(|_| help())?;
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(help()),
        };
        n.checked_mul(ms_per)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }

    pub(crate) fn format(d: Duration) -> String {
        let ms = d.as_millis();
        for (unit, per) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1000)] {
            if ms >= per && ms.checked_rem(per) == Some(0) {
                return format!("{}{unit}", ms / per);
            }
        }
        if ms == 0 {
            "0s".to_owned()
        } else {
            format!("{ms}ms")
        }
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen, "127.0.0.1:9700");
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(30));
        assert!(!c.auth.metrics_anonymous);
        assert_eq!(c.stream.default_partitions, 0);
        assert_eq!(c.stream.segment_bytes, 1_073_741_824);
        assert_eq!(c.stream.segment_ms, 604_800_000);
        assert_eq!(c.stream.retention_ms, 604_800_000);
        assert_eq!(c.stream.retention_bytes, -1);
        assert_eq!(c.stream.flush_messages, 1);
        assert_eq!(c.stream.flush_ms, 0);
        assert_eq!(c.stream.compression, Compression::Zstd);
        assert_eq!(c.stream.max_message_bytes, 1_048_576);
        assert_eq!(c.stream.retention_check_interval_ms, 300_000);
        assert!(c.stream.effective_partitions() >= 1);
    }

    #[test]
    fn the_commented_default_file_parses_to_the_defaults() {
        assert_eq!(
            Config::from_toml(Config::default_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_key_is_in_the_default_file_and_the_reference_doc() {
        let doc = include_str!("../../../docs/configuration.md");
        for (section, keys) in default_table() {
            assert!(
                Config::default_toml().contains(&format!("[{section}]")),
                "[{section}] missing from the default file"
            );
            for (key, _) in keys.as_table().unwrap() {
                let line = format!("\n{key} = ");
                assert!(
                    Config::default_toml().contains(&line),
                    "{section}.{key} missing from the default file"
                );
                assert!(
                    doc.contains(&format!("`{section}.{key}`")),
                    "{section}.{key} missing from docs/configuration.md"
                );
                let var = format!("BONGSU_{}_{}", section.to_uppercase(), key.to_uppercase());
                assert!(
                    doc.contains(&var),
                    "{var} missing from docs/configuration.md"
                );
            }
        }
    }

    #[test]
    fn a_file_overrides_defaults() {
        let c = Config::from_toml(
            "[server]\nlisten = \"0.0.0.0:1234\"\nshutdown_timeout = \"500ms\"\n\
             [stream]\ncompression = \"lz4\"\ndefault_partitions = 3\n",
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:1234");
        assert_eq!(c.server.shutdown_timeout, Duration::from_millis(500));
        assert_eq!(c.stream.compression, Compression::Lz4);
        assert_eq!(c.stream.effective_partitions(), 3);
        // Untouched keys keep their defaults.
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert_eq!(c.stream.segment_bytes, 1 << 30);
    }

    #[test]
    fn unknown_key_error_names_the_key_and_its_section() {
        let err = Config::from_toml("[stream]\nsegment_byte = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("[stream]"), "{msg}");
        assert!(msg.contains("`segment_byte`"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");

        let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nport = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("[server]") && msg.contains("`port`"), "{msg}");

        let err = Config::from_toml("[serve]\nlisten = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`serve`"), "{msg}");
        assert!(
            msg.contains("[server], [auth], [stream], [ingest] and [logs]"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_types_and_syntax_are_explained() {
        let msg = Config::from_toml("[stream]\nsegment_bytes = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("[stream]") && msg.contains("invalid type"),
            "{msg}"
        );
        let msg = Config::from_toml("[stream]\ncompression = \"gzip\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("gzip") && msg.contains("zstd"), "{msg}");
        let msg = Config::from_toml("[server\n").unwrap_err().to_string();
        assert!(msg.starts_with("config is not valid TOML"), "{msg}");
        let msg = Config::from_toml("[server]\nshutdown_timeout = \"10 minutes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("invalid duration") && msg.contains("\"30s\""),
            "{msg}"
        );
    }

    #[test]
    fn invalid_values_are_rejected_with_the_key_named() {
        let cases = [
            ("[server]\nlisten = \"localhost\"\n", "server.listen"),
            ("[server]\ndata_dir = \"\"\n", "server.data_dir"),
            (
                "[server]\nshutdown_timeout = \"0s\"\n",
                "server.shutdown_timeout",
            ),
            ("[auth]\ntoken_cache_ttl = \"1h\"\n", "auth.token_cache_ttl"),
            ("[stream]\nflush_messages = 0\n", "stream.flush_messages"),
            ("[stream]\nretention_ms = -2\n", "stream.retention_ms"),
            ("[stream]\nretention_bytes = 0\n", "stream.retention_bytes"),
            (
                "[stream]\nmax_message_bytes = 0\n",
                "stream.max_message_bytes",
            ),
            ("[stream]\nsegment_bytes = 1000\n", "stream.segment_bytes"),
            ("[stream]\nsegment_ms = 0\n", "stream.segment_ms"),
            (
                "[stream]\nretention_check_interval_ms = 0\n",
                "stream.retention_check_interval_ms",
            ),
        ];
        for (text, key) in cases {
            let msg = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("config {key}: ")),
                "{text:?}: {msg}"
            );
        }
        let msg = Config::from_toml("[stream]\ndefault_partitions = -1\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[stream]"), "{msg}");
    }

    #[test]
    fn precedence_is_defaults_then_file_then_env_then_flags() {
        let file = "[server]\nlisten = \"127.0.0.1:1111\"\ndata_dir = \"/file\"\n\
                    [stream]\nsegment_bytes = 2000000\n";
        let from_file = Config::from_toml(file).unwrap();
        assert_eq!(from_file.server.listen, "127.0.0.1:1111");

        let e = env(&[
            ("BONGSU_SERVER_LISTEN", "127.0.0.1:2222"),
            ("BONGSU_STREAM_SEGMENT_BYTES", "3000000"),
            ("BONGSU_AUTH_METRICS_ANONYMOUS", "true"),
            ("BONGSU_STREAM_COMPRESSION", "none"),
            ("BONGSU_LOG", "debug"),
            ("PATH", "/bin"),
        ]);
        let c = Config::from_toml_and_env(file, e).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:2222");
        assert_eq!(c.server.data_dir, PathBuf::from("/file"));
        assert_eq!(c.stream.segment_bytes, 3_000_000);
        assert!(c.auth.metrics_anonymous);
        assert_eq!(c.stream.compression, Compression::None);

        let c = c
            .with_flags(Some("127.0.0.1:3333".into()), Some("/flag".into()))
            .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3333");
        assert_eq!(c.server.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.stream.segment_bytes, 3_000_000);

        // Env also applies to sections the file does not have.
        let c = Config::from_toml_and_env("", env(&[("BONGSU_SERVER_DATA_DIR", "/env")])).unwrap();
        assert_eq!(c.server.data_dir, PathBuf::from("/env"));
    }

    #[test]
    fn bad_env_variables_are_named() {
        let msg = Config::from_toml_and_env("", env(&[("BONGSU_STREAM_SEGMENT_BYTES", "1GiB")]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BONGSU_STREAM_SEGMENT_BYTES") && msg.contains("integer"),
            "{msg}"
        );
        let msg = Config::from_toml_and_env("", env(&[("BONGSU_SERVER_PORT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BONGSU_SERVER_PORT") && msg.contains("[server]"),
            "{msg}"
        );
        let msg = Config::from_toml_and_env("", env(&[("BONGSU_AUTH_METRICS_ANONYMOUS", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("true or false"), "{msg}");
        // Validation runs after env is applied.
        let msg = Config::from_toml_and_env("", env(&[("BONGSU_STREAM_FLUSH_MESSAGES", "0")]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("stream.flush_messages"), "{msg}");
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bongsu.toml");
        std::fs::write(&path, "[auth]\nmetrics_anonymous = true\n").unwrap();
        assert!(
            Config::load(Some(&path), Vec::new())
                .unwrap()
                .auth
                .metrics_anonymous
        );
        let missing = dir.path().join("nope.toml");
        let msg = Config::load(Some(&missing), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope.toml"), "{msg}");
    }

    #[test]
    fn durations_round_trip() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("0s", 0),
        ] {
            let d = duration_text::parse(text).unwrap();
            assert_eq!(d.as_millis(), ms);
            assert_eq!(duration_text::parse(&duration_text::format(d)).unwrap(), d);
        }
        for bad in ["", "s", "5", "5 s", "-1s", "1.5s", "5d"] {
            assert!(duration_text::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn to_toml_round_trips() {
        let mut c = Config::default();
        c.stream.compression = Compression::Lz4;
        c.server.shutdown_timeout = Duration::from_millis(1500);
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    }
}
