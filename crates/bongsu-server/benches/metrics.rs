//! Cost of one `/metrics` rendering with a realistic number of series.

use std::sync::Arc;

use bongsu_server::{render_metrics, CounterVec, HistogramVec, MetricsSource, DURATION_BUCKETS};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench_render(c: &mut Criterion) {
    let requests = Arc::new(CounterVec::new(
        "req_total",
        "Requests.",
        &["route", "method", "code"],
    ));
    let durations = Arc::new(HistogramVec::new(
        "dur_seconds",
        "Durations.",
        &["route", "method"],
        DURATION_BUCKETS,
    ));
    for r in 0..20 {
        let route = format!("/api/v1/route{r}");
        for code in ["200", "400", "401", "500"] {
            requests.with(&[&route, "GET", code]).inc_by(1234.0);
        }
        durations.with(&[&route, "GET"]).observe(0.01 * r as f64);
    }
    let sources: Vec<Arc<dyn MetricsSource>> = vec![requests.clone(), durations.clone()];
    c.bench_function("render_80_counters_20_histograms", |b| {
        b.iter(|| render_metrics(&sources).len())
    });
    let counter = requests.with(&["/api/v1/route0", "GET", "200"]);
    c.bench_function("counter_inc", |b| b.iter(|| counter.inc()));
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
