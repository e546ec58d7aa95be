use std::sync::Arc;

use bongsu_agent::{AgentConfig, Collector, SystemClock};
use criterion::{criterion_group, criterion_main, Criterion};

fn full_pass(c: &mut Criterion) {
    let mut collector = match Collector::new(&AgentConfig::default(), Arc::new(SystemClock)) {
        Ok(c) => c,
        Err(e) => panic!("cannot build the collector: {e}"),
    };
    c.bench_function("one full collection pass of this host", |b| {
        b.iter(|| collector.collect().len())
    });
    let m = collector.collect();
    c.bench_function("render one pass as exposition text", |b| {
        b.iter(|| m.to_exposition().len())
    });
}

criterion_group!(benches, full_pass);
criterion_main!(benches);
