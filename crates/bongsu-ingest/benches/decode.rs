//! Decoder throughput: remote_write (samples/s), syslog and exposition parsing (lines/s).

use bongsu_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};
use bongsu_ingest::{
    decode_remote_write, decode_write_request_view, decompress_remote_write, parse_exposition,
    parse_syslog, ExpositionFormat, Limits, SyslogFramer,
};
use bongsu_model::{MetricsRecordView, MetricsRecordWriter};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

const NOW_NS: i64 = 1_700_000_000_000_000_000;

fn remote_write_body(series: usize, samples_per_series: usize) -> Vec<u8> {
    let timeseries = (0..series)
        .map(|i| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: format!("node_metric_{}", i % 50),
                },
                Label {
                    name: "instance".into(),
                    value: format!("host-{}:9100", i % 20),
                },
                Label {
                    name: "job".into(),
                    value: "node".into(),
                },
                Label {
                    name: "cpu".into(),
                    value: (i % 8).to_string(),
                },
            ],
            samples: (0..samples_per_series)
                .map(|j| Sample {
                    value: (i * j) as f64 * 0.5,
                    timestamp: 1_700_000_000_000 + j as i64 * 15_000,
                })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    let req = WriteRequest {
        timeseries,
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

fn bench_remote_write(c: &mut Criterion) {
    // 2000 series x 1 sample: what Prometheus sends per shard batch by default.
    let body = remote_write_body(2000, 1);
    let limits = Limits::default();
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("decode_2000_samples", |b| {
        b.iter(|| decode_remote_write(black_box(&body), &limits).expect("decodes"))
    });
    // The receiver's path: decoded in place, then written as a metrics record.
    g.bench_function("decode_view_and_encode_2000_samples", |b| {
        b.iter(|| {
            let raw = decompress_remote_write(black_box(&body), &limits).expect("snappy");
            let view = decode_write_request_view(&raw, &limits).expect("decodes");
            let mut w = MetricsRecordWriter::new();
            for s in view.series() {
                w.push_series(s.labels, s.samples);
            }
            w.finish()
        })
    });
    g.finish();

    // The store consumer's read of a record: 500 series x 8 samples (a backfill request).
    let body = remote_write_body(500, 8);
    let raw = decompress_remote_write(&body, &limits).expect("snappy");
    let view = decode_write_request_view(&raw, &limits).expect("decodes");
    let mut w = MetricsRecordWriter::new();
    for s in view.series() {
        w.push_series(s.labels, s.samples);
    }
    let record = w.finish();
    let mut g = c.benchmark_group("metrics_record");
    g.throughput(Throughput::Elements(4000));
    g.bench_function("view_4000_samples", |b| {
        b.iter(|| {
            let v = MetricsRecordView::parse(black_box(&record)).expect("decodes");
            v.series().map(|s| s.samples().count()).sum::<usize>()
        })
    });
    g.bench_function("model_decode_4000_samples", |b| {
        b.iter(|| bongsu_model::MetricsRecord::decode(black_box(&record)).expect("decodes"))
    });
    g.finish();
}

fn bench_syslog(c: &mut Criterion) {
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                format!("<165>1 2023-11-14T22:13:{:02}.003Z host{} app - ID47 [ex@32473 iut=\"3\"] message number {i} with some text", i % 60, i % 10)
            } else {
                format!("<34>Nov 14 22:13:{:02} host{} sshd[{i}]: Accepted publickey for user from 10.0.0.{}", i % 60, i % 10, i % 255)
            }
        })
        .collect();
    let limits = Limits::default();
    let mut g = c.benchmark_group("syslog");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_1000_lines", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(parse_syslog(l.as_bytes(), NOW_NS, &limits));
            }
        })
    });
    let mut stream = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i % 2 == 0 {
            stream.extend_from_slice(format!("{} {l}", l.len()).as_bytes());
        } else {
            stream.extend_from_slice(l.as_bytes());
            stream.push(b'\n');
        }
    }
    g.bench_function("frame_1000_lines", |b| {
        b.iter(|| {
            let mut f = SyslogFramer::new(64 << 10);
            let mut out = bongsu_ingest::Frames::default();
            for chunk in stream.chunks(4096) {
                f.push(chunk, &mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

fn bench_exposition(c: &mut Criterion) {
    let mut text = String::new();
    let mut om = String::new();
    for f in 0..50 {
        text.push_str(&format!(
            "# HELP node_metric_{f} A metric.\n# TYPE node_metric_{f} gauge\n"
        ));
        om.push_str(&format!(
            "# HELP node_metric_{f} A metric.\n# TYPE node_metric_{f} gauge\n"
        ));
        for i in 0..10 {
            let line = format!(
                "node_metric_{f}{{cpu=\"{i}\",mode=\"idle\"}} {}.25\n",
                f * i
            );
            text.push_str(&line);
            om.push_str(&line);
        }
    }
    om.push_str("# EOF\n");
    let lines = text.lines().count() as u64;
    let limits = Limits::default();
    let mut g = c.benchmark_group("exposition");
    g.throughput(Throughput::Elements(lines));
    g.bench_function("prometheus_text_600_lines", |b| {
        b.iter(|| {
            parse_exposition(
                black_box(text.as_bytes()),
                ExpositionFormat::PrometheusText,
                0,
                &limits,
            )
            .expect("parses")
        })
    });
    g.bench_function("openmetrics_600_lines", |b| {
        b.iter(|| {
            parse_exposition(
                black_box(om.as_bytes()),
                ExpositionFormat::OpenMetrics,
                0,
                &limits,
            )
            .expect("parses")
        })
    });
    g.finish();
}

criterion_group!(benches, bench_remote_write, bench_syslog, bench_exposition);
criterion_main!(benches);
