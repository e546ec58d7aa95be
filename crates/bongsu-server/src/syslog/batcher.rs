//! Groups parsed messages into `logs` records and appends them, with bounded memory.
//!
//! Receivers take permits from the queue semaphore (one per estimated encoded byte) before
//! they hand messages over; the batcher gives them back once the record holding the messages
//! is acknowledged by the stream (or failed). So at most `syslog.queue_bytes` of messages wait
//! or are in flight: a TCP connection that cannot get permits stops reading its socket, a UDP
//! datagram that cannot is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bongsu_ingest::SyslogRecord;
use bongsu_model::{Label, Labels, LogEntry, LogStream, LogsRecord};
use bongsu_stream::{Record, Stream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::syslog::counters::{Outcome, SyslogCounters, Transport};

/// The topic syslog messages are appended to.
pub(crate) const LOGS_TOPIC: &str = "logs";

/// Appends the batcher keeps in flight at once (the stream commits them together).
const APPENDS_IN_FLIGHT: usize = 4;

/// Tries of one append before its messages are counted as dropped.
const APPEND_TRIES: u32 = 3;

/// The estimated encoded size of one message in a `logs` record: an upper bound of what it
/// adds to the record (its labels are counted as if its stream were new, structured metadata
/// names as if their symbols were new).
pub(crate) fn entry_cost(r: &SyslogRecord) -> usize {
    let labels: usize = r
        .labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 20)
        .sum();
    let metadata: usize = r
        .entry
        .structured_metadata
        .iter()
        .map(|m| 2 * m.name.len() + m.value.len() + 30)
        .sum();
    64 + r.entry.line.len() + labels + metadata
}

/// Makes `r` fit a batch of `batch_bytes`: if its structured metadata (taken from the message
/// itself) would make it larger, the metadata is replaced by `metadata_truncated="true"`; the
/// line is kept. Returns its cost.
pub(crate) fn fit(r: &mut SyslogRecord, batch_bytes: usize) -> usize {
    let cost = entry_cost(r);
    if cost <= batch_bytes {
        return cost;
    }
    r.entry.structured_metadata = vec![Label::new("metadata_truncated", "true")];
    entry_cost(r)
}

/// A fast non-cryptographic hasher for grouping one piece by label set: the map lives for one
/// piece of at most `syslog.batch_bytes`, so colliding keys cost at most a quadratic scan of
/// one piece.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Messages handed to the batcher, with the queue permits already taken for them. Grouped by
/// label set on the receiver's task, so the batcher handles one label set per stream of the
/// piece rather than one per message.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) transport: Transport,
    /// The distinct label sets of the piece's messages, in order of first arrival.
    labels: Vec<Labels>,
    /// Each message in arrival order: its label set (index into `labels`), entry and cost
    /// (the permits it holds).
    items: Vec<(usize, LogEntry, usize)>,
}

impl Piece {
    pub(crate) fn new(transport: Transport, records: Vec<(SyslogRecord, usize)>) -> Self {
        let mut index: HashMap<Labels, usize, BuildHasherDefault<FastHasher>> = HashMap::default();
        let mut labels = Vec::new();
        let mut items = Vec::with_capacity(records.len());
        for (r, cost) in records {
            let i = match index.get(&r.labels) {
                Some(&i) => i,
                None => {
                    index.insert(r.labels.clone(), labels.len());
                    labels.push(r.labels);
                    labels.len() - 1
                }
            };
            items.push((i, r.entry, cost));
        }
        Self {
            transport,
            labels,
            items,
        }
    }
}

/// One record's worth of messages.
#[derive(Debug, Default)]
struct Batch {
    streams: Vec<LogStream>,
    index: HashMap<Labels, usize>,
    lines: usize,
    tcp_lines: u64,
    udp_lines: u64,
    cost: usize,
}

impl Batch {
    /// Adds a message; `stream` caches the batch's stream for the piece's label set.
    fn push(
        &mut self,
        transport: Transport,
        labels: &Labels,
        stream: &mut Option<usize>,
        entry: LogEntry,
        cost: usize,
    ) {
        let i = match *stream {
            Some(i) => i,
            None => {
                let i = match self.index.get(labels) {
                    Some(&i) => i,
                    None => {
                        self.index.insert(labels.clone(), self.streams.len());
                        self.streams.push(LogStream {
                            labels: labels.clone(),
                            entries: Vec::new(),
                        });
                        self.streams.len() - 1
                    }
                };
                *stream = Some(i);
                i
            }
        };
        self.streams[i].entries.push(entry);
        self.lines += 1;
        self.cost += cost;
        match transport {
            Transport::Tcp => self.tcp_lines += 1,
            Transport::Udp => self.udp_lines += 1,
        }
    }

    fn len(&self) -> usize {
        self.lines
    }
}

/// Batching knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub(crate) lines: usize,
    pub(crate) bytes: usize,
    pub(crate) linger: Duration,
}

/// Runs until every sender of `rx` is gone, then appends what is pending and waits for the
/// appends in flight.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Piece>,
    limits: BatchLimits,
    stream: Arc<dyn Stream>,
    clock: Arc<dyn Clock>,
    queue: Arc<Semaphore>,
    counters: Arc<SyslogCounters>,
) {
    let mut pending = Batch::default();
    let mut linger_until: Option<Instant> = None;
    let mut ready: VecDeque<Batch> = VecDeque::new();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut open = true;
    loop {
        while in_flight.len() < APPENDS_IN_FLIGHT {
            let Some(batch) = ready.pop_front() else {
                break;
            };
            let (stream, clock, queue, counters) = (
                stream.clone(),
                clock.clone(),
                queue.clone(),
                counters.clone(),
            );
            in_flight.spawn(async move {
                let cost = batch.cost;
                append(batch, &*stream, &*clock, &counters).await;
                queue.add_permits(cost);
            });
        }
        if !open && pending.len() == 0 && ready.is_empty() && in_flight.is_empty() {
            return;
        }
        let linger = async {
            match linger_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "syslog append task failed");
                }
            }
            piece = rx.recv(), if open => match piece {
                Some(piece) => {
                    let mut streams = vec![None; piece.labels.len()];
                    for (s, entry, cost) in piece.items {
                        if pending.len() > 0
                            && (pending.len() >= limits.lines || pending.cost + cost > limits.bytes)
                        {
                            ready.push_back(std::mem::take(&mut pending));
                            linger_until = None;
                            streams.fill(None);
                        }
                        if pending.len() == 0 {
                            linger_until = Some(Instant::now() + limits.linger);
                        }
                        pending.push(piece.transport, &piece.labels[s], &mut streams[s], entry, cost);
                    }
                    if pending.len() >= limits.lines {
                        ready.push_back(std::mem::take(&mut pending));
                        linger_until = None;
                    }
                }
                None => {
                    open = false;
                    if pending.len() > 0 {
                        ready.push_back(std::mem::take(&mut pending));
                    }
                    linger_until = None;
                }
            },
            _ = linger, if linger_until.is_some() => {
                ready.push_back(std::mem::take(&mut pending));
                linger_until = None;
            }
        }
    }
}

/// Encodes and appends one batch (retrying a failed append) and counts the outcome.
async fn append(batch: Batch, stream: &dyn Stream, clock: &dyn Clock, counters: &SyslogCounters) {
    let Batch {
        streams,
        tcp_lines,
        udp_lines,
        ..
    } = batch;
    let record = Record::new(LogsRecord { streams }.encode(), clock.now_ms());
    let mut ok = false;
    for attempt in 1..=APPEND_TRIES {
        // Cheap: the value is reference-counted.
        match stream.append(LOGS_TOPIC, None, vec![record.clone()]).await {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e @ bongsu_stream::Error::RecordTooLarge { .. }) => {
                tracing::error!(error = %e, lines = tcp_lines + udp_lines, "syslog batch dropped: lower syslog.batch_bytes");
                break;
            }
            Err(e) if attempt < APPEND_TRIES => {
                tracing::warn!(error = %e, attempt, "syslog append failed: retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lines = tcp_lines + udp_lines, "syslog batch dropped: the logs topic refused it");
            }
        }
    }
    counters.batch(ok);
    let outcome = if ok {
        Outcome::Stored
    } else {
        Outcome::Dropped
    };
    counters.add_lines(Transport::Tcp, outcome, tcp_lines);
    counters.add_lines(Transport::Udp, outcome, udp_lines);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_ingest::{parse_syslog, syslog_batch, Limits};
    use proptest::prelude::*;

    use crate::syslog::settings::RECORD_SLACK_BYTES;

    fn message() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                0u8..192,
                "[a-z.]{0,20}",
                "[a-z]{0,12}",
                "[0-9]{0,6}",
                proptest::collection::vec(("[a-z@0-9]{1,10}", "[a-z]{1,8}", "[ -~]{0,20}"), 0..4),
                "\\PC{0,80}"
            )
                .prop_map(|(pri, host, app, pid, sd, msg)| {
                    let nil = |s: String| if s.is_empty() { "-".to_owned() } else { s };
                    let sd: String = if sd.is_empty() {
                        "-".to_owned()
                    } else {
                        sd.iter()
                            .map(|(id, k, v)| {
                                let v = v
                                    .replace('\\', "\\\\")
                                    .replace('"', "\\\"")
                                    .replace(']', "\\]");
                                format!("[{id} {k}=\"{v}\"]")
                            })
                            .collect()
                    };
                    format!(
                        "<{pri}>1 2024-01-02T03:04:05.123Z {} {} {} - {sd} {msg}",
                        nil(host),
                        nil(app),
                        nil(pid)
                    )
                }),
            ("[0-9]{1,3}", "\\PC{0,100}").prop_map(|(pri, rest)| format!("<{pri}>{rest}")),
            "\\PC{0,120}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The batcher cuts batches by summed `entry_cost`; the encoded record must never be
        /// larger than that sum plus the slack, or a batch could exceed `max.message.bytes`.
        #[test]
        fn entry_cost_bounds_the_encoded_record(msgs in proptest::collection::vec(message(), 1..40)) {
            let limits = Limits::default();
            let records: Vec<SyslogRecord> = msgs
                .iter()
                .map(|m| parse_syslog(m.as_bytes(), 1_700_000_000_000_000_000, &limits))
                .collect();
            let cost: usize = records.iter().map(entry_cost).sum();
            let encoded = syslog_batch(records).encode().len();
            prop_assert!(encoded <= cost + RECORD_SLACK_BYTES, "{encoded} > {cost} + slack");
        }
    }

    #[test]
    fn fit_replaces_oversize_metadata() {
        let mut r = parse_syslog(
            format!("<13>1 - h a - - [x@1 k=\"{}\"] m", "v".repeat(5000)).as_bytes(),
            0,
            &Limits::default(),
        );
        assert!(entry_cost(&r) > 8192);
        let cost = fit(&mut r, 8192);
        assert!(cost <= 8192, "{cost}");
        assert_eq!(
            r.entry.structured_metadata,
            vec![Label::new("metadata_truncated", "true")]
        );
        assert!(r.entry.line.contains(&"v".repeat(5000)));
        // A record that fits keeps its metadata.
        let mut r = parse_syslog(b"<13>1 - h a - - [x@1 k=\"v\"] m", 0, &Limits::default());
        fit(&mut r, 8192);
        assert_eq!(r.entry.structured_metadata, vec![Label::new("x@1.k", "v")]);
    }
}
