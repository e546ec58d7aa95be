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

use bongsu_ingest::{SyslogMessage, SyslogStream};
use bongsu_model::{Label, Labels, LogEntry, LogStream};
use bongsu_stream::{Record, Stream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::logs_partition::split_by_partition;
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
pub(crate) fn entry_cost(stream: &SyslogStream<'_>, entry: &LogEntry) -> usize {
    let mut labels = 0;
    stream.for_each_label(|n, v| labels += n.len() + v.len() + 20);
    let metadata: usize = entry
        .structured_metadata
        .iter()
        .map(|m| 2 * m.name.len() + m.value.len() + 30)
        .sum();
    64 + entry.line.len() + labels + metadata
}

/// Makes a message fit a batch of `batch_bytes`: if its structured metadata (taken from the
/// message itself) would make it larger, the metadata is replaced by
/// `metadata_truncated="true"`; the line is kept. Returns its cost.
pub(crate) fn fit(m: &mut SyslogMessage<'_>, batch_bytes: usize) -> usize {
    let cost = entry_cost(&m.stream, &m.entry);
    if cost <= batch_bytes {
        return cost;
    }
    m.entry.structured_metadata = vec![Label::new("metadata_truncated", "true")];
    entry_cost(&m.stream, &m.entry)
}

/// A fast non-cryptographic hasher for grouping messages by stream: the maps keyed by it hold
/// one piece's or one batch's streams, or at most [`LABEL_CACHE_MAX`] label sets, so colliding
/// keys cost at most a scan of one bounded map.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Most label sets [`LabelCache`] keeps; when full it starts over.
const LABEL_CACHE_MAX: usize = 4096;

/// The label sets of recently seen syslog streams, shared by the receivers: a piece's
/// distinct streams take theirs from here instead of building them again (about ten
/// allocations each, for every piece).
#[derive(Debug, Default)]
pub(crate) struct LabelCache {
    sets: FastMap<SyslogStream<'static>, Arc<Labels>>,
}

impl LabelCache {
    /// The label set of `stream`.
    pub(crate) fn get(&mut self, stream: &SyslogStream<'_>) -> Arc<Labels> {
        if let Some(l) = find(&self.sets, stream) {
            return l.clone();
        }
        if self.sets.len() >= LABEL_CACHE_MAX {
            self.sets.clear();
        }
        let labels = Arc::new(stream.labels());
        self.sets
            .insert(stream.clone().into_owned(), labels.clone());
        labels
    }
}

/// Looks up a borrowed stream in a map of owned ones (the map's key type shortens to `'a`).
fn find<'m, 'a>(
    sets: &'m FastMap<SyslogStream<'a>, Arc<Labels>>,
    stream: &SyslogStream<'a>,
) -> Option<&'m Arc<Labels>> {
    sets.get(stream)
}

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
    labels: Vec<Arc<Labels>>,
    /// Each message in arrival order: its label set (index into `labels`), entry and cost
    /// (the permits it holds).
    items: Vec<(usize, LogEntry, usize)>,
}

impl Piece {
    /// Groups `messages` (with their costs) by stream; each distinct stream's label set comes
    /// from `cache` once per piece, not once per message.
    pub(crate) fn new(
        transport: Transport,
        messages: Vec<(SyslogMessage<'_>, usize)>,
        cache: &mut LabelCache,
    ) -> Self {
        let mut index: FastMap<SyslogStream<'_>, usize> = HashMap::default();
        let mut labels = Vec::new();
        let mut items = Vec::with_capacity(messages.len());
        for (m, cost) in messages {
            let i = match index.get(&m.stream) {
                Some(&i) => i,
                None => {
                    labels.push(cache.get(&m.stream));
                    index.insert(m.stream, labels.len() - 1);
                    labels.len() - 1
                }
            };
            items.push((i, m.entry, cost));
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
    /// Per stream, its lines received over TCP and over UDP.
    transports: Vec<(u64, u64)>,
    index: FastMap<Labels, usize>,
    lines: usize,
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
                        self.transports.push((0, 0));
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
            Transport::Tcp => self.transports[i].0 += 1,
            Transport::Udp => self.transports[i].1 += 1,
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
    partitions: u32,
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
                append(batch, &*stream, &*clock, &counters, partitions).await;
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

/// Splits one batch by partition (each stream to its own, see `logs_partition`), appends the
/// parts concurrently (retrying a failed append) and counts the outcome of each part.
async fn append(
    batch: Batch,
    stream: &dyn Stream,
    clock: &dyn Clock,
    counters: &SyslogCounters,
    partitions: u32,
) {
    let Batch {
        streams,
        transports,
        ..
    } = batch;
    let now_ms = clock.now_ms();
    let parts = split_by_partition(streams, partitions);
    let appends = parts.into_iter().map(|(partition, part, index)| {
        let (tcp, udp) = index.iter().fold((0, 0), |(t, u), &i| {
            (t + transports[i].0, u + transports[i].1)
        });
        let record = Record::new(part.encode(), now_ms);
        async move {
            let ok = append_part(stream, partition, record, tcp + udp).await;
            counters.batch(ok);
            let outcome = if ok {
                Outcome::Stored
            } else {
                Outcome::Dropped
            };
            counters.add_lines(Transport::Tcp, outcome, tcp);
            counters.add_lines(Transport::Udp, outcome, udp);
        }
    });
    futures::future::join_all(appends).await;
}

/// Appends one record to `partition`, retrying; true when it was acknowledged.
async fn append_part(stream: &dyn Stream, partition: u32, record: Record, lines: u64) -> bool {
    for attempt in 1..=APPEND_TRIES {
        // Cheap: the value is reference-counted.
        match stream
            .append(LOGS_TOPIC, Some(partition), vec![record.clone()])
            .await
        {
            Ok(_) => return true,
            Err(e @ bongsu_stream::Error::RecordTooLarge { .. }) => {
                tracing::error!(error = %e, lines, "syslog batch dropped: lower syslog.batch_bytes");
                return false;
            }
            Err(e) if attempt < APPEND_TRIES => {
                tracing::warn!(error = %e, attempt, "syslog append failed: retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lines, "syslog batch dropped: the logs topic refused it");
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_ingest::{parse_syslog_message, syslog_batch, Limits, SyslogRecord};
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
            let parsed: Vec<SyslogMessage<'_>> = msgs
                .iter()
                .map(|m| parse_syslog_message(m.as_bytes(), 1_700_000_000_000_000_000, &limits))
                .collect();
            let cost: usize = parsed.iter().map(|m| entry_cost(&m.stream, &m.entry)).sum();
            let records = parsed.into_iter().map(|m| SyslogRecord {
                labels: m.stream.labels(),
                entry: m.entry,
            });
            let encoded = syslog_batch(records).encode().len();
            prop_assert!(encoded <= cost + RECORD_SLACK_BYTES, "{encoded} > {cost} + slack");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The cache gives every message the label set the parser would build for it, the
        /// same shared set for the same stream, and stays bounded.
        #[test]
        fn label_cache_gives_each_stream_its_own_labels(
            msgs in proptest::collection::vec(message(), 1..40),
        ) {
            let limits = Limits::default();
            let mut cache = LabelCache::default();
            let parsed: Vec<_> = msgs
                .iter()
                .map(|m| parse_syslog_message(m.as_bytes(), 0, &limits))
                .collect();
            for m in &parsed {
                let got = cache.get(&m.stream);
                prop_assert_eq!(&*got, &m.stream.labels());
                prop_assert!(Arc::ptr_eq(&got, &cache.get(&m.stream)));
            }
            prop_assert!(cache.sets.len() <= parsed.len());
        }
    }

    #[test]
    fn label_cache_starts_over_when_full() {
        let limits = Limits::default();
        let mut cache = LabelCache::default();
        for i in 0..LABEL_CACHE_MAX + 10 {
            let msg = format!("<13>1 2024-01-02T03:04:05Z host{i} app - - - x");
            let m = parse_syslog_message(msg.as_bytes(), 0, &limits);
            let got = cache.get(&m.stream);
            assert_eq!(*got, m.stream.labels());
        }
        assert!(cache.sets.len() <= LABEL_CACHE_MAX);
        assert!(cache.sets.len() >= 10);
    }

    #[test]
    fn fit_replaces_oversize_metadata() {
        let text = format!("<13>1 - h a - - [x@1 k=\"{}\"] m", "v".repeat(5000));
        let mut r = parse_syslog_message(text.as_bytes(), 0, &Limits::default());
        assert!(entry_cost(&r.stream, &r.entry) > 8192);
        let cost = fit(&mut r, 8192);
        assert!(cost <= 8192, "{cost}");
        assert_eq!(
            r.entry.structured_metadata,
            vec![Label::new("metadata_truncated", "true")]
        );
        assert!(r.entry.line.contains(&"v".repeat(5000)));
        // A record that fits keeps its metadata.
        let mut r = parse_syslog_message(b"<13>1 - h a - - [x@1 k=\"v\"] m", 0, &Limits::default());
        fit(&mut r, 8192);
        assert_eq!(r.entry.structured_metadata, vec![Label::new("x@1.k", "v")]);
    }
}
