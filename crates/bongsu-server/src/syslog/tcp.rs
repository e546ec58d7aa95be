//! The TCP receiver: accept loop and one task per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bongsu_ingest::{Frames, SyslogFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::syslog::batcher::PieceBuilder;
use crate::syslog::counters::{Outcome, Transport};
use crate::syslog::intake::{Intake, Tally};

/// Bytes read from a connection at once.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Connection knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) max_connections: usize,
    pub(crate) max_line_bytes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) drain_timeout: Duration,
}

/// Completes once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// Accepts connections until `stop`; then closes the listener (new connections are refused
/// by the kernel) and waits for every connection task to drain and end.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    intake: Arc<Intake>,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        intake.counters.connection_opened();
                        conns.spawn(connection(sock, peer, intake.clone(), slot, limits, stop.clone()));
                    }
                    Err(_) => {
                        intake.counters.connection_refused();
                        tracing::warn!(%peer, max = limits.max_connections, "syslog connection refused: raise syslog.max_connections");
                        drop(sock);
                    }
                },
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Eof,
    DrainTimeout,
    Error,
}

/// Reads one connection until the peer closes it. On shutdown or after `idle_timeout` without
/// data, the write side is shut down (the sender sees the connection closing and stops
/// writing to it) and reading goes on until the peer closes, for at most `drain_timeout`.
async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    _slot: OwnedSemaphorePermit,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let t = Transport::Tcp;
    let mut framer = SyslogFramer::new(limits.max_line_bytes);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut frames = Frames::default();
    let mut drain_until: Option<Instant> = None;
    let end = loop {
        let read = match drain_until {
            Some(deadline) => match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break End::DrainTimeout,
            },
            None => {
                let idle = tokio::time::timeout(limits.idle_timeout, sock.read(&mut buf));
                tokio::select! {
                    r = idle => match r {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::debug!(%peer, "syslog connection idle: closing");
                            drain_until = Some(half_close(&mut sock, limits.drain_timeout).await);
                            continue;
                        }
                    },
                    _ = stopped(&mut stop) => {
                        drain_until = Some(half_close(&mut sock, limits.drain_timeout).await);
                        continue;
                    }
                }
            }
        };
        match read {
            Ok(0) => break End::Eof,
            Ok(n) => {
                intake.counters.add_bytes(t, n as u64);
                framer.push(&buf[..n], &mut frames);
                deliver(&intake, &mut frames).await;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "syslog connection read failed");
                break End::Error;
            }
        }
    };
    framer.finish(&mut frames);
    deliver(&intake, &mut frames).await;
    intake
        .counters
        .add_lines(t, Outcome::Dropped, framer.stats().dropped);
    if matches!(end, End::DrainTimeout) {
        tracing::warn!(%peer, "syslog sender kept the connection open past syslog.drain_timeout: closing it");
    }
    tracing::debug!(%peer, ?end, "syslog connection closed");
    intake.counters.connection_closed();
}

/// Shuts down the write side; returns the drain deadline.
async fn half_close(sock: &mut TcpStream, drain: Duration) -> Instant {
    let _ = sock.shutdown().await;
    Instant::now() + drain
}

async fn deliver(intake: &Intake, frames: &mut Frames) {
    if frames.is_empty() {
        return;
    }
    let now_ns = intake.now_ns();
    let mut tally = Tally::default();
    let mut scratch = Vec::new();
    let mut full = Vec::new();
    // Room for the lines and their metadata (procid, msgid: a few bytes each), so the piece's
    // text is not copied while it grows.
    let mut piece = PieceBuilder::with_capacity(
        Transport::Tcp,
        (frames.bytes() + frames.len() * 32).min(intake.batch_bytes),
    );
    for f in frames.iter() {
        intake.parse_into(
            now_ns,
            f.data,
            f.truncated,
            &mut tally,
            &mut scratch,
            &mut piece,
            &mut full,
        );
    }
    full.push(piece);
    // The pieces own copies of what they need from the frames.
    let pieces = intake.finish(full);
    frames.clear();
    intake.count(Transport::Tcp, &tally);
    intake.send_waiting(Transport::Tcp, pieces).await;
}
