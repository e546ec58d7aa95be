//! The Loki push API: `PushRequest` protobuf in snappy (Loki clients' default) or JSON,
//! optionally under `Content-Encoding: gzip`.

use std::fmt;

use bongsu_model::{Label, Labels, LogEntry, LogStream, LogsRecord};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::compression;
use crate::error::{Error, Result};
use crate::labels::build_labels;
use crate::limits::{Limits, KEY_ENTRIES, KEY_LABEL_NAME, KEY_LABEL_VALUE, KEY_LINE, KEY_STREAMS};

/// The Loki push wire messages (`logproto`), written by hand with prost. Public so senders
/// and tests can build bodies.
pub mod proto {
    /// `logproto.PushRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    /// `logproto.StreamAdapter`: `labels` is a selector string like `{app="x", env="y"}`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    /// `logproto.EntryAdapter`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    /// `logproto.LabelPairAdapter`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`
    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// Decodes a Loki push request by its `Content-Type` and `Content-Encoding` headers.
///
/// - `application/x-protobuf` (or no Content-Type): a snappy block-format `PushRequest`.
/// - `application/json`: `{"streams":[{"stream":{...},"values":[["<ns>","line"(,{meta})]]}]}`.
/// - `Content-Encoding: gzip` is undone first (bounded); `identity` or none means as sent.
///
/// Any other type or encoding is a 415. The whole request is accepted or refused.
pub fn decode_loki_push(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<LogsRecord> {
    compression::check_body(body, limits)?;
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = match media.as_str() {
        "application/json" => true,
        "" | "application/x-protobuf" => false,
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "Loki push bodies are application/x-protobuf or application/json, not {other:?}"
            )))
        }
    };
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    let gunzipped;
    let body = match encoding.as_deref() {
        None | Some("") | Some("identity") => body,
        Some("gzip") => {
            gunzipped = compression::gzip(body, limits)?;
            &gunzipped[..]
        }
        Some(other) => {
            return Err(Error::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {other:?}: send gzip or no encoding"
            )))
        }
    };
    if json {
        if body.len() > limits.max_decompressed_bytes {
            return Err(Error::DecompressedTooLarge {
                size: body.len() as u64,
                limit: limits.max_decompressed_bytes,
                key: crate::limits::KEY_DECOMPRESSED,
            });
        }
        decode_loki_json(body, limits)
    } else {
        let raw = compression::snappy(body, limits)?;
        decode_loki_protobuf(&raw, limits)
    }
}

/// Decodes an uncompressed `PushRequest` protobuf.
pub fn decode_loki_protobuf(raw: &[u8], limits: &Limits) -> Result<LogsRecord> {
    let req = <proto::PushRequest as prost::Message>::decode(raw)
        .map_err(|e| Error::malformed("Loki push protobuf", e))?;
    check_counts(
        req.streams.len(),
        req.streams.iter().map(|s| s.entries.len()).sum(),
        limits,
    )?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for (i, s) in req.streams.into_iter().enumerate() {
        let labels = parse_stream_selector(&s.labels, limits, i)?;
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            let ts = e.timestamp.unwrap_or_default();
            let timestamp_ns = ts
                .seconds
                .checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(i64::from(ts.nanos)))
                .ok_or_else(|| {
                    Error::malformed(
                        "Loki push protobuf",
                        format!("timestamp out of range in stream {i}"),
                    )
                })?;
            let md = e
                .structured_metadata
                .into_iter()
                .map(|p| Label::new(p.name, p.value))
                .collect();
            entries.push(entry(timestamp_ns, e.line, md, limits, i)?);
        }
        streams.push(LogStream { labels, entries });
    }
    Ok(LogsRecord { streams })
}

/// Decodes an uncompressed JSON push body.
pub fn decode_loki_json(raw: &[u8], limits: &Limits) -> Result<LogsRecord> {
    let req: JsonPush =
        serde_json::from_slice(raw).map_err(|e| Error::malformed("Loki push JSON", e))?;
    check_counts(
        req.streams.len(),
        req.streams.iter().map(|s| s.values.len()).sum(),
        limits,
    )?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for (i, s) in req.streams.into_iter().enumerate() {
        let pairs = s
            .stream
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .collect();
        let labels = stream_labels(pairs, limits, i)?;
        let mut entries = Vec::with_capacity(s.values.len());
        for v in s.values {
            let ts = match v.ts {
                JsonTs::Ns(ns) => ns,
                JsonTs::Invalid(ts) => {
                    return Err(Error::malformed(
                        "Loki push JSON",
                        format!(
                            "timestamp {ts:?} in stream {i} is not integer nanoseconds in a string"
                        ),
                    ))
                }
            };
            entries.push(entry(ts, v.line, v.metadata, limits, i)?);
        }
        streams.push(LogStream { labels, entries });
    }
    Ok(LogsRecord { streams })
}

fn check_counts(streams: usize, entries: usize, limits: &Limits) -> Result<()> {
    if streams > limits.max_streams_per_request {
        return Err(Error::TooManyItems {
            what: "streams",
            actual: streams,
            limit: limits.max_streams_per_request,
            key: KEY_STREAMS,
        });
    }
    if entries > limits.max_entries_per_request {
        return Err(Error::TooManyItems {
            what: "log entries",
            actual: entries,
            limit: limits.max_entries_per_request,
            key: KEY_ENTRIES,
        });
    }
    Ok(())
}

fn entry(
    timestamp_ns: i64,
    line: String,
    structured_metadata: Vec<Label>,
    limits: &Limits,
    stream: usize,
) -> Result<LogEntry> {
    if line.len() > limits.max_line_bytes {
        return Err(Error::ItemTooLarge {
            what: "log line length",
            actual: line.len(),
            limit: limits.max_line_bytes,
            key: KEY_LINE,
            context: format!("stream {stream}"),
        });
    }
    for m in &structured_metadata {
        if m.name.len() > limits.max_label_name_bytes {
            return Err(Error::ItemTooLarge {
                what: "structured metadata name length",
                actual: m.name.len(),
                limit: limits.max_label_name_bytes,
                key: KEY_LABEL_NAME,
                context: format!("stream {stream}"),
            });
        }
        if m.value.len() > limits.max_label_value_bytes {
            return Err(Error::ItemTooLarge {
                what: "structured metadata value length",
                actual: m.value.len(),
                limit: limits.max_label_value_bytes,
                key: KEY_LABEL_VALUE,
                context: format!("stream {stream}"),
            });
        }
    }
    Ok(LogEntry {
        timestamp_ns,
        line,
        structured_metadata,
    })
}

fn stream_labels(pairs: Vec<Label>, limits: &Limits, i: usize) -> Result<Labels> {
    let labels = build_labels(pairs, limits, || format!("stream {i}"))?;
    if labels.is_empty() {
        return Err(Error::StreamSelector {
            selector: "{}".to_owned(),
            detail: format!("stream {i} has no labels: give every stream at least one label"),
        });
    }
    Ok(labels)
}

/// Parses a Loki stream selector `{name="value", ...}` strictly: only `=` matchers,
/// double-quoted values with Go escapes, optional blanks between tokens.
pub fn parse_stream_selector(selector: &str, limits: &Limits, index: usize) -> Result<Labels> {
    let err = |detail: &str| Error::StreamSelector {
        selector: selector.chars().take(200).collect(),
        detail: detail.to_owned(),
    };
    let b = selector.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    skip(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err(err("must start with '{'"));
    }
    i += 1;
    let mut pairs = Vec::new();
    skip(&mut i);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            skip(&mut i);
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &selector[start..i];
            if name.is_empty() {
                return Err(err("expected a label name"));
            }
            skip(&mut i);
            if b.get(i) != Some(&b'=') {
                return Err(err(
                    "expected '=' after the label name (only equality matchers are allowed)",
                ));
            }
            i += 1;
            skip(&mut i);
            if b.get(i) != Some(&b'"') {
                return Err(err("expected a double-quoted label value"));
            }
            i += 1;
            let (value, next) = unquote_go(selector, i).map_err(|d| err(&d))?;
            i = next;
            pairs.push(Label::new(name, value));
            skip(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(err("expected ',' or '}' after a label value")),
            }
        }
    }
    skip(&mut i);
    if i != b.len() {
        return Err(err("unexpected text after '}'"));
    }
    stream_labels(pairs, limits, index).map_err(|e| match e {
        Error::StreamSelector { detail, .. } => err(&detail),
        other => other,
    })
}

/// Reads a Go double-quoted string body starting after the opening quote; returns the value
/// and the index after the closing quote.
fn unquote_go(s: &str, start: usize) -> std::result::Result<(String, usize), String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = start;
    let hex = |from: usize, n: usize| -> std::result::Result<u32, String> {
        s.get(from..from + n)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| "bad hex escape".to_owned())
    };
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((out, i + 1)),
            b'\n' => return Err("newline inside a label value".to_owned()),
            b'\\' => {
                let Some(&c) = b.get(i + 1) else {
                    return Err("unterminated escape".to_owned());
                };
                i += 2;
                let ch = match c {
                    b'a' => '\x07',
                    b'b' => '\x08',
                    b'f' => '\x0c',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'v' => '\x0b',
                    b'\\' => '\\',
                    b'"' => '"',
                    b'\'' => '\'',
                    b'x' | b'u' | b'U' => {
                        let n = match c {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let v = hex(i, n)?;
                        i += n;
                        char::from_u32(v)
                            .ok_or_else(|| "escape is not a valid character".to_owned())?
                    }
                    b'0'..=b'7' => {
                        let digits = s
                            .get(i - 1..i + 2)
                            .filter(|d| d.bytes().all(|c| (b'0'..=b'7').contains(&c)))
                            .ok_or_else(|| "bad octal escape".to_owned())?;
                        let v = u32::from_str_radix(digits, 8)
                            .map_err(|_| "bad octal escape".to_owned())?;
                        i += 2;
                        char::from_u32(v)
                            .filter(|_| v < 256)
                            .ok_or_else(|| "bad octal escape".to_owned())?
                    }
                    _ => return Err(format!("unknown escape '\\{}'", c as char)),
                };
                out.push(ch);
            }
            _ => {
                // Copy one whole UTF-8 character.
                let ch = s[i..]
                    .chars()
                    .next()
                    .ok_or_else(|| "bad UTF-8".to_owned())?;
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Err("label value without closing quote".to_owned())
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    stream: std::collections::BTreeMap<String, String>,
    values: Vec<JsonEntry>,
}

/// A JSON entry's timestamp: parsed from the string while decoding (no allocation), or the
/// string itself when it is not an integer, for the error message.
enum JsonTs {
    Ns(i64),
    Invalid(String),
}

impl<'de> Deserialize<'de> for JsonTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonTs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of integer nanoseconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<JsonTs, E> {
                Ok(match v.parse() {
                    Ok(ns) => JsonTs::Ns(ns),
                    Err(_) => JsonTs::Invalid(v.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct JsonEntry {
    ts: JsonTs,
    line: String,
    metadata: Vec<Label>,
}

impl<'de> Deserialize<'de> for JsonEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an entry ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {"name": "value"}]"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonEntry, A::Error> {
                let ts: JsonTs = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let meta: Option<std::collections::BTreeMap<String, String>> =
                    seq.next_element()?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(JsonEntry {
                    ts,
                    line,
                    metadata: meta
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(n, v)| Label::new(n, v))
                        .collect(),
                })
            }
        }
        d.deserialize_seq(V)
    }
}
