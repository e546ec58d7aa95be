//! The agent shipping protocol: one batch per `POST /api/v1/agent/push`, a fixed 48-byte header
//! (magic, version, queue epoch, sequence number, sizes, CRC-32C of header and body) and a
//! zstd-compressed body of sections (heartbeat, inventory, metrics, logs). Byte by byte in
//! `docs/formats/agent.md`.
//!
//! The metrics and logs sections carry exactly the `MetricsRecord` / `LogsRecord` encodings of
//! `docs/formats/records.md`, so the server validates them and appends them unchanged.

use bongsu_model::{DecodeLimits, LogsRecord, MetricsRecord};

use crate::{Error, Result};

/// The first four bytes of every batch.
pub const BATCH_MAGIC: [u8; 4] = *b"BSAG";
/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u16 = 1;
/// Header length in bytes.
pub const BATCH_HEADER_LEN: usize = 48;
/// The HTTP content type of a batch.
pub const BATCH_CONTENT_TYPE: &str = "application/x-bongsu-agent-batch";
/// The request header of a pipelined push: the decimal sequence number of the batch this one
/// follows (the server applies it only after that one).
pub const FOLLOWS_HEADER: &str = "bongsu-follows";

const SECTION_HEARTBEAT: u8 = 1;
const SECTION_INVENTORY: u8 = 2;
const SECTION_METRICS: u8 = 3;
const SECTION_LOGS: u8 = 4;

/// Bit of [`Batch::parts`] / a shipping mark: the metrics section was appended.
pub const PART_METRICS: u8 = 1;
/// Bit of [`Batch::parts`] / a shipping mark: the logs section was appended.
pub const PART_LOGS: u8 = 2;

/// What an agent says about itself in every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The host name.
    pub host: String,
    /// The agent's version.
    pub version: String,
    /// When the agent process started, Unix milliseconds.
    pub started_ms: i64,
}

/// A batch before encoding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The agent queue's random epoch; sequence numbers count within it.
    pub epoch: u64,
    /// Sequence number, increasing by at least 1 per batch within an epoch.
    pub seq: u64,
    /// When the batch was built, Unix milliseconds.
    pub created_ms: i64,
    pub heartbeat: Option<Heartbeat>,
    /// The host inventory as a JSON document, sent when it changed.
    pub inventory: Option<String>,
    pub metrics: Option<MetricsRecord>,
    pub logs: Option<LogsRecord>,
}

/// A decoded, validated batch. The metrics and logs sections are kept as their record
/// encodings (checked by decoding them), ready to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub epoch: u64,
    pub seq: u64,
    pub created_ms: i64,
    pub heartbeat: Option<Heartbeat>,
    pub inventory: Option<String>,
    /// The `MetricsRecord` bytes and their sample count.
    pub metrics: Option<(Vec<u8>, usize)>,
    /// The `LogsRecord` bytes and their entry count.
    pub logs: Option<(Vec<u8>, usize)>,
}

impl DecodedBatch {
    /// The [`PART_METRICS`] / [`PART_LOGS`] bits of the sections present.
    pub fn parts(&self) -> u8 {
        let mut p = 0;
        if self.metrics.is_some() {
            p |= PART_METRICS;
        }
        if self.logs.is_some() {
            p |= PART_LOGS;
        }
        p
    }
}

/// Bounds applied while decoding an untrusted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most bytes the body may decompress to.
    pub max_decompressed_bytes: usize,
    /// Most bytes of an inventory document.
    pub max_inventory_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_decompressed_bytes: 64 << 20,
            max_inventory_bytes: 4 << 20,
        }
    }
}

impl Batch {
    /// Encodes the batch, compressing the body with zstd at `level` (1 is fast and good).
    pub fn encode(&self, level: i32) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        if let Some(h) = &self.heartbeat {
            let mut p = Vec::with_capacity(16 + h.host.len() + h.version.len());
            put_str16(&mut p, &h.host);
            put_str16(&mut p, &h.version);
            p.extend_from_slice(&h.started_ms.to_le_bytes());
            put_section(&mut body, SECTION_HEARTBEAT, &p);
        }
        if let Some(inv) = &self.inventory {
            put_section(&mut body, SECTION_INVENTORY, inv.as_bytes());
        }
        if let Some(m) = &self.metrics {
            put_section(&mut body, SECTION_METRICS, &m.encode());
        }
        if let Some(l) = &self.logs {
            put_section(&mut body, SECTION_LOGS, &l.encode());
        }
        let raw_len = u32::try_from(body.len())
            .map_err(|_| Error::Batch("batch body over 4 GiB: ship smaller batches".into()))?;
        let compressed = zstd::bulk::compress(&body, level)
            .map_err(|e| Error::Batch(format!("cannot compress the batch: {e}")))?;
        let body_len = u32::try_from(compressed.len())
            .map_err(|_| Error::Batch("compressed batch over 4 GiB".into()))?;
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + compressed.len());
        out.extend_from_slice(&BATCH_MAGIC);
        out.extend_from_slice(&BATCH_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&raw_len.to_le_bytes());
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
        let header_crc = crc32c::crc32c(&out[..44]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&compressed);
        Ok(out)
    }
}

fn put_section(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Host names and versions are short; longer text is cut on a character boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn bad(detail: impl Into<String>) -> Error {
    Error::Batch(detail.into())
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The header fields of a batch, read without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub epoch: u64,
    pub seq: u64,
    pub created_ms: i64,
    pub raw_len: u32,
    pub body_len: u32,
}

/// Checks magic, version, sizes and both CRCs; returns the header.
pub fn decode_header(bytes: &[u8]) -> Result<BatchHeader> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(bad(format!(
            "batch is {} bytes, shorter than its {BATCH_HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..4] != BATCH_MAGIC {
        return Err(bad("bad magic: this is not a bongsu agent batch"));
    }
    let version = le_u16(bytes, 4);
    if version != BATCH_VERSION {
        return Err(bad(format!(
            "unsupported batch version {version} (this server reads {BATCH_VERSION}): upgrade the server"
        )));
    }
    if le_u16(bytes, 6) != 0 {
        return Err(bad("unknown flags set: upgrade the server"));
    }
    if crc32c::crc32c(&bytes[..44]) != le_u32(bytes, 44) {
        return Err(bad("header checksum mismatch: the batch is corrupt"));
    }
    let h = BatchHeader {
        epoch: le_u64(bytes, 8),
        seq: le_u64(bytes, 16),
        created_ms: le_u64(bytes, 24) as i64,
        raw_len: le_u32(bytes, 32),
        body_len: le_u32(bytes, 36),
    };
    if bytes.len() - BATCH_HEADER_LEN != h.body_len as usize {
        return Err(bad(format!(
            "body is {} bytes, the header says {}: the batch is truncated or padded",
            bytes.len() - BATCH_HEADER_LEN,
            h.body_len
        )));
    }
    if crc32c::crc32c(&bytes[BATCH_HEADER_LEN..]) != le_u32(bytes, 40) {
        return Err(bad("body checksum mismatch: the batch is corrupt"));
    }
    Ok(h)
}

/// Decodes and validates an untrusted batch; never panics, bounds what it allocates.
pub fn decode_batch(bytes: &[u8], limits: &BatchLimits) -> Result<DecodedBatch> {
    let h = decode_header(bytes)?;
    if h.raw_len as usize > limits.max_decompressed_bytes {
        return Err(bad(format!(
            "batch decompresses to {} bytes, over the limit of {}: ship smaller batches",
            h.raw_len, limits.max_decompressed_bytes
        )));
    }
    let body = zstd::bulk::decompress(&bytes[BATCH_HEADER_LEN..], h.raw_len as usize)
        .map_err(|e| bad(format!("body does not decompress: {e}")))?;
    if body.len() != h.raw_len as usize {
        return Err(bad(format!(
            "body decompresses to {} bytes, the header says {}",
            body.len(),
            h.raw_len
        )));
    }
    let mut out = DecodedBatch {
        epoch: h.epoch,
        seq: h.seq,
        created_ms: h.created_ms,
        heartbeat: None,
        inventory: None,
        metrics: None,
        logs: None,
    };
    let record_limits = DecodeLimits {
        max_expanded_bytes: limits.max_decompressed_bytes,
    };
    let mut pos = 0;
    let mut last_kind = 0u8;
    while pos < body.len() {
        if body.len() - pos < 5 {
            return Err(bad("truncated section header"));
        }
        let kind = body[pos];
        let len = le_u32(&body, pos + 1) as usize;
        pos += 5;
        if len > body.len() - pos {
            return Err(bad(format!("section {kind} is longer than the body")));
        }
        let payload = &body[pos..pos + len];
        pos += len;
        if kind <= last_kind {
            return Err(bad(format!(
                "section {kind} out of order or repeated: sections come once each, in kind order"
            )));
        }
        last_kind = kind;
        match kind {
            SECTION_HEARTBEAT => out.heartbeat = Some(decode_heartbeat(payload)?),
            SECTION_INVENTORY => {
                if payload.len() > limits.max_inventory_bytes {
                    return Err(bad(format!(
                        "inventory is {} bytes, over the limit of {}",
                        payload.len(),
                        limits.max_inventory_bytes
                    )));
                }
                let text =
                    std::str::from_utf8(payload).map_err(|_| bad("inventory is not UTF-8"))?;
                out.inventory = Some(text.to_owned());
            }
            SECTION_METRICS => {
                let rec = MetricsRecord::decode_with_limits(payload, record_limits)
                    .map_err(|e| bad(format!("metrics section: {e}")))?;
                out.metrics = Some((payload.to_vec(), rec.sample_count()));
            }
            SECTION_LOGS => {
                let rec = LogsRecord::decode_with_limits(payload, record_limits)
                    .map_err(|e| bad(format!("logs section: {e}")))?;
                out.logs = Some((payload.to_vec(), rec.entry_count()));
            }
            other => {
                return Err(bad(format!(
                    "unknown section kind {other}: upgrade the server"
                )))
            }
        }
    }
    Ok(out)
}

fn decode_heartbeat(p: &[u8]) -> Result<Heartbeat> {
    let mut pos = 0;
    let mut text = |what: &str| -> Result<String> {
        if p.len() - pos < 2 {
            return Err(bad(format!("heartbeat truncated in {what}")));
        }
        let n = le_u16(p, pos) as usize;
        pos += 2;
        if p.len() - pos < n {
            return Err(bad(format!("heartbeat truncated in {what}")));
        }
        let s = std::str::from_utf8(&p[pos..pos + n])
            .map_err(|_| bad(format!("heartbeat {what} is not UTF-8")))?;
        pos += n;
        Ok(s.to_owned())
    };
    let host = text("host")?;
    let version = text("version")?;
    if p.len() - pos != 8 {
        return Err(bad("heartbeat has the wrong length"));
    }
    Ok(Heartbeat {
        host,
        version,
        started_ms: le_u64(p, pos) as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::{Labels, LogEntry, LogStream, Sample, Series};
    use proptest::prelude::*;

    fn sample_batch(seq: u64, lines: &[String]) -> Batch {
        let labels = Labels::from_pairs([("__name__", "node_load1"), ("host", "a")]).unwrap();
        Batch {
            epoch: 0xdead_beef,
            seq,
            created_ms: 1_700_000_000_123,
            heartbeat: Some(Heartbeat {
                host: "a".into(),
                version: "0.1.0".into(),
                started_ms: -5,
            }),
            inventory: Some("{\"k\":\"한글\"}".into()),
            metrics: Some(MetricsRecord {
                series: vec![Series {
                    labels,
                    samples: vec![Sample::new(1, 0.5), Sample::stale(2)],
                }],
                metadata: vec![],
            }),
            logs: Some(LogsRecord {
                streams: vec![LogStream {
                    labels: Labels::from_pairs([("source", "file")]).unwrap(),
                    entries: lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| LogEntry::new(i as i64, l.clone()))
                        .collect(),
                }],
            }),
        }
    }

    #[test]
    fn round_trip_keeps_every_section() {
        let b = sample_batch(7, &["x".into(), "y".into()]);
        let bytes = b.encode(1).unwrap();
        assert_eq!(&bytes[..4], b"BSAG");
        let d = decode_batch(&bytes, &BatchLimits::default()).unwrap();
        assert_eq!((d.epoch, d.seq, d.created_ms), (b.epoch, 7, b.created_ms));
        assert_eq!(d.heartbeat, b.heartbeat);
        assert_eq!(d.inventory, b.inventory);
        assert_eq!(d.parts(), PART_METRICS | PART_LOGS);
        let (m, n) = d.metrics.unwrap();
        assert_eq!(n, 2);
        let m = MetricsRecord::decode(&m).unwrap();
        assert_eq!(m.series[0].samples[0], Sample::new(1, 0.5));
        assert!(m.series[0].samples[1].is_stale());
        let (l, n) = d.logs.unwrap();
        assert_eq!(n, 2);
        assert_eq!(LogsRecord::decode(&l).unwrap(), b.logs.unwrap());
    }

    #[test]
    fn an_empty_batch_is_a_header_and_an_empty_frame() {
        let b = Batch {
            seq: 1,
            ..Batch::default()
        };
        let d = decode_batch(&b.encode(3).unwrap(), &BatchLimits::default()).unwrap();
        assert_eq!(d.parts(), 0);
        assert!(d.heartbeat.is_none() && d.inventory.is_none());
    }

    #[test]
    fn limits_and_corruption_are_refused_with_a_reason() {
        let bytes = sample_batch(1, &["z".repeat(5000)]).encode(1).unwrap();
        let small = BatchLimits {
            max_decompressed_bytes: 100,
            ..BatchLimits::default()
        };
        let err = decode_batch(&bytes, &small).unwrap_err().to_string();
        assert!(err.contains("over the limit"), "{err}");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let err = decode_batch(&flipped, &BatchLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("body checksum"), "{err}");
        let mut header = bytes.clone();
        header[17] ^= 1;
        let err = decode_batch(&header, &BatchLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("header checksum"), "{err}");
        let err = decode_batch(&bytes[..bytes.len() - 1], &BatchLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(seq in any::<u64>(), epoch in any::<u64>(), lines in proptest::collection::vec(".{0,40}", 0..20)) {
            let mut b = sample_batch(seq, &lines);
            b.epoch = epoch;
            if lines.is_empty() {
                b.logs = None;
            }
            let d = decode_batch(&b.encode(1).unwrap(), &BatchLimits::default()).unwrap();
            prop_assert_eq!(d.seq, seq);
            prop_assert_eq!(d.epoch, epoch);
            let got = d.logs.map(|(l, _)| LogsRecord::decode(&l).unwrap());
            prop_assert_eq!(got, b.logs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_batch(&bytes, &BatchLimits::default());
        }

        #[test]
        fn arbitrary_bodies_with_valid_checksums_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            // A valid frame around arbitrary section bytes exercises the section parser.
            let compressed = zstd::bulk::compress(&body, 1).unwrap();
            let mut out = Vec::new();
            out.extend_from_slice(&BATCH_MAGIC);
            out.extend_from_slice(&BATCH_VERSION.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&[0u8; 24]);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
            let c = crc32c::crc32c(&out[..44]);
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&compressed);
            let _ = decode_batch(&out, &BatchLimits::default());
        }
    }
}
