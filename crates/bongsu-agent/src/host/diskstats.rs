//! The diskstats collector over `/proc/diskstats`.

use regex::Regex;

use crate::metrics::{MetricKind, Metrics};
use crate::paths::{read_to_string, HostPaths};
use crate::Result;

/// Sector size the kernel uses for /proc/diskstats counts, whatever the device's own.
const SECTOR_BYTES: f64 = 512.0;

/// (field index after the device name, metric, help, scale, kind)
const FIELDS: [(usize, &str, &str, f64, MetricKind); 17] = [
    (
        0,
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        1.0,
        MetricKind::Counter,
    ),
    (
        1,
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        1.0,
        MetricKind::Counter,
    ),
    (
        2,
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        SECTOR_BYTES,
        MetricKind::Counter,
    ),
    (
        3,
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        0.001,
        MetricKind::Counter,
    ),
    (
        4,
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        1.0,
        MetricKind::Counter,
    ),
    (
        5,
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        1.0,
        MetricKind::Counter,
    ),
    (
        6,
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
        MetricKind::Counter,
    ),
    (
        7,
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        0.001,
        MetricKind::Counter,
    ),
    (
        8,
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        1.0,
        MetricKind::Gauge,
    ),
    (
        9,
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        0.001,
        MetricKind::Counter,
    ),
    (
        10,
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        0.001,
        MetricKind::Counter,
    ),
    (
        11,
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        1.0,
        MetricKind::Counter,
    ),
    (
        12,
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        1.0,
        MetricKind::Counter,
    ),
    (
        13,
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        1.0,
        MetricKind::Counter,
    ),
    (
        14,
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        0.001,
        MetricKind::Counter,
    ),
    (
        15,
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        1.0,
        MetricKind::Counter,
    ),
    (
        16,
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        0.001,
        MetricKind::Counter,
    ),
];

/// Device name and its numeric fields, for every line with at least the 11 classic fields.
pub(crate) fn parse_diskstats(text: &str) -> Vec<(String, Vec<f64>)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 14 {
                return None;
            }
            let values: Vec<f64> = f[3..].iter().map(|v| v.parse().unwrap_or(0.0)).collect();
            Some((f[2].to_owned(), values))
        })
        .collect()
}

pub(crate) fn collect(paths: &HostPaths, exclude: &Regex, out: &mut Metrics) -> Result<()> {
    let text = read_to_string(&paths.proc("diskstats"))?;
    for (device, values) in parse_diskstats(&text) {
        if exclude.is_match(&device) {
            continue;
        }
        for (i, name, help, scale, kind) in FIELDS {
            if let Some(v) = values.get(i) {
                out.push(kind, name, help, &[("device", &device)], v * scale);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::defaults;

    #[test]
    fn parses_and_filters() {
        let text = "   8       0 sda 100 2 800 30 50 1 400 20 0 40 60 0 0 0 0 5 7\n\
   8       1 sda1 90 2 700 25 45 1 300 15 0 35 50\n\
   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0\n\
 259       0 nvme0n1 1 0 8 0 0 0 0 0 0 0 0\n\
 259       1 nvme0n1p1 1 0 8 0 0 0 0 0 0 0 0\n";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].1.len(), 17);
        let re = Regex::new(defaults::DISK_DEVICE_EXCLUDE).unwrap();
        let kept: Vec<_> = d
            .iter()
            .map(|x| x.0.as_str())
            .filter(|n| !re.is_match(n))
            .collect();
        assert_eq!(kept, ["sda", "nvme0n1"]);
    }
}
