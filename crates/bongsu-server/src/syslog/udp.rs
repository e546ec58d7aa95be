//! The UDP receiver: one message per datagram.

use std::io::ErrorKind;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::syslog::batcher::PieceBuilder;
use crate::syslog::counters::Transport;
use crate::syslog::intake::{Intake, Tally};
use crate::syslog::tcp::stopped;

/// The largest UDP payload (IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// Datagrams read without waiting after one that was waited for, handed over together.
const BURST: usize = 256;

/// Reads datagrams until `stop`, then reads what is already queued in the socket and ends.
pub(crate) async fn recv_loop(
    sock: UdpSocket,
    intake: Arc<Intake>,
    max_line_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    // One byte more than the limit tells a too-long datagram from one of exactly the limit.
    let mut buf = vec![0u8; max_line_bytes.saturating_add(1).min(MAX_DATAGRAM + 1)];
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, _)) => {
                    let mut piece = PieceBuilder::new(Transport::Udp);
                    take(&intake, &buf[..n], max_line_bytes, &mut piece);
                    for _ in 1..BURST {
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, _)) => take(&intake, &buf[..n], max_line_bytes, &mut piece),
                            Err(_) => break,
                        }
                    }
                    intake.send_or_drop(Transport::Udp, piece);
                }
                Err(e) => tracing::debug!(error = %e, "syslog udp receive failed"),
            },
        }
    }
    let mut piece = PieceBuilder::new(Transport::Udp);
    loop {
        match sock.try_recv_from(&mut buf) {
            Ok((n, _)) => take(&intake, &buf[..n], max_line_bytes, &mut piece),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
    intake.send_or_drop(Transport::Udp, piece);
}

/// Parses one datagram into `piece` (which copies what it keeps: the receive buffer is reused
/// for the next datagram), handing `piece` over first if it would grow past one batch.
fn take(intake: &Intake, datagram: &[u8], max_line_bytes: usize, piece: &mut PieceBuilder) {
    let t = Transport::Udp;
    intake.counters.add_bytes(t, datagram.len() as u64);
    let truncated = datagram.len() > max_line_bytes;
    let data = &datagram[..datagram.len().min(max_line_bytes)];
    let mut tally = Tally::default();
    let mut full = Vec::new();
    let mut scratch = Vec::new();
    intake.parse_into(
        intake.now_ns(),
        data,
        truncated,
        &mut tally,
        &mut scratch,
        piece,
        &mut full,
    );
    intake.count(t, &tally);
    for p in full {
        intake.send_or_drop(t, p);
    }
}
