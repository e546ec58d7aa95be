//! The `logs` topic record: a batch of streams with their entries.

use super::error::RecordResult;
use super::wire::{
    put_bytes, put_uvarint, read_labels, read_symbol, read_symbol_ref, read_symbols, write_labels,
    DecodeLimits, Reader, SymbolTable,
};
use crate::{Label, Labels, LogEntry};

/// First four bytes of a logs record.
pub const LOGS_MAGIC: [u8; 4] = *b"BGLR";
/// The logs record version this build writes and reads.
pub const LOGS_VERSION: u8 = 1;

/// One stream of a batch: its label set and entries in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// A record of the `logs` topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogsRecord {
    pub streams: Vec<LogStream>,
}

impl LogsRecord {
    /// Number of entries over all streams.
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    /// Encodes the record (format in `docs/formats/records.md`).
    pub fn encode(&self) -> Vec<u8> {
        let lines: usize = self
            .streams
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| e.line.len() + 12)
            .sum();
        let mut out = Vec::with_capacity(64 + lines);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut syms = SymbolTable::default();
        for s in &self.streams {
            for l in &s.labels {
                syms.intern(&l.name);
                syms.intern(&l.value);
            }
            for e in &s.entries {
                for m in &e.structured_metadata {
                    syms.intern(&m.name);
                }
            }
        }
        out.extend_from_slice(&LOGS_MAGIC);
        out.push(LOGS_VERSION);
        syms.write(out);
        put_uvarint(out, self.streams.len() as u64);
        for s in &self.streams {
            write_labels(out, &s.labels, &syms);
            put_uvarint(out, s.entries.len() as u64);
            for e in &s.entries {
                out.extend_from_slice(&e.timestamp_ns.to_le_bytes());
                put_bytes(out, e.line.as_bytes());
                put_uvarint(out, e.structured_metadata.len() as u64);
                for m in &e.structured_metadata {
                    put_uvarint(out, u64::from(syms.lookup(&m.name)));
                    put_bytes(out, m.value.as_bytes());
                }
            }
        }
    }

    /// Decodes a record with the default [`DecodeLimits`].
    pub fn decode(bytes: &[u8]) -> RecordResult<Self> {
        Self::decode_with_limits(bytes, DecodeLimits::default())
    }

    /// Decodes a record from untrusted bytes; never panics, bounds allocations.
    pub fn decode_with_limits(bytes: &[u8], limits: DecodeLimits) -> RecordResult<Self> {
        let mut r = Reader::new(bytes, limits);
        r.header(LOGS_MAGIC, LOGS_VERSION)?;
        let syms = read_symbols(&mut r)?;
        let n = r.count("stream", 2)?;
        let mut streams = Vec::with_capacity(n);
        for index in 0..n {
            let labels = read_labels(&mut r, &syms, index)?;
            // An entry takes at least 10 bytes: timestamp, line length, metadata count.
            let k = r.count("entry", 10)?;
            let mut entries = Vec::with_capacity(k);
            for _ in 0..k {
                let timestamp_ns = r.u64_le()? as i64;
                let line = r.str("log line")?.to_owned();
                let m = r.count("structured metadata", 2)?;
                let mut structured_metadata = Vec::with_capacity(m);
                for _ in 0..m {
                    let name = read_symbol(&mut r, &syms)?;
                    let value = r.str("structured metadata value")?.to_owned();
                    structured_metadata.push(Label { name, value });
                }
                entries.push(LogEntry {
                    timestamp_ns,
                    line,
                    structured_metadata,
                });
            }
            streams.push(LogStream { labels, entries });
        }
        r.finish()?;
        Ok(Self { streams })
    }
}

/// Writes a `logs` record stream by stream and entry by entry from borrowed strings, without
/// building a [`LogsRecord`] first (receivers that keep their lines in one buffer allocate
/// nothing per line). Symbols are interned in the order [`LogsRecord::encode`] uses (each
/// stream's labels, then its entries' metadata names), so the output is byte-identical to
/// encoding the same record with it.
#[derive(Debug, Default)]
pub struct LogsRecordWriter<'a> {
    symbols: SymbolTable<'a>,
    streams: usize,
    /// Entries the current stream was announced with, and how many were written.
    announced: usize,
    written: usize,
    body: Vec<u8>,
}

impl<'a> LogsRecordWriter<'a> {
    /// A writer whose body has room for about `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            body: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Starts a stream of exactly `entries` entries, which the next calls of
    /// [`LogsRecordWriter::push_entry`] add.
    pub fn push_stream(&mut self, labels: &'a Labels, entries: usize) {
        debug_assert_eq!(self.announced, self.written, "previous stream incomplete");
        for l in labels {
            self.symbols.intern(&l.name);
            self.symbols.intern(&l.value);
        }
        write_labels(&mut self.body, labels, &self.symbols);
        put_uvarint(&mut self.body, entries as u64);
        self.streams += 1;
        self.announced = entries;
        self.written = 0;
    }

    /// Adds an entry to the current stream: its timestamp, line, and structured metadata as
    /// (name, value) pairs.
    pub fn push_entry<'m>(
        &mut self,
        timestamp_ns: i64,
        line: &str,
        metadata: impl ExactSizeIterator<Item = (&'a str, &'m str)>,
    ) {
        self.written += 1;
        debug_assert!(
            self.written <= self.announced,
            "more entries than announced"
        );
        self.body.extend_from_slice(&timestamp_ns.to_le_bytes());
        put_bytes(&mut self.body, line.as_bytes());
        put_uvarint(&mut self.body, metadata.len() as u64);
        for (name, value) in metadata {
            let n = self.symbols.intern(name);
            put_uvarint(&mut self.body, u64::from(n));
            put_bytes(&mut self.body, value.as_bytes());
        }
    }

    /// Streams started so far.
    pub fn stream_count(&self) -> usize {
        self.streams
    }

    /// The encoded record.
    pub fn finish(self) -> Vec<u8> {
        debug_assert_eq!(self.announced, self.written, "last stream incomplete");
        let mut out = Vec::with_capacity(16 + self.symbols.encoded_len_hint() + self.body.len());
        out.extend_from_slice(&LOGS_MAGIC);
        out.push(LOGS_VERSION);
        self.symbols.write(&mut out);
        put_uvarint(&mut out, self.streams as u64);
        out.extend_from_slice(&self.body);
        out
    }
}

/// One entry of a [`LogsRecordView`]: its line borrowed from the record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntryRef<'a> {
    pub timestamp_ns: i64,
    pub line: &'a str,
    /// Its structured metadata: a range of [`LogsRecordView::metadata`].
    metadata: (u32, u32),
}

/// One stream of a [`LogsRecordView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamRef {
    pub labels: Labels,
    /// Its entries: a range of [`LogsRecordView::entries`].
    entries: (usize, usize),
}

/// A `logs` record read in place: lines and metadata borrow the record's bytes, so reading
/// allocates per stream (its label set) and per record, not per line. Accepts exactly the
/// records [`LogsRecord::decode_with_limits`] accepts.
#[derive(Debug, Default)]
pub struct LogsRecordView<'a> {
    streams: Vec<LogStreamRef>,
    entries: Vec<LogEntryRef<'a>>,
    metadata: Vec<(&'a str, &'a str)>,
}

impl<'a> LogsRecordView<'a> {
    /// Reads a record from untrusted bytes with the default [`DecodeLimits`]; never panics.
    pub fn parse(bytes: &'a [u8]) -> RecordResult<Self> {
        Self::parse_with_limits(bytes, DecodeLimits::default())
    }

    /// Reads a record from untrusted bytes; never panics, bounds allocations.
    pub fn parse_with_limits(bytes: &'a [u8], limits: DecodeLimits) -> RecordResult<Self> {
        let mut r = Reader::new(bytes, limits);
        r.header(LOGS_MAGIC, LOGS_VERSION)?;
        let syms = read_symbols(&mut r)?;
        let n = r.count("stream", 2)?;
        let mut view = LogsRecordView {
            streams: Vec::with_capacity(n),
            // An entry takes at least 10 bytes.
            entries: Vec::with_capacity(r.remaining() / 64),
            metadata: Vec::new(),
        };
        for index in 0..n {
            let labels = read_labels(&mut r, &syms, index)?;
            let k = r.count("entry", 10)?;
            let first = view.entries.len();
            view.entries.reserve(k);
            for _ in 0..k {
                let timestamp_ns = r.u64_le()? as i64;
                let line = r.str("log line")?;
                let m = r.count("structured metadata", 2)?;
                let start = view.metadata.len();
                for _ in 0..m {
                    let name = read_symbol_ref(&mut r, &syms)?;
                    let value = r.str("structured metadata value")?;
                    view.metadata.push((name, value));
                }
                view.entries.push(LogEntryRef {
                    timestamp_ns,
                    line,
                    metadata: (start as u32, view.metadata.len() as u32),
                });
            }
            view.streams.push(LogStreamRef {
                labels,
                entries: (first, view.entries.len()),
            });
        }
        r.finish()?;
        Ok(view)
    }

    /// The streams, in record order.
    pub fn streams(&self) -> &[LogStreamRef] {
        &self.streams
    }

    /// The entries of `stream` (one of [`LogsRecordView::streams`]), in record order.
    pub fn entries(&self, stream: &LogStreamRef) -> &[LogEntryRef<'a>] {
        &self.entries[stream.entries.0..stream.entries.1]
    }

    /// The structured metadata (name, value) of `entry` (one of this view's entries).
    pub fn metadata(&self, entry: &LogEntryRef<'a>) -> &[(&'a str, &'a str)] {
        &self.metadata[entry.metadata.0 as usize..entry.metadata.1 as usize]
    }

    /// Number of entries over all streams.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// The same record, owned.
    pub fn to_record(&self) -> LogsRecord {
        LogsRecord {
            streams: self
                .streams
                .iter()
                .map(|s| LogStream {
                    labels: s.labels.clone(),
                    entries: self
                        .entries(s)
                        .iter()
                        .map(|e| LogEntry {
                            timestamp_ns: e.timestamp_ns,
                            line: e.line.to_owned(),
                            structured_metadata: self
                                .metadata(e)
                                .iter()
                                .map(|&(n, v)| Label::new(n, v))
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RecordError;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = LogsRecord> {
        let labels = proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{1,6}", 0..5)
            .prop_map(|m| Labels::from_pairs(m).unwrap_or_default());
        let entry = (
            any::<i64>(),
            "\\PC{0,40}",
            proptest::collection::vec(("\\PC{0,5}", "\\PC{0,8}"), 0..3),
        )
            .prop_map(|(ts, line, md)| LogEntry {
                timestamp_ns: ts,
                line,
                structured_metadata: md.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
            });
        proptest::collection::vec(
            (labels, proptest::collection::vec(entry, 0..5))
                .prop_map(|(labels, entries)| LogStream { labels, entries }),
            0..5,
        )
        .prop_map(|streams| LogsRecord { streams })
    }

    #[test]
    fn known_bytes() {
        let rec = LogsRecord {
            streams: vec![LogStream {
                labels: Labels::from_pairs([("app", "x")]).unwrap(),
                entries: vec![LogEntry {
                    timestamp_ns: 1,
                    line: "hi".into(),
                    structured_metadata: vec![Label::new("trace", "t1")],
                }],
            }],
        };
        let bytes = rec.encode();
        let expected: Vec<u8> = [
            &b"BGLR"[..],
            &[1],                               // version
            &[3, 3, b'a', b'p', b'p', 1, b'x'], // symbols: app, x, trace
            &[5, b't', b'r', b'a', b'c', b'e'],
            &[1, 1, 0, 1],             // one stream, one label app=x
            &[1],                      // one entry
            &[1, 0, 0, 0, 0, 0, 0, 0], // ts
            &[2, b'h', b'i'],          // line
            &[1, 2, 2, b't', b'1'],    // metadata trace=t1
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(LogsRecord::decode(&bytes).unwrap(), rec);
    }

    #[test]
    fn refuses_invalid_utf8_line() {
        let mut bytes = LOGS_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0, 1, 0, 1]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&[2, 0xff, 0xfe, 0]);
        assert!(matches!(
            LogsRecord::decode(&bytes),
            Err(RecordError::InvalidUtf8 { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(rec in arb_record()) {
            let bytes = rec.encode();
            prop_assert_eq!(LogsRecord::decode(&bytes).unwrap(), rec);
        }

        /// The writer produces exactly `LogsRecord::encode`'s bytes.
        #[test]
        fn writer_matches_encode(rec in arb_record()) {
            let mut w = LogsRecordWriter::with_capacity(64);
            for s in &rec.streams {
                w.push_stream(&s.labels, s.entries.len());
                for e in &s.entries {
                    w.push_entry(
                        e.timestamp_ns,
                        &e.line,
                        e.structured_metadata.iter().map(|m| (m.name.as_str(), m.value.as_str())),
                    );
                }
            }
            prop_assert_eq!(w.stream_count(), rec.streams.len());
            prop_assert_eq!(w.finish(), rec.encode());
        }

        /// The view reads exactly what decode reads, and refuses exactly what it refuses.
        #[test]
        fn view_matches_decode(rec in arb_record(), cut in any::<usize>(), flip in any::<usize>()) {
            let bytes = rec.encode();
            prop_assert_eq!(LogsRecordView::parse(&bytes).unwrap().to_record(), rec);
            let cut = cut % (bytes.len() + 1);
            let mut flipped = bytes[..cut].to_vec();
            if !flipped.is_empty() {
                let i = flip % flipped.len();
                flipped[i] ^= 1 << (flip % 8);
            }
            let view = LogsRecordView::parse(&flipped).map(|v| v.to_record());
            let decoded = LogsRecord::decode(&flipped);
            prop_assert_eq!(view.is_ok(), decoded.is_ok(), "{:?} vs {:?}", view, decoded);
            if let (Ok(v), Ok(d)) = (view, decoded) {
                prop_assert_eq!(v, d);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = LOGS_MAGIC.to_vec();
            bytes.push(LOGS_VERSION);
            bytes.extend_from_slice(&tail);
            let _ = LogsRecord::decode(&bytes);
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(rec in arb_record(), cut in any::<usize>(), flip in any::<usize>()) {
            let bytes = rec.encode();
            let cut = cut % (bytes.len() + 1);
            let _ = LogsRecord::decode(&bytes[..cut]);
            let mut flipped = bytes.clone();
            let i = flip % flipped.len();
            flipped[i] ^= 1 << (flip % 8);
            let _ = LogsRecord::decode(&flipped);
        }
    }
}
