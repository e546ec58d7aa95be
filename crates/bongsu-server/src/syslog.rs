//! The syslog receivers: RFC 3164 and RFC 5424 over UDP (one message per datagram) and TCP
//! (newline or RFC 6587 octet-counted framing), appended in batches to the `logs` topic.
//!
//! Data flow: a UDP task and one task per TCP connection read bytes, cut frames
//! (`bongsu_ingest::SyslogFramer`), parse them (`bongsu_ingest::parse_syslog`, which never
//! fails) and hand them to one batcher task, which groups up to `syslog.batch_lines` messages
//! or `syslog.batch_bytes` into one `LogsRecord` (or less after `syslog.linger`) and appends
//! it. Memory is bounded by `syslog.queue_bytes`: when it is used up, TCP connections stop
//! being read (the kernel's window closes and the sender slows down) and UDP datagrams are
//! dropped and counted. Nothing is dropped without being counted in
//! `bongsu_syslog_lines_total{outcome="dropped"}`.
//!
//! Shutdown: stop accepting, half-close every TCP connection and read until the sender closes
//! it (at most `syslog.drain_timeout`), read the datagrams already queued, append what is
//! pending, wait for the appends. Labels and limits are described in `docs/syslog.md`.

mod batcher;
mod counters;
mod intake;
mod settings;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use bongsu_ingest::Limits;
use bongsu_stream::Stream;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::metrics::MetricsSource;
use crate::state::AppState;
use crate::{Error, Result};

pub use settings::SyslogSettings;

use batcher::{BatchLimits, LOGS_TOPIC};
use counters::SyslogCounters;
use intake::Intake;
use tcp::ConnLimits;

/// Longest `host` or `app` label value taken from a message (RFC 5424 allows 255 and 48);
/// a longer one is left out of the labels (the line keeps it).
const MAX_SYSLOG_LABEL_VALUE_BYTES: usize = 255;

/// Pieces of parsed messages waiting for the batcher (each holds queue permits, so memory is
/// bounded by `syslog.queue_bytes`, not by this).
const CHANNEL_PIECES: usize = 1024;

/// Running syslog receivers. Dropping it without [`SyslogReceiver::shutdown`] stops nothing:
/// always shut it down.
#[derive(Debug)]
pub struct SyslogReceiver {
    tcp_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    readers: Vec<JoinHandle<()>>,
    batcher: JoinHandle<()>,
    counters: Arc<SyslogCounters>,
}

impl SyslogReceiver {
    /// Binds the configured listeners and starts receiving. Returns `None` when neither
    /// `udp_listen` nor `tcp_listen` is set. `limits` are the `[ingest]` limits (label value
    /// lengths); `settings.max_line_bytes` replaces their line length. Fails if an address
    /// cannot be bound or a batch would not fit the `logs` topic's `max.message.bytes`.
    pub async fn start(
        settings: &SyslogSettings,
        limits: &Limits,
        stream: Arc<dyn Stream>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<SyslogReceiver>> {
        let udp = settings.udp_addr()?;
        let tcp = settings.tcp_addr()?;
        if udp.is_none() && tcp.is_none() {
            return Ok(None);
        }
        let topic = stream.describe_topic(LOGS_TOPIC).await?;
        settings.check_batch_bytes(topic.config.max_message_bytes as usize)?;
        let bind_error = |transport: &'static str, addr: SocketAddr| {
            move |source| Error::SyslogBind {
                transport,
                addr,
                source,
            }
        };
        let tcp_listener = match tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(bind_error("tcp", addr))?,
            ),
            None => None,
        };
        let udp_socket = match udp {
            Some(addr) => Some(
                UdpSocket::bind(addr)
                    .await
                    .map_err(bind_error("udp", addr))?,
            ),
            None => None,
        };
        let local = |r: std::io::Result<SocketAddr>, transport, addr| {
            r.map_err(bind_error(transport, addr))
        };
        let tcp_addr = match (&tcp_listener, tcp) {
            (Some(l), Some(addr)) => Some(local(l.local_addr(), "tcp", addr)?),
            _ => None,
        };
        let udp_addr = match (&udp_socket, udp) {
            (Some(s), Some(addr)) => Some(local(s.local_addr(), "udp", addr)?),
            _ => None,
        };

        let counters = Arc::new(SyslogCounters::default());
        let queue = Arc::new(Semaphore::new(settings.queue_bytes));
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let batcher = tokio::spawn(batcher::run(
            rx,
            BatchLimits {
                lines: settings.batch_lines,
                bytes: settings.batch_bytes,
                linger: settings.linger,
            },
            stream,
            clock.clone(),
            queue.clone(),
            counters.clone(),
            topic.partitions.len().max(1) as u32,
        ));
        let intake = Arc::new(Intake {
            labels: Default::default(),
            tx,
            queue,
            counters: counters.clone(),
            limits: Limits {
                max_line_bytes: settings.max_line_bytes,
                max_label_value_bytes: limits
                    .max_label_value_bytes
                    .min(MAX_SYSLOG_LABEL_VALUE_BYTES),
                ..limits.clone()
            },
            clock,
            batch_bytes: settings.batch_bytes,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut readers = Vec::new();
        if let (Some(listener), Some(addr)) = (tcp_listener, tcp_addr) {
            tracing::info!(%addr, "syslog: listening on tcp {addr}");
            readers.push(tokio::spawn(tcp::accept_loop(
                listener,
                intake.clone(),
                ConnLimits {
                    max_connections: settings.max_connections,
                    max_line_bytes: settings.max_line_bytes,
                    idle_timeout: settings.idle_timeout,
                    drain_timeout: settings.drain_timeout,
                },
                stop_rx.clone(),
            )));
        }
        if let (Some(socket), Some(addr)) = (udp_socket, udp_addr) {
            tracing::info!(%addr, "syslog: listening on udp {addr}");
            readers.push(tokio::spawn(udp::recv_loop(
                socket,
                intake.clone(),
                settings.max_line_bytes,
                stop_rx,
            )));
        }
        // The readers hold the only senders: the batcher ends when they all have.
        drop(intake);
        Ok(Some(SyslogReceiver {
            tcp_addr,
            udp_addr,
            stop,
            readers,
            batcher,
            counters,
        }))
    }

    /// The bound TCP address (the real port when `tcp_listen` asked for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The receivers' counters, for `/metrics`.
    pub fn metrics_source(&self) -> Arc<dyn MetricsSource> {
        self.counters.clone()
    }

    /// Stops accepting, drains connections and the UDP socket, appends what is pending and
    /// waits for the appends to be acknowledged.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for r in self.readers {
            if let Err(e) = r.await {
                tracing::error!(error = %e, "syslog receiver task failed");
            }
        }
        if let Err(e) = self.batcher.await {
            tracing::error!(error = %e, "syslog batcher task failed");
        }
        tracing::info!("syslog receivers stopped");
    }
}

/// Starts the receivers configured in `[syslog]` (if any) on `state`'s stream, adds their
/// counters to `/metrics` and a shutdown hook that drains them. Call it before the stream's
/// own shutdown hook is added, so that it runs first.
pub(crate) async fn attach(state: &AppState, stream: Arc<dyn Stream>) -> Result<()> {
    let config = state.config();
    let started = SyslogReceiver::start(
        &config.syslog,
        &config.ingest.limits(),
        stream,
        state.clock().clone(),
    )
    .await?;
    if let Some(receiver) = started {
        state.add_metrics_source(receiver.metrics_source());
        state.add_shutdown_hook("syslog", move || receiver.shutdown());
    }
    Ok(())
}
