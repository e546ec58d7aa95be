//! Side by side with node_exporter 1.5 (Debian's `prometheus-node-exporter`, installed by
//! scripts/test-all.sh, which also sets BONGSU_REQUIRE_PEERS=1 so that a missing peer fails).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_agent::{compare_exposition, parse_exposition, AgentConfig, Collector, SystemClock};

/// Plain HTTP/1.0 GET over std (the peer is on loopback; no client library needed).
fn http_get(url: &str) -> std::io::Result<String> {
    let rest = url.strip_prefix("http://").expect("an http:// url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// A node_exporter child process, killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts node_exporter on a free loopback port and returns it with its metrics URL; `None`
/// (with the reason printed) when it is not installed and peers are not required.
fn start_node_exporter() -> Option<(Peer, String)> {
    let bin = "prometheus-node-exporter";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--no-collector.systemd")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("BONGSU_REQUIRE_PEERS").is_none() => {
            println!("skipped: cannot start {bin} ({e}); scripts/test-all.sh installs it");
            return None;
        }
        Err(e) => panic!("cannot start {bin}: {e}: install prometheus-node-exporter"),
    };
    let peer = Peer(child);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&url).map_or(true, |b| !b.contains("node_exporter_build_info")) {
        assert!(
            Instant::now() < deadline,
            "node_exporter did not answer on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((peer, url))
}

/// Why a family only node_exporter has is allowed to be missing from the agent.
fn allowed_because(name: &str) -> &'static str {
    if ["go_", "process_", "promhttp_"]
        .iter()
        .any(|p| name.starts_with(p))
        || name.starts_with("node_exporter_")
    {
        "node_exporter's own runtime and HTTP handler, not the host"
    } else {
        "a node_exporter collector the agent does not have (yet)"
    }
}

#[test]
fn same_names_labels_help_and_types_as_node_exporter() {
    let Some((_peer, url)) = start_node_exporter() else {
        return;
    };
    let their_text = http_get(&url).unwrap();
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
        "only node_exporter ({}), allowed:",
        o.names_only_theirs.len()
    );
    for name in &o.names_only_theirs {
        println!("  {name}: {}", allowed_because(name));
    }
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
        assert!(
            differ.is_empty(),
            "{} differs from node_exporter",
            kind.trim()
        );
    }
    assert!(
        o.label_mismatches.is_empty(),
        "label names differ from node_exporter: {:?}",
        o.label_mismatches
    );
    assert!(
        o.names_both.len() >= 100,
        "only {} metric names in common",
        o.names_both.len()
    );
    for must in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_filesystem_size_bytes",
        "node_timex_offset_seconds",
        "node_timex_sync_status",
        "node_timex_frequency_adjustment_ratio",
        "node_timex_maxerror_seconds",
        "node_timex_estimated_error_seconds",
        "node_timex_status",
        "node_timex_tick_seconds",
        "node_timex_pps_jitter_total",
    ] {
        assert!(o.names_both.contains(must), "{must} not in both");
    }
}
