//! The engine's hot paths on a node_exporter-like set: 100 hosts, each with 32 CPU
//! counters (4 CPUs x 8 modes), 3 network counters, a load gauge and an info series,
//! 65 minutes at 15 s (about 3,700 series, 960k samples). Range queries run over the last
//! hour at a 60 s step, as dashboards ask.
//!
//! The storage is the in-memory one, so these figures are the engine's cost alone:
//! selection and sample copying in the store are not part of them.

use bongsu_model::{Labels, Sample};
use bongsu_promql::{Engine, MemoryStorage};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const STEP_MS: i64 = 15_000;
const MINUTES: i64 = 65;
const HOSTS: usize = 100;
const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];

fn storage() -> MemoryStorage {
    let st = MemoryStorage::new();
    let points = MINUTES * 60_000 / STEP_MS;
    let ts = |i: i64| i * STEP_MS;
    for h in 0..HOSTS {
        let instance = format!("host{h:03}:9100");
        let with = |name: &str, extra: &[(&str, String)]| {
            let mut pairs = vec![
                ("__name__", name.to_owned()),
                ("instance", instance.clone()),
                ("job", "node".to_owned()),
            ];
            pairs.extend(extra.iter().map(|(n, v)| (*n, v.clone())));
            Labels::from_pairs(pairs).expect("valid labels")
        };
        for cpu in 0..4 {
            for (m, mode) in MODES.iter().enumerate() {
                let rate = (m + 1) as f64 * 0.01 + h as f64 * 0.001;
                st.add(
                    with(
                        "node_cpu_seconds_total",
                        &[("cpu", cpu.to_string()), ("mode", (*mode).to_owned())],
                    ),
                    (0..points).map(|i| Sample::new(ts(i), i as f64 * 15.0 * rate)),
                );
            }
        }
        for (d, device) in ["eth0", "eth1", "lo"].iter().enumerate() {
            st.add(
                with(
                    "node_network_receive_bytes_total",
                    &[("device", (*device).to_owned())],
                ),
                (0..points).map(|i| Sample::new(ts(i), (i * (d as i64 + 1) * 1500) as f64)),
            );
        }
        st.add(
            with("node_load1", &[]),
            (0..points).map(|i| Sample::new(ts(i), ((i + h as i64) % 17) as f64 * 0.1)),
        );
        st.add(
            with("node_uname_info", &[("nodename", format!("host{h}"))]),
            (0..points).map(|i| Sample::new(ts(i), 1.0)),
        );
    }
    st
}

fn bench(c: &mut Criterion) {
    let st = storage();
    let engine = Engine::default();
    let end = (MINUTES * 60_000 / STEP_MS - 1) * STEP_MS;
    let start = end - 3_600_000;
    let mut g = c.benchmark_group("dashboard");
    g.sample_size(10);
    for (name, q) in [
        (
            "sum without cpu of rate",
            "sum without (cpu) (rate(node_cpu_seconds_total[5m]))",
        ),
        (
            "sum by mode of rate",
            "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        ),
        ("count by mode", "count by (mode) (node_cpu_seconds_total)"),
        (
            "join on instance group_left",
            "rate(node_network_receive_bytes_total[5m]) * on (instance) group_left (nodename) node_uname_info",
        ),
        (
            "subquery max of rate",
            r#"max_over_time(rate(node_cpu_seconds_total{mode="system"}[2m])[10m:1m])"#,
        ),
        (
            "regex selector",
            r#"node_cpu_seconds_total{mode=~"user|system", cpu!="0"}"#,
        ),
    ] {
        g.bench_function(format!("range 1h at 1m: {name}"), |b| {
            b.iter(|| {
                engine
                    .range_query(&st, black_box(q), start, end, 60_000)
                    .expect("query")
            })
        });
    }
    g.bench_function("instant: sum without cpu of rate", |b| {
        b.iter(|| {
            engine
                .instant_query(
                    &st,
                    black_box("sum without (cpu) (rate(node_cpu_seconds_total[5m]))"),
                    end,
                )
                .expect("query")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
