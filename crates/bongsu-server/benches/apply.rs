//! The store consumer's apply path: a metrics record read in place and appended to the
//! tsdb by series ref (known series), against decoding it into owned labels and appending
//! by labels (what the consumer did before refs).

use std::collections::HashMap;

use bongsu_model::{Label, Labels, MetricsRecord, MetricsRecordView, MetricsRecordWriter, Sample};
use bongsu_tsdb::{Options, SeriesRef, Tsdb};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const SERIES: usize = 1000;
const STEPS: usize = 8;

/// One record: SERIES node-like series x STEPS samples starting at `t0`.
fn record(t0: i64) -> Vec<u8> {
    let names: Vec<String> = (0..SERIES)
        .map(|i| format!("node_metric_{}", i % 40))
        .collect();
    let hosts: Vec<String> = (0..SERIES)
        .map(|i| format!("host-{}:9100", i / 40))
        .collect();
    let cpus: Vec<String> = (0..SERIES).map(|i| (i % 8).to_string()).collect();
    let samples: Vec<Vec<Sample>> = (0..SERIES)
        .map(|i| {
            (0..STEPS)
                .map(|j| Sample::new(t0 + j as i64 * 15_000, (i + j) as f64))
                .collect()
        })
        .collect();
    let mut w = MetricsRecordWriter::new();
    for i in 0..SERIES {
        let labels = [
            ("__name__", names[i].as_str()),
            ("cpu", cpus[i].as_str()),
            ("instance", hosts[i].as_str()),
            ("job", "node"),
        ];
        w.push_series(&labels, &samples[i]);
    }
    w.finish()
}

fn bench_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("tsdb_apply");
    g.throughput(Throughput::Elements((SERIES * STEPS) as u64));
    g.sample_size(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(dir.path(), Options::default()).expect("open");
    let mut refs: HashMap<Vec<(String, String)>, SeriesRef> = HashMap::new();
    let mut t0 = 1_700_000_000_000i64;
    // Warm: every series exists, as in steady state.
    {
        let rec = record(t0);
        let v = MetricsRecordView::parse(&rec).expect("record");
        let mut app = db.appender();
        for s in v.series() {
            let labels = Labels::new(s.labels.iter().map(|&(n, v)| Label::new(n, v)).collect())
                .expect("labels");
            let samples: Vec<Sample> = s.samples().collect();
            if let (Some(r), _) = app.append(&labels, &samples).expect("append") {
                let key = s
                    .labels
                    .iter()
                    .map(|&(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                refs.insert(key, r);
            }
        }
    }
    let refs: Vec<SeriesRef> = {
        let rec = record(0);
        let v = MetricsRecordView::parse(&rec).expect("record");
        v.series()
            .filter_map(|s| {
                let key: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|&(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                refs.get(&key).copied()
            })
            .collect()
    };
    g.bench_function("view_by_ref_8000_samples", |b| {
        b.iter_batched(
            || {
                t0 += STEPS as i64 * 15_000;
                record(t0)
            },
            |rec| {
                let v = MetricsRecordView::parse(black_box(&rec)).expect("record");
                let mut buf = Vec::with_capacity(STEPS);
                let mut app = db.appender();
                for (s, &r) in v.series().zip(&refs) {
                    buf.clear();
                    buf.extend(s.samples());
                    app.append_ref(r, s.labels, &buf).expect("known series");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("owned_by_labels_8000_samples", |b| {
        b.iter_batched(
            || {
                t0 += STEPS as i64 * 15_000;
                record(t0)
            },
            |rec| {
                let r = MetricsRecord::decode(black_box(&rec)).expect("record");
                for s in &r.series {
                    db.append(&s.labels, &s.samples).expect("append");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
