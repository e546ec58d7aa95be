//! Side by side with node_exporter (the integrator installs the peer; see docs/agent.md).

use std::io::{Read, Write};
use std::sync::Arc;

use bongsu_agent::{compare_exposition, parse_exposition, AgentConfig, Collector, SystemClock};

/// Plain HTTP/1.0 GET over std (the peer is on loopback; no client library needed).
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).expect("node_exporter reachable");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs node_exporter: set BONGSU_NODE_EXPORTER_URL=http://127.0.0.1:19100/metrics"]
fn overlap_with_node_exporter() {
    let Ok(url) = std::env::var("BONGSU_NODE_EXPORTER_URL") else {
        eprintln!("BONGSU_NODE_EXPORTER_URL not set; nothing to compare");
        return;
    };
    let their_text = http_get(&url);
    let theirs = parse_exposition(&their_text).unwrap();
    // Debian's node_exporter package changes two upstream defaults; configure the same so
    // that the comparison is like for like (upstream's defaults stay ours).
    let mut cfg = AgentConfig::default();
    cfg.collectors.filesystem_mount_points_exclude =
        "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
            .into();
    cfg.collectors.netdev_device_exclude = "^lo$".into();
    let mut c = Collector::new(&cfg, Arc::new(SystemClock)).unwrap();
    let our_text = c.collect().to_exposition();
    let ours = parse_exposition(&our_text).unwrap();
    let o = compare_exposition(&ours, &theirs);
    println!("metric names in both: {}", o.names_both.len());
    println!(
        "only ours ({}): {:?}",
        o.names_only_ours.len(),
        o.names_only_ours
    );
    println!(
        "only node_exporter ({}): {:?}",
        o.names_only_theirs.len(),
        o.names_only_theirs
    );
    println!(
        "series in both: {}, only ours: {}, only node_exporter: {}",
        o.series_both, o.series_only_ours, o.series_only_theirs
    );
    for (name, a, b) in &o.label_mismatches {
        println!("label names differ for {name}: ours {a:?}, node_exporter {b:?}");
    }
    // Series whose family both sides have but whose label values differ (device names,
    // mount points…): the first few from each side.
    let key = |x: &bongsu_agent::ExpositionSample| format!("{}{:?}", x.name, x.labels);
    let theirs_keys: std::collections::BTreeSet<String> = theirs.iter().map(key).collect();
    let ours_keys: std::collections::BTreeSet<String> = ours.iter().map(key).collect();
    let differ = |a: &[bongsu_agent::ExpositionSample],
                  other: &std::collections::BTreeSet<String>| {
        a.iter()
            .filter(|x| o.names_both.contains(&x.name) && !other.contains(&key(x)))
            .map(key)
            .take(25)
            .collect::<Vec<_>>()
    };
    println!(
        "series of shared families only ours: {:#?}",
        differ(&ours, &theirs_keys)
    );
    println!(
        "series of shared families only node_exporter: {:#?}",
        differ(&theirs, &ours_keys)
    );
    // HELP texts and TYPEs of shared families.
    let meta = |text: &str, kind: &str| -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(kind))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, h)| (n.to_owned(), h.to_owned()))
            .collect()
    };
    for kind in ["# HELP ", "# TYPE "] {
        let (a, b) = (meta(&our_text, kind), meta(&their_text, kind));
        let differ: Vec<_> = a
            .iter()
            .filter(|(n, h)| b.get(*n).is_some_and(|t| t != *h))
            .map(|(n, h)| format!("{n}: ours {h:?}, node_exporter {:?}", b[n]))
            .collect();
        println!(
            "{} differences in {}: {differ:#?}",
            differ.len(),
            kind.trim()
        );
    }
    for must in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_filesystem_size_bytes",
    ] {
        assert!(o.names_both.contains(must), "{must} not in both");
    }
}
