//! Collector values agree with this machine's /proc and /sys, and fixture trees.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bongsu_agent::{
    AgentConfig, Collector, HostPaths, Inventory, InventoryConfig, ManualClock, Metrics,
};

fn collect_host() -> Metrics {
    let mut c =
        Collector::new(&AgentConfig::default(), Arc::new(bongsu_agent::SystemClock)).unwrap();
    c.collect()
}

fn proc_meminfo_kb(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap()
}

#[test]
fn mem_total_matches_proc_meminfo() {
    let m = collect_host();
    assert_eq!(
        m.find("node_memory_MemTotal_bytes", &[]),
        Some(proc_meminfo_kb("MemTotal") * 1024.0)
    );
    let meta = m.meta("node_memory_MemTotal_bytes").unwrap();
    assert_eq!(meta.help, "Memory information field MemTotal_bytes.");
}

#[test]
fn cpu_labels_match_the_cpu_count() {
    let m = collect_host();
    let cpus: BTreeSet<String> = m
        .family("node_cpu_seconds_total")
        .filter_map(|(l, _)| l.get("cpu").map(str::to_owned))
        .collect();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(cpus.len(), processors);
    let modes: BTreeSet<String> = m
        .family("node_cpu_seconds_total")
        .filter_map(|(l, _)| l.get("mode").map(str::to_owned))
        .collect();
    assert_eq!(
        modes.into_iter().collect::<Vec<_>>(),
        ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]
    );
    // Idle seconds of cpu0 cannot exceed the time since boot.
    let idle = m
        .find("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")])
        .unwrap();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        idle > 0.0 && idle <= uptime + 1.0,
        "idle {idle}, uptime {uptime}"
    );
}

#[test]
fn root_filesystem_size_matches_df() {
    let m = collect_host();
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,used,avail", "/"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let size: f64 = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let got = m.find("node_filesystem_size_bytes", &[("mountpoint", "/")]);
    assert_eq!(got, Some(size));
    assert_eq!(
        m.find("node_filesystem_device_error", &[("mountpoint", "/")]),
        Some(0.0)
    );
    for (l, _) in m.family("node_filesystem_size_bytes") {
        let fstype = l.get("fstype").unwrap();
        assert!(!["proc", "sysfs", "cgroup", "cgroup2", "devpts", "overlay"].contains(&fstype));
        assert!(!l.get("mountpoint").unwrap().starts_with("/proc"));
    }
}

#[test]
fn every_collector_succeeds_and_names_follow_node_exporter() {
    let m = collect_host();
    for (l, s) in m.family("node_scrape_collector_success") {
        let c = l.get("collector").unwrap();
        // hwmon has nothing to read in many VMs but still succeeds.
        assert_eq!(s.value, 1.0, "collector {c} failed");
    }
    for name in [
        "node_load1",
        "node_boot_time_seconds",
        "node_context_switches_total",
        "node_forks_total",
        "node_intr_total",
        "node_procs_running",
        "node_time_seconds",
        "node_uname_info",
        "node_network_receive_bytes_total",
        "node_processes_pids",
        "node_entropy_available_bits",
    ] {
        assert!(m.family(name).next().is_some(), "{name} missing");
    }
    let boot = m.find("node_boot_time_seconds", &[]).unwrap();
    let now = m.find("node_time_seconds", &[]).unwrap();
    assert!(boot > 1e9 && boot < now);
    let lo = m.find("node_network_receive_bytes_total", &[("device", "lo")]);
    assert!(lo.is_some(), "loopback counters present");
}

#[test]
fn watched_process_and_port_on_this_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = std::fs::read_to_string("/proc/self/stat").unwrap();
    let comm = me[me.find('(').unwrap() + 1..me.rfind(')').unwrap()].to_owned();
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pid_file.path(), format!("{}\n", std::process::id())).unwrap();
    let text = format!(
        r#"
[agent.processes]
top_n = 3
[[agent.processes.watch]]
name = "me"
comm = "{comm}"
[[agent.processes.watch]]
name = "me-by-pid"
pid_file = "{}"
[[agent.processes.watch]]
name = "absent"
cmdline_regex = "^no-such-program-[0-9]+$"
[[agent.ports.watch]]
name = "test"
proto = "tcp"
port = {port}
[[agent.ports.watch]]
name = "closed"
proto = "udp"
port = 9
"#,
        pid_file.path().display()
    );
    let cfg = AgentConfig::from_toml(&text).unwrap();
    let mut c = Collector::new(&cfg, Arc::new(ManualClock::new(0))).unwrap();
    let m = c.collect();
    assert_eq!(m.find("bongsu_process_up", &[("name", "me")]), Some(1.0));
    assert_eq!(
        m.find("bongsu_process_up", &[("name", "me-by-pid")]),
        Some(1.0)
    );
    assert_eq!(
        m.find("bongsu_process_up", &[("name", "absent")]),
        Some(0.0)
    );
    assert_eq!(
        m.find("bongsu_process_restarts_total", &[("name", "me")]),
        Some(0.0)
    );
    assert_eq!(m.family("bongsu_process_cpu_seconds_total").count(), 3);
    let rss = m
        .find(
            "bongsu_process_watched_resident_memory_bytes",
            &[("name", "me-by-pid")],
        )
        .unwrap();
    assert!(rss > 1e5, "rss {rss}");
    assert_eq!(m.find("bongsu_port_up", &[("name", "test")]), Some(1.0));
    assert_eq!(m.find("bongsu_port_up", &[("name", "closed")]), Some(0.0));
    let p = port.to_string();
    assert_eq!(
        m.find(
            "bongsu_port_listening",
            &[("proto", "tcp"), ("address", "127.0.0.1"), ("port", &p)]
        ),
        Some(1.0)
    );
    let states: f64 = m.family("node_processes_state").map(|(_, s)| s.value).sum();
    assert_eq!(Some(states), m.find("node_processes_pids", &[]));
    assert_eq!(m.timestamp_ms(), 0);
    drop(listener);
}

/// A checked-in-style fixture tree built in a temp dir: the collectors read only from it.
fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn fixture_tree_drives_every_proc_parser() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proc");
    for name in [
        "stat",
        "meminfo",
        "loadavg",
        "diskstats",
        "net/dev",
        "net/tcp",
        "pressure/cpu",
        "pressure/io",
        "pressure/memory",
        "cpuinfo",
    ] {
        write(
            r,
            &format!("proc/{name}"),
            &std::fs::read_to_string(fixtures.join(name)).unwrap(),
        );
    }
    write(r, "proc/sys/kernel/random/entropy_avail", "256\n");
    write(r, "proc/sys/kernel/random/poolsize", "256\n");
    write(
        r,
        "proc/1/mounts",
        "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /nonexistent-data xfs ro 0 0\n",
    );
    write(
        r,
        "proc/42/stat",
        "42 (daemon) S 1 42 42 0 -1 0 0 0 0 0 700 300 0 0 20 0 4 0 500 0 100 0\n",
    );
    write(
        r,
        "proc/43/stat",
        "43 (worker) R 42 42 42 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 600 0 50 0\n",
    );
    let mut cfg = AgentConfig::default();
    let paths = HostPaths::under(r);
    cfg.procfs = paths.procfs;
    cfg.sysfs = paths.sysfs;
    cfg.rootfs = paths.rootfs;
    cfg.processes.top_n = 1;
    let mut c = Collector::new(&cfg, Arc::new(ManualClock::new(5_000_000))).unwrap();
    let m = c.collect();
    assert_eq!(m.timestamp_ms(), 5);
    assert_eq!(
        m.find("node_cpu_seconds_total", &[("cpu", "1"), ("mode", "user")]),
        Some(2.5)
    );
    assert_eq!(m.family("node_cpu_seconds_total").count(), 16);
    assert_eq!(
        m.find("node_memory_MemTotal_bytes", &[]),
        Some(2048.0 * 1024.0)
    );
    assert_eq!(
        m.find("node_memory_Active_anon_bytes", &[]),
        Some(100.0 * 1024.0)
    );
    assert_eq!(m.find("node_load15", &[]), Some(0.15));
    assert_eq!(m.find("node_boot_time_seconds", &[]), Some(1_700_000_000.0));
    assert_eq!(
        m.find("node_disk_read_bytes_total", &[("device", "sda")]),
        Some(800.0 * 512.0)
    );
    assert_eq!(
        m.find("node_disk_read_time_seconds_total", &[("device", "sda")]),
        Some(0.03)
    );
    assert!(m
        .find("node_disk_reads_completed_total", &[("device", "sda1")])
        .is_none());
    assert_eq!(
        m.find("node_network_transmit_bytes_total", &[("device", "eth0")]),
        Some(6000.0)
    );
    assert_eq!(
        m.find("node_pressure_io_stalled_seconds_total", &[]),
        Some(0.5)
    );
    assert_eq!(
        m.find("node_pressure_cpu_waiting_seconds_total", &[]),
        Some(1.5)
    );
    assert_eq!(m.find("node_entropy_pool_size_bits", &[]), Some(256.0));
    // statvfs of "/nonexistent-data" under the fixture root fails: a device error, as node_exporter.
    assert_eq!(
        m.find(
            "node_filesystem_device_error",
            &[("mountpoint", "/nonexistent-data")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.find(
            "node_filesystem_readonly",
            &[("mountpoint", "/nonexistent-data")]
        ),
        Some(1.0)
    );
    assert!(m
        .find("node_filesystem_size_bytes", &[("mountpoint", "/proc")])
        .is_none());
    assert_eq!(m.find("node_processes_state", &[("state", "S")]), Some(1.0));
    assert_eq!(m.find("node_processes_threads", &[]), Some(5.0));
    assert_eq!(
        m.find(
            "bongsu_process_cpu_seconds_total",
            &[("pid", "42"), ("comm", "daemon")]
        ),
        Some(10.0)
    );
    assert_eq!(m.family("bongsu_process_cpu_seconds_total").count(), 1);
    assert_eq!(
        m.find(
            "bongsu_port_listening",
            &[("proto", "tcp"), ("port", "8080")]
        ),
        Some(1.0)
    );
    for (l, s) in m.family("node_scrape_collector_success") {
        let c = l.get("collector").unwrap();
        // The fixture has no entropy-free gaps except /proc/net/{tcp6,udp*} (skipped) and time/uname (host).
        assert_eq!(s.value, 1.0, "collector {c}");
    }
}

#[test]
fn restart_of_a_watched_process_is_counted() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "proc/stat", "cpu0 1 1 1 1 1 1 1 1\nbtime 1700000000\n");
    write(
        r,
        "proc/42/stat",
        "42 (svc) S 1 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 500 0 10 0\n",
    );
    let cfg = AgentConfig::from_toml(&format!(
        "[agent]\nprocfs = \"{}/proc\"\n[[agent.processes.watch]]\nname = \"svc\"\ncomm = \"svc\"\n",
        r.display()
    ))
    .unwrap();
    let mut c = bongsu_agent::ProcessCollector::new(cfg.host_paths(), &cfg.processes).unwrap();
    let pass = |c: &mut bongsu_agent::ProcessCollector| {
        let mut m = Metrics::new(0);
        c.collect(&mut m).unwrap();
        (
            m.find("bongsu_process_up", &[("name", "svc")]).unwrap(),
            m.find("bongsu_process_restarts_total", &[("name", "svc")])
                .unwrap(),
            m.find("bongsu_process_start_time_seconds", &[("name", "svc")]),
        )
    };
    assert_eq!(pass(&mut c), (1.0, 0.0, Some(1_700_000_005.0)));
    // Same pid, new start time: restarted in place.
    write(
        r,
        "proc/42/stat",
        "42 (svc) S 1 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 900 0 10 0\n",
    );
    assert_eq!(pass(&mut c).1, 1.0);
    // Down, then up under another pid.
    std::fs::remove_dir_all(r.join("proc/42")).unwrap();
    assert_eq!(pass(&mut c), (0.0, 1.0, None));
    write(
        r,
        "proc/77/stat",
        "77 (svc) S 1 77 77 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1000 0 10 0\n",
    );
    assert_eq!(pass(&mut c).0, 1.0);
    assert_eq!(pass(&mut c).1, 2.0);
}

#[test]
fn inventory_of_this_host() {
    let inv = Inventory::collect(&HostPaths::host(), &InventoryConfig::default()).unwrap();
    assert_eq!(
        inv.memory_bytes as f64,
        proc_meminfo_kb("MemTotal") * 1024.0
    );
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    assert_eq!(
        inv.cpu.logical_cpus as usize,
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
    );
    assert!(inv.users.iter().any(|u| u.name == "root" && u.uid == 0));
    assert!(inv.groups.iter().any(|g| g.name == "root" && g.gid == 0));
    assert!(!inv.kernel.release.is_empty());
    assert!(
        inv.addresses.iter().any(|a| a.address.is_loopback()),
        "{:?}",
        inv.addresses
    );
    if Path::new("/var/lib/dpkg/status").exists() {
        assert!(inv
            .packages
            .iter()
            .any(|p| p.name == "dpkg" && p.manager == "dpkg"));
    }
    if Path::new("/etc/os-release").exists() {
        assert!(!inv.os.id.is_empty());
    }
    // Same host, same hash; the JSON is valid and complete.
    let again = Inventory::collect(&HostPaths::host(), &InventoryConfig::default()).unwrap();
    assert_eq!(inv.hash(), again.hash());
    let v: serde_json::Value = serde_json::from_str(&inv.to_json()).unwrap();
    assert!(v["packages"].is_array() && v["os"]["id"].is_string());
}
