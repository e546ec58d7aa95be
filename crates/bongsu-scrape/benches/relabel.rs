//! Relabeling cost per series with a typical metric_relabel_configs list.

use bongsu_model::Labels;
use bongsu_scrape::{parse_relabel_rules, relabel};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let rules = parse_relabel_rules(
        r#"
- source_labels: [__name__]
  regex: "go_.*|process_.*"
  action: drop
- source_labels: [__name__, mode]
  regex: "node_cpu_seconds_total;(idle|iowait)"
  action: drop
- source_labels: [instance]
  regex: "(.*):\\d+"
  target_label: host
- regex: "exported_.*"
  action: labeldrop
"#,
    )
    .unwrap_or_default();
    let series: Vec<Labels> = (0..1000)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total".to_owned()),
                ("cpu", (i % 64).to_string()),
                (
                    "mode",
                    ["user", "system", "idle", "iowait"][i % 4].to_owned(),
                ),
                ("instance", format!("host-{}:9100", i % 10)),
                ("job", "node".to_owned()),
            ])
            .unwrap_or_default()
        })
        .collect();
    c.bench_function("metric_relabel_1000_series", |b| {
        b.iter(|| {
            let mut kept = 0;
            for s in &series {
                let mut l = s.clone();
                if relabel(&mut l, &rules) {
                    kept += 1;
                }
            }
            kept
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
