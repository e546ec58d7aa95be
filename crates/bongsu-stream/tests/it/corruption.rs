//! Corrupt and truncated segments and indexes.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bongsu_stream::{Compression, Error, FetchOptions, Record, Stream, TopicConfig};

use crate::common::{open, segments};

fn cfg() -> TopicConfig {
    TopicConfig {
        partitions: 1,
        segment_bytes: 2048,
        index_interval_bytes: 128,
        retention_ms: -1,
        compression_type: Compression::None,
        ..TopicConfig::default()
    }
}

fn value(i: u64) -> String {
    format!("record-{i:05}-{}", "p".repeat((i % 13) as usize))
}

/// 100 batches of 3 records (offsets 0..300) in several segments; returns the partition dir.
async fn fill(dir: &Path) -> PathBuf {
    let s = open(dir);
    s.create_topic("t", cfg()).await.unwrap();
    for b in 0..100u64 {
        let recs = (0..3).map(|i| Record::new(value(b * 3 + i), 1)).collect();
        s.append("t", Some(0), recs).await.unwrap();
    }
    s.shutdown().await;
    dir.join("topics/t/0")
}

fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

fn base_of(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

async fn read_all(s: &dyn Stream, from: u64) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let f = s.fetch("t", 0, at, FetchOptions::no_wait()).await?;
        if f.records.is_empty() {
            return Ok(out);
        }
        for r in &f.records {
            assert_eq!(r.offset, at);
            out.push(String::from_utf8(r.value.to_vec()).unwrap());
            at += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_of_the_active_segment_is_truncated() {
    let d = tempfile::tempdir().unwrap();
    let p = fill(d.path()).await;
    let segs = segments(&p);
    assert!(segs.len() > 3);
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let s = open(d.path());
    let hwm = s.describe_topic("t").await.unwrap().partitions[0].high_watermark;
    assert_eq!(hwm, 297, "the torn last batch is gone, the rest stays");
    let all = read_all(&*s, 0).await.unwrap();
    assert_eq!(all, (0..297).map(value).collect::<Vec<_>>());
    // appends continue at the new end
    let a = s
        .append("t", Some(0), vec![Record::new("after", 1)])
        .await
        .unwrap();
    assert_eq!(a.base_offset, 297);
}

/// (position, length) of every batch of a segment file.
fn batches(path: &Path) -> Vec<(u64, u64)> {
    let b = std::fs::read(path).unwrap();
    let mut v = Vec::new();
    let mut pos = 0usize;
    while pos + 48 <= b.len() {
        let len = u32::from_le_bytes(b[pos + 12..pos + 16].try_into().unwrap()) as usize;
        v.push((pos as u64, len as u64));
        pos += len;
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batch_in_the_active_segment_is_truncated_on_open() {
    let d = tempfile::tempdir().unwrap();
    let p = fill(d.path()).await;
    let last = segments(&p).pop().unwrap();
    let (pos, len) = *batches(&last).last().unwrap();
    assert!(len > 60);
    flip(&last, pos + 55);
    let s = open(d.path());
    let hwm = s.describe_topic("t").await.unwrap().partitions[0].high_watermark;
    assert_eq!(hwm, 297, "truncated at the corrupt batch");
    assert_eq!(std::fs::metadata(&last).unwrap().len(), pos);
    assert_eq!(
        read_all(&*s, 0).await.unwrap(),
        (0..297).map(value).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_in_a_closed_segment_is_an_error_not_a_truncation() {
    let d = tempfile::tempdir().unwrap();
    let p = fill(d.path()).await;
    let segs = segments(&p);
    let second = &segs[1];
    let base = base_of(second);
    let next_base = base_of(&segs[2]);
    flip(second, 60);
    let s = open(d.path());
    assert_eq!(
        s.describe_topic("t").await.unwrap().partitions[0].high_watermark,
        300
    );
    match s.fetch("t", 0, base, FetchOptions::no_wait()).await {
        Err(Error::Corrupt {
            path,
            position,
            offset,
            ..
        }) => {
            assert_eq!(&path, second);
            assert_eq!(position, 0);
            assert_eq!(offset, base);
        }
        other => panic!("expected a corrupt-batch error, got {other:?}"),
    }
    // before and after the bad batch the log stays readable
    let f = s.fetch("t", 0, 0, FetchOptions::no_wait()).await.unwrap();
    assert_eq!(f.records[0].value, value(0));
    let after = read_all(&*s, next_base).await.unwrap();
    assert_eq!(after, (next_base..300).map(value).collect::<Vec<_>>());
    let inside = read_all(&*s, base + 3).await.unwrap();
    assert_eq!(inside, (base + 3..300).map(value).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_closed_segment_reports_the_missing_part() {
    let d = tempfile::tempdir().unwrap();
    let p = fill(d.path()).await;
    let segs = segments(&p);
    let first = &segs[0];
    let next_base = base_of(&segs[1]);
    let len = std::fs::metadata(first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let s = open(d.path());
    assert_eq!(
        s.describe_topic("t").await.unwrap().partitions[0].high_watermark,
        300
    );
    let err = s
        .fetch("t", 0, next_base - 1, FetchOptions::no_wait())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&first.display().to_string()));
    assert_eq!(
        s.fetch("t", 0, 0, FetchOptions::no_wait())
            .await
            .unwrap()
            .records[0]
            .value,
        value(0)
    );
    assert_eq!(
        read_all(&*s, next_base).await.unwrap().len() as u64,
        300 - next_base
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_index_files_are_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let p = fill(d.path()).await;
    let segs = segments(&p);
    let idx0 = segs[0].with_extension("index");
    let tidx1 = segs[1].with_extension("timeindex");
    let idx2 = segs[2].with_extension("index");
    let good0 = std::fs::read(&idx0).unwrap();
    flip(&idx0, 50);
    std::fs::remove_file(&tidx1).unwrap();
    // an index with a valid CRC that points at the wrong place: still rebuilt
    let mut wrong = std::fs::read(&idx2).unwrap();
    let n = wrong.len();
    wrong[48] ^= 1; // position of the first entry
    let crc = crc32c::crc32c(&wrong[..n - 4]);
    wrong[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&idx2, &wrong).unwrap();
    let s = open(d.path());
    assert_eq!(
        std::fs::read(&idx0).unwrap(),
        good0,
        "rebuilt byte for byte"
    );
    assert!(tidx1.exists());
    assert_ne!(std::fs::read(&idx2).unwrap(), wrong);
    for from in [0u64, 1, 7, 50, 100, 299] {
        let got = read_all(&*s, from).await.unwrap();
        assert_eq!(
            got,
            (from..300).map(value).collect::<Vec<_>>(),
            "from {from}"
        );
    }
    assert_eq!(s.offsets_for_time("t", 0, 1).await.unwrap(), Some(0));
}
