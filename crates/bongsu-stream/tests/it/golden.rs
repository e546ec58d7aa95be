//! A checked-in data dir written by format version 1 must stay readable.
//! Regenerate (only when the format version changes) with `BONGSU_WRITE_FIXTURES=1`.

use std::path::{Path, PathBuf};

use bongsu_stream::{
    Compression, FetchOptions, OffsetCommit, Record, Stream, TopicConfig, TopicPartition,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stream-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn value(topic: &str, i: u64) -> String {
    format!("{topic} record {i} {}", "z".repeat((i % 17) as usize))
}

const TOPICS: [(&str, Compression); 3] = [
    ("golden-none", Compression::None),
    ("golden-lz4", Compression::Lz4),
    ("golden-zstd", Compression::Zstd),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_fixture_when_asked() {
    if std::env::var("BONGSU_WRITE_FIXTURES").is_err() {
        return;
    }
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    let s = crate::common::open(&dir);
    for (t, c) in TOPICS {
        let cfg = TopicConfig {
            partitions: 2,
            segment_bytes: 1024,
            index_interval_bytes: 128,
            retention_ms: -1,
            compression_type: c,
            ..TopicConfig::default()
        };
        s.create_topic(t, cfg).await.unwrap();
        for b in 0..20u64 {
            let recs = (0..3)
                .map(|i| {
                    let n = b * 3 + i;
                    let mut r = Record::new(value(t, n), 1_700_000_000_000 + n as i64);
                    if n % 2 == 0 {
                        r.key = Some(format!("k{n}").into());
                    }
                    r
                })
                .collect();
            s.append(t, Some((b % 2) as u32), recs).await.unwrap();
        }
    }
    s.commit_offsets(
        "g",
        "",
        0,
        vec![OffsetCommit {
            tp: TopicPartition::new("golden-lz4", 1),
            offset: 7,
        }],
    )
    .await
    .unwrap();
    s.shutdown().await;
    let _ = std::fs::remove_file(dir.join("bongsu.lock"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_v1_data_dir_stays_readable() {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), d.path());
    let s = crate::common::open(d.path());
    assert_eq!(
        s.list_topics().await.unwrap(),
        ["golden-lz4", "golden-none", "golden-zstd"]
    );
    for (t, c) in TOPICS {
        let desc = s.describe_topic(t).await.unwrap();
        assert_eq!(desc.config.compression_type, c);
        assert_eq!(desc.config.segment_bytes, 1024);
        let mut expected = [Vec::new(), Vec::new()];
        for b in 0..20u64 {
            for i in 0..3 {
                expected[(b % 2) as usize].push(b * 3 + i);
            }
        }
        for p in 0..2u32 {
            assert!(
                desc.partitions[p as usize].segments > 1,
                "closed segments with index files"
            );
            let f = s.fetch(t, p, 0, FetchOptions::no_wait()).await.unwrap();
            let got: Vec<(u64, String, i64, Option<String>)> = f
                .records
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8(r.value.to_vec()).unwrap(),
                        r.timestamp_ms,
                        r.key
                            .as_ref()
                            .map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    )
                })
                .collect();
            let want: Vec<(u64, String, i64, Option<String>)> = expected[p as usize]
                .iter()
                .enumerate()
                .map(|(o, &n)| {
                    (
                        o as u64,
                        value(t, n),
                        1_700_000_000_000 + n as i64,
                        (n % 2 == 0).then(|| format!("k{n}")),
                    )
                })
                .collect();
            assert_eq!(got, want, "{t}/{p}");
        }
    }
    let c = s.committed_offsets("g").await.unwrap();
    assert_eq!(
        c,
        vec![OffsetCommit {
            tp: TopicPartition::new("golden-lz4", 1),
            offset: 7
        }]
    );
    // the index files were valid: nothing was rewritten
    let idx = fixture().join("topics/golden-lz4/0/00000000000000000000.index");
    let copied = d
        .path()
        .join("topics/golden-lz4/0/00000000000000000000.index");
    assert_eq!(std::fs::read(idx).unwrap(), std::fs::read(copied).unwrap());
}
