//! From bytes to the batcher: parsing, counting, and the queue permits.

use std::sync::{Arc, Mutex};

use bongsu_ingest::{parse_syslog_message, Limits, SyslogMessage};
use bongsu_model::Label;
use tokio::sync::{mpsc, Semaphore};

use crate::clock::Clock;
use crate::syslog::batcher::{fit, LabelCache, Piece};
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
    /// Parses one message (never fails), counts it, and returns it with its cost.
    pub(crate) fn parse<'a>(
        &self,
        t: Transport,
        data: &'a [u8],
        truncated: bool,
    ) -> (SyslogMessage<'a>, usize) {
        let mut tally = Tally::default();
        let now_ns = self.now_ns();
        let item = self.parse_at(now_ns, data, truncated, &mut tally);
        self.count(t, &tally);
        item
    }

    fn label_cache(&self) -> std::sync::MutexGuard<'_, LabelCache> {
        // The cache holds no invariant a panic could break midway.
        self.labels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock's time in ns, as the parser wants it.
    pub(crate) fn now_ns(&self) -> i64 {
        self.clock.now_ms().saturating_mul(1_000_000)
    }

    /// Parses one message stamped `now_ns` (never fails) and tallies it; the caller adds
    /// the tally to the counters once per batch of messages.
    pub(crate) fn parse_at<'a>(
        &self,
        now_ns: i64,
        data: &'a [u8],
        truncated: bool,
        tally: &mut Tally,
    ) -> (SyslogMessage<'a>, usize) {
        let mut r = parse_syslog_message(data, now_ns, &self.limits);
        tally.received += 1;
        if r.stream.is_unparsed() {
            tally.unparsed += 1;
        }
        if truncated {
            tally.too_long += 1;
            r.entry
                .structured_metadata
                .push(Label::new("truncated", "true"));
        }
        let cost = fit(&mut r, self.batch_bytes);
        (r, cost)
    }

    /// Adds a tally to the counters.
    pub(crate) fn count(&self, t: Transport, tally: &Tally) {
        let c = &self.counters;
        c.add_lines(t, Outcome::Received, tally.received);
        c.add_lines(t, Outcome::Unparsed, tally.unparsed);
        c.add_lines(t, Outcome::Parsed, tally.received - tally.unparsed);
        c.add_lines(t, Outcome::TooLong, tally.too_long);
    }

    /// Groups messages into pieces of at most `batch_bytes` (so a piece always fits the
    /// queue), each with its cost and message count. Synchronous, so that messages borrowing
    /// from the receive buffer become owned pieces before the next `.await`.
    pub(crate) fn pieces(
        &self,
        t: Transport,
        items: Vec<(SyslogMessage<'_>, usize)>,
    ) -> Vec<(Piece, usize, u64)> {
        let mut out = Vec::new();
        let mut piece = Vec::new();
        let mut cost = 0usize;
        for (r, c) in items {
            if !piece.is_empty() && cost + c > self.batch_bytes {
                let n = piece.len() as u64;
                out.push((
                    Piece::new(t, std::mem::take(&mut piece), &mut self.label_cache()),
                    cost,
                    n,
                ));
                cost = 0;
            }
            cost += c;
            piece.push((r, c));
        }
        if !piece.is_empty() {
            let n = piece.len() as u64;
            out.push((Piece::new(t, piece, &mut self.label_cache()), cost, n));
        }
        out
    }

    /// Hands pieces (from [`Intake::pieces`]) to the batcher, waiting for queue room (TCP
    /// backpressure).
    pub(crate) async fn send_waiting(&self, t: Transport, pieces: Vec<(Piece, usize, u64)>) {
        for (piece, cost, n) in pieces {
            self.send_piece(t, piece, cost, n).await;
        }
    }

    async fn send_piece(&self, t: Transport, piece: Piece, cost: usize, n: u64) {
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

    /// Hands messages to the batcher only if there is room now; otherwise drops and counts
    /// them (UDP).
    pub(crate) fn send_or_drop(&self, t: Transport, items: Vec<(SyslogMessage<'_>, usize)>) {
        if items.is_empty() {
            return;
        }
        let n = items.len() as u64;
        let cost: usize = items.iter().map(|(_, c)| c).sum();
        let granted = u32::try_from(cost)
            .ok()
            .and_then(|p| self.queue.try_acquire_many(p).ok());
        let Some(permit) = granted else {
            self.counters.add_lines(t, Outcome::Dropped, n);
            return;
        };
        permit.forget();
        let piece = Piece::new(t, items, &mut self.label_cache());
        if self.tx.try_send(piece).is_err() {
            self.queue.add_permits(cost);
            self.counters.add_lines(t, Outcome::Dropped, n);
        }
    }
}
