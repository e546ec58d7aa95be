//! Prometheus remote_write 1.0: `WriteRequest` protobuf in a snappy block-format body.

use bongsu_model::{Label, MetricKind, MetricMetadata, MetricsRecord, Sample, Series};

use crate::compression;
use crate::error::{Error, Result};
use crate::labels::build_series_labels;
use crate::limits::{Limits, KEY_SAMPLES};

/// The remote_write 1.0 wire messages (Prometheus's `prompb`), written by hand with prost.
/// Public so senders and tests can build bodies.
pub mod proto {
    /// `prometheus.WriteRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// `prometheus.TimeSeries`. Exemplars (3) and native histograms (4) are kept as raw
    /// bytes only to be counted: bongsu drops them.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(bytes = "vec", repeated, tag = "3")]
        pub exemplars: Vec<Vec<u8>>,
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub histograms: Vec<Vec<u8>>,
    }

    /// `prometheus.Label`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `prometheus.Exemplar` (used by tests to build realistic bodies).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `prometheus.MetricMetadata`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// The remote_write protocol a request speaks, once its headers are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteWriteVersion {
    /// Remote write 1.0: `prometheus.WriteRequest`, snappy.
    V1,
}

/// The Content-Type parameter naming the 1.0 message.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
/// The Content-Type parameter naming the 2.0 message, which bongsu does not accept yet.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Classifies a remote_write request by its headers, before reading the body.
///
/// - `Content-Type`: absent, `application/x-protobuf`, or `application/x-protobuf;proto=prometheus.WriteRequest`
///   are remote write 1.0. `proto=io.prometheus.write.v2.Request` (remote write 2.0), any other
///   `proto`, or another media type is refused with 415, as the 2.0 specification requires of a
///   receiver that does not support the message. A header that does not parse is a 400.
/// - `Content-Encoding`: absent or `snappy`; anything else is a 415.
/// - `X-Prometheus-Remote-Write-Version`: informational (the specification lets receivers
///   ignore it; Content-Type decides); it must be a dotted version when present, else 400.
pub fn classify_remote_write(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    version: Option<&str>,
) -> Result<RemoteWriteVersion> {
    if let Some(ct) = content_type {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        if media.is_empty() || !media.contains('/') {
            return Err(Error::BadHeader {
                header: "Content-Type",
                value: ct.to_owned(),
                detail: "not a media type: send application/x-protobuf",
            });
        }
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(Error::UnsupportedMediaType(format!(
                "remote write bodies must be application/x-protobuf, not {media:?}"
            )));
        }
        for param in parts {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let Some((k, v)) = param.split_once('=') else {
                return Err(Error::BadHeader {
                    header: "Content-Type",
                    value: ct.to_owned(),
                    detail: "parameter without '=': use name=value",
                });
            };
            if !k.trim().eq_ignore_ascii_case("proto") {
                continue;
            }
            let v = v.trim().trim_matches('"');
            if v == PROTO_V2 {
                return Err(Error::UnsupportedMediaType(format!(
                    "remote write 2.0 ({PROTO_V2}) is not supported: configure the sender for remote write 1.0 ({PROTO_V1})"
                )));
            }
            if v != PROTO_V1 {
                return Err(Error::UnsupportedMediaType(format!(
                    "unknown remote write message {v:?}: send {PROTO_V1}"
                )));
            }
        }
    }
    if let Some(enc) = content_encoding {
        let enc = enc.trim();
        if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") {
            return Err(Error::UnsupportedMediaType(format!(
                "remote write bodies must be snappy-compressed, not {enc:?}"
            )));
        }
    }
    if let Some(v) = version {
        let v = v.trim();
        let ok = !v.is_empty()
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Error::BadHeader {
                header: "X-Prometheus-Remote-Write-Version",
                value: v.to_owned(),
                detail: "not a version: send 0.1.0 for remote write 1.0",
            });
        }
    }
    Ok(RemoteWriteVersion::V1)
}

/// A decoded, validated remote_write request, ready to append to the `metrics` topic.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    pub record: MetricsRecord,
    /// Exemplars received and dropped (bongsu does not store exemplars).
    pub exemplars_dropped: usize,
    /// Native histogram samples received and dropped (not supported by remote write 1.0 storage here).
    pub histograms_dropped: usize,
}

/// Decodes a remote_write 1.0 body: snappy block format around a `WriteRequest`.
///
/// Every series is validated (label names, lengths and counts, a valid `__name__`); labels are
/// sorted and duplicates refused. The whole request is accepted or refused.
pub fn decode_remote_write(body: &[u8], limits: &Limits) -> Result<RemoteWrite> {
    compression::check_body(body, limits)?;
    let raw = compression::snappy(body, limits)?;
    decode_write_request(&raw, limits)
}

/// Decodes an uncompressed `WriteRequest` protobuf (see [`decode_remote_write`]).
pub fn decode_write_request(raw: &[u8], limits: &Limits) -> Result<RemoteWrite> {
    let req = <proto::WriteRequest as prost::Message>::decode(raw)
        .map_err(|e| Error::malformed("remote write protobuf", e))?;
    let total: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    if total > limits.max_samples_per_request {
        return Err(Error::TooManyItems {
            what: "samples",
            actual: total,
            limit: limits.max_samples_per_request,
            key: KEY_SAMPLES,
        });
    }
    let mut exemplars_dropped = 0;
    let mut histograms_dropped = 0;
    let mut series = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        exemplars_dropped += ts.exemplars.len();
        histograms_dropped += ts.histograms.len();
        let pairs: Vec<Label> = ts
            .labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect();
        let labels = build_series_labels(pairs, limits, || format!("series {i}"))?;
        if ts.samples.is_empty() {
            continue;
        }
        let samples = ts
            .samples
            .iter()
            .map(|s| Sample::new(s.timestamp, s.value))
            .collect();
        series.push(Series { labels, samples });
    }
    let metadata = req
        .metadata
        .into_iter()
        .map(|m| MetricMetadata {
            family: m.metric_family_name,
            kind: u8::try_from(m.r#type)
                .ok()
                .and_then(MetricKind::from_code)
                .unwrap_or(MetricKind::Unknown),
            help: m.help,
            unit: m.unit,
        })
        .collect();
    Ok(RemoteWrite {
        record: MetricsRecord { series, metadata },
        exemplars_dropped,
        histograms_dropped,
    })
}
