//! Crash test: a child process appends and prints every acknowledgement; it is killed with
//! SIGKILL at random moments; after each kill the log is reopened and checked.
//!
//! The child is this test binary itself, re-executed to run only `crash::crash_child` with
//! `BONGSU_CRASH_DIR` set. `BONGSU_STRESS=1` runs ten times more kills.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bongsu_stream::{Compression, EmbeddedStream, FetchOptions, Record, Stream, TopicConfig};
use rand::{Rng, SeedableRng};

fn value(run: u64, task: u64, n: u64, i: u64, count: u64) -> String {
    format!(
        "{run}.{task}.{n}.{i}.{count}.{}",
        "x".repeat(((n * 7 + i) % 60) as usize)
    )
}

/// The child role: does nothing unless BONGSU_CRASH_DIR is set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("BONGSU_CRASH_DIR") else {
        return;
    };
    let run: u64 = std::env::var("BONGSU_CRASH_RUN").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = crate::common::open(std::path::Path::new(&dir));
        if s.list_topics().await.unwrap().is_empty() {
            let cfg = TopicConfig {
                partitions: 2,
                segment_bytes: 16 * 1024,
                index_interval_bytes: 512,
                retention_ms: -1,
                compression_type: if run.is_multiple_of(2) {
                    Compression::Lz4
                } else {
                    Compression::None
                },
                ..TopicConfig::default()
            };
            s.create_topic("c", cfg).await.unwrap();
        }
        let mut tasks = Vec::new();
        for task in 0..4u64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let count = 1 + n % 5;
                    let recs = (0..count)
                        .map(|i| Record::new(value(run, task, n, i, count), n as i64))
                        .collect();
                    let a = s.append("c", Some((task % 2) as u32), recs).await.unwrap();
                    println!(
                        "ACK {} {} {} {run} {task} {n}",
                        a.partition, a.base_offset, a.count
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

async fn verify(s: &Arc<EmbeddedStream>, acked: &HashMap<(u32, u64), String>) -> u64 {
    let mut total = 0;
    for p in 0..2u32 {
        let mut at = 0u64;
        let mut records = Vec::new();
        loop {
            let f = s
                .fetch("c", p, at, FetchOptions::no_wait())
                .await
                .unwrap_or_else(|e| panic!("partition {p} offset {at}: corrupt read: {e}"));
            if f.records.is_empty() {
                break;
            }
            for r in f.records {
                assert_eq!(r.offset, at, "offsets are dense");
                at += 1;
                records.push(String::from_utf8(r.value.to_vec()).unwrap());
            }
        }
        // batches are whole: each (run, task, n) appears with i = 0..count, contiguous
        let mut i = 0;
        while i < records.len() {
            let f: Vec<&str> = records[i].split('.').collect();
            let (run, task, n, idx, count): (u64, u64, u64, u64, u64) = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            );
            assert_eq!(idx, 0, "a batch starts at its first record: {}", records[i]);
            for k in 0..count {
                assert_eq!(
                    records.get(i + k as usize).map(String::as_str),
                    Some(value(run, task, n, k, count).as_str()),
                    "batch {run}.{task}.{n} is whole"
                );
            }
            i += count as usize;
        }
        for ((ap, off), v) in acked.iter().filter(|((ap, _), _)| *ap == p) {
            assert_eq!(
                records.get(*off as usize),
                Some(v),
                "acknowledged record {ap}/{off} is present byte for byte"
            );
        }
        total += records.len() as u64;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let kills = if std::env::var("BONGSU_STRESS").is_ok() {
        2000
    } else {
        200
    };
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xb0b5);
    let mut acked: HashMap<(u32, u64), String> = HashMap::new();
    let mut acks_total = 0usize;
    for run in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BONGSU_CRASH_DIR", d.path())
            .env("BONGSU_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        let wait_ms = rng.gen_range(1..30);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() != 7 || f[0] != "ACK" {
                continue;
            }
            let p: u32 = f[1].parse().unwrap();
            let base: u64 = f[2].parse().unwrap();
            let count: u64 = f[3].parse().unwrap();
            let (r, task, n): (u64, u64, u64) = (
                f[4].parse().unwrap(),
                f[5].parse().unwrap(),
                f[6].parse().unwrap(),
            );
            for i in 0..count {
                acked.insert((p, base + i), value(r, task, n, i, count));
            }
            acks_total += 1;
        }
        let s = {
            let dir = d.path().to_path_buf();
            tokio::task::spawn_blocking(move || crate::common::open(&dir))
                .await
                .unwrap()
        };
        if !s.list_topics().await.unwrap().is_empty() {
            let total = verify(&s, &acked).await;
            assert!(total >= acked.len() as u64);
        } else {
            assert!(
                acked.is_empty(),
                "the topic vanished after acknowledgements"
            );
        }
        s.shutdown().await;
        if (run + 1) % 100 == 0 && run + 1 < kills {
            eprintln!(
                "{} kills, {acks_total} acknowledged appends verified",
                run + 1
            );
        }
    }
    assert!(
        acks_total > 0,
        "children acknowledged appends before being killed"
    );
    eprintln!("{kills} kills, {acks_total} acknowledged appends verified");
}
