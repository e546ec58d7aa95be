//! [`MemoryStream`]: the in-memory implementation of [`Stream`], with the same semantics as the
//! embedded log (batches are encoded with the same codec; segments roll and are retained by the
//! same rules), minus durability.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::batch::{self, Encoder};
use crate::config::{validate_topic_name, StreamOptions, TopicConfig};
use crate::error::{Error, Result};
use crate::groups::Coordinator;
use crate::stream::{check_commit_partitions, check_records, choose_partition, long_poll, Stream};
use crate::types::{
    AppendAck, Assignment, FetchOptions, FetchResult, GroupDescription, JoinGroup, OffsetCommit,
    PartitionDescription, Record, StoredRecord, TopicDescription, TopicPartition,
};

#[derive(Debug)]
struct MemSegment {
    base: u64,
    next: u64,
    batches: Vec<(u64, Bytes)>,
    size: u64,
    max_ts: i64,
    created_ms: i64,
}

impl MemSegment {
    fn new(base: u64, now: i64) -> Self {
        MemSegment {
            base,
            next: base,
            batches: Vec::new(),
            size: 0,
            max_ts: i64::MIN,
            created_ms: now,
        }
    }
}

#[derive(Debug)]
struct MemPartition {
    segments: Mutex<Vec<MemSegment>>,
    hwm: watch::Sender<u64>,
}

#[derive(Debug)]
struct MemTopic {
    config: TopicConfig,
    partitions: Vec<MemPartition>,
    round_robin: AtomicU32,
}

/// The in-memory implementation of [`Stream`] (tests, single-process tools).
#[derive(Debug)]
pub struct MemoryStream {
    opts: StreamOptions,
    topics: RwLock<BTreeMap<String, Arc<MemTopic>>>,
    coordinator: Coordinator,
}

impl MemoryStream {
    /// An empty stream.
    pub fn new(opts: StreamOptions) -> Arc<Self> {
        Arc::new(MemoryStream {
            coordinator: Coordinator::new(opts.clock.clone(), BTreeMap::new()),
            opts,
            topics: RwLock::new(BTreeMap::new()),
        })
    }

    /// Applies retention now (the memory stream has no background thread).
    pub fn run_retention(&self) -> usize {
        let now = self.opts.clock.now_ms();
        let mut deleted = 0;
        for t in self.topics.read().values() {
            for p in &t.partitions {
                let mut segs = p.segments.lock();
                let closed = segs.len() - 1;
                let mut n = 0;
                if t.config.retention_ms >= 0 {
                    while n < closed && segs[n].max_ts < now.saturating_sub(t.config.retention_ms) {
                        n += 1;
                    }
                }
                if t.config.retention_bytes >= 0 {
                    let mut total: u64 = segs[n..].iter().map(|s| s.size).sum();
                    while n < closed && total > t.config.retention_bytes as u64 {
                        total -= segs[n].size;
                        n += 1;
                    }
                }
                segs.drain(..n);
                deleted += n;
            }
        }
        deleted
    }

    fn topic(&self, name: &str) -> Result<Arc<MemTopic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    fn partition_count(&self, name: &str) -> Option<u32> {
        self.topics.read().get(name).map(|t| t.config.partitions)
    }

    fn partition_offsets(&self, tp: &TopicPartition) -> Option<(u64, u64)> {
        let t = self.topics.read().get(&tp.topic).cloned()?;
        let p = t.partitions.get(tp.partition as usize)?;
        let segs = p.segments.lock();
        Some((segs[0].base, segs[segs.len() - 1].next))
    }
}

fn part<'a>(name: &str, t: &'a MemTopic, partition: u32) -> Result<&'a MemPartition> {
    t.partitions
        .get(partition as usize)
        .ok_or_else(|| Error::UnknownPartition {
            topic: name.to_string(),
            partition,
            partitions: t.config.partitions,
        })
}

fn read(
    name: &str,
    partition: u32,
    p: &MemPartition,
    offset: u64,
    max: usize,
) -> Result<FetchResult> {
    let (batches, hwm, start) = {
        let segs = p.segments.lock();
        let start = segs[0].base;
        let hwm = segs[segs.len() - 1].next;
        if offset < start || offset > hwm {
            return Err(Error::OffsetOutOfRange {
                topic: name.to_string(),
                partition,
                offset,
                log_start: start,
                high_watermark: hwm,
            });
        }
        let mut out: Vec<Bytes> = Vec::new();
        let mut bytes = 0usize;
        'outer: for s in segs.iter().filter(|s| s.next > offset) {
            let i = s
                .batches
                .partition_point(|(b, _)| *b <= offset)
                .saturating_sub(1);
            for (_, b) in &s.batches[i..] {
                if bytes >= max && !out.is_empty() {
                    break 'outer;
                }
                bytes += b.len();
                out.push(b.clone());
            }
        }
        (out, hwm, start)
    };
    let mut records: Vec<StoredRecord> = Vec::new();
    for b in batches {
        let h = batch::parse_header(&b)?;
        batch::decode_records(&h, &b, offset, &mut records)?;
    }
    Ok(FetchResult {
        records,
        high_watermark: hwm,
        log_start_offset: start,
    })
}

#[async_trait]
impl Stream for MemoryStream {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        validate_topic_name(name)?;
        config.validate()?;
        let mut topics = self.topics.write();
        if topics.contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        let now = self.opts.clock.now_ms();
        let partitions = (0..config.partitions)
            .map(|_| MemPartition {
                segments: Mutex::new(vec![MemSegment::new(0, now)]),
                hwm: watch::Sender::new(0),
            })
            .collect();
        topics.insert(
            name.to_string(),
            Arc::new(MemTopic {
                config,
                partitions,
                round_robin: AtomicU32::new(0),
            }),
        );
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.topics
            .write()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    async fn list_topics(&self) -> Result<Vec<String>> {
        Ok(self.topics.read().keys().cloned().collect())
    }

    async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let t = self.topic(name)?;
        let partitions = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let segs = p.segments.lock();
                PartitionDescription {
                    partition: i as u32,
                    log_start_offset: segs[0].base,
                    high_watermark: segs[segs.len() - 1].next,
                    size_bytes: segs.iter().map(|s| s.size).sum(),
                    segments: segs.len() as u32,
                }
            })
            .collect();
        Ok(TopicDescription {
            name: name.to_string(),
            config: t.config.clone(),
            partitions,
        })
    }

    async fn append(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<Record>,
    ) -> Result<AppendAck> {
        let t = self.topic(topic)?;
        check_records(topic, &t.config, &records)?;
        let pn = choose_partition(
            topic,
            t.config.partitions,
            partition,
            &records,
            &t.round_robin,
        )?;
        let p = part(topic, &t, pn)?;
        let now = self.opts.clock.now_ms();
        let mut segs = p.segments.lock();
        let (size, next, created) = {
            let a = &segs[segs.len() - 1];
            (a.size, a.next, a.created_ms)
        };
        let mut buf = Vec::new();
        Encoder::new().encode(&mut buf, next, &records, t.config.compression_type)?;
        let h = batch::parse_header(&buf)?;
        if size > 0
            && (size + buf.len() as u64 > t.config.segment_bytes
                || now.saturating_sub(created) >= t.config.segment_ms)
        {
            segs.push(MemSegment::new(next, now));
        }
        let n = segs.len();
        let a = &mut segs[n - 1];
        a.size += buf.len() as u64;
        a.max_ts = a.max_ts.max(h.max_ts);
        a.next = h.next_offset();
        a.batches.push((h.base_offset, Bytes::from(buf)));
        p.hwm.send_replace(a.next);
        Ok(AppendAck {
            partition: pn,
            base_offset: h.base_offset,
            count: h.count,
        })
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        opts: FetchOptions,
    ) -> Result<FetchResult> {
        let t = self.topic(topic)?;
        let p = part(topic, &t, partition)?;
        long_poll(&p.hwm, opts, || async {
            read(topic, partition, p, offset, opts.max_partition_fetch_bytes)
        })
        .await
    }

    async fn offsets_for_time(
        &self,
        topic: &str,
        partition: u32,
        ts_ms: i64,
    ) -> Result<Option<u64>> {
        let t = self.topic(topic)?;
        let p = part(topic, &t, partition)?;
        let segs = p.segments.lock();
        for s in segs.iter().filter(|s| s.max_ts >= ts_ms) {
            for (_, b) in &s.batches {
                let h = batch::parse_header(b)?;
                if h.max_ts >= ts_ms {
                    let mut recs = Vec::new();
                    batch::decode_records(&h, b, 0, &mut recs)?;
                    return Ok(recs
                        .iter()
                        .find(|r| r.timestamp_ms >= ts_ms)
                        .map(|r| r.offset));
                }
            }
        }
        Ok(None)
    }

    async fn join_group(&self, req: JoinGroup) -> Result<Assignment> {
        self.coordinator.join(&req, &|t| self.partition_count(t))
    }

    async fn heartbeat(&self, group: &str, member_id: &str) -> Result<Assignment> {
        self.coordinator
            .heartbeat(group, member_id, &|t| self.partition_count(t))
    }

    async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        self.coordinator
            .leave(group, member_id, &|t| self.partition_count(t))
    }

    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: Vec<OffsetCommit>,
    ) -> Result<()> {
        check_commit_partitions(&offsets, &|t| self.partition_count(t))?;
        self.coordinator
            .check_commit(group, member_id, generation, &|t| self.partition_count(t))?;
        self.coordinator.apply_commit(group, &offsets);
        Ok(())
    }

    async fn committed_offsets(&self, group: &str) -> Result<Vec<OffsetCommit>> {
        Ok(self
            .coordinator
            .committed(group)
            .into_iter()
            .map(|(tp, offset)| OffsetCommit { tp, offset })
            .collect())
    }

    async fn list_groups(&self) -> Result<Vec<String>> {
        Ok(self.coordinator.list())
    }

    async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.coordinator
            .describe(group, &|t| self.partition_count(t), &|tp| {
                self.partition_offsets(tp)
            })
    }
}
