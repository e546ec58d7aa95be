//! Typical dashboard queries over generated data: 200 series, 6 hours at 15 s.

use bongsu_model::{Labels, Sample};
use bongsu_promql::{Engine, MemoryStorage};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 6 * 3600 * 1000 / STEP_MS;

fn storage() -> MemoryStorage {
    let st = MemoryStorage::new();
    for job in 0..4 {
        for inst in 0..50 {
            let labels = Labels::from_pairs([
                ("__name__", "http_requests_total".to_owned()),
                ("job", format!("job{job}")),
                ("instance", format!("host{inst}:9100")),
            ])
            .expect("valid labels");
            let mut v = 0.0;
            let samples: Vec<Sample> = (0..POINTS)
                .map(|i| {
                    v += ((i * 7 + inst) % 13) as f64;
                    Sample::new(i * STEP_MS, v)
                })
                .collect();
            st.add(labels, samples);
        }
    }
    st
}

fn bench(c: &mut Criterion) {
    let st = storage();
    let engine = Engine::default();
    let end = (POINTS - 1) * STEP_MS;
    let mut g = c.benchmark_group("promql");
    g.sample_size(10);
    g.bench_function("parse only", |b| {
        b.iter(|| {
            promql_parser::parser::parse(black_box("sum by (job) (rate(http_requests_total[5m]))"))
                .expect("parse")
        })
    });
    g.bench_function("instant sum by job of rate", |b| {
        b.iter(|| {
            engine
                .instant_query(
                    &st,
                    black_box("sum by (job) (rate(http_requests_total[5m]))"),
                    end,
                )
                .expect("query")
        })
    });
    g.bench_function("range 1h at 1m: topk of rate", |b| {
        b.iter(|| {
            engine
                .range_query(
                    &st,
                    black_box("topk(5, rate(http_requests_total[5m]))"),
                    end - 3_600_000,
                    end,
                    60_000,
                )
                .expect("query")
        })
    });
    g.bench_function("range 6h at 5m: avg_over_time with binary op", |b| {
        b.iter(|| {
            engine
                .range_query(
                    &st,
                    black_box(
                        "avg_over_time(http_requests_total[10m]) / on(instance, job) group_left max_over_time(http_requests_total[10m])",
                    ),
                    0,
                    end,
                    300_000,
                )
                .expect("query")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
