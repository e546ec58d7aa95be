//! Remote_write 1.0 decoded in place: a hand-written protobuf reader over the decompressed
//! body whose label names and values borrow the body's bytes.
//!
//! It accepts and refuses exactly what [`crate::decode_write_request`] (prost, owned
//! labels) does for every well-formed message, with the same validation and the same error
//! for the first broken limit; the tests compare the two. Two differences on malformed
//! bytes: protobuf groups (wire types 3 and 4, unused by any remote_write sender) are
//! refused as malformed, and the malformed detail text differs.

use bongsu_model::{MetadataRef, MetricKind, Sample};

use crate::compression;
use crate::error::{Error, Result};
use crate::labels::{check_label_pairs, check_metric_name};
use crate::limits::{Limits, KEY_SAMPLES};

/// Checks the body size and decompresses a snappy remote_write body within the limits.
pub fn decompress_remote_write(body: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_remote_write_into(body, limits, &mut out)?;
    Ok(out)
}

/// [`decompress_remote_write`] into `out`, replacing its contents: a receiver that keeps its
/// buffers allocates nothing here once they are large enough.
pub fn decompress_remote_write_into(body: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
    compression::check_body(body, limits)?;
    compression::snappy_into(body, limits, out)
}

/// One validated series of a [`WriteRequestView`]: canonical labels (sorted, unique, no
/// empty values, a valid `__name__`) and at least one sample.
#[derive(Debug, Clone, Copy)]
pub struct WriteSeries<'v, 'a> {
    pub labels: &'v [(&'a str, &'a str)],
    pub samples: &'v [Sample],
}

/// A decoded, validated remote_write request borrowing the decompressed body. Series
/// without samples are left out, as [`crate::decode_write_request`] does.
#[derive(Debug, Default)]
pub struct WriteRequestView<'a> {
    labels: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    /// Per series: end of its labels, end of its samples.
    series: Vec<(usize, usize)>,
    metadata: Vec<MetadataRef<'a>>,
    /// Exemplars received and dropped.
    pub exemplars_dropped: usize,
    /// Native histogram samples received and dropped.
    pub histograms_dropped: usize,
}

impl<'a> WriteRequestView<'a> {
    /// The series, in request order.
    pub fn series(&self) -> impl Iterator<Item = WriteSeries<'_, 'a>> + '_ {
        let (mut l0, mut s0) = (0, 0);
        self.series.iter().map(move |&(l1, s1)| {
            let s = WriteSeries {
                labels: &self.labels[l0..l1],
                samples: &self.samples[s0..s1],
            };
            (l0, s0) = (l1, s1);
            s
        })
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Number of label pairs over all series.
    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    /// Metadata entries (type as remote_write's int, mapped like the owned decoder).
    pub fn metadata(&self) -> &[MetadataRef<'a>] {
        &self.metadata
    }
}

#[cold]
fn malformed(detail: &str) -> Error {
    Error::malformed("remote write protobuf", detail)
}

#[cold]
fn wrong_wire_type(wire: u8, want: u8) -> Error {
    malformed(&format!("invalid wire type: {wire} (expected {want})"))
}

/// A protobuf reader over untrusted bytes.
struct Pb<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Pb<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // Tags, lengths and most timestamps' first bytes: one byte, below 0x80.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(malformed("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(malformed("invalid varint"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(malformed("invalid varint"))
    }

    /// The next field's tag and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| malformed("invalid key value"))?;
        let wire = (key & 7) as u8;
        let tag = key >> 3;
        if tag == 0 {
            return Err(malformed("invalid tag value: 0"));
        }
        Ok((tag, wire))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let rest = self.buf.len() - self.pos;
        if len > rest as u64 {
            return Err(malformed("buffer underflow"));
        }
        let b = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(b)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64> {
        let Some(b) = self.buf.get(self.pos..self.pos + 8) else {
            return Err(malformed("buffer underflow"));
        };
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.bytes().map(drop),
            5 => {
                if self.buf.len() - self.pos < 4 {
                    return Err(malformed("buffer underflow"));
                }
                self.pos += 4;
                Ok(())
            }
            3 | 4 => Err(malformed("protobuf groups are not supported")),
            w => Err(malformed(&format!("invalid wire type value: {w}"))),
        }
    }

    #[inline]
    fn expect(wire: u8, want: u8) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            Err(wrong_wire_type(wire, want))
        }
    }

    #[inline]
    fn string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| malformed("invalid string value: data is not UTF-8 encoded"))
    }
}

/// Decodes a snappy remote_write 1.0 body into a view over `raw`, the output of
/// [`decompress_remote_write`]. Same validation as [`crate::decode_remote_write`].
pub fn decode_write_request_view<'a>(
    raw: &'a [u8],
    limits: &Limits,
) -> Result<WriteRequestView<'a>> {
    // Pass 1: the whole message, as sent. The labels go straight into the view and are
    // validated and compacted in place by pass 2.
    let mut raw_series: Vec<(usize, usize)> = Vec::new();
    let mut view = WriteRequestView::default();
    let mut pb = Pb::new(raw);
    while !pb.done() {
        let (tag, wire) = pb.key()?;
        match tag {
            1 => {
                Pb::expect(wire, 2)?;
                let ts = pb.bytes()?;
                read_series(ts, &mut view)?;
                raw_series.push((view.labels.len(), view.samples.len()));
                if raw_series.len() == 1 {
                    reserve_like_first(&mut view, &mut raw_series, raw.len(), pb.pos, limits);
                }
            }
            3 => {
                Pb::expect(wire, 2)?;
                let m = pb.bytes()?;
                view.metadata.push(read_metadata(m)?);
            }
            _ => pb.skip(wire)?,
        }
    }
    if view.samples.len() > limits.max_samples_per_request {
        return Err(Error::TooManyItems {
            what: "samples",
            actual: view.samples.len(),
            limit: limits.max_samples_per_request,
            key: KEY_SAMPLES,
        });
    }
    // Pass 2: validate and canonicalize each series' labels, moving the kept ones down over
    // empty values and over the labels of series without samples, which are dropped.
    view.series.reserve_exact(raw_series.len());
    let mut kept_labels = 0;
    let mut kept_samples = 0;
    let (mut l0, mut s0) = (0, 0);
    for (i, &(l1, s1)) in raw_series.iter().enumerate() {
        let end = validate_in_place(&mut view.labels, l0..l1, kept_labels, limits, i)?;
        if s1 != s0 {
            // Samples of dropped series are removed by moving the kept ones down.
            if kept_samples != s0 {
                view.samples.copy_within(s0..s1, kept_samples);
            }
            kept_samples += s1 - s0;
            kept_labels = end;
            view.series.push((kept_labels, kept_samples));
        }
        (l0, s0) = (l1, s1);
    }
    view.labels.truncate(kept_labels);
    view.samples.truncate(kept_samples);
    Ok(view)
}

/// Reserves room for the whole request after its first series, assuming the others look
/// like it (senders batch similar series), so the buffers are not grown and copied again and
/// again. The guess is bounded by the request's size and the limits.
fn reserve_like_first(
    view: &mut WriteRequestView<'_>,
    raw_series: &mut Vec<(usize, usize)>,
    raw_len: usize,
    first_len: usize,
    limits: &Limits,
) {
    let series = (raw_len / first_len.max(1)).saturating_add(1);
    // A label pair takes at least 4 bytes of the message, a sample at least 2.
    let labels = series
        .saturating_mul(view.labels.len())
        .min(raw_len / 4)
        .min(series.saturating_mul(limits.max_labels_per_series));
    let samples = series
        .saturating_mul(view.samples.len())
        .min(raw_len / 2)
        .min(limits.max_samples_per_request.saturating_add(1));
    view.labels
        .reserve(labels.saturating_sub(view.labels.len()));
    view.samples
        .reserve(samples.saturating_sub(view.samples.len()));
    raw_series.reserve(series);
}

fn read_series<'a>(buf: &'a [u8], view: &mut WriteRequestView<'a>) -> Result<()> {
    let mut pb = Pb::new(buf);
    while !pb.done() {
        let (tag, wire) = pb.key()?;
        match tag {
            1 => {
                Pb::expect(wire, 2)?;
                let mut l = Pb::new(pb.bytes()?);
                let (mut name, mut value) = ("", "");
                while !l.done() {
                    match l.key()? {
                        (1, w) => {
                            Pb::expect(w, 2)?;
                            name = l.string()?;
                        }
                        (2, w) => {
                            Pb::expect(w, 2)?;
                            value = l.string()?;
                        }
                        (_, w) => l.skip(w)?,
                    }
                }
                view.labels.push((name, value));
            }
            2 => {
                Pb::expect(wire, 2)?;
                let mut s = Pb::new(pb.bytes()?);
                let (mut t, mut v) = (0i64, 0f64);
                while !s.done() {
                    match s.key()? {
                        (1, w) => {
                            Pb::expect(w, 1)?;
                            v = f64::from_bits(s.fixed64()?);
                        }
                        (2, w) => {
                            Pb::expect(w, 0)?;
                            t = s.varint()? as i64;
                        }
                        (_, w) => s.skip(w)?,
                    }
                }
                view.samples.push(Sample::new(t, v));
            }
            3 => {
                Pb::expect(wire, 2)?;
                pb.bytes()?;
                view.exemplars_dropped += 1;
            }
            4 => {
                Pb::expect(wire, 2)?;
                pb.bytes()?;
                view.histograms_dropped += 1;
            }
            _ => pb.skip(wire)?,
        }
    }
    Ok(())
}

fn read_metadata(buf: &[u8]) -> Result<MetadataRef<'_>> {
    let mut pb = Pb::new(buf);
    let mut m = MetadataRef {
        family: "",
        kind: MetricKind::Unknown,
        help: "",
        unit: "",
    };
    while !pb.done() {
        match pb.key()? {
            (1, w) => {
                Pb::expect(w, 0)?;
                let t = pb.varint()? as i32;
                m.kind = u8::try_from(t)
                    .ok()
                    .and_then(MetricKind::from_code)
                    .unwrap_or(MetricKind::Unknown);
            }
            (2, w) => {
                Pb::expect(w, 2)?;
                m.family = pb.string()?;
            }
            (4, w) => {
                Pb::expect(w, 2)?;
                m.help = pb.string()?;
            }
            (5, w) => {
                Pb::expect(w, 2)?;
                m.unit = pb.string()?;
            }
            (_, w) => pb.skip(w)?,
        }
    }
    Ok(m)
}

/// Validates the labels of series `index`, `labels[raw]` as sent, as `build_series_labels`
/// does, and moves them, sorted and without empty values, down to `labels[at..]` (`at` is at
/// most `raw.start`). Returns the end of the moved labels.
fn validate_in_place(
    labels: &mut [(&str, &str)],
    raw: std::ops::Range<usize>,
    at: usize,
    limits: &Limits,
    index: usize,
) -> Result<usize> {
    debug_assert!(at <= raw.start);
    let context = || format!("series {index}");
    let pairs = &labels[raw.clone()];
    check_label_pairs(pairs.iter().copied(), limits, &context)?;
    let mut end = at;
    for i in raw {
        let pair = labels[i];
        if !pair.1.is_empty() {
            labels[end] = pair;
            end += 1;
        }
    }
    let mine = &mut labels[at..end];
    // Senders send sorted labels: check before sorting.
    if !mine.windows(2).all(|w| w[0].0 <= w[1].0) {
        mine.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    if let Some(w) = mine.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::DuplicateLabel {
            name: w[0].0.to_owned(),
            context: context(),
        });
    }
    let name = mine.iter().find(|p| p.0 == bongsu_model::METRIC_NAME);
    check_metric_name(name.map(|p| p.1), &context)?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use bongsu_model::{Label, Labels, MetricsRecord, Series};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::remote_write::{decode_write_request, proto};

    fn owned(v: &WriteRequestView<'_>) -> MetricsRecord {
        MetricsRecord {
            series: v
                .series()
                .map(|s| Series {
                    labels: Labels::new(s.labels.iter().map(|&(n, v)| Label::new(n, v)).collect())
                        .unwrap(),
                    samples: s.samples.to_vec(),
                })
                .collect(),
            metadata: v.metadata().iter().map(MetadataRef::to_metadata).collect(),
        }
    }

    /// Both decoders agree: same record, or the same error.
    fn agree(raw: &[u8], limits: &Limits) -> std::result::Result<(), TestCaseError> {
        let old = decode_write_request(raw, limits);
        let new = decode_write_request_view(raw, limits);
        match (old, new) {
            (Ok(o), Ok(n)) => {
                prop_assert_eq!(&owned(&n), &o.record);
                prop_assert_eq!(n.sample_count(), o.record.sample_count());
                prop_assert_eq!(n.exemplars_dropped, o.exemplars_dropped);
                prop_assert_eq!(n.histograms_dropped, o.histograms_dropped);
            }
            (Err(o), Err(n)) => {
                if !matches!(o, Error::Malformed { .. }) {
                    prop_assert_eq!(o.to_string(), n.to_string());
                }
                prop_assert_eq!(o.kind(), n.kind());
            }
            (o, n) => prop_assert!(false, "old {:?} new {:?}", o.map(|_| ()), n.map(|_| ())),
        }
        Ok(())
    }

    fn arb_request() -> impl Strategy<Value = proto::WriteRequest> {
        let name = prop_oneof![
            8 => "[a-c_]{1,3}",
            1 => Just("__name__".to_owned()),
            1 => "[0-9:-]{0,2}",
        ];
        let label = (name, "[a-c:]{0,3}").prop_map(|(name, value)| proto::Label { name, value });
        let labels = proptest::collection::vec(label, 0..6).prop_map(|mut l| {
            l.push(proto::Label {
                name: "__name__".into(),
                value: "up".into(),
            });
            l
        });
        let sample = (any::<i64>(), any::<f64>())
            .prop_map(|(timestamp, value)| proto::Sample { value, timestamp });
        let ts = (
            labels,
            proptest::collection::vec(sample, 0..4),
            0usize..2,
            0usize..2,
        )
            .prop_map(|(labels, samples, e, h)| proto::TimeSeries {
                labels,
                samples,
                exemplars: vec![vec![1, 2]; e],
                histograms: vec![vec![3]; h],
            });
        let md = ("[a-c]{0,3}", -1i32..9, "[a-d ]{0,4}", "[a-c]{0,2}").prop_map(
            |(metric_family_name, r#type, help, unit)| proto::MetricMetadata {
                r#type,
                metric_family_name,
                help,
                unit,
            },
        );
        (
            proptest::collection::vec(ts, 0..6),
            proptest::collection::vec(md, 0..2),
        )
            .prop_map(|(timeseries, metadata)| proto::WriteRequest {
                timeseries,
                metadata,
            })
    }

    #[test]
    fn limits_give_the_same_errors() {
        let req = proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: vec![
                    proto::Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    proto::Label {
                        name: "job".into(),
                        value: "abcdef".into(),
                    },
                ],
                samples: vec![proto::Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
                ..Default::default()
            }],
            metadata: Vec::new(),
        };
        let raw = req.encode_to_vec();
        let tight = Limits {
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let e = decode_write_request_view(&raw, &tight).unwrap_err();
        assert!(
            e.to_string().contains("ingest.max_label_value_bytes"),
            "{e}"
        );
        let e = decode_write_request_view(
            &raw,
            &Limits {
                max_samples_per_request: 0,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("ingest.max_samples_per_request"),
            "{e}"
        );
        let ok = decode_write_request_view(&raw, &Limits::default()).unwrap();
        let s: Vec<_> = ok.series().collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels, &[("__name__", "up"), ("job", "abcdef")]);
        assert_eq!(s[0].samples, &[Sample::new(5, 1.0)]);
        assert!(decode_write_request_view(b"\x0a\x05abc", &Limits::default()).is_err());
    }

    #[test]
    fn decompressing_into_a_used_buffer_gives_the_same_bytes() {
        let limits = Limits::default();
        let raw: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let mut buf = vec![7u8; 50_000];
        decompress_remote_write_into(&body, &limits, &mut buf).unwrap();
        assert_eq!(buf, raw);
        assert_eq!(decompress_remote_write(&body, &limits).unwrap(), raw);
        let mut short = vec![7u8; 3];
        decompress_remote_write_into(&body, &limits, &mut short).unwrap();
        assert_eq!(short, raw);
        // A broken body leaves an empty buffer and the same error as the owned call.
        let broken = &body[..body.len() / 2];
        let e = decompress_remote_write_into(broken, &limits, &mut buf).unwrap_err();
        assert!(buf.is_empty());
        assert_eq!(
            e.to_string(),
            decompress_remote_write(broken, &limits)
                .unwrap_err()
                .to_string()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_the_owned_decoder(req in arb_request(), samples_limit in 0usize..30) {
            let raw = req.encode_to_vec();
            agree(&raw, &Limits::default())?;
            let tight = Limits {
                max_samples_per_request: samples_limit,
                max_labels_per_series: 4,
                max_label_value_bytes: 2,
                ..Limits::default()
            };
            agree(&raw, &tight)?;
        }

        #[test]
        fn damaged_bytes_never_panic(req in arb_request(), cut in any::<usize>(), flip in any::<usize>(), bit in 0u8..8) {
            let mut raw = req.encode_to_vec();
            if !raw.is_empty() {
                let i = flip % raw.len();
                raw[i] ^= 1 << bit;
                raw.truncate(raw.len() - cut % 2);
            }
            let _ = decode_write_request_view(&raw, &Limits::default());
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_write_request_view(&raw, &Limits::default());
        }
    }
}
