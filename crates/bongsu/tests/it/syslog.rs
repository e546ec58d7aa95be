//! A real rsyslog (8.2302, `imfile` → `omfwd`) forwards files to the real binary: RFC 5424
//! octet-counted over TCP, RFC 3164 over UDP, and a TCP forward across a bongsu restart.
//! What arrived is read back from the `logs` topic after the server stopped.
//!
//! Needs `rsyslogd` on the PATH (Debian package `rsyslog`); without it the tests print why
//! and pass, unless `BONGSU_REQUIRE_PEERS=1` (set by scripts/test-all.sh) makes them fail.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bongsu_model::{Labels, LogEntry, LogsRecord};
use bongsu_stream::{EmbeddedStream, FetchOptions, Stream, StreamOptions};

use super::{wait_for, Running};

const RSYSLOGD: &str = "rsyslogd";

/// Whether rsyslogd can run here; panics if it cannot and peers are required.
fn rsyslog_available() -> bool {
    let found = Command::new(RSYSLOGD)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("BONGSU_REQUIRE_PEERS").as_deref() != Ok("1"),
            "rsyslogd not found but BONGSU_REQUIRE_PEERS=1: apt-get install rsyslog"
        );
        eprintln!("skipping: rsyslogd not found (apt-get install rsyslog)");
    }
    found
}

/// A port free on 127.0.0.1 for both TCP and UDP right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The host name rsyslog puts in messages: the node name, without its domain.
fn short_hostname() -> String {
    let uname = rustix::system::uname();
    let node = uname.nodename().to_string_lossy().into_owned();
    node.split('.').next().unwrap_or(&node).to_owned()
}

/// A second rsyslog instance, stopped by PID on drop.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
}

impl Rsyslog {
    /// Starts rsyslogd with `inputs_and_rules` after the global settings (no imuxsock/imklog).
    fn start(dir: &Path, inputs_and_rules: &str) -> Rsyslog {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rs.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{}\")\nmodule(load=\"imfile\" mode=\"inotify\")\n{inputs_and_rules}\n",
                work.display()
            ),
        )
        .unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .arg("-n")
            // RFC 3164 timestamps carry no zone; bongsu reads them as UTC.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Rsyslog {
            child,
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("rsyslogd in {} did not stop on SIGTERM", self.dir.display());
    }
}

/// `imfile` input of `file` forwarded by `omfwd` with the given action parameters.
fn forward(
    file: &Path,
    tag: &str,
    facility: &str,
    severity: &str,
    ruleset: &str,
    action: &str,
) -> String {
    format!(
        "input(type=\"imfile\" File=\"{}\" Tag=\"{tag}:\" Facility=\"{facility}\" Severity=\"{severity}\" ruleset=\"{ruleset}\")\n\
         ruleset(name=\"{ruleset}\") {{ action(type=\"omfwd\" target=\"127.0.0.1\" {action}\n\
         queue.type=\"LinkedList\" action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\") }}\n",
        file.display()
    )
}

fn append_lines(file: &Path, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
    f.sync_data().unwrap();
}

/// A counter from the server's `/metrics`.
fn metric(server: &Running, token: &str, series: &str) -> f64 {
    let (status, body) = server.get("/metrics", Some(token));
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{body}"))
}

fn stored_lines(server: &Running, token: &str, transport: &str) -> f64 {
    metric(
        server,
        token,
        &format!("bongsu_syslog_lines_total{{transport=\"{transport}\",outcome=\"stored\"}}"),
    )
}

/// Every entry of the `logs` topic, read from the data dir of a stopped server.
fn read_logs(data: &Path) -> Vec<(Labels, LogEntry)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = StreamOptions {
            retention_check_interval_ms: 0,
            ..StreamOptions::default()
        };
        let stream = EmbeddedStream::open(&data.join("stream"), opts).unwrap();
        let desc = stream.describe_topic("logs").await.unwrap();
        let mut out = Vec::new();
        for p in 0..desc.config.partitions {
            let mut offset = 0;
            loop {
                let fetch = FetchOptions {
                    fetch_max_wait_ms: 0,
                    ..FetchOptions::default()
                };
                let f = stream.fetch("logs", p, offset, fetch).await.unwrap();
                for r in &f.records {
                    let rec = LogsRecord::decode(&r.value).unwrap();
                    for s in rec.streams {
                        for e in s.entries {
                            out.push((s.labels.clone(), e));
                        }
                    }
                    offset = r.offset + 1;
                }
                if f.records.is_empty() || offset >= f.high_watermark {
                    break;
                }
            }
        }
        stream.shutdown().await;
        out
    })
}

/// The entries whose line contains `marker`, by the number after it.
fn by_number(
    entries: &[(Labels, LogEntry)],
    marker: &str,
) -> BTreeMap<usize, Vec<(Labels, LogEntry)>> {
    let mut map: BTreeMap<usize, Vec<(Labels, LogEntry)>> = BTreeMap::new();
    for (labels, e) in entries {
        let Some((_, rest)) = e.line.split_once(marker) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let n: usize = digits
            .parse()
            .unwrap_or_else(|_| panic!("no number in {:?}", e.line));
        map.entry(n).or_default().push((labels.clone(), e.clone()));
    }
    map
}

#[test]
fn rsyslog_forwards_a_file_over_tcp_octet_counted_5424_and_udp_3164() {
    if !rsyslog_available() {
        return;
    }
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tcp_port, udp_port) = (free_port(), free_port());
    let tcp = format!("127.0.0.1:{tcp_port}");
    let udp = format!("127.0.0.1:{udp_port}");
    let server = Running::start_with_env(
        &data,
        &[
            ("BONGSU_SYSLOG_TCP_LISTEN", &tcp),
            ("BONGSU_SYSLOG_UDP_LISTEN", &udp),
        ],
    );
    let token = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();

    let rs_dir = dir.path().join("rs");
    std::fs::create_dir_all(&rs_dir).unwrap();
    let tcp_file = rs_dir.join("tcp.log");
    let udp_file = rs_dir.join("udp.log");
    std::fs::write(&tcp_file, "").unwrap();
    std::fs::write(&udp_file, "").unwrap();
    let rules = forward(
        &tcp_file,
        "myapp",
        "local0",
        "info",
        "fwdtcp",
        &format!("port=\"{tcp_port}\" protocol=\"tcp\" template=\"RSYSLOG_SyslogProtocol23Format\" TCP_Framing=\"octet-counted\""),
    ) + &forward(
        &udp_file,
        "udpapp",
        "local3",
        "warning",
        "fwdudp",
        &format!("port=\"{udp_port}\" protocol=\"udp\""),
    );
    let rsyslog = Rsyslog::start(&rs_dir, &rules);

    let text = |i: usize| {
        format!(
            "event {i}: user \"böb\" logged in from 10.0.0.{} [ok]",
            i % 250
        )
    };
    let before = now_ns();
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let lines: Vec<String> = chunk.iter().map(|&i| text(i)).collect();
        append_lines(&tcp_file, &lines);
        append_lines(&udp_file, &lines);
    }
    wait_for("every line stored", || {
        stored_lines(&server, &token, "tcp") >= N as f64
            && stored_lines(&server, &token, "udp") >= N as f64
    });
    let after = now_ns();
    drop(rsyslog);
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");

    let entries = read_logs(&data);
    let host = short_hostname();
    let tcp_got = by_number(&entries, "event ");
    let tcp_got: BTreeMap<usize, (Labels, LogEntry)> = tcp_got
        .into_iter()
        .map(|(n, v)| {
            let tcp: Vec<_> = v
                .iter()
                .filter(|(l, _)| l.get("app") == Some("myapp"))
                .cloned()
                .collect();
            assert_eq!(tcp.len(), 1, "line {n} over tcp: {v:?}");
            (n, tcp[0].clone())
        })
        .collect();
    assert_eq!(tcp_got.len(), N);
    let mut last_ts = 0;
    for (i, (labels, e)) in &tcp_got {
        assert_eq!(
            labels.to_string(),
            format!(
                r#"{{app="myapp", facility="local0", host="{host}", level="info", severity="info", source="syslog"}}"#
            ),
            "{e:?}"
        );
        assert!(e.line.starts_with("<134>1 "), "{}", e.line);
        assert!(e.line.ends_with(&format!(" - {}", text(*i))), "{}", e.line);
        // rsyslog stamps a line when it reads it, with microseconds.
        assert!(
            e.timestamp_ns >= before - 1_000_000 && e.timestamp_ns <= after,
            "{} not in [{before}, {after}]: {}",
            e.timestamp_ns,
            e.line
        );
        assert!(e.timestamp_ns >= last_ts, "timestamps go back at line {i}");
        last_ts = e.timestamp_ns;
    }

    let mut udp_count = 0;
    for (labels, e) in entries
        .iter()
        .filter(|(l, _)| l.get("app") == Some("udpapp"))
    {
        udp_count += 1;
        assert_eq!(
            labels.to_string(),
            format!(
                r#"{{app="udpapp", facility="local3", host="{host}", level="warn", severity="warning", source="syslog"}}"#
            ),
        );
        assert!(e.line.starts_with("<156>"), "{}", e.line);
        let i: usize = e
            .line
            .split_once("event ")
            .and_then(|(_, r)| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", e.line));
        assert!(
            e.line.ends_with(&format!("udpapp: {}", text(i))),
            "{}",
            e.line
        );
        // RFC 3164 timestamps have whole seconds.
        assert!(
            e.timestamp_ns >= before - 1_000_000_000 - before % 1_000_000_000
                && e.timestamp_ns <= after,
            "{} not in [{before}, {after}]: {}",
            e.timestamp_ns,
            e.line
        );
        assert_eq!(e.timestamp_ns % 1_000_000_000, 0);
    }
    assert_eq!(udp_count, N, "udp lines");
}

#[test]
fn rsyslog_loses_nothing_when_bongsu_restarts_in_the_middle_of_a_tcp_forward() {
    if !rsyslog_available() {
        return;
    }
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tcp = format!("127.0.0.1:{}", free_port());
    let env = [("BONGSU_SYSLOG_TCP_LISTEN", tcp.as_str())];
    let server = Running::start_with_env(&data, &env);
    let token = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();

    let rs_dir = dir.path().join("rs");
    std::fs::create_dir_all(&rs_dir).unwrap();
    let file = rs_dir.join("app.log");
    std::fs::write(&file, "").unwrap();
    let port = tcp.rsplit(':').next().unwrap();
    let rsyslog = Rsyslog::start(
        &rs_dir,
        &forward(
            &file,
            "myapp",
            "local0",
            "info",
            "fwd",
            &format!("port=\"{port}\" protocol=\"tcp\" template=\"RSYSLOG_SyslogProtocol23Format\" TCP_Framing=\"octet-counted\""),
        ),
    );

    // The file grows steadily while bongsu stops and starts again.
    let writer_file = file.clone();
    let writer = thread::spawn(move || {
        for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
            let lines: Vec<String> = chunk
                .iter()
                .map(|i| format!("restart line {i} end"))
                .collect();
            append_lines(&writer_file, &lines);
            thread::sleep(Duration::from_millis(20));
        }
    });
    wait_for("some lines stored", || {
        stored_lines(&server, &token, "tcp") >= 300.0
    });
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("syslog receivers stopped"), "{stderr}");

    // Started again on the same data dir and port, rsyslog reconnects and sends what it
    // holds. Once this run stored as many lines as were missing, check again; a line rsyslog
    // sent twice counts twice, so a line may still be on its way: then run once more.
    let mut runs = 1;
    let deadline = Instant::now() + Duration::from_secs(90);
    let entries = loop {
        let entries = read_logs(&data);
        let have = by_number(&entries, "restart line ").len();
        if have == N {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "after {runs} runs only {have} of {N} lines arrived"
        );
        let server = Running::start_with_env(&data, &env);
        server.wait_ready();
        runs += 1;
        wait_for("the missing lines stored", || {
            stored_lines(&server, &token, "tcp") >= (N - have) as f64
        });
        let (status, _, stderr) = server.terminate();
        assert!(status.success(), "{stderr}");
    };
    writer.join().unwrap();
    drop(rsyslog);

    let got = by_number(&entries, "restart line ");
    assert_eq!(got.len(), N);
    let mut duplicates = 0;
    for (i, copies) in &got {
        duplicates += copies.len() - 1;
        for (labels, e) in copies {
            assert_eq!(labels.get("app"), Some("myapp"));
            assert!(
                e.line.ends_with(&format!(" - restart line {i} end")),
                "{}",
                e.line
            );
        }
    }
    eprintln!("{N} lines over {runs} runs of bongsu, {duplicates} sent twice by rsyslog");
}

#[test]
fn a_busy_syslog_port_stops_the_server_with_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = super::bongsu()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BONGSU_SYSLOG_TCP_LISTEN", &addr)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for syslog on tcp {addr}"))
            && err.contains("syslog.tcp_listen"),
        "{err}"
    );
}
