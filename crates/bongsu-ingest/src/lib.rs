//! bongsu's ingest protocol layer: pure, I/O-free decoders that turn what senders send into
//! validated, bounded, normalized records for the `metrics` and `logs` topics.
//!
//! - Prometheus remote_write 1.0: [`classify_remote_write`], [`decode_remote_write`].
//! - Prometheus text 0.0.4 and OpenMetrics 1.0 expositions: [`parse_exposition`].
//! - Syslog RFC 3164 / RFC 5424: [`parse_syslog`], [`syslog_batch`], and TCP framing:
//!   [`SyslogFramer`].
//! - Loki push API (protobuf + snappy, JSON, gzip): [`decode_loki_push`].
//!
//! Every decoder returns a fully valid result or an [`Error`] whose [`Error::kind`] tells the
//! server which HTTP status to answer; nothing is half-accepted. Limits are in [`Limits`].

mod compression;
mod error;
mod exposition;
mod framing;
mod labels;
mod limits;
mod loki;
mod remote_write;
mod remote_write_view;
mod syslog;

pub use error::{Error, ErrorKind, Result};
pub use exposition::{parse_exposition, Exposition, ExpositionFormat};
pub use framing::{Frame, FramerStats, Frames, SyslogFramer};
pub use limits::Limits;
pub use loki::proto as logproto;
pub use loki::{decode_loki_json, decode_loki_protobuf, decode_loki_push, parse_stream_selector};
pub use remote_write::proto as prompb;
pub use remote_write::{
    classify_remote_write, decode_remote_write, decode_write_request, RemoteWrite,
    RemoteWriteVersion, PROTO_V1, PROTO_V2,
};
pub use remote_write_view::{
    decode_write_request_view, decompress_remote_write, decompress_remote_write_into,
    WriteRequestView, WriteSeries,
};
pub use syslog::{
    facility_name, parse_syslog, parse_syslog_message, parse_syslog_ref, severity_name,
    syslog_batch, SyslogMessage, SyslogMessageRef, SyslogMeta, SyslogRecord, SyslogStream,
};
