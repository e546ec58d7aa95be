//! The `metrics` topic record: a batch of series, their samples and family metadata.

use super::error::{RecordError, RecordResult};
use super::wire::{
    put_uvarint, read_labels, read_symbol, read_symbols, write_labels, DecodeLimits, Reader,
    SymbolTable,
};
use crate::{Labels, Sample};

/// First four bytes of a metrics record.
pub const METRICS_MAGIC: [u8; 4] = *b"BGMR";
/// The metrics record version this build writes and reads.
pub const METRICS_VERSION: u8 = 1;

/// One series of a batch: its label set and samples in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The type of a metric family, as Prometheus and OpenMetrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricKind {
    #[default]
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricKind {
    /// The byte stored in a record.
    pub fn code(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Counter => 1,
            Self::Gauge => 2,
            Self::Histogram => 3,
            Self::GaugeHistogram => 4,
            Self::Summary => 5,
            Self::Info => 6,
            Self::StateSet => 7,
        }
    }

    /// The kind for a stored byte, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unknown,
            1 => Self::Counter,
            2 => Self::Gauge,
            3 => Self::Histogram,
            4 => Self::GaugeHistogram,
            5 => Self::Summary,
            6 => Self::Info,
            7 => Self::StateSet,
            _ => return None,
        })
    }

    /// The name used in `# TYPE` lines (`unknown`, `counter`, `gaugehistogram`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
        }
    }
}

/// Metadata of one metric family (`# TYPE`, `# HELP`, `# UNIT`); empty strings when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricMetadata {
    pub family: String,
    pub kind: MetricKind,
    pub help: String,
    pub unit: String,
}

/// A record of the `metrics` topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsRecord {
    pub series: Vec<Series>,
    pub metadata: Vec<MetricMetadata>,
}

impl MetricsRecord {
    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Encodes the record (format in `docs/formats/records.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.sample_count() * 16 + self.series.len() * 8);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut syms = SymbolTable::default();
        for s in &self.series {
            for l in &s.labels {
                syms.intern(&l.name);
                syms.intern(&l.value);
            }
        }
        for m in &self.metadata {
            syms.intern(&m.family);
            syms.intern(&m.help);
            syms.intern(&m.unit);
        }
        out.extend_from_slice(&METRICS_MAGIC);
        out.push(METRICS_VERSION);
        syms.write(out);
        put_uvarint(out, self.series.len() as u64);
        for s in &self.series {
            write_labels(out, &s.labels, &syms);
            put_uvarint(out, s.samples.len() as u64);
            for sample in &s.samples {
                out.extend_from_slice(&sample.timestamp_ms.to_le_bytes());
                out.extend_from_slice(&sample.value.to_bits().to_le_bytes());
            }
        }
        put_uvarint(out, self.metadata.len() as u64);
        for m in &self.metadata {
            put_uvarint(out, u64::from(syms.lookup(&m.family)));
            out.push(m.kind.code());
            put_uvarint(out, u64::from(syms.lookup(&m.help)));
            put_uvarint(out, u64::from(syms.lookup(&m.unit)));
        }
    }

    /// Decodes a record with the default [`DecodeLimits`].
    pub fn decode(bytes: &[u8]) -> RecordResult<Self> {
        Self::decode_with_limits(bytes, DecodeLimits::default())
    }

    /// Decodes a record from untrusted bytes; never panics, bounds allocations.
    pub fn decode_with_limits(bytes: &[u8], limits: DecodeLimits) -> RecordResult<Self> {
        let mut r = Reader::new(bytes, limits);
        r.header(METRICS_MAGIC, METRICS_VERSION)?;
        let syms = read_symbols(&mut r)?;
        // A series takes at least 2 bytes: a label count and a sample count.
        let n = r.count("series", 2)?;
        let mut series = Vec::with_capacity(n);
        for index in 0..n {
            let labels = read_labels(&mut r, &syms, index)?;
            let k = r.count("sample", 16)?;
            let mut samples = Vec::with_capacity(k);
            for _ in 0..k {
                let ts = r.u64_le()? as i64;
                let v = f64::from_bits(r.u64_le()?);
                samples.push(Sample::new(ts, v));
            }
            series.push(Series { labels, samples });
        }
        // A metadata entry takes at least 4 bytes: three references and the kind.
        let m = r.count("metadata", 4)?;
        let mut metadata = Vec::with_capacity(m);
        for _ in 0..m {
            let family = read_symbol(&mut r, &syms)?;
            let code = r.u8()?;
            let kind = MetricKind::from_code(code).ok_or(RecordError::UnknownMetricKind(code))?;
            let help = read_symbol(&mut r, &syms)?;
            let unit = read_symbol(&mut r, &syms)?;
            metadata.push(MetricMetadata {
                family,
                kind,
                help,
                unit,
            });
        }
        r.finish()?;
        Ok(Self { series, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{1,6}", 0..6)
            .prop_map(|m| Labels::from_pairs(m).unwrap_or_default())
    }

    fn arb_record() -> impl Strategy<Value = MetricsRecord> {
        let series = proptest::collection::vec(
            (
                arb_labels(),
                proptest::collection::vec(
                    (any::<i64>(), any::<u64>())
                        .prop_map(|(t, v)| Sample::new(t, f64::from_bits(v))),
                    0..5,
                ),
            )
                .prop_map(|(labels, samples)| Series { labels, samples }),
            0..6,
        );
        let meta = proptest::collection::vec(
            ("[a-z]{0,5}", 0u8..8, "\\PC{0,8}", "[a-z]{0,3}").prop_map(|(f, k, h, u)| {
                MetricMetadata {
                    family: f,
                    kind: MetricKind::from_code(k).unwrap_or_default(),
                    help: h,
                    unit: u,
                }
            }),
            0..3,
        );
        (series, meta).prop_map(|(series, metadata)| MetricsRecord { series, metadata })
    }

    #[test]
    fn repeated_strings_are_stored_once() {
        let series: Vec<Series> = (0..100)
            .map(|i| Series {
                labels: Labels::from_pairs([
                    ("__name__", "node_cpu_seconds_total"),
                    ("instance", "host-with-a-long-name:9100"),
                    ("cpu", if i % 2 == 0 { "0" } else { "1" }),
                ])
                .unwrap(),
                samples: vec![Sample::new(i, 1.0)],
            })
            .collect();
        let rec = MetricsRecord {
            series,
            metadata: vec![],
        };
        let bytes = rec.encode();
        let occurrences = bytes
            .windows(b"host-with-a-long-name".len())
            .filter(|w| *w == b"host-with-a-long-name")
            .count();
        assert_eq!(occurrences, 1);
        assert_eq!(MetricsRecord::decode(&bytes).unwrap(), rec);
    }

    #[test]
    fn rejects_wrong_magic_version_and_trailing_bytes() {
        let mut bytes = MetricsRecord::default().encode();
        assert_eq!(bytes, [b'B', b'G', b'M', b'R', 1, 0, 0, 0]);
        bytes.push(0);
        assert_eq!(
            MetricsRecord::decode(&bytes),
            Err(RecordError::TrailingBytes(1))
        );
        bytes.pop();
        bytes[4] = 2;
        assert!(matches!(
            MetricsRecord::decode(&bytes),
            Err(RecordError::UnsupportedVersion { found: 2, .. })
        ));
        bytes[0] = b'X';
        assert!(matches!(
            MetricsRecord::decode(&bytes),
            Err(RecordError::BadMagic { .. })
        ));
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        // symbol count = 2^62: refused before allocating.
        let mut bytes = METRICS_MAGIC.to_vec();
        bytes.push(METRICS_VERSION);
        bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        assert!(matches!(
            MetricsRecord::decode(&bytes),
            Err(RecordError::CountTooLarge { what: "symbol", .. })
        ));
    }

    #[test]
    fn symbol_expansion_is_bounded() {
        // One 1000-byte symbol referenced by 2000 labels in 1000 series.
        let mut bytes = METRICS_MAGIC.to_vec();
        bytes.push(METRICS_VERSION);
        bytes.push(1);
        put_uvarint(&mut bytes, 1000);
        bytes.extend(std::iter::repeat_n(b'a', 1000));
        put_uvarint(&mut bytes, 1000);
        for _ in 0..1000 {
            bytes.extend_from_slice(&[1, 0, 0, 0]);
        }
        bytes.push(0);
        let limits = DecodeLimits {
            max_expanded_bytes: 100_000,
        };
        assert_eq!(
            MetricsRecord::decode_with_limits(&bytes, limits),
            Err(RecordError::ExpansionLimit { limit: 100_000 })
        );
    }

    #[test]
    fn refuses_unsorted_labels() {
        let mut bytes = METRICS_MAGIC.to_vec();
        bytes.push(METRICS_VERSION);
        // symbols: "b", "a", "x"
        bytes.extend_from_slice(&[3, 1, b'b', 1, b'a', 1, b'x']);
        // one series, two labels: b=x, a=x (unsorted), no samples
        bytes.extend_from_slice(&[1, 2, 0, 2, 1, 2, 0, 0]);
        assert!(matches!(
            MetricsRecord::decode(&bytes),
            Err(RecordError::InvalidLabels { index: 0, .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(rec in arb_record()) {
            let bytes = rec.encode();
            prop_assert_eq!(MetricsRecord::decode(&bytes).unwrap(), rec);
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = METRICS_MAGIC.to_vec();
            bytes.push(METRICS_VERSION);
            bytes.extend_from_slice(&tail);
            let _ = MetricsRecord::decode(&bytes);
            let _ = MetricsRecord::decode(&tail);
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(rec in arb_record(), cut in any::<usize>(), flip in any::<usize>()) {
            let bytes = rec.encode();
            let cut = cut % (bytes.len() + 1);
            let _ = MetricsRecord::decode(&bytes[..cut]);
            let mut flipped = bytes.clone();
            let i = flip % flipped.len();
            flipped[i] ^= 1 << (flip % 8);
            let _ = MetricsRecord::decode(&flipped);
        }
    }
}
