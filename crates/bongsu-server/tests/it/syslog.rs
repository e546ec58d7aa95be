//! The syslog receivers over real loopback sockets, appending to an in-memory stream: labels
//! and lines, limits (too long, connections, unparsable), backpressure, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bongsu_ingest::Limits;
use bongsu_model::{LogEntry, LogsRecord};
use bongsu_server::{render_metrics, SyslogReceiver, SyslogSettings, SystemClock};
use bongsu_stream::{
    AppendAck, Assignment, FetchOptions, FetchResult, GroupDescription, JoinGroup, MemoryStream,
    OffsetCommit, Record, Stream, StreamOptions, TopicConfig, TopicDescription,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

const DEADLINE: Duration = Duration::from_secs(120);

async fn logs_stream() -> Arc<MemoryStream> {
    let stream = MemoryStream::new(StreamOptions::default());
    stream
        .create_topic(
            "logs",
            TopicConfig {
                partitions: 1,
                max_message_bytes: 1 << 20,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    stream
}

fn settings() -> SyslogSettings {
    SyslogSettings {
        udp_listen: "127.0.0.1:0".into(),
        tcp_listen: "127.0.0.1:0".into(),
        linger: Duration::from_millis(5),
        ..SyslogSettings::default()
    }
}

async fn start(s: &SyslogSettings, stream: Arc<dyn Stream>) -> SyslogReceiver {
    SyslogReceiver::start(s, &Limits::default(), stream, Arc::new(SystemClock))
        .await
        .unwrap()
        .expect("a listener is configured")
}

/// One sample of the receiver's `/metrics` text, e.g. `lines("tcp", "stored")`.
fn metric(r: &SyslogReceiver, series: &str) -> f64 {
    let text = render_metrics(&[r.metrics_source()]);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
}

fn lines(r: &SyslogReceiver, transport: &str, outcome: &str) -> f64 {
    metric(
        r,
        &format!("bongsu_syslog_lines_total{{transport=\"{transport}\",outcome=\"{outcome}\"}}"),
    )
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every entry of the `logs` topic with its stream labels, in offset order.
async fn stored(stream: &dyn Stream) -> Vec<(bongsu_model::Labels, LogEntry)> {
    let opts = FetchOptions {
        fetch_max_wait_ms: 0,
        max_partition_fetch_bytes: 64 << 20,
        ..FetchOptions::default()
    };
    let fetched = stream.fetch("logs", 0, 0, opts).await.unwrap();
    let mut out = Vec::new();
    for r in fetched.records {
        let rec = LogsRecord::decode(&r.value).unwrap();
        for s in rec.streams {
            for e in s.entries {
                out.push((s.labels.clone(), e));
            }
        }
    }
    out
}

fn md<'a>(e: &'a LogEntry, name: &str) -> Option<&'a str> {
    e.structured_metadata
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value.as_str())
}

#[tokio::test]
async fn tcp_and_udp_messages_are_stored_with_their_labels() {
    let stream = logs_stream().await;
    let r = start(&settings(), stream.clone()).await;
    let tcp = r.tcp_addr().unwrap();
    let udp = r.udp_addr().unwrap();

    let m5424 = "<165>1 2003-10-11T22:14:15.003Z web1 evntslog 42 ID47 [origin@1 ip=\"10.0.0.1\"] application event";
    let mut conn = TcpStream::connect(tcp).await.unwrap();
    let mut wire = format!("{} {m5424}", m5424.len()).into_bytes();
    wire.extend_from_slice(b"<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed\n");
    wire.extend_from_slice(b"not syslog at all\n");
    conn.write_all(&wire).await.unwrap();
    drop(conn);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"<14>Nov  4 01:02:03 db1 postgres: checkpoint", udp)
        .await
        .unwrap();

    wait_for("4 lines stored", || {
        lines(&r, "tcp", "stored") == 3.0 && lines(&r, "udp", "stored") == 1.0
    })
    .await;
    assert_eq!(lines(&r, "tcp", "received"), 3.0);
    assert_eq!(lines(&r, "tcp", "parsed"), 2.0);
    assert_eq!(lines(&r, "tcp", "unparsed"), 1.0);
    assert_eq!(lines(&r, "udp", "parsed"), 1.0);
    assert_eq!(
        metric(&r, "bongsu_syslog_bytes_total{transport=\"tcp\"}"),
        wire.len() as f64
    );
    r.shutdown().await;

    let mut got = stored(&*stream).await;
    got.sort_by(|a, b| a.1.line.cmp(&b.1.line));
    assert_eq!(got.len(), 4);
    let (labels, e) = &got[0];
    assert_eq!(e.line, "<14>Nov  4 01:02:03 db1 postgres: checkpoint");
    assert_eq!(
        labels.to_string(),
        r#"{app="postgres", facility="user", host="db1", level="info", severity="info", source="syslog"}"#
    );
    let (labels, e) = &got[1];
    assert_eq!(e.line, m5424);
    assert_eq!(
        labels.to_string(),
        r#"{app="evntslog", facility="local4", host="web1", level="info", severity="notice", source="syslog"}"#
    );
    assert_eq!(e.timestamp_ns, 1_065_910_455_003_000_000);
    assert_eq!(md(e, "procid"), Some("42"));
    assert_eq!(md(e, "msgid"), Some("ID47"));
    assert_eq!(md(e, "origin@1.ip"), Some("10.0.0.1"));
    let (labels, e) = &got[2];
    assert_eq!(
        e.line,
        "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed"
    );
    assert_eq!(labels.get("severity"), Some("crit"));
    assert_eq!(labels.get("level"), Some("critical"));
    assert_eq!(labels.get("app"), Some("su"));
    // A line that does not parse is stored as sent, labelled.
    let (labels, e) = &got[3];
    assert_eq!(e.line, "not syslog at all");
    assert_eq!(labels.get("unparsed"), Some("true"));
    assert_eq!(
        labels.get("syslog_parse_error"),
        Some("missing or invalid PRI")
    );
}

#[tokio::test]
async fn too_long_messages_are_cut_marked_and_counted() {
    let stream = logs_stream().await;
    let s = SyslogSettings {
        max_line_bytes: 100,
        batch_bytes: 4096,
        queue_bytes: 8192,
        ..settings()
    };
    let r = start(&s, stream.clone()).await;
    let long = format!("<13>Nov  4 01:02:03 h app: {}", "x".repeat(300));
    let mut conn = TcpStream::connect(r.tcp_addr().unwrap()).await.unwrap();
    conn.write_all(format!("{long}\n<13>Nov  4 01:02:03 h app: short\n").as_bytes())
        .await
        .unwrap();
    drop(conn);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(long.as_bytes(), r.udp_addr().unwrap())
        .await
        .unwrap();
    wait_for("3 lines stored", || {
        lines(&r, "tcp", "stored") == 2.0 && lines(&r, "udp", "stored") == 1.0
    })
    .await;
    assert_eq!(lines(&r, "tcp", "too_long"), 1.0);
    assert_eq!(lines(&r, "udp", "too_long"), 1.0);
    r.shutdown().await;
    let got = stored(&*stream).await;
    let cut: Vec<_> = got.iter().filter(|(_, e)| e.line.len() == 100).collect();
    assert_eq!(cut.len(), 2, "{got:?}");
    for (labels, e) in cut {
        assert_eq!(e.line, long[..100]);
        assert_eq!(md(e, "truncated"), Some("true"));
        assert_eq!(labels.get("app"), Some("app"));
    }
    let short = got.iter().find(|(_, e)| e.line.ends_with("short")).unwrap();
    assert_eq!(md(&short.1, "truncated"), None);
}

#[tokio::test]
async fn a_partial_octet_counted_message_at_close_is_counted_as_dropped() {
    let stream = logs_stream().await;
    let r = start(&settings(), stream.clone()).await;
    let mut conn = TcpStream::connect(r.tcp_addr().unwrap()).await.unwrap();
    conn.write_all(b"8 <13>full50 <13>cut short").await.unwrap();
    drop(conn);
    wait_for("the partial message counted", || {
        lines(&r, "tcp", "dropped") == 1.0
    })
    .await;
    wait_for("the full message stored", || {
        lines(&r, "tcp", "stored") == 1.0
    })
    .await;
    r.shutdown().await;
    let got = stored(&*stream).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.line, "<13>full");
}

/// Reads until the peer closes (0 or an error); false if it stays open past 5 s.
async fn closed_by_peer(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        timeout(Duration::from_secs(5), conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_and_counted() {
    let stream = logs_stream().await;
    let s = SyslogSettings {
        max_connections: 1,
        ..settings()
    };
    let r = start(&s, stream.clone()).await;
    let addr = r.tcp_addr().unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"<13>one\n").await.unwrap();
    wait_for("first line stored", || lines(&r, "tcp", "stored") == 1.0).await;
    assert_eq!(metric(&r, "bongsu_syslog_connections_open"), 1.0);

    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_peer(&mut second).await,
        "the second connection stays open"
    );
    assert_eq!(
        metric(&r, "bongsu_syslog_connections_total{outcome=\"refused\"}"),
        1.0
    );

    drop(first);
    wait_for("first connection closed", || {
        metric(&r, "bongsu_syslog_connections_open") == 0.0
    })
    .await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"<13>three\n").await.unwrap();
    wait_for("third line stored", || lines(&r, "tcp", "stored") == 2.0).await;
    assert_eq!(
        metric(&r, "bongsu_syslog_connections_total{outcome=\"accepted\"}"),
        2.0
    );
    r.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let stream = logs_stream().await;
    let s = SyslogSettings {
        idle_timeout: Duration::from_millis(200),
        ..settings()
    };
    let r = start(&s, stream.clone()).await;
    let mut conn = TcpStream::connect(r.tcp_addr().unwrap()).await.unwrap();
    conn.write_all(b"<13>before idle\n").await.unwrap();
    assert!(
        closed_by_peer(&mut conn).await,
        "idle connection not closed"
    );
    // The server half-closed: what the sender writes before it closes is still read.
    conn.write_all(b"<13>after the close notice\n")
        .await
        .unwrap();
    drop(conn);
    wait_for("both lines stored", || lines(&r, "tcp", "stored") == 2.0).await;
    r.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_connections_and_appends_pending_lines() {
    let stream = logs_stream().await;
    let s = SyslogSettings {
        // Nothing is appended before shutdown unless shutdown flushes it.
        linger: Duration::from_secs(3600),
        ..settings()
    };
    let r = start(&s, stream.clone()).await;
    let mut conn = TcpStream::connect(r.tcp_addr().unwrap()).await.unwrap();
    conn.write_all(b"<13>Nov  4 01:02:03 h app: one\n")
        .await
        .unwrap();
    wait_for("line received", || lines(&r, "tcp", "received") == 1.0).await;
    let sender = tokio::spawn(async move {
        // The server half-closes at shutdown; the sender writes once more, then closes.
        assert!(closed_by_peer(&mut conn).await);
        conn.write_all(b"<13>Nov  4 01:02:03 h app: two\n")
            .await
            .unwrap();
    });
    assert_eq!(stored(&*stream).await.len(), 0);
    timeout(DEADLINE, r.shutdown()).await.unwrap();
    sender.await.unwrap();
    let got: Vec<String> = stored(&*stream)
        .await
        .into_iter()
        .map(|(_, e)| e.line)
        .collect();
    assert_eq!(
        got,
        [
            "<13>Nov  4 01:02:03 h app: one",
            "<13>Nov  4 01:02:03 h app: two"
        ]
    );
}

/// A stream whose appends wait while the gate is closed.
struct GatedStream {
    inner: Arc<MemoryStream>,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl Stream for GatedStream {
    async fn create_topic(&self, name: &str, config: TopicConfig) -> bongsu_stream::Result<()> {
        self.inner.create_topic(name, config).await
    }
    async fn delete_topic(&self, name: &str) -> bongsu_stream::Result<()> {
        self.inner.delete_topic(name).await
    }
    async fn list_topics(&self) -> bongsu_stream::Result<Vec<String>> {
        self.inner.list_topics().await
    }
    async fn describe_topic(&self, name: &str) -> bongsu_stream::Result<TopicDescription> {
        self.inner.describe_topic(name).await
    }
    async fn append(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<Record>,
    ) -> bongsu_stream::Result<AppendAck> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|&o| o).await;
        self.inner.append(topic, partition, records).await
    }
    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        opts: FetchOptions,
    ) -> bongsu_stream::Result<FetchResult> {
        self.inner.fetch(topic, partition, offset, opts).await
    }
    async fn offsets_for_time(
        &self,
        topic: &str,
        partition: u32,
        ts_ms: i64,
    ) -> bongsu_stream::Result<Option<u64>> {
        self.inner.offsets_for_time(topic, partition, ts_ms).await
    }
    async fn join_group(&self, req: JoinGroup) -> bongsu_stream::Result<Assignment> {
        self.inner.join_group(req).await
    }
    async fn heartbeat(&self, group: &str, member_id: &str) -> bongsu_stream::Result<Assignment> {
        self.inner.heartbeat(group, member_id).await
    }
    async fn leave_group(&self, group: &str, member_id: &str) -> bongsu_stream::Result<()> {
        self.inner.leave_group(group, member_id).await
    }
    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: Vec<OffsetCommit>,
    ) -> bongsu_stream::Result<()> {
        self.inner
            .commit_offsets(group, member_id, generation, offsets)
            .await
    }
    async fn committed_offsets(&self, group: &str) -> bongsu_stream::Result<Vec<OffsetCommit>> {
        self.inner.committed_offsets(group).await
    }
    async fn list_groups(&self) -> bongsu_stream::Result<Vec<String>> {
        self.inner.list_groups().await
    }
    async fn describe_group(&self, group: &str) -> bongsu_stream::Result<GroupDescription> {
        self.inner.describe_group(group).await
    }
}

#[tokio::test]
async fn a_stalled_stream_slows_tcp_down_and_drops_udp_with_a_count() {
    let inner = logs_stream().await;
    let (gate, open) = watch::channel(false);
    let stream = Arc::new(GatedStream {
        inner: inner.clone(),
        open,
    });
    let s = SyslogSettings {
        max_line_bytes: 1000,
        batch_lines: 10,
        batch_bytes: 4096,
        queue_bytes: 16384,
        ..settings()
    };
    let r = start(&s, stream.clone()).await;
    let line = format!("<13>Nov  4 01:02:03 h app: {}\n", "y".repeat(200));
    // Far more than the receiver may hold while stalled (`bound` below).
    let total = 30_000usize;
    let mut conn = TcpStream::connect(r.tcp_addr().unwrap()).await.unwrap();
    let wire = line.repeat(total);
    let writer = tokio::spawn(async move {
        conn.write_all(wire.as_bytes()).await.unwrap();
        conn.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    });
    // With appends stalled, the receiver reads only as far as its queue allows (plus what
    // one read buffer holds); the rest waits in the sender: nothing is dropped.
    let bound = 16384 / 300 + 2 * (64 << 10) / line.len() + 1;
    wait_for("the queue to fill", || lines(&r, "tcp", "received") >= 30.0).await;
    assert!(lines(&r, "tcp", "received") as usize <= bound);

    // UDP cannot wait: a datagram arriving now is dropped and counted.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(line.trim_end().as_bytes(), r.udp_addr().unwrap())
        .await
        .unwrap();
    wait_for("the udp drop counted", || {
        lines(&r, "udp", "dropped") == 1.0
    })
    .await;
    let received = lines(&r, "tcp", "received") as usize;
    assert!(
        received <= bound,
        "read {received} lines while stalled (bound {bound})"
    );
    // The rest is in the kernel's socket buffers or still in the sender, which is blocked
    // once those are full.
    assert_eq!(lines(&r, "tcp", "stored"), 0.0);

    gate.send(true).unwrap();
    timeout(DEADLINE, writer).await.unwrap().unwrap();
    wait_for("every tcp line stored", || {
        lines(&r, "tcp", "stored") as usize == total
    })
    .await;
    assert_eq!(lines(&r, "tcp", "dropped"), 0.0);
    assert!(metric(&r, "bongsu_syslog_batches_total{outcome=\"appended\"}") >= (total / 10) as f64);
    r.shutdown().await;
    assert_eq!(stored(&*inner).await.len(), total);
}
