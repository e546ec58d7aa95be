//! The writer thread of one partition: group commit.
//!
//! Appends arrive on a queue bounded by a semaphore. The thread takes every queued append,
//! encodes each as one batch into a single buffer, writes the buffer with one `write`, fsyncs
//! once if the flush policy asks for it, publishes the new end of the log to readers and only
//! then acknowledges every append of the group. One fsync therefore covers every batch written
//! before it.

use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};

use crate::batch::{self, BatchHeader, Encoder, HEADER_LEN};
use crate::config::{Clock, RECORD_OVERHEAD};
use crate::error::{io_err, Error, Result};
use crate::log::{self, PartitionLog};
use crate::metrics::Metrics;
use crate::types::{AppendAck, Record};

pub(crate) struct AppendReq {
    pub(crate) records: Vec<Record>,
    pub(crate) reply: oneshot::Sender<Result<AppendAck>>,
    pub(crate) _permit: OwnedSemaphorePermit,
}

pub(crate) struct Writer {
    pub(crate) log: Arc<RwLock<PartitionLog>>,
    pub(crate) hwm: Arc<watch::Sender<u64>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) partition: u32,
}

/// Largest number of appends taken into one group commit.
const MAX_GROUP: usize = 4096;
/// Bytes the group buffer starts with after the writer was idle.
const GROUP_BUFFER_BYTES: usize = 1 << 20;
/// After this long without appends the group buffer is freed.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

struct Pending {
    req: AppendReq,
    pos: u64,
    header: BatchHeader,
}

impl Writer {
    pub(crate) fn run(self, rx: Receiver<AppendReq>) {
        let mut enc = Encoder::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut unflushed: i64 = 0;
        let mut last_sync = Instant::now();
        let mut failed: Option<String> = None;
        let cfg = self.log.read().cfg.clone();
        let flush_every = Duration::from_millis(cfg.flush_ms.min(i64::from(u32::MAX)) as u64);
        loop {
            let wait = if unflushed > 0 {
                flush_every.saturating_sub(last_sync.elapsed())
            } else if buf.capacity() > 0 {
                IDLE_RELEASE
            } else {
                Duration::from_secs(3600)
            };
            let first = match rx.recv_timeout(wait) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if unflushed > 0 {
                        if let Err(e) = self.sync() {
                            failed = Some(e.to_string());
                        }
                        unflushed = 0;
                        last_sync = Instant::now();
                    }
                    // Idle: the group buffer (a MiB or more) goes back to the allocator until
                    // the next append.
                    buf = Vec::new();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            if let Some(reason) = &failed {
                for r in group {
                    let _ = r.reply.send(Err(Error::Io {
                        path: self.log.read().dir.clone(),
                        source: std::io::Error::other(format!(
                            "partition writer stopped after an earlier i/o error ({reason}): restart bongsu"
                        )),
                    }));
                }
                continue;
            }
            if buf.capacity() == 0 {
                buf.reserve(GROUP_BUFFER_BYTES);
            }
            let mut st = GroupState {
                buf: &mut buf,
                pending: Vec::with_capacity(group.len()),
                unflushed: &mut unflushed,
                last_sync: &mut last_sync,
            };
            if let Err(e) = self.process(&mut enc, group, &mut st, &cfg, flush_every) {
                failed = Some(e.to_string());
            }
        }
        if unflushed > 0 {
            let _ = self.sync();
        }
        self.log.write().finish_index_jobs();
    }

    fn sync(&self) -> Result<()> {
        let (file, path) = {
            let l = self.log.read();
            (l.active().file.clone(), l.active().path.clone())
        };
        file.sync_data().map_err(io_err(path))?;
        Metrics::add(&self.metrics.fsyncs, 1);
        Ok(())
    }

    fn process(
        &self,
        enc: &mut Encoder,
        group: Vec<AppendReq>,
        st: &mut GroupState<'_>,
        cfg: &crate::config::TopicConfig,
        flush_every: Duration,
    ) -> Result<()> {
        let (mut base_pos, mut next, mut created) = {
            let l = self.log.read();
            let a = l.active();
            (a.size, a.next_offset, a.created_ms)
        };
        st.buf.clear();
        let mut queue = group.into_iter();
        while let Some(req) = queue.next() {
            let est: u64 = HEADER_LEN as u64
                + req
                    .records
                    .iter()
                    .map(|r| r.encoded_size() as u64 - RECORD_OVERHEAD as u64 + 20)
                    .sum::<u64>();
            let size_now = base_pos + st.buf.len() as u64;
            let now = self.clock.now_ms();
            if size_now > 0
                && (size_now + est > cfg.segment_bytes
                    || now.saturating_sub(created) >= cfg.segment_ms)
            {
                let rolled = self.commit(st, base_pos, cfg, flush_every).and_then(|()| {
                    log::roll(&self.log, now)?;
                    let deleted = log::apply_retention(&self.log, now)?;
                    Metrics::add(&self.metrics.segments_deleted, deleted as u64);
                    Ok(())
                });
                if let Err(e) = rolled {
                    let msg = e.to_string();
                    for r in std::iter::once(req).chain(queue) {
                        let _ = r.reply.send(Err(Error::Io {
                            path: self.log.read().dir.clone(),
                            source: std::io::Error::other(msg.clone()),
                        }));
                    }
                    return Err(e);
                }
                let l = self.log.read();
                let a = l.active();
                base_pos = a.size;
                next = a.next_offset;
                created = a.created_ms;
            }
            let before = st.buf.len();
            match enc.encode(st.buf, next, &req.records, cfg.compression_type) {
                Ok(()) => {}
                Err(e) => {
                    st.buf.truncate(before);
                    let _ = req.reply.send(Err(e));
                    continue;
                }
            }
            let header = match batch::parse_header(&st.buf[before..]) {
                Ok(h) => h,
                Err(e) => {
                    st.buf.truncate(before);
                    let _ = req.reply.send(Err(e));
                    continue;
                }
            };
            next = header.next_offset();
            st.pending.push(Pending {
                req,
                pos: base_pos + before as u64,
                header,
            });
        }
        self.commit(st, base_pos, cfg, flush_every)
    }

    /// Writes the buffer, fsyncs per policy, publishes and acknowledges.
    fn commit(
        &self,
        st: &mut GroupState<'_>,
        base_pos: u64,
        cfg: &crate::config::TopicConfig,
        flush_every: Duration,
    ) -> Result<()> {
        if st.pending.is_empty() {
            st.buf.clear();
            return Ok(());
        }
        let (file, path) = {
            let l = self.log.read();
            (l.active().file.clone(), l.active().path.clone())
        };
        let records: i64 = st.pending.iter().map(|p| p.header.count as i64).sum();
        let mut result = (&*file).write_all(st.buf).map_err(io_err(&path));
        if result.is_ok() {
            *st.unflushed += records;
            if cfg.fsync_before_ack()
                || *st.unflushed >= cfg.flush_messages
                || st.last_sync.elapsed() >= flush_every
            {
                result = file.sync_data().map_err(io_err(&path));
                Metrics::add(&self.metrics.fsyncs, 1);
                *st.unflushed = 0;
                *st.last_sync = Instant::now();
            }
        }
        if let Err(e) = result {
            // undo the partial write so that nothing unacknowledged stays in the log
            let undo = file.set_len(base_pos);
            let msg = e.to_string();
            for p in st.pending.drain(..) {
                let _ = p.req.reply.send(Err(Error::Io {
                    path: path.clone(),
                    source: std::io::Error::other(msg.clone()),
                }));
            }
            st.buf.clear();
            return match undo {
                Ok(()) => Ok(()),
                Err(u) => Err(io_err(&path)(u)),
            };
        }
        let hwm = {
            let mut l = self.log.write();
            let interval = l.cfg.index_interval_bytes;
            let a = l.active_mut();
            for p in &st.pending {
                a.add_batch(p.pos, &p.header, interval);
            }
            a.next_offset
        };
        self.hwm.send_replace(hwm);
        Metrics::add(&self.metrics.bytes_in, st.buf.len() as u64);
        Metrics::add(&self.metrics.records_appended, records as u64);
        Metrics::add(&self.metrics.batches_appended, st.pending.len() as u64);
        for p in st.pending.drain(..) {
            let _ = p.req.reply.send(Ok(AppendAck {
                partition: self.partition,
                base_offset: p.header.base_offset,
                count: p.header.count,
            }));
        }
        st.buf.clear();
        Ok(())
    }
}

struct GroupState<'a> {
    buf: &'a mut Vec<u8>,
    pending: Vec<Pending>,
    unflushed: &'a mut i64,
    last_sync: &'a mut Instant,
}
