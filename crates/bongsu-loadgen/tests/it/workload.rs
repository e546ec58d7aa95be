//! The generated workload: determinism, counter monotonicity, histogram consistency, wire
//! encoding.

use bongsu_loadgen::{encode_body, sample_count, Workload, SERIES_PER_HOST};
use prost::Message;

const MIN: i64 = 60_000;

fn w(hosts: usize) -> Workload {
    Workload {
        seed: 7,
        hosts,
        ..Workload::default()
    }
}

#[test]
fn series_per_host_matches_the_constant_and_label_sets_are_unique() {
    let s = w(3).series();
    assert_eq!(s.len(), 3 * SERIES_PER_HOST);
    let mut keys: Vec<_> = s.iter().map(|d| d.labels().to_vec()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), s.len(), "duplicate label sets");
    for d in &s {
        let names: Vec<_> = d.labels().iter().map(|(n, _)| n.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "labels of {} not sorted", d.name());
    }
}

#[test]
fn same_seed_same_values_other_seed_other_values() {
    let t = 1_700_000_000_000;
    let a: Vec<f64> = w(2)
        .series()
        .iter()
        .map(|s| s.value_at(t, 15_000))
        .collect();
    let b: Vec<f64> = w(2)
        .series()
        .iter()
        .map(|s| s.value_at(t, 15_000))
        .collect();
    assert_eq!(a, b);
    let other = Workload { seed: 8, ..w(2) };
    let c: Vec<f64> = other
        .series()
        .iter()
        .map(|s| s.value_at(t, 15_000))
        .collect();
    assert_ne!(a, c);
}

#[test]
fn counters_only_fall_at_resets_and_some_reset_within_an_hour() {
    let work = w(3);
    let start = 1_700_000_000_000;
    let mut resets_seen = 0;
    for s in work.series() {
        let name = s.name().to_owned();
        let counter = name.ends_with("_total")
            || name.ends_with("_bucket")
            || name.ends_with("_count")
            || name.ends_with("_sum");
        if !counter {
            continue;
        }
        let ts: Vec<i64> = s.timestamps(start, start + 60 * MIN, 15_000).collect();
        assert_eq!(ts.len(), 240);
        let vals: Vec<f64> = ts.iter().map(|t| s.value_at(*t, 15_000)).collect();
        for i in 1..vals.len() {
            if vals[i] < vals[i - 1] {
                // A reset: the new value is small compared with the old one.
                assert!(
                    vals[i] < vals[i - 1] / 2.0 + 100.0,
                    "{name}: {} -> {}",
                    vals[i - 1],
                    vals[i]
                );
                resets_seen += 1;
            }
        }
        assert!(vals.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    assert!(
        resets_seen > 0,
        "no counter reset in an hour of host 0 (it restarts every 20-40m)"
    );
}

#[test]
fn histogram_buckets_are_cumulative_and_inf_equals_count() {
    let work = w(1);
    let series = work.series();
    let t = 1_700_000_123_000;
    for handler in ["/login", "/static"] {
        let mut buckets: Vec<(f64, f64)> = series
            .iter()
            .filter(|s| s.name() == "http_request_duration_seconds_bucket")
            .filter(|s| {
                s.labels()
                    .iter()
                    .any(|(n, v)| n == "handler" && v == handler)
            })
            .map(|s| {
                let le = s
                    .labels()
                    .iter()
                    .find(|(n, _)| n == "le")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, s.value_at(t, 15_000))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 11);
        for p in buckets.windows(2) {
            assert!(
                p[0].1 <= p[1].1,
                "{handler}: buckets not cumulative: {buckets:?}"
            );
        }
        let count = series
            .iter()
            .find(|s| {
                s.name() == "http_request_duration_seconds_count"
                    && s.labels()
                        .iter()
                        .any(|(n, v)| n == "handler" && v == handler)
            })
            .unwrap()
            .value_at(t, 15_000);
        assert_eq!(buckets[10].1, count);
    }
}

#[test]
fn requests_cover_every_sample_once_in_time_order() {
    let work = w(5);
    let (start, end) = (1_700_000_000_000, 1_700_000_000_000 + 10 * MIN);
    let reqs: Vec<_> = work.requests(start, end, 2, 4).collect();
    assert_eq!(reqs.len(), work.requests(start, end, 2, 4).len_hint());
    let total: usize = reqs.iter().map(sample_count).sum();
    assert_eq!(total, work.series_count() * 40);
    // The last timestamp of each request never goes back by more than one window.
    let mut max_seen = start;
    for r in &reqs {
        let lo = r
            .timeseries
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
            .min()
            .unwrap();
        assert!(lo >= max_seen - 4 * 15_000, "request goes back in time");
        max_seen = max_seen.max(
            r.timeseries
                .iter()
                .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
                .max()
                .unwrap(),
        );
        for ts in &r.timeseries {
            assert!(ts
                .samples
                .windows(2)
                .all(|p| p[0].timestamp < p[1].timestamp));
            assert!(ts
                .samples
                .iter()
                .all(|s| s.timestamp >= start && s.timestamp < end));
        }
    }
}

#[test]
fn body_is_snappy_protobuf_that_decodes_back() {
    let work = w(1);
    let req = work
        .requests(1_700_000_000_000, 1_700_000_060_000, 1, 4)
        .next()
        .unwrap();
    let body = encode_body(&req);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let back = bongsu_ingest::prompb::WriteRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(back, req);
    // The server's decoder accepts it whole.
    let rec = bongsu_ingest::decode_remote_write(&body, &bongsu_ingest::Limits::default()).unwrap();
    assert_eq!(rec.record.series.len(), req.timeseries.len());
}
