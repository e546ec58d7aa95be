//! The syslog receivers' self-metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::metrics::{MetricKind, MetricsSource, MetricsWriter};

/// How a message was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        }
    }
}

/// What happened to messages, as the `outcome` label of `bongsu_syslog_lines_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every message read (a frame or a datagram).
    Received,
    /// Parsed as RFC 5424 or RFC 3164.
    Parsed,
    /// Did not parse; stored with `unparsed="true"`.
    Unparsed,
    /// Longer than `syslog.max_line_bytes`; stored cut.
    TooLong,
    /// Lost: UDP queue full, a partial octet-counted frame at close, or a failed append.
    Dropped,
    /// Appended to the `logs` topic and acknowledged by the stream.
    Stored,
}

const OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::Received, "received"),
    (Outcome::Parsed, "parsed"),
    (Outcome::Unparsed, "unparsed"),
    (Outcome::TooLong, "too_long"),
    (Outcome::Dropped, "dropped"),
    (Outcome::Stored, "stored"),
];

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// Counters shared by the receiver tasks; also the `/metrics` source.
#[derive(Debug, Default)]
pub(crate) struct SyslogCounters {
    lines: [[AtomicU64; 6]; 2],
    bytes: [AtomicU64; 2],
    connections_open: AtomicI64,
    accepted: AtomicU64,
    refused: AtomicU64,
    batches_appended: AtomicU64,
    batches_failed: AtomicU64,
}

impl SyslogCounters {
    pub(crate) fn add_lines(&self, t: Transport, o: Outcome, n: u64) {
        if n > 0 {
            self.lines[t.index()][o as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn lines(&self, t: Transport, o: Outcome) -> u64 {
        self.lines[t.index()][o as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn add_bytes(&self, t: Transport, n: u64) {
        self.bytes[t.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch(&self, ok: bool) {
        if ok {
            self.batches_appended.fetch_add(1, Ordering::Relaxed);
        } else {
            self.batches_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MetricsSource for SyslogCounters {
    fn collect(&self, out: &mut MetricsWriter) {
        let name = "bongsu_syslog_lines_total";
        out.family(
            name,
            "Syslog messages by transport and outcome: received (every frame or datagram), parsed, unparsed (stored with unparsed=\"true\"), too_long (stored cut), dropped (UDP queue full, partial octet-counted frame at close, failed append), stored (acknowledged by the stream).",
            MetricKind::Counter,
        );
        for t in TRANSPORTS {
            for (o, label) in OUTCOMES {
                let v = self.lines(t, o);
                out.sample(
                    name,
                    &[("transport", t.as_str()), ("outcome", label)],
                    v as f64,
                );
            }
        }
        let name = "bongsu_syslog_bytes_total";
        out.family(
            name,
            "Bytes read by the syslog receivers (TCP stream bytes, UDP datagram bytes).",
            MetricKind::Counter,
        );
        for t in TRANSPORTS {
            let v = self.bytes[t.index()].load(Ordering::Relaxed);
            out.sample(name, &[("transport", t.as_str())], v as f64);
        }
        let name = "bongsu_syslog_connections_open";
        out.family(name, "Syslog TCP connections open now.", MetricKind::Gauge);
        out.sample(
            name,
            &[],
            self.connections_open.load(Ordering::Relaxed) as f64,
        );
        let name = "bongsu_syslog_connections_total";
        out.family(
            name,
            "Syslog TCP connections by outcome: accepted, refused (over syslog.max_connections).",
            MetricKind::Counter,
        );
        for (label, v) in [("accepted", &self.accepted), ("refused", &self.refused)] {
            out.sample(
                name,
                &[("outcome", label)],
                v.load(Ordering::Relaxed) as f64,
            );
        }
        let name = "bongsu_syslog_batches_total";
        out.family(
            name,
            "Records appended to the logs topic by the syslog receivers, by outcome (appended, failed).",
            MetricKind::Counter,
        );
        for (label, v) in [
            ("appended", &self.batches_appended),
            ("failed", &self.batches_failed),
        ] {
            out.sample(
                name,
                &[("outcome", label)],
                v.load(Ordering::Relaxed) as f64,
            );
        }
    }
}
