//! The `metrics` record format (`docs/formats/records.md`, the same bytes as
//! `bongsu_model::MetricsRecord`) written and read without owned label sets.
//!
//! [`MetricsRecordWriter`] encodes series straight from borrowed label pairs (the receiver's
//! decoded request) and [`MetricsRecordView`] reads a record into borrowed pairs (the store's
//! consumer), so neither allocates per series. Both produce and accept exactly what
//! `MetricsRecord::encode` and `MetricsRecord::decode` do: the tests compare them byte for
//! byte and value for value.

use std::collections::HashMap;

use bongsu_model::{MetricKind, RecordError, RecordResult, Sample, METRICS_MAGIC, METRICS_VERSION};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A metadata entry as borrowed strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataRef<'a> {
    pub family: &'a str,
    pub kind: MetricKind,
    pub help: &'a str,
    pub unit: &'a str,
}

/// Builds one `metrics` record from borrowed series. Symbols are numbered in order of first
/// use over the series' labels and then the metadata, as `MetricsRecord::encode` does, so
/// the output is byte-identical to encoding the same record with it.
#[derive(Debug, Default)]
pub struct MetricsRecordWriter<'a> {
    index: HashMap<&'a str, u32, Xxh3DefaultBuilder>,
    symbols: Vec<&'a str>,
    symbol_bytes: usize,
    series: usize,
    body: Vec<u8>,
    metadata: Vec<MetadataRef<'a>>,
}

impl<'a> MetricsRecordWriter<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.symbols.len() as u32;
        self.symbols.push(s);
        self.symbol_bytes += s.len() + 2;
        self.index.insert(s, i);
        i
    }

    /// Adds a series. `labels` must be a canonical label set (names non-empty and strictly
    /// increasing, values non-empty), as the receivers' validation guarantees.
    pub fn push_series(&mut self, labels: &[(&'a str, &'a str)], samples: &[Sample]) {
        debug_assert!(labels
            .windows(2)
            .all(|w| !w[0].0.is_empty() && w[0].0 < w[1].0));
        put_uvarint(&mut self.body, labels.len() as u64);
        for &(n, v) in labels {
            let n = self.intern(n);
            let v = self.intern(v);
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
        let metadata = std::mem::take(&mut self.metadata);
        let metadata: Vec<(u32, MetricKind, u32, u32)> = metadata
            .iter()
            .map(|m| {
                let family = self.intern(m.family);
                let help = self.intern(m.help);
                let unit = self.intern(m.unit);
                (family, m.kind, help, unit)
            })
            .collect();
        let mut out =
            Vec::with_capacity(32 + self.symbol_bytes + self.body.len() + metadata.len() * 8);
        out.extend_from_slice(&METRICS_MAGIC);
        out.push(METRICS_VERSION);
        put_uvarint(&mut out, self.symbols.len() as u64);
        for s in &self.symbols {
            put_uvarint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        put_uvarint(&mut out, self.series as u64);
        out.extend_from_slice(&self.body);
        put_uvarint(&mut out, metadata.len() as u64);
        for &(family, kind, help, unit) in &metadata {
            put_uvarint(&mut out, u64::from(family));
            out.push(kind.code());
            put_uvarint(&mut out, u64::from(help));
            put_uvarint(&mut out, u64::from(unit));
        }
        out
    }
}

/// Bytes of strings a record's symbol references may expand to, as `DecodeLimits`'s default.
const MAX_EXPANDED_BYTES: usize = 256 << 20;

/// A bounds-checked cursor over untrusted record bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    expanded: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> RecordResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(RecordError::Truncated {
                offset: self.pos,
                expected: n,
                found: self.remaining(),
            });
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn u8(&mut self) -> RecordResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn uvarint(&mut self) -> RecordResult<u64> {
        let offset = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(RecordError::Truncated {
                    offset: self.pos,
                    expected: 1,
                    found: 0,
                });
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(RecordError::BadVarint { offset });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(RecordError::BadVarint { offset })
    }

    fn count(&mut self, what: &'static str, min_size: usize) -> RecordResult<usize> {
        let offset = self.pos;
        let count = self.uvarint()?;
        let remaining = self.remaining();
        let fits = count
            .checked_mul(min_size.max(1) as u64)
            .is_some_and(|need| need <= remaining as u64);
        if !fits {
            return Err(RecordError::CountTooLarge {
                what,
                count,
                offset,
                remaining,
            });
        }
        Ok(count as usize)
    }

    fn symbol(&mut self, syms: &[&'a str]) -> RecordResult<&'a str> {
        let index = self.uvarint()?;
        let s = usize::try_from(index)
            .ok()
            .and_then(|i| syms.get(i))
            .ok_or(RecordError::BadSymbol {
                index,
                len: syms.len(),
            })?;
        self.expanded = self.expanded.saturating_add(s.len());
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(RecordError::ExpansionLimit {
                limit: MAX_EXPANDED_BYTES,
            });
        }
        Ok(s)
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
/// exactly the records `MetricsRecord::decode` accepts (default limits).
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
        let mut r = Cursor {
            buf: bytes,
            pos: 0,
            expanded: 0,
        };
        let m = r.take(4)?;
        if m != METRICS_MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(m);
            return Err(RecordError::BadMagic {
                expected: METRICS_MAGIC,
                found,
            });
        }
        let v = r.u8()?;
        if v != METRICS_VERSION {
            return Err(RecordError::UnsupportedVersion {
                found: v,
                supported: METRICS_VERSION,
            });
        }
        let n = r.count("symbol", 1)?;
        let mut syms = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.count("symbol", 1)?;
            let offset = r.pos;
            let b = r.take(len)?;
            let s = std::str::from_utf8(b).map_err(|_| RecordError::InvalidUtf8 {
                what: "symbol",
                offset,
            })?;
            syms.push(s);
        }
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
                let name = r.symbol(&syms)?;
                let value = r.symbol(&syms)?;
                let reason = if name.is_empty() {
                    Some("empty label name".to_owned())
                } else if value.is_empty() {
                    Some(format!("label {name:?} has an empty value"))
                } else if i > 0 && view.labels[start + i - 1].0 >= name {
                    Some(format!("label {name:?} out of order or duplicated"))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(RecordError::InvalidLabels { index, reason });
                }
                view.labels.push((name, value));
            }
            let k = r.count("sample", 16)?;
            let samples = r.take(k * 16)?;
            view.series.push((view.labels.len(), samples));
        }
        let m = r.count("metadata", 4)?;
        view.metadata.reserve(m);
        for _ in 0..m {
            let family = r.symbol(&syms)?;
            let code = r.u8()?;
            let kind = MetricKind::from_code(code).ok_or(RecordError::UnknownMetricKind(code))?;
            let help = r.symbol(&syms)?;
            let unit = r.symbol(&syms)?;
            view.metadata.push(MetadataRef {
                family,
                kind,
                help,
                unit,
            });
        }
        if r.remaining() != 0 {
            return Err(RecordError::TrailingBytes(r.remaining()));
        }
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
    use bongsu_model::{Label, Labels, MetricMetadata, MetricsRecord, Series};
    use proptest::prelude::*;

    use super::*;

    fn write(rec: &MetricsRecord) -> Vec<u8> {
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
        let mut w = MetricsRecordWriter::new();
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
                .map(|m| MetricMetadata {
                    family: m.family.to_owned(),
                    kind: m.kind,
                    help: m.help.to_owned(),
                    unit: m.unit.to_owned(),
                })
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
            prop_assert_eq!(write(&rec), rec.encode());
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
            prop_assert_eq!(model.is_ok(), view.is_ok(), "{:?} vs {:?}", model, view.as_ref().err());
            if let (Ok(m), Ok(v)) = (model, view) {
                prop_assert_eq!(owned(&v), m);
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
