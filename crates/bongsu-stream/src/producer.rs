//! [`Producer`]: client-side batching over any [`Stream`].
//!
//! Records are grouped per (topic, partition). A partition's batch is sent when it reaches
//! `batch.size` bytes or its oldest record has waited `linger.ms`. Each partition has at most
//! one append in flight, which keeps records in order; while it is in flight, new records keep
//! accumulating (up to `max.request.size` per batch), so under load one append — and one fsync —
//! carries more records. Records without key stick to one partition per batch and move to the
//! next partition when that batch is sent (Kafka's sticky partitioner).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::stream::Stream;
use crate::types::{AppendAck, Record};

/// Producer settings (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `batch.size`: bytes after which a partition's batch is sent without waiting.
    pub batch_size: usize,
    /// `linger.ms`: longest time a record waits for its batch to fill.
    pub linger_ms: u64,
    /// `max.request.size`: largest batch sent in one append.
    pub max_request_size: usize,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits.
    pub buffer_memory: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 16 * 1024,
            linger_ms: 5,
            max_request_size: 1 << 20,
            buffer_memory: 32 << 20,
        }
    }
}

type Reply = oneshot::Sender<Result<(u32, u64)>>;

enum Cmd {
    Send {
        topic: String,
        partition: Option<u32>,
        record: Record,
        reply: Reply,
    },
    Flush(oneshot::Sender<()>),
}

/// A pending delivery: resolves to (partition, offset) once the record is durable.
#[derive(Debug)]
pub struct Delivery(oneshot::Receiver<Result<(u32, u64)>>);

impl Delivery {
    /// Waits for the acknowledgement.
    pub async fn wait(self) -> Result<(u32, u64)> {
        self.0.await.map_err(|_| Error::Shutdown)?
    }
}

/// Batching producer over a [`Stream`].
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Cmd>,
}

impl Producer {
    /// Starts a producer (spawns its batching task on the current runtime).
    pub fn new(stream: Arc<dyn Stream>, config: ProducerConfig) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(stream, config, rx));
        Producer { tx }
    }

    /// Queues a record; the returned [`Delivery`] resolves when it is durable. Waits while the
    /// producer's buffer is full.
    pub async fn enqueue(&self, topic: &str, record: Record) -> Result<Delivery> {
        self.enqueue_to(topic, None, record).await
    }

    /// Like [`enqueue`](Self::enqueue) with an explicit partition (`None`: from the key, or
    /// sticky without key).
    pub async fn enqueue_to(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: Record,
    ) -> Result<Delivery> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Send {
                topic: topic.to_string(),
                partition,
                record,
                reply,
            })
            .await
            .map_err(|_| Error::Shutdown)?;
        Ok(Delivery(rx))
    }

    /// Sends one record and waits until it is durable; returns (partition, offset).
    pub async fn send(&self, topic: &str, record: Record) -> Result<(u32, u64)> {
        self.enqueue(topic, record).await?.wait().await
    }

    /// Sends every queued record now and waits until all of them are acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }
}

#[derive(Default)]
struct Acc {
    records: Vec<Record>,
    replies: Vec<Reply>,
    bytes: usize,
    first_at: Option<Instant>,
    in_flight: bool,
}

type Key = (String, u32);
type Done = (Key, Vec<Reply>, Result<AppendAck>);

struct State {
    stream: Arc<dyn Stream>,
    cfg: ProducerConfig,
    /// per topic, one accumulator per partition
    accs: HashMap<String, Vec<Acc>>,
    /// (partition count, max.message.bytes) per topic
    partitions: HashMap<String, (u32, usize)>,
    sticky: HashMap<String, u32>,
    buffered: usize,
    inflight: JoinSet<Done>,
    flushing: Vec<oneshot::Sender<()>>,
}

async fn run(stream: Arc<dyn Stream>, cfg: ProducerConfig, mut rx: mpsc::Receiver<Cmd>) {
    let mut st = State {
        stream,
        cfg,
        accs: HashMap::new(),
        partitions: HashMap::new(),
        sticky: HashMap::new(),
        buffered: 0,
        inflight: JoinSet::new(),
        flushing: Vec::new(),
    };
    let mut open = true;
    loop {
        let deadline = st.next_deadline();
        let can_take = open && st.buffered < st.cfg.buffer_memory;
        if !open
            && st.accs.values().flatten().all(|a| a.records.is_empty())
            && st.inflight.is_empty()
        {
            break;
        }
        tokio::select! {
            cmd = rx.recv(), if can_take => match cmd {
                Some(Cmd::Send { topic, partition, record, reply }) => {
                    st.add(topic, partition, record, reply).await;
                    // take what else is queued before deciding what to send
                    for _ in 0..4096 {
                        if st.buffered >= st.cfg.buffer_memory {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(Cmd::Send { topic, partition, record, reply }) => st.add(topic, partition, record, reply).await,
                            Ok(Cmd::Flush(tx)) => st.flushing.push(tx),
                            Err(_) => break,
                        }
                    }
                }
                Some(Cmd::Flush(tx)) => st.flushing.push(tx),
                None => open = false,
            },
            Some(done) = st.inflight.join_next(), if !st.inflight.is_empty() => {
                if let Ok((key, replies, res)) = done {
                    st.complete(key, replies, res);
                }
            },
            _ = sleep_until(deadline) => {},
        }
        let force = !open || !st.flushing.is_empty();
        st.dispatch(force);
        if !st.flushing.is_empty()
            && st.inflight.is_empty()
            && st.accs.values().flatten().all(|a| a.records.is_empty())
        {
            for f in st.flushing.drain(..) {
                let _ = f.send(());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl State {
    async fn add(&mut self, topic: String, partition: Option<u32>, record: Record, reply: Reply) {
        let (n, limit) = match self.partitions.get(&topic) {
            Some(v) => *v,
            None => match self.stream.describe_topic(&topic).await {
                Ok(d) => {
                    let v = (d.config.partitions, d.config.max_message_bytes as usize);
                    self.partitions.insert(topic.clone(), v);
                    v
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            },
        };
        // refuse an oversized record alone instead of failing the batch it would join
        if record.encoded_size() > limit {
            let _ = reply.send(Err(Error::RecordTooLarge {
                topic,
                size: record.encoded_size(),
                limit,
            }));
            return;
        }
        let p = match (partition, &record.key) {
            (Some(p), _) if p >= n => {
                let _ = reply.send(Err(Error::UnknownPartition {
                    topic,
                    partition: p,
                    partitions: n,
                }));
                return;
            }
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, n),
            (None, None) => *self.sticky.entry(topic.clone()).or_insert(0) % n,
        };
        let size = record.encoded_size();
        if !self.accs.contains_key(&topic) {
            self.accs
                .insert(topic.clone(), (0..n).map(|_| Acc::default()).collect());
        }
        let Some(acc) = self
            .accs
            .get_mut(&topic)
            .and_then(|v| v.get_mut(p as usize))
        else {
            let _ = reply.send(Err(Error::Shutdown));
            return;
        };
        acc.bytes += size;
        acc.first_at.get_or_insert_with(Instant::now);
        acc.records.push(record);
        acc.replies.push(reply);
        self.buffered += size;
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.accs
            .values()
            .flatten()
            .filter(|a| !a.in_flight && !a.records.is_empty())
            .filter_map(|a| a.first_at)
            .min()
            .map(|t| t + Duration::from_millis(self.cfg.linger_ms))
    }

    fn dispatch(&mut self, force: bool) {
        let now = Instant::now();
        let linger = Duration::from_millis(self.cfg.linger_ms);
        let mut sent_topics = Vec::new();
        for (topic, accs) in self.accs.iter_mut() {
            for (p, acc) in accs.iter_mut().enumerate() {
                if acc.in_flight || acc.records.is_empty() {
                    continue;
                }
                let key: Key = (topic.clone(), p as u32);
                let due = force
                    || acc.bytes >= self.cfg.batch_size
                    || acc.first_at.is_some_and(|t| now >= t + linger);
                if !due {
                    continue;
                }
                // take records up to max.request.size (at least one)
                let mut take = 0;
                let mut bytes = 0;
                for r in &acc.records {
                    let s = r.encoded_size();
                    if take > 0 && bytes + s > self.cfg.max_request_size {
                        break;
                    }
                    bytes += s;
                    take += 1;
                }
                let records: Vec<Record> = acc.records.drain(..take).collect();
                let replies: Vec<Reply> = acc.replies.drain(..take).collect();
                acc.bytes -= bytes;
                self.buffered -= bytes;
                acc.first_at = if acc.records.is_empty() {
                    None
                } else {
                    Some(now)
                };
                acc.in_flight = true;
                let stream = self.stream.clone();
                sent_topics.push(topic.clone());
                self.inflight.spawn(async move {
                    let res = stream.append(&key.0, Some(key.1), records).await;
                    (key, replies, res)
                });
            }
        }
        for t in sent_topics {
            if let (Some(s), Some((n, _))) = (self.sticky.get_mut(&t), self.partitions.get(&t)) {
                *s = (*s + 1) % (*n).max(1);
            }
        }
    }

    fn complete(&mut self, key: Key, replies: Vec<Reply>, res: Result<AppendAck>) {
        if let Some(acc) = self
            .accs
            .get_mut(&key.0)
            .and_then(|v| v.get_mut(key.1 as usize))
        {
            acc.in_flight = false;
        }
        match res {
            Ok(ack) => {
                for (i, r) in replies.into_iter().enumerate() {
                    let _ = r.send(Ok((ack.partition, ack.base_offset + i as u64)));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let mut first = Some(e);
                for r in replies {
                    let err = first
                        .take()
                        .unwrap_or_else(|| Error::InvalidConfig(format!("batch refused: {msg}")));
                    let _ = r.send(Err(err));
                }
            }
        }
    }
}
