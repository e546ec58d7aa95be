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
    let theirs = parse_exposition(&http_get(&url)).unwrap();
    let mut c = Collector::new(&AgentConfig::default(), Arc::new(SystemClock)).unwrap();
    let ours = parse_exposition(&c.collect().to_exposition()).unwrap();
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
    for must in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_filesystem_size_bytes",
    ] {
        assert!(o.names_both.contains(must), "{must} not in both");
    }
}
