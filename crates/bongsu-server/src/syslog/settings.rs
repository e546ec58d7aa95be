//! `[syslog]`: where the syslog receivers listen and how they bound and batch what they read.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{duration_text, StreamSettings};
use crate::{Error, Result};

/// Bytes a batch record may need beyond the `batch_bytes` estimate's own overhead; keeps a
/// batch safely below the `logs` topic's `max.message.bytes`.
pub(crate) const RECORD_SLACK_BYTES: usize = 1024;

/// `[syslog]`. Both listeners are off by default: nothing listens unless an address is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSettings {
    /// UDP listen address, `IP:PORT` (one message per datagram); empty = off.
    pub udp_listen: String,
    /// TCP listen address, `IP:PORT` (newline or RFC 6587 octet-counted framing, detected per
    /// message); empty = off.
    pub tcp_listen: String,
    /// Longest message, in bytes: longer ones are cut to this length, stored with structured
    /// metadata `truncated="true"` and counted as `too_long`.
    pub max_line_bytes: usize,
    /// Most TCP connections open at once; more are closed at once and counted as refused.
    pub max_connections: usize,
    /// A TCP connection that sends nothing for this long is closed (after the drain below).
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// When bongsu closes a TCP connection (shutdown, idle), it half-closes it and keeps
    /// reading for up to this long, so that what the sender already wrote is stored.
    #[serde(with = "duration_text")]
    pub drain_timeout: Duration,
    /// Most messages in one `logs` record.
    pub batch_lines: usize,
    /// Largest `logs` record (estimated encoded size, bytes). Must be below the `logs` topic's
    /// `max.message.bytes` and hold at least one longest message.
    pub batch_bytes: usize,
    /// How long a partly filled batch waits for more messages before it is appended.
    #[serde(with = "duration_text")]
    pub linger: Duration,
    /// Bytes of parsed messages waiting to be appended, over all connections. When full, TCP
    /// connections stop being read (the sender is slowed down) and UDP datagrams are dropped
    /// and counted.
    pub queue_bytes: usize,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            udp_listen: String::new(),
            tcp_listen: String::new(),
            max_line_bytes: 64 << 10,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(2),
            batch_lines: 2000,
            batch_bytes: 512 << 10,
            linger: Duration::from_millis(20),
            queue_bytes: 8 << 20,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::ConfigValue {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn parse_addr(key: &str, value: &str) -> Result<Option<SocketAddr>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value.trim().parse().map(Some).map_err(|_| {
        invalid(
            key,
            format!(
                "{value:?} is not an IP:PORT address: write e.g. \"127.0.0.1:5514\", or \"\" to turn it off"
            ),
        )
    })
}

/// The smallest `batch_bytes` that holds one message of `max_line_bytes` (its line and, at
/// worst, as many bytes again of structured metadata taken from it, plus the record header).
pub(crate) fn min_batch_bytes(max_line_bytes: usize) -> usize {
    max_line_bytes
        .saturating_mul(2)
        .saturating_add(RECORD_SLACK_BYTES)
}

impl SyslogSettings {
    /// The UDP address, if the UDP receiver is on.
    pub fn udp_addr(&self) -> Result<Option<SocketAddr>> {
        parse_addr("syslog.udp_listen", &self.udp_listen)
    }

    /// The TCP address, if the TCP receiver is on.
    pub fn tcp_addr(&self) -> Result<Option<SocketAddr>> {
        parse_addr("syslog.tcp_listen", &self.tcp_listen)
    }

    /// Checks ranges and that a batch fits in a record of the `logs` topic as `stream`
    /// creates it.
    pub(crate) fn validate(&self, stream: &StreamSettings) -> Result<()> {
        self.udp_addr()?;
        self.tcp_addr()?;
        for (key, value) in [
            ("syslog.max_line_bytes", self.max_line_bytes),
            ("syslog.max_connections", self.max_connections),
            ("syslog.batch_lines", self.batch_lines),
            ("syslog.batch_bytes", self.batch_bytes),
            ("syslog.queue_bytes", self.queue_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            ("syslog.idle_timeout", self.idle_timeout),
            ("syslog.drain_timeout", self.drain_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be positive, e.g. \"2s\""));
            }
        }
        self.check_batch_bytes(stream.max_message_bytes as usize)?;
        if self.queue_bytes < self.batch_bytes || self.queue_bytes > u32::MAX as usize {
            return Err(invalid(
                "syslog.queue_bytes",
                format!(
                    "{} must be between syslog.batch_bytes ({}) and {}",
                    self.queue_bytes,
                    self.batch_bytes,
                    u32::MAX
                ),
            ));
        }
        Ok(())
    }

    /// Checks `batch_bytes` against one longest message and the `logs` topic's
    /// `max.message.bytes` (`record_limit`).
    pub(crate) fn check_batch_bytes(&self, record_limit: usize) -> Result<()> {
        let min = min_batch_bytes(self.max_line_bytes);
        if self.batch_bytes < min {
            return Err(invalid(
                "syslog.batch_bytes",
                format!(
                    "{} cannot hold one message of syslog.max_line_bytes ({}): raise it to at least {min} or lower max_line_bytes",
                    self.batch_bytes, self.max_line_bytes
                ),
            ));
        }
        if self.batch_bytes.saturating_add(RECORD_SLACK_BYTES) > record_limit {
            return Err(invalid(
                "syslog.batch_bytes",
                format!(
                    "{} plus {RECORD_SLACK_BYTES} bytes of slack is over the logs topic's max.message.bytes ({record_limit}): lower syslog.batch_bytes (and max_line_bytes) or raise stream.max_message_bytes (new topics only)",
                    self.batch_bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listen_nowhere() {
        let s = SyslogSettings::default();
        s.validate(&StreamSettings::default()).unwrap();
        assert_eq!(s.udp_addr().unwrap(), None);
        assert_eq!(s.tcp_addr().unwrap(), None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let stream = StreamSettings::default();
        type Change = fn(&mut SyslogSettings);
        let cases: [(Change, &str); 7] = [
            (|s| s.udp_listen = "localhost".into(), "syslog.udp_listen"),
            (|s| s.tcp_listen = "1.2.3.4".into(), "syslog.tcp_listen"),
            (|s| s.max_connections = 0, "syslog.max_connections"),
            (|s| s.idle_timeout = Duration::ZERO, "syslog.idle_timeout"),
            (|s| s.batch_bytes = 1000, "syslog.batch_bytes"),
            (|s| s.batch_bytes = 2 << 20, "syslog.batch_bytes"),
            (|s| s.queue_bytes = 1000, "syslog.queue_bytes"),
        ];
        for (change, key) in cases {
            let mut s = SyslogSettings::default();
            change(&mut s);
            let msg = s.validate(&stream).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("config {key}: ")), "{msg}");
        }
    }
}
