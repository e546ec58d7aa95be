//! The netdev collector over `/proc/net/dev`.

use regex::Regex;

use crate::metrics::Metrics;
use crate::paths::{read_to_string, HostPaths};
use crate::{Error, Result};

const KEYS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Interface name and its 16 counters.
pub(crate) fn parse_netdev(text: &str) -> Vec<(String, Vec<f64>)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let values: Vec<f64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            (values.len() >= 16).then(|| (name.trim().to_owned(), values))
        })
        .collect()
}

pub(crate) fn collect(paths: &HostPaths, exclude: Option<&Regex>, out: &mut Metrics) -> Result<()> {
    let path = paths.proc("net/dev");
    let text = read_to_string(&path)?;
    let devs = parse_netdev(&text);
    if devs.is_empty() && text.lines().count() > 2 {
        return Err(Error::parse("/proc/net/dev", path, "no interface lines"));
    }
    for (dev, values) in devs {
        if exclude.is_some_and(|re| re.is_match(&dev)) {
            continue;
        }
        for (key, v) in KEYS.iter().zip(values) {
            out.counter(
                &format!("node_network_{key}_total"),
                &format!("Network device statistic {key}."),
                &[("device", &dev)],
                v,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  eth0: 5000 50 1 2 0 0 0 3 6000 60 0 0 0 0 0 0\n";
        let d = parse_netdev(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].0, "eth0");
        assert_eq!(d[1].1[0], 5000.0);
        assert_eq!(d[1].1[7], 3.0);
        assert_eq!(d[1].1[8], 6000.0);
    }
}
