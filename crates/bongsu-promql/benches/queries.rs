//! Typical dashboard queries over generated data: 200 float series, 6 hours at 15 s,
//! and 20 native histogram series (schema 3, ~40 buckets) over the same time.

use bongsu_model::{Labels, Sample};
use bongsu_promql::{Engine, FloatHistogram, HistogramSample, MemoryStorage};
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
    for inst in 0..20 {
        let labels = Labels::from_pairs([
            ("__name__", "http_request_duration_seconds".to_owned()),
            ("instance", format!("host{inst}:9100")),
        ])
        .expect("valid labels");
        let mut h = FloatHistogram {
            schema: 3,
            ..FloatHistogram::default()
        };
        let samples: Vec<HistogramSample> = (0..POINTS)
            .map(|i| {
                for k in 0..40i32 {
                    let add = ((i as i32 * 3 + k * 7 + inst) % 5) as f64;
                    match h.positive.iter_mut().find(|b| b.0 == k - 20) {
                        Some(b) => b.1 += add,
                        None => h.positive.push((k - 20, add)),
                    }
                    h.count += add;
                    h.sum += add * 0.1;
                }
                HistogramSample {
                    timestamp_ms: i * STEP_MS,
                    histogram: h.clone(),
                }
            })
            .collect();
        st.add_histograms(labels, samples);
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
    g.bench_function(
        "range 1h at 1m: native histogram_quantile of summed rate",
        |b| {
            b.iter(|| {
                engine
                    .range_query(
                        &st,
                        black_box(
                            "histogram_quantile(0.9, sum(rate(http_request_duration_seconds[5m])))",
                        ),
                        end - 3_600_000,
                        end,
                        60_000,
                    )
                    .expect("query")
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
