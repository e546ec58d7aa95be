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

use bongsu_ingest::{SyslogMessageRef, SyslogMeta, SyslogStream};
use bongsu_model::{Labels, LogsRecordWriter};
use bongsu_stream::{Record, Stream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::metrics_partition::partition_of;
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
pub(crate) fn entry_cost(
    stream: &SyslogStream<'_>,
    line: &str,
    metadata: &[SyslogMeta<'_>],
) -> usize {
    let mut labels = 0;
    stream.for_each_label(|n, v| labels += n.len() + v.len() + 20);
    let metadata: usize = metadata
        .iter()
        .map(|(n, v)| 2 * n.len() + v.len() + 30)
        .sum();
    64 + line.len() + labels + metadata
}

/// Makes a message fit a batch of `batch_bytes`: if its structured metadata (taken from the
/// message itself) would make it larger, the metadata is replaced by
/// `metadata_truncated="true"`; the line is kept. Returns its cost.
pub(crate) fn fit(
    m: &SyslogMessageRef<'_>,
    metadata: &mut Vec<SyslogMeta<'_>>,
    batch_bytes: usize,
) -> usize {
    let cost = entry_cost(&m.stream, &m.line, metadata);
    if cost <= batch_bytes {
        return cost;
    }
    metadata.clear();
    metadata.push(("metadata_truncated".into(), "true".into()));
    entry_cost(&m.stream, &m.line, metadata)
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
fn find<'m, 'a, V>(
    sets: &'m FastMap<SyslogStream<'a>, V>,
    stream: &SyslogStream<'a>,
) -> Option<&'m V> {
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

/// Where a message's text is in its piece's buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// One message of a piece.
#[derive(Debug, Clone, Copy)]
struct Item {
    /// Its label set: an index into the piece's `labels`.
    stream: usize,
    timestamp_ns: i64,
    line: Span,
    /// Its structured metadata: a range of the piece's `metadata`.
    metadata: (usize, usize),
    /// The permits it holds.
    cost: usize,
}

/// Messages handed to the batcher, with the queue permits already taken for them. Their lines
/// and metadata are copied into one buffer (no allocation per message) and grouped by label
/// set on the receiver's task, so the batcher handles one label set per stream of the piece
/// rather than one per message.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) transport: Transport,
    /// The distinct label sets of the piece's messages, in order of first arrival.
    labels: Vec<Arc<Labels>>,
    text: String,
    /// Each message in arrival order.
    items: Vec<Item>,
    /// Structured metadata (name, value) of every message, in order.
    metadata: Vec<(Span, Span)>,
    /// The permits the piece holds (the sum of its messages' costs).
    pub(crate) cost: usize,
}

impl Piece {
    /// Messages in the piece.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    fn str(&self, s: Span) -> &str {
        &self.text[s.start..s.end]
    }
}

/// Collects parsed messages (borrowing from a receive buffer) into a [`Piece`]: each message's
/// line and metadata are copied into the piece's buffer, its stream looked up among the
/// piece's streams.
#[derive(Debug)]
pub(crate) struct PieceBuilder {
    transport: Transport,
    /// The piece's distinct streams and their positions in order of first arrival.
    index: FastMap<SyslogStream<'static>, usize>,
    text: String,
    items: Vec<Item>,
    metadata: Vec<(Span, Span)>,
    cost: usize,
}

impl PieceBuilder {
    pub(crate) fn new(transport: Transport) -> Self {
        Self {
            transport,
            index: FastMap::default(),
            text: String::new(),
            items: Vec::new(),
            metadata: Vec::new(),
            cost: 0,
        }
    }

    /// A builder with room for about `bytes` of text.
    pub(crate) fn with_capacity(transport: Transport, bytes: usize) -> Self {
        let mut b = Self::new(transport);
        b.text.reserve(bytes);
        b.items.reserve(bytes / 128);
        b.metadata.reserve(bytes / 128);
        b
    }

    /// The summed cost of the messages added.
    pub(crate) fn cost(&self) -> usize {
        self.cost
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Messages added.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    fn put(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    /// Adds a message, its structured metadata and its cost (from [`fit`]).
    pub(crate) fn push(
        &mut self,
        m: &SyslogMessageRef<'_>,
        metadata: &[SyslogMeta<'_>],
        cost: usize,
    ) {
        let stream = match find(&self.index, &m.stream) {
            Some(&i) => i,
            None => {
                let i = self.index.len();
                self.index.insert(m.stream.clone().into_owned(), i);
                i
            }
        };
        let line = self.put(&m.line);
        let first = self.metadata.len();
        for (n, v) in metadata {
            let pair = (self.put(n), self.put(v));
            self.metadata.push(pair);
        }
        self.items.push(Item {
            stream,
            timestamp_ns: m.timestamp_ns,
            line,
            metadata: (first, self.metadata.len()),
            cost,
        });
        self.cost += cost;
    }

    /// The piece; each distinct stream's label set comes from `cache`.
    pub(crate) fn finish(self, cache: &mut LabelCache) -> Piece {
        Piece {
            transport: self.transport,
            labels: {
                let mut streams: Vec<_> = self.index.iter().collect();
                streams.sort_unstable_by_key(|&(_, &i)| i);
                streams.into_iter().map(|(s, _)| cache.get(s)).collect()
            },
            text: self.text,
            items: self.items,
            metadata: self.metadata,
            cost: self.cost,
        }
    }
}

/// One stream of a batch: its label set and its messages (piece, item) in arrival order.
#[derive(Debug)]
struct BatchStream {
    labels: Arc<Labels>,
    entries: Vec<(u32, u32)>,
    /// Lines received over TCP and over UDP.
    tcp: u64,
    udp: u64,
}

/// One record's worth of messages: the pieces they are in, grouped by label set.
#[derive(Debug, Default)]
struct Batch {
    pieces: Vec<Arc<Piece>>,
    streams: Vec<BatchStream>,
    index: FastMap<Arc<Labels>, usize>,
    lines: usize,
    cost: usize,
}

impl Batch {
    /// Adds message `item` of `piece` (the batch's last piece); `stream` caches the batch's
    /// stream for the piece's label set.
    fn push(&mut self, piece: &Piece, item: usize, stream: &mut Option<usize>) {
        let it = &piece.items[item];
        let i = match *stream {
            Some(i) => i,
            None => {
                let labels = &piece.labels[it.stream];
                let i = match self.index.get(labels) {
                    Some(&i) => i,
                    None => {
                        self.index.insert(labels.clone(), self.streams.len());
                        self.streams.push(BatchStream {
                            labels: labels.clone(),
                            entries: Vec::new(),
                            tcp: 0,
                            udp: 0,
                        });
                        self.streams.len() - 1
                    }
                };
                *stream = Some(i);
                i
            }
        };
        let p = (self.pieces.len() - 1) as u32;
        let s = &mut self.streams[i];
        s.entries.push((p, item as u32));
        match piece.transport {
            Transport::Tcp => s.tcp += 1,
            Transport::Udp => s.udp += 1,
        }
        self.lines += 1;
        self.cost += it.cost;
    }

    fn len(&self) -> usize {
        self.lines
    }

    /// The batch as one encoded `logs` record per partition that has streams (each stream to
    /// its own partition, see `logs_partition`), with the lines each holds over TCP and UDP.
    fn encode(&self, partitions: u32) -> Vec<(u32, Vec<u8>, u64, u64)> {
        let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); partitions.max(1) as usize];
        for (i, s) in self.streams.iter().enumerate() {
            let p = if partitions <= 1 {
                0
            } else {
                partition_of(&s.labels, partitions) as usize
            };
            by_partition[p].push(i);
        }
        let mut out = Vec::new();
        for (p, streams) in by_partition.iter().enumerate() {
            if streams.is_empty() {
                continue;
            }
            // Sized once (growing the record would copy it): each entry's line, metadata
            // and framing (timestamp, lengths, counts).
            let (mut tcp, mut udp, mut bytes) = (0, 0, 0);
            for &i in streams {
                let s = &self.streams[i];
                tcp += s.tcp;
                udp += s.udp;
                bytes += s.entries.len() * 16;
                for &(pc, it) in &s.entries {
                    let piece = &self.pieces[pc as usize];
                    let item = &piece.items[it as usize];
                    bytes += item.line.end - item.line.start;
                    for (_, v) in &piece.metadata[item.metadata.0..item.metadata.1] {
                        bytes += v.end - v.start + 8;
                    }
                }
            }
            let mut w = LogsRecordWriter::with_capacity(bytes);
            for &i in streams {
                let s = &self.streams[i];
                w.push_stream(&s.labels, s.entries.len());
                for &(pc, it) in &s.entries {
                    let piece = &*self.pieces[pc as usize];
                    let item = &piece.items[it as usize];
                    let metadata = &piece.metadata[item.metadata.0..item.metadata.1];
                    w.push_entry(
                        item.timestamp_ns,
                        piece.str(item.line),
                        metadata.iter().map(|&(n, v)| (piece.str(n), piece.str(v))),
                    );
                }
            }
            out.push((p as u32, w.finish(), tcp, udp));
        }
        out
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
                    let piece = Arc::new(piece);
                    let mut streams = vec![None; piece.labels.len()];
                    // Whether `pending` holds the piece yet.
                    let mut held = false;
                    for (i, item) in piece.items.iter().enumerate() {
                        if pending.len() > 0
                            && (pending.len() >= limits.lines
                                || pending.cost + item.cost > limits.bytes)
                        {
                            ready.push_back(std::mem::take(&mut pending));
                            linger_until = None;
                            streams.fill(None);
                            held = false;
                        }
                        if pending.len() == 0 {
                            linger_until = Some(Instant::now() + limits.linger);
                        }
                        if !held {
                            pending.pieces.push(piece.clone());
                            held = true;
                        }
                        pending.push(&piece, i, &mut streams[item.stream]);
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
    let now_ms = clock.now_ms();
    let parts = batch.encode(partitions);
    // The messages' text is in the records now: free the pieces on this task.
    drop(batch);
    let appends = parts.into_iter().map(|(partition, bytes, tcp, udp)| {
        let record = Record::new(bytes, now_ms);
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
    use bongsu_ingest::{
        parse_syslog, parse_syslog_message, parse_syslog_ref, syslog_batch, Limits,
    };
    use bongsu_model::{Label, LogsRecord};
    use proptest::prelude::*;

    use crate::logs_partition::split_by_partition;
    use crate::syslog::settings::RECORD_SLACK_BYTES;

    /// Pieces of `msgs` as the TCP receiver builds them: `per_piece` messages each, over TCP
    /// or UDP in turn.
    fn pieces(msgs: &[String], per_piece: usize, cache: &mut LabelCache) -> Vec<Piece> {
        let limits = Limits::default();
        let mut out = Vec::new();
        for (k, chunk) in msgs.chunks(per_piece.max(1)).enumerate() {
            let t = if k % 2 == 0 {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            let mut b = PieceBuilder::new(t);
            for m in chunk {
                let mut md = Vec::new();
                let r = parse_syslog_ref(m.as_bytes(), 7, &limits, &mut md);
                let cost = fit(&r, &mut md, 1 << 20);
                b.push(&r, &md, cost);
            }
            out.push(b.finish(cache));
        }
        out
    }

    /// A batch of whole pieces, as the batcher fills it.
    fn batch(pieces: Vec<Piece>) -> Batch {
        let mut b = Batch::default();
        for p in pieces {
            let p = Arc::new(p);
            b.pieces.push(p.clone());
            let mut streams = vec![None; p.labels.len()];
            for (i, item) in p.items.iter().enumerate() {
                b.push(&p, i, &mut streams[item.stream]);
            }
        }
        b
    }

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
        fn entry_cost_bounds_the_encoded_record(
            msgs in proptest::collection::vec(message(), 1..40),
            per_piece in 1usize..50,
        ) {
            let b = batch(pieces(&msgs, per_piece, &mut LabelCache::default()));
            let encoded = b.encode(1);
            prop_assert_eq!(encoded.len(), 1);
            let len = encoded[0].1.len();
            prop_assert!(len <= b.cost + RECORD_SLACK_BYTES, "{} > {} + slack", len, b.cost);
        }

        /// A batch's records hold what the parser makes of each message, grouped by stream
        /// and split by partition as every `logs` record is, with the lines counted per
        /// transport.
        #[test]
        fn batch_records_hold_the_parsed_messages(
            msgs in proptest::collection::vec(message(), 1..40),
            per_piece in 1usize..50,
            partitions in 1u32..5,
        ) {
            let b = batch(pieces(&msgs, per_piece, &mut LabelCache::default()));
            let limits = Limits::default();
            let expected = syslog_batch(msgs.iter().map(|m| parse_syslog(m.as_bytes(), 7, &limits)));
            let expected = split_by_partition(expected.streams, partitions);
            let got = b.encode(partitions);
            prop_assert_eq!(got.len(), expected.len());
            let (mut tcp, mut udp) = (0, 0);
            for ((p, bytes, t, u), (ep, erec, _)) in got.iter().zip(expected) {
                prop_assert_eq!(*p, ep);
                prop_assert_eq!(LogsRecord::decode(bytes).unwrap(), erec);
                tcp += t;
                udp += u;
            }
            let tcp_expected: usize = msgs.chunks(per_piece).step_by(2).map(<[String]>::len).sum();
            prop_assert_eq!(tcp as usize, tcp_expected);
            prop_assert_eq!((tcp + udp) as usize, msgs.len());
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
        let limits = Limits::default();
        let text = format!("<13>1 - h a - - [x@1 k=\"{}\"] m", "v".repeat(5000));
        let mut md = Vec::new();
        let r = parse_syslog_ref(text.as_bytes(), 0, &limits, &mut md);
        assert!(entry_cost(&r.stream, &r.line, &md) > 8192);
        let cost = fit(&r, &mut md, 8192);
        assert!(cost <= 8192, "{cost}");
        let pairs: Vec<Label> = md.iter().map(|(n, v)| Label::new(&**n, &**v)).collect();
        assert_eq!(pairs, vec![Label::new("metadata_truncated", "true")]);
        assert!(r.line.contains(&"v".repeat(5000)));
        // A record that fits keeps its metadata.
        let mut md = Vec::new();
        let r = parse_syslog_ref(b"<13>1 - h a - - [x@1 k=\"v\"] m", 0, &limits, &mut md);
        fit(&r, &mut md, 8192);
        let pairs: Vec<Label> = md.iter().map(|(n, v)| Label::new(&**n, &**v)).collect();
        assert_eq!(pairs, vec![Label::new("x@1.k", "v")]);
    }
}
