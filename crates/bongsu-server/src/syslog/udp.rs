//! The UDP receiver: one message per datagram.

use std::io::ErrorKind;
use std::sync::Arc;

use bongsu_ingest::SyslogMessage;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::syslog::counters::Transport;
use crate::syslog::intake::Intake;
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
                    let mut items = Vec::new();
                    let mut cost = 0;
                    take(&intake, &buf[..n], max_line_bytes, &mut items, &mut cost);
                    for _ in 1..BURST {
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, _)) => take(&intake, &buf[..n], max_line_bytes, &mut items, &mut cost),
                            Err(_) => break,
                        }
                    }
                    intake.send_or_drop(Transport::Udp, items);
                }
                Err(e) => tracing::debug!(error = %e, "syslog udp receive failed"),
            },
        }
    }
    let mut items = Vec::new();
    let mut cost = 0;
    loop {
        match sock.try_recv_from(&mut buf) {
            Ok((n, _)) => take(&intake, &buf[..n], max_line_bytes, &mut items, &mut cost),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
    intake.send_or_drop(Transport::Udp, items);
}

/// Parses one datagram into `items`, handing `items` over first if it would grow past one
/// batch.
fn take(
    intake: &Intake,
    datagram: &[u8],
    max_line_bytes: usize,
    items: &mut Vec<(SyslogMessage<'static>, usize)>,
    cost: &mut usize,
) {
    intake
        .counters
        .add_bytes(Transport::Udp, datagram.len() as u64);
    let truncated = datagram.len() > max_line_bytes;
    let data = &datagram[..datagram.len().min(max_line_bytes)];
    let (r, c) = intake.parse(Transport::Udp, data, truncated);
    // The receive buffer is reused for the next datagram: the stream owns host and app.
    let r = SyslogMessage {
        stream: r.stream.into_owned(),
        entry: r.entry,
    };
    if !items.is_empty() && *cost + c > intake.batch_bytes {
        intake.send_or_drop(Transport::Udp, std::mem::take(items));
        *cost = 0;
    }
    *cost += c;
    items.push((r, c));
}
