//! Syslog bytes captured from a real rsyslog 8.2302 forwarding over TCP (omfwd), framed and
//! parsed as a receiver would.

use bongsu_ingest::{parse_syslog, syslog_batch, Frames, Limits, SyslogFramer};

// 2026-11-22T01:00:00Z, shortly after the capture.
const NOW: i64 = 1_795_309_200_000_000_000;

fn frame_all(bytes: &[u8], split: usize) -> Frames {
    let mut f = SyslogFramer::new(64 << 10);
    let mut out = Frames::default();
    f.push(&bytes[..split], &mut out);
    f.push(&bytes[split..], &mut out);
    f.finish(&mut out);
    assert_eq!(f.stats().truncated, 0);
    out
}

#[test]
fn rsyslog_octet_counted_rfc5424() {
    // template RSYSLOG_SyslogProtocol23Format, TCP_Framing="octet-counted"
    let bytes = include_bytes!("../data/rsyslog_octet_counted_5424.bin");
    let frames = frame_all(bytes, bytes.len());
    assert_eq!(frames.len(), 3);
    for split in 0..=bytes.len() {
        assert_eq!(frame_all(bytes, split), frames, "split at {split}");
    }
    let limits = Limits::default();
    let recs: Vec<_> = frames
        .iter()
        .map(|f| parse_syslog(f.data, NOW, &limits))
        .collect();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r.labels.to_string(),
            r#"{app="myapp", facility="local0", host="vm", level="info", severity="info", source="syslog"}"#
        );
        assert!(r.entry.line.starts_with("<134>1 2026-11-22T00:42:22."));
        assert!(r.entry.line.ends_with(&format!(
            "hello number {} with \"quotes\" and ünïcode",
            i + 1
        )));
        // 2026-11-22T00:42:22Z plus the fraction.
        let secs = r.entry.timestamp_ns / 1_000_000_000;
        assert_eq!(secs, 1_795_308_142);
    }
    assert!(recs[0].entry.timestamp_ns < recs[1].entry.timestamp_ns);
    let batch = syslog_batch(recs);
    assert_eq!(batch.streams.len(), 1);
    assert_eq!(batch.entry_count(), 3);
}

#[test]
fn rsyslog_newline_rfc3164() {
    // The default forwarding template (RFC 3164 layout), newline framing.
    let bytes = include_bytes!("../data/rsyslog_newline_3164.bin");
    let frames = frame_all(bytes, bytes.len());
    assert_eq!(frames.len(), 3);
    for split in 0..=bytes.len() {
        assert_eq!(frame_all(bytes, split), frames, "split at {split}");
    }
    for (i, f) in frames.iter().enumerate() {
        let r = parse_syslog(f.data, NOW, &Limits::default());
        assert_eq!(
            r.labels.to_string(),
            r#"{app="myapp", facility="local0", host="vm", level="warn", severity="warning", source="syslog"}"#
        );
        assert_eq!(r.entry.timestamp_ns, 1_795_308_142_000_000_000);
        assert_eq!(
            r.entry.line,
            format!(
                "<132>Nov 22 00:42:22 vm myapp: warn line {}: disk almost full",
                i + 1
            )
        );
    }
}
