//! From bytes to the batcher: parsing, counting, and the queue permits.

use std::sync::{Arc, Mutex};

use bongsu_ingest::{parse_syslog_ref, Limits, SyslogMeta};
use tokio::sync::{mpsc, Semaphore};

use crate::clock::Clock;
use crate::syslog::batcher::{fit, LabelCache, Piece, PieceBuilder};
use crate::syslog::counters::{Outcome, SyslogCounters, Transport};

/// Messages parsed but not yet added to the counters.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    received: u64,
    unparsed: u64,
    too_long: u64,
}

/// What every receiver task shares.
#[derive(Debug)]
pub(crate) struct Intake {
    pub(crate) tx: mpsc::Sender<Piece>,
    pub(crate) queue: Arc<Semaphore>,
    pub(crate) counters: Arc<SyslogCounters>,
    pub(crate) limits: Limits,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) batch_bytes: usize,
    /// Label sets of recent streams, shared by every receiver task.
    pub(crate) labels: Mutex<LabelCache>,
}

impl Intake {
    fn label_cache(&self) -> std::sync::MutexGuard<'_, LabelCache> {
        // The cache holds no invariant a panic could break midway.
        self.labels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock's time in ns, as the parser wants it.
    pub(crate) fn now_ns(&self) -> i64 {
        self.clock.now_ms().saturating_mul(1_000_000)
    }

    /// Parses one message stamped `now_ns` (never fails), tallies it, and adds it to `piece`;
    /// when that would make `piece` cost more than one batch, `piece` is moved to `full` first
    /// and a new one started. `scratch` is a buffer for the message's metadata. The caller adds
    /// the tally to the counters once per batch of messages.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn parse_into<'a>(
        &self,
        now_ns: i64,
        data: &'a [u8],
        truncated: bool,
        tally: &mut Tally,
        scratch: &mut Vec<SyslogMeta<'a>>,
        piece: &mut PieceBuilder,
        full: &mut Vec<PieceBuilder>,
    ) {
        scratch.clear();
        let m = parse_syslog_ref(data, now_ns, &self.limits, scratch);
        tally.received += 1;
        if m.stream.is_unparsed() {
            tally.unparsed += 1;
        }
        if truncated {
            tally.too_long += 1;
            scratch.push(("truncated".into(), "true".into()));
        }
        let cost = fit(&m, scratch, self.batch_bytes);
        if !piece.is_empty() && piece.cost() + cost > self.batch_bytes {
            let t = piece.transport();
            full.push(std::mem::replace(piece, PieceBuilder::new(t)));
        }
        piece.push(&m, scratch, cost);
    }

    /// Adds a tally to the counters.
    pub(crate) fn count(&self, t: Transport, tally: &Tally) {
        let c = &self.counters;
        c.add_lines(t, Outcome::Received, tally.received);
        c.add_lines(t, Outcome::Unparsed, tally.unparsed);
        c.add_lines(t, Outcome::Parsed, tally.received - tally.unparsed);
        c.add_lines(t, Outcome::TooLong, tally.too_long);
    }

    /// The finished pieces (each costing at most one batch, so it always fits the queue), their
    /// label sets taken from the shared cache under one lock.
    pub(crate) fn finish(&self, builders: Vec<PieceBuilder>) -> Vec<Piece> {
        let mut cache = self.label_cache();
        builders
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(|b| b.finish(&mut cache))
            .collect()
    }

    /// Hands pieces (from [`Intake::finish`]) to the batcher, waiting for queue room (TCP
    /// backpressure).
    pub(crate) async fn send_waiting(&self, t: Transport, pieces: Vec<Piece>) {
        for piece in pieces {
            self.send_piece(t, piece).await;
        }
    }

    async fn send_piece(&self, t: Transport, piece: Piece) {
        let (cost, n) = (piece.cost, piece.len() as u64);
        // `cost` ≤ batch_bytes ≤ queue_bytes ≤ u32::MAX (validated), so this can be granted.
        let permits = u32::try_from(cost).unwrap_or(u32::MAX);
        match self.queue.acquire_many(permits).await {
            Ok(p) => p.forget(),
            Err(_) => {
                // The semaphore is never closed; count rather than lose silently.
                self.counters.add_lines(t, Outcome::Dropped, n);
                return;
            }
        }
        if self.tx.send(piece).await.is_err() {
            self.queue.add_permits(cost);
            self.counters.add_lines(t, Outcome::Dropped, n);
        }
    }

    /// Hands a piece to the batcher only if there is room now; otherwise drops and counts its
    /// messages (UDP).
    pub(crate) fn send_or_drop(&self, t: Transport, piece: PieceBuilder) {
        if piece.is_empty() {
            return;
        }
        let cost = piece.cost();
        let granted = u32::try_from(cost)
            .ok()
            .and_then(|p| self.queue.try_acquire_many(p).ok());
        let Some(permit) = granted else {
            self.counters
                .add_lines(t, Outcome::Dropped, piece.len() as u64);
            return;
        };
        permit.forget();
        let piece = piece.finish(&mut self.label_cache());
        let n = piece.len() as u64;
        if self.tx.try_send(piece).is_err() {
            self.queue.add_permits(cost);
            self.counters.add_lines(t, Outcome::Dropped, n);
        }
    }
}
