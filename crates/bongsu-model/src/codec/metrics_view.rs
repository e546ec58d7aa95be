//! The `metrics` record written and read without owned label sets.
//!
//! [`MetricsRecordWriter`] encodes series straight from borrowed label pairs (a receiver's
//! decoded request) and [`MetricsRecordView`] reads a record into borrowed pairs (the store's
//! consumer), so neither allocates per series. They share [`MetricsRecord`]'s readers and
//! writers, and produce and accept exactly what [`MetricsRecord::encode`] and
//! [`MetricsRecord::decode`] do: the tests compare them byte for byte and value for value.

use super::error::{RecordError, RecordResult};
use super::metrics::{MetricKind, MetricMetadata, METRICS_MAGIC, METRICS_VERSION};
use super::wire::{put_uvarint, read_label, read_symbol_ref, read_symbols, Reader, SymbolTable};
use super::DecodeLimits;
use crate::Sample;

#[cfg(doc)]
use super::metrics::MetricsRecord;

/// A metadata entry as borrowed strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataRef<'a> {
    pub family: &'a str,
    pub kind: MetricKind,
    pub help: &'a str,
    pub unit: &'a str,
}

impl MetadataRef<'_> {
    /// The owned metadata this borrows.
    pub fn to_metadata(&self) -> MetricMetadata {
        MetricMetadata {
            family: self.family.to_owned(),
            kind: self.kind,
            help: self.help.to_owned(),
            unit: self.unit.to_owned(),
        }
    }
}

/// Builds one `metrics` record from borrowed series. Symbols are numbered in order of first
/// use over the series' labels and then the metadata, as [`MetricsRecord::encode`] does, so
/// the output is byte-identical to encoding the same record with it.
#[derive(Debug, Default)]
pub struct MetricsRecordWriter<'a> {
    symbols: SymbolTable<'a>,
    series: usize,
    body: Vec<u8>,
    metadata: Vec<MetadataRef<'a>>,
}

impl<'a> MetricsRecordWriter<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer with room for about `series` series holding `labels` label pairs and
    /// `samples` samples in all, so that it does not grow while they are added.
    pub fn with_capacity(series: usize, labels: usize, samples: usize) -> Self {
        Self {
            // Label values repeat across series; a quarter of the pairs is a fair guess of
            // the distinct strings.
            symbols: SymbolTable::with_capacity(labels / 4),
            series: 0,
            body: Vec::with_capacity(series * 3 + labels * 3 + samples * 16),
            metadata: Vec::new(),
        }
    }

    /// Adds a series. `labels` must be a canonical label set (names non-empty and strictly
    /// increasing, values non-empty), as the receivers' validation guarantees.
    pub fn push_series(&mut self, labels: &[(&'a str, &'a str)], samples: &[Sample]) {
        debug_assert!(labels
            .windows(2)
            .all(|w| !w[0].0.is_empty() && w[0].0 < w[1].0));
        put_uvarint(&mut self.body, labels.len() as u64);
        for &(n, v) in labels {
            let n = self.symbols.intern(n);
            let v = self.symbols.intern(v);
            put_uvarint(&mut self.body, u64::from(n));
            put_uvarint(&mut self.body, u64::from(v));
        }
        put_uvarint(&mut self.body, samples.len() as u64);
        self.body.reserve(samples.len() * 16);
        for s in samples {
            self.body.extend_from_slice(&s.timestamp_ms.to_le_bytes());
            self.body
                .extend_from_slice(&s.value.to_bits().to_le_bytes());
        }
        self.series += 1;
    }

    /// Adds a metadata entry (written after every series, whatever the call order).
    pub fn push_metadata(&mut self, m: MetadataRef<'a>) {
        // Interned at finish, after the series, to keep MetricsRecord's symbol order.
        self.metadata.push(m);
    }

    /// Series added so far.
    pub fn series_count(&self) -> usize {
        self.series
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.series == 0 && self.metadata.is_empty()
    }

    /// The encoded record.
    pub fn finish(mut self) -> Vec<u8> {
        for m in &self.metadata {
            self.symbols.intern(m.family);
            self.symbols.intern(m.help);
            self.symbols.intern(m.unit);
        }
        let mut out = Vec::with_capacity(
            16 + self.symbols.encoded_len_hint() + self.body.len() + self.metadata.len() * 8,
        );
        out.extend_from_slice(&METRICS_MAGIC);
        out.push(METRICS_VERSION);
        self.symbols.write(&mut out);
        put_uvarint(&mut out, self.series as u64);
        out.extend_from_slice(&self.body);
        put_uvarint(&mut out, self.metadata.len() as u64);
        for m in &self.metadata {
            put_uvarint(&mut out, u64::from(self.symbols.intern(m.family)));
            out.push(m.kind.code());
            put_uvarint(&mut out, u64::from(self.symbols.intern(m.help)));
            put_uvarint(&mut out, u64::from(self.symbols.intern(m.unit)));
        }
        out
    }
}

/// One series of a [`MetricsRecordView`].
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'v, 'a> {
    /// The canonical label set: names strictly increasing, values non-empty.
    pub labels: &'v [(&'a str, &'a str)],
    samples: &'a [u8],
}

impl SeriesView<'_, '_> {
    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.samples.len() / 16
    }

    /// The samples, in received order.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.chunks_exact(16).map(|c| {
            let mut t = [0u8; 8];
            let mut v = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            v.copy_from_slice(&c[8..]);
            Sample::new(i64::from_le_bytes(t), f64::from_bits(u64::from_le_bytes(v)))
        })
    }
}

/// A `metrics` record read in place: label strings borrow the record's bytes. Accepts
/// exactly the records [`MetricsRecord::decode`] accepts (default limits).
#[derive(Debug, Default)]
pub struct MetricsRecordView<'a> {
    labels: Vec<(&'a str, &'a str)>,
    /// Per series: end of its labels in `labels`, and its sample bytes.
    series: Vec<(usize, &'a [u8])>,
    metadata: Vec<MetadataRef<'a>>,
}

impl<'a> MetricsRecordView<'a> {
    /// Reads a record from untrusted bytes; never panics.
    pub fn parse(bytes: &'a [u8]) -> RecordResult<Self> {
        let mut r = Reader::new(bytes, DecodeLimits::default());
        r.header(METRICS_MAGIC, METRICS_VERSION)?;
        let syms = read_symbols(&mut r)?;
        // A series takes at least 2 bytes: a label count and a sample count.
        let n = r.count("series", 2)?;
        let mut view = MetricsRecordView {
            labels: Vec::with_capacity(n * 8),
            series: Vec::with_capacity(n),
            metadata: Vec::new(),
        };
        for index in 0..n {
            let k = r.count("label", 2)?;
            let start = view.labels.len();
            for i in 0..k {
                let prev = i.checked_sub(1).map(|p| view.labels[start + p].0);
                let pair = read_label(&mut r, &syms, index, prev)?;
                view.labels.push(pair);
            }
            let k = r.count("sample", 16)?;
            let samples = r.take(k * 16)?;
            view.series.push((view.labels.len(), samples));
        }
        // A metadata entry takes at least 4 bytes: three references and the kind.
        let m = r.count("metadata", 4)?;
        view.metadata.reserve(m);
        for _ in 0..m {
            let family = read_symbol_ref(&mut r, &syms)?;
            let code = r.u8()?;
            let kind = MetricKind::from_code(code).ok_or(RecordError::UnknownMetricKind(code))?;
            let help = read_symbol_ref(&mut r, &syms)?;
            let unit = read_symbol_ref(&mut r, &syms)?;
            view.metadata.push(MetadataRef {
                family,
                kind,
                help,
                unit,
            });
        }
        r.finish()?;
        Ok(view)
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The series, in record order.
    pub fn series(&self) -> impl Iterator<Item = SeriesView<'_, 'a>> + '_ {
        let mut start = 0;
        self.series.iter().map(move |&(end, samples)| {
            let labels = &self.labels[start..end];
            start = end;
            SeriesView { labels, samples }
        })
    }

    /// The metadata entries.
    pub fn metadata(&self) -> &[MetadataRef<'a>] {
        &self.metadata
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.1.len() / 16).sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Label, Labels, MetricsRecord, Series};

    /// Writes `rec` with a `new` writer or, if `sized`, one `with_capacity`.
    fn write(rec: &MetricsRecord, sized: bool) -> Vec<u8> {
        let pairs: Vec<Vec<(&str, &str)>> = rec
            .series
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect()
            })
            .collect();
        let mut w = if sized {
            MetricsRecordWriter::with_capacity(3, 10, 5)
        } else {
            MetricsRecordWriter::new()
        };
        for m in &rec.metadata {
            w.push_metadata(MetadataRef {
                family: &m.family,
                kind: m.kind,
                help: &m.help,
                unit: &m.unit,
            });
        }
        for (s, p) in rec.series.iter().zip(&pairs) {
            w.push_series(p, &s.samples);
        }
        w.finish()
    }

    fn owned(view: &MetricsRecordView<'_>) -> MetricsRecord {
        MetricsRecord {
            series: view
                .series()
                .map(|s| Series {
                    labels: Labels::new(s.labels.iter().map(|&(n, v)| Label::new(n, v)).collect())
                        .unwrap(),
                    samples: s.samples().collect(),
                })
                .collect(),
            metadata: view
                .metadata()
                .iter()
                .map(MetadataRef::to_metadata)
                .collect(),
        }
    }

    fn arb_record() -> impl Strategy<Value = MetricsRecord> {
        let labels = proptest::collection::btree_map("[a-c_]{1,3}", "[a-c]{1,3}", 0..5)
            .prop_map(|m| Labels::from_pairs(m).unwrap());
        let sample = (any::<i64>(), any::<f64>()).prop_map(|(t, v)| Sample::new(t, v));
        let series = (labels, proptest::collection::vec(sample, 0..4))
            .prop_map(|(labels, samples)| Series { labels, samples });
        let meta = ("[a-c]{0,3}", 0u8..8, "[a-d ]{0,5}", "[a-c]{0,2}").prop_map(|(f, k, h, u)| {
            MetricMetadata {
                family: f,
                kind: MetricKind::from_code(k).unwrap_or(MetricKind::Unknown),
                help: h,
                unit: u,
            }
        });
        (
            proptest::collection::vec(series, 0..6),
            proptest::collection::vec(meta, 0..3),
        )
            .prop_map(|(series, metadata)| MetricsRecord { series, metadata })
    }

    #[test]
    fn empty_record_matches_the_documented_bytes() {
        assert_eq!(
            MetricsRecordWriter::new().finish(),
            [0x42, 0x47, 0x4D, 0x52, 0x01, 0x00, 0x00, 0x00]
        );
        let v = MetricsRecordView::parse(&[0x42, 0x47, 0x4D, 0x52, 0x01, 0, 0, 0]).unwrap();
        assert_eq!(v.series_count(), 0);
    }

    #[test]
    fn refuses_what_the_model_refuses() {
        let rec = MetricsRecord {
            series: vec![Series {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "x")]).unwrap(),
                samples: vec![Sample::new(1, 2.0)],
            }],
            metadata: Vec::new(),
        };
        let mut bytes = rec.encode();
        // Swap the two label pairs' symbol references: names out of order.
        // symbols: "__name__" "up" "job" "x" -> pairs (0,1) (2,3)
        let pos = bytes.len() - 1 - 16 - 1 - 4;
        assert_eq!(&bytes[pos..pos + 4], &[0, 1, 2, 3]);
        bytes[pos..pos + 4].copy_from_slice(&[2, 3, 0, 1]);
        assert!(MetricsRecord::decode(&bytes).is_err());
        let e = MetricsRecordView::parse(&bytes).unwrap_err();
        assert!(
            matches!(e, RecordError::InvalidLabels { index: 0, .. }),
            "{e}"
        );
        assert!(MetricsRecordView::parse(b"BGLR\x01\0\0").is_err());
        let mut trailing = rec.encode();
        trailing.push(0);
        assert!(matches!(
            MetricsRecordView::parse(&trailing),
            Err(RecordError::TrailingBytes(1))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn writer_is_byte_identical_to_the_model(rec in arb_record()) {
            prop_assert_eq!(write(&rec, false), rec.encode());
            prop_assert_eq!(write(&rec, true), rec.encode());
        }

        #[test]
        fn view_reads_what_the_model_reads(rec in arb_record()) {
            let bytes = rec.encode();
            let view = MetricsRecordView::parse(&bytes).unwrap();
            prop_assert_eq!(view.sample_count(), rec.sample_count());
            prop_assert_eq!(owned(&view), rec);
        }

        #[test]
        fn view_agrees_with_the_model_on_damaged_bytes(rec in arb_record(), cut in any::<usize>(), flip in any::<usize>(), bit in 0u8..8) {
            let mut bytes = rec.encode();
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            bytes.truncate(bytes.len() - cut % 3);
            let model = MetricsRecord::decode(&bytes);
            let view = MetricsRecordView::parse(&bytes);
            // Both run the same readers: the same error, or the same record.
            match (model, view) {
                (Ok(m), Ok(v)) => prop_assert_eq!(owned(&v), m),
                (Err(m), Err(v)) => prop_assert_eq!(m, v),
                (m, v) => prop_assert!(false, "{:?} vs {:?}", m, v.err()),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = b"BGMR\x01".to_vec();
            bytes.extend_from_slice(&tail);
            let _ = MetricsRecordView::parse(&bytes);
            let _ = MetricsRecordView::parse(&tail);
        }
    }
}
