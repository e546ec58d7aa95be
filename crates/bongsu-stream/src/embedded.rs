//! [`EmbeddedStream`]: the on-disk log.
//!
//! Layout of a data dir:
//!
//! ```text
//! DIR/bongsu.lock                      directory lock (flock), held while open
//! DIR/topics/<topic>/topic.config      topic settings
//! DIR/topics/<topic>/<partition>/<20-digit base offset>.log|.index|.timeindex
//! DIR/groups/offsets.log               committed offsets of consumer groups
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch, Semaphore};

use crate::config::{
    encode_topic_config, read_topic_config, validate_topic_name, StreamOptions, TopicConfig,
};
use crate::error::{io_err, Error, Result};
use crate::groups::{Coordinator, OffsetLog};
use crate::index::write_synced;
use crate::log::{self, sync_dir, PartitionLog};
use crate::metrics::{Metrics, StreamMetrics};
use crate::stream::{check_commit_partitions, check_records, choose_partition, long_poll, Stream};
use crate::types::{
    AppendAck, Assignment, FetchOptions, FetchResult, GroupDescription, JoinGroup, OffsetCommit,
    PartitionDescription, PartitionLag, Record, TopicDescription, TopicPartition,
};
use crate::writer::{AppendReq, Writer};

struct WriterHandle {
    tx: mpsc::Sender<AppendReq>,
    thread: JoinHandle<()>,
}

struct Partition {
    log: Arc<RwLock<PartitionLog>>,
    hwm: Arc<watch::Sender<u64>>,
    queue: Arc<Semaphore>,
    writer: Mutex<Option<WriterHandle>>,
}

impl Partition {
    /// Stops the writer after it has finished every queued append (blocking).
    fn stop(&self) {
        let w = self.writer.lock().take();
        if let Some(w) = w {
            drop(w.tx);
            let _ = w.thread.join();
        }
    }
}

struct Topic {
    name: String,
    config: TopicConfig,
    dir: PathBuf,
    partitions: Vec<Partition>,
    round_robin: AtomicU32,
}

type Topics = Arc<RwLock<BTreeMap<String, Arc<Topic>>>>;

/// The embedded, on-disk implementation of [`Stream`].
pub struct EmbeddedStream {
    dir: PathBuf,
    opts: StreamOptions,
    topics: Topics,
    coordinator: Coordinator,
    offsets: Arc<OffsetLog>,
    metrics: Arc<Metrics>,
    lock: Mutex<Option<File>>,
    retention: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    closed: AtomicBool,
    topic_ops: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EmbeddedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStream")
            .field("dir", &self.dir)
            .finish()
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("bongsu.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // A process that forked but has not exec'd yet may briefly share a just-released lock
    // (flock locks belong to the open file description): retry for up to 200 ms.
    for attempt in 0.. {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if attempt < 20 => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
    }
    Err(Error::Locked(dir.to_path_buf()))
}

impl EmbeddedStream {
    /// Opens (or creates) a data dir: takes its lock, recovers every partition (validating
    /// the tail of each active segment) and starts the writers and the retention thread.
    /// Blocking: call it from `spawn_blocking` when on the async runtime.
    pub fn open(dir: &Path, opts: StreamOptions) -> Result<Arc<Self>> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock_dir(dir)?;
        let topics_dir = dir.join("topics");
        let groups_dir = dir.join("groups");
        fs::create_dir_all(&topics_dir).map_err(io_err(&topics_dir))?;
        fs::create_dir_all(&groups_dir).map_err(io_err(&groups_dir))?;
        let metrics = Arc::new(Metrics::default());
        let mut topics = BTreeMap::new();
        for entry in fs::read_dir(&topics_dir).map_err(io_err(&topics_dir))? {
            let entry = entry.map_err(io_err(&topics_dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with('.') {
                // an interrupted create or delete
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
                continue;
            }
            let config = read_topic_config(&path.join("topic.config"))?;
            let t = Self::open_topic(&name, &path, config, &opts, &metrics, false)?;
            topics.insert(name, Arc::new(t));
        }
        let (offsets, committed) = OffsetLog::open(&groups_dir)?;
        let stream = Arc::new(EmbeddedStream {
            dir: dir.to_path_buf(),
            coordinator: Coordinator::new(opts.clock.clone(), committed),
            topics: Arc::new(RwLock::new(topics)),
            offsets: Arc::new(offsets),
            metrics,
            lock: Mutex::new(Some(lock)),
            retention: Mutex::new(None),
            closed: AtomicBool::new(false),
            topic_ops: tokio::sync::Mutex::new(()),
            opts,
        });
        if stream.opts.retention_check_interval_ms > 0 {
            let (tx, rx) = mpsc::channel::<()>();
            let topics = stream.topics.clone();
            let clock = stream.opts.clock.clone();
            let metrics = stream.metrics.clone();
            let every = Duration::from_millis(stream.opts.retention_check_interval_ms);
            let thread = std::thread::Builder::new()
                .name("bongsu-retention".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        let _ = retention_pass(&topics, clock.now_ms(), &metrics);
                    }
                })
                .map_err(io_err(dir))?;
            *stream.retention.lock() = Some((tx, thread));
        }
        Ok(stream)
    }

    fn open_topic(
        name: &str,
        dir: &Path,
        config: TopicConfig,
        opts: &StreamOptions,
        metrics: &Arc<Metrics>,
        create: bool,
    ) -> Result<Topic> {
        let now = opts.clock.now_ms();
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let pdir = dir.join(p.to_string());
            let plog = if create {
                fs::create_dir_all(&pdir).map_err(io_err(&pdir))?;
                PartitionLog::create(&pdir, name, p, &config, now)?
            } else {
                PartitionLog::open(&pdir, name, p, &config, now)?.0
            };
            let hwm = Arc::new(watch::Sender::new(plog.high_watermark()));
            let log = Arc::new(RwLock::new(plog));
            let (tx, rx) = mpsc::channel();
            let writer = Writer {
                log: log.clone(),
                hwm: hwm.clone(),
                clock: opts.clock.clone(),
                metrics: metrics.clone(),
                partition: p,
            };
            let thread = std::thread::Builder::new()
                .name(format!("bongsu-writer-{name}-{p}"))
                .spawn(move || writer.run(rx))
                .map_err(io_err(&pdir))?;
            partitions.push(Partition {
                log,
                hwm,
                queue: Arc::new(Semaphore::new(opts.writer_queue_depth.max(1))),
                writer: Mutex::new(Some(WriterHandle { tx, thread })),
            });
        }
        Ok(Topic {
            name: name.to_string(),
            config,
            dir: dir.to_path_buf(),
            partitions,
            round_robin: AtomicU32::new(0),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A snapshot of the counters (per-group lag comes from [`Stream::describe_group`]).
    pub fn metrics(&self) -> StreamMetrics {
        self.metrics.snapshot()
    }

    /// Lag of every partition of every consumer group, as `(group, lag)` pairs, without
    /// awaiting (for self-metrics; [`Stream::describe_group`] gives the whole picture).
    pub fn group_lags(&self) -> Vec<(String, PartitionLag)> {
        let mut out = Vec::new();
        for group in self.coordinator.list() {
            let described =
                self.coordinator
                    .describe(&group, &|t| self.partition_count(t), &|tp| {
                        self.partition_offsets(tp)
                    });
            if let Ok(d) = described {
                out.extend(d.lag.into_iter().map(|l| (group.clone(), l)));
            }
        }
        out
    }

    /// Runs one retention pass over every topic now; returns the number of segments deleted.
    pub async fn run_retention(&self) -> Result<usize> {
        let topics = self.topics.clone();
        let now = self.opts.clock.now_ms();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || retention_pass(&topics, now, &metrics))
            .await
            .map_err(|_| Error::Shutdown)?
    }

    /// Stops background work, lets every queued append finish (and fsync), then releases the
    /// data dir lock. Appends after shutdown fail with [`Error::Shutdown`].
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let retention = self.retention.lock().take();
        let lock = self.lock.lock().take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some((tx, t)) = retention {
                drop(tx);
                let _ = t.join();
            }
            for t in topics {
                for p in &t.partitions {
                    p.stop();
                }
            }
            drop(lock);
        })
        .await;
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
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
        let l = p.log.read();
        Some((l.log_start(), l.high_watermark()))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }
}

fn retention_pass(topics: &Topics, now: i64, metrics: &Metrics) -> Result<usize> {
    let list: Vec<Arc<Topic>> = topics.read().values().cloned().collect();
    let mut total = 0;
    for t in list {
        for p in &t.partitions {
            let n = log::apply_retention(&p.log, now)?;
            Metrics::add(&metrics.segments_deleted, n as u64);
            total += n;
        }
    }
    Ok(total)
}

impl Drop for EmbeddedStream {
    fn drop(&mut self) {
        // Finish queued appends and fsync; acknowledged data is already on disk.
        if let Some((tx, t)) = self.retention.lock().take() {
            drop(tx);
            let _ = t.join();
        }
        for t in self.topics.read().values() {
            for p in &t.partitions {
                p.stop();
            }
        }
    }
}

fn partition_of(t: &Topic, partition: u32) -> Result<&Partition> {
    t.partitions
        .get(partition as usize)
        .ok_or_else(|| Error::UnknownPartition {
            topic: t.name.clone(),
            partition,
            partitions: t.config.partitions,
        })
}

#[async_trait]
impl Stream for EmbeddedStream {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        validate_topic_name(name)?;
        config.validate()?;
        let _guard = self.topic_ops.lock().await;
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        let topics_dir = self.dir.join("topics");
        let final_dir = topics_dir.join(name);
        let tmp_dir = topics_dir.join(format!(".creating-{name}"));
        let opts = self.opts.clone();
        let metrics = self.metrics.clone();
        let n = name.to_string();
        let topic = tokio::task::spawn_blocking(move || -> Result<Topic> {
            if tmp_dir.exists() {
                fs::remove_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
            }
            fs::create_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
            write_synced(&tmp_dir.join("topic.config"), &encode_topic_config(&config))?;
            for p in 0..config.partitions {
                let pdir = tmp_dir.join(p.to_string());
                fs::create_dir_all(&pdir).map_err(io_err(&pdir))?;
                File::create(pdir.join(log::segment_name(0, "log"))).map_err(io_err(&pdir))?;
                sync_dir(&pdir)?;
            }
            sync_dir(&tmp_dir)?;
            fs::rename(&tmp_dir, &final_dir).map_err(io_err(&final_dir))?;
            sync_dir(&topics_dir)?;
            EmbeddedStream::open_topic(&n, &final_dir, config, &opts, &metrics, false)
        })
        .await
        .map_err(|_| Error::Shutdown)??;
        self.topics
            .write()
            .insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        let _guard = self.topic_ops.lock().await;
        let t = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        let topics_dir = self.dir.join("topics");
        tokio::task::spawn_blocking(move || -> Result<()> {
            for p in &t.partitions {
                p.stop();
            }
            let gone = topics_dir.join(format!(".deleted-{}", t.name));
            fs::rename(&t.dir, &gone).map_err(io_err(&t.dir))?;
            sync_dir(&topics_dir)?;
            fs::remove_dir_all(&gone).map_err(io_err(&gone))?;
            Ok(())
        })
        .await
        .map_err(|_| Error::Shutdown)?
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
                let l = p.log.read();
                PartitionDescription {
                    partition: i as u32,
                    log_start_offset: l.log_start(),
                    high_watermark: l.high_watermark(),
                    size_bytes: l.size_bytes(),
                    segments: l.segments.len() as u32,
                }
            })
            .collect();
        Ok(TopicDescription {
            name: t.name.clone(),
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
        self.check_open()?;
        let t = self.topic(topic)?;
        check_records(topic, &t.config, &records)?;
        let p = choose_partition(
            topic,
            t.config.partitions,
            partition,
            &records,
            &t.round_robin,
        )?;
        let part = partition_of(&t, p)?;
        let permit = part
            .queue
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Shutdown)?;
        let (reply, rx) = oneshot::channel();
        {
            let w = part.writer.lock();
            let w = w.as_ref().ok_or(Error::Shutdown)?;
            w.tx.send(AppendReq {
                records,
                reply,
                _permit: permit,
            })
            .map_err(|_| Error::Shutdown)?;
        }
        rx.await.map_err(|_| Error::Shutdown)?
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        opts: FetchOptions,
    ) -> Result<FetchResult> {
        let t = self.topic(topic)?;
        let part = partition_of(&t, partition)?;
        let log = part.log.clone();
        let max = opts.max_partition_fetch_bytes;
        let res = long_poll(&part.hwm, opts, || {
            let log = log.clone();
            async move {
                tokio::task::spawn_blocking(move || log::read(&log, offset, max))
                    .await
                    .map_err(|_| Error::Shutdown)?
            }
        })
        .await?;
        Metrics::add(&self.metrics.fetches, 1);
        let bytes: usize = res
            .records
            .iter()
            .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()))
            .sum();
        Metrics::add(&self.metrics.bytes_out, bytes as u64);
        Ok(res)
    }

    async fn offsets_for_time(
        &self,
        topic: &str,
        partition: u32,
        ts_ms: i64,
    ) -> Result<Option<u64>> {
        let t = self.topic(topic)?;
        let log = partition_of(&t, partition)?.log.clone();
        tokio::task::spawn_blocking(move || log::offset_for_time(&log, ts_ms))
            .await
            .map_err(|_| Error::Shutdown)?
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
        self.check_open()?;
        check_commit_partitions(&offsets, &|t| self.partition_count(t))?;
        self.coordinator
            .check_commit(group, member_id, generation, &|t| self.partition_count(t))?;
        let log = self.offsets.clone();
        let g = group.to_string();
        let offs = offsets.clone();
        tokio::task::spawn_blocking(move || log.append(&g, &offs))
            .await
            .map_err(|_| Error::Shutdown)??;
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
