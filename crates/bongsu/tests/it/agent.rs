//! The real `bongsu agent` shipping to the real server: the server goes away and comes back
//! while the agent keeps tailing; the agent is killed with SIGKILL while shipping. Every line
//! of the tailed file must reach the `logs` topic exactly once (read back from the stream after
//! the server stopped).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use bongsu_model::{LogsRecord, MetricsRecord};
use bongsu_stream::{EmbeddedStream, FetchOptions, Stream, StreamOptions};

use super::{bongsu, run_ok, wait_for, Running};

fn enroll(data: &Path, name: &str) -> String {
    let out = run_ok(&[
        "agents",
        "enroll",
        "--name",
        name,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("bsa_"), "{token}");
    token
}

/// An agent.toml tailing `log` with state under `dir`, quick timers and no inventory packages.
fn agent_config(dir: &Path, log: &Path) -> PathBuf {
    let text = format!(
        r#"[agent]
interval_seconds = 1

[agent.inventory]
packages = false

[agent.tailer]
checkpoint_path = "{dir}/tail.checkpoint"
poll_interval_ms = 20

[[agent.logs]]
paths = ["{log}"]
labels = {{ app = "e2e" }}

[agent.shipping]
queue_dir = "{dir}/queue"
linger_ms = 50
backoff_min_ms = 20
backoff_max_ms = 200
timeout_ms = 5000
"#,
        dir = dir.display(),
        log = log.display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_agent(addr: std::net::SocketAddr, token: &str, config: &Path) -> Child {
    bongsu()
        .args(["agent", "--server", &format!("http://{addr}"), "--config"])
        .arg(config)
        .env("BONGSU_AGENT_TOKEN", token)
        .env("BONGSU_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    child.wait().unwrap();
}

fn append_lines(log: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut text = String::new();
    for i in from..to {
        text.push_str(&format!("line {i:06} of the e2e agent test\n"));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// The server's count of log lines appended from agents (since it started).
fn lines_appended(server: &Running, admin: &str) -> u64 {
    let (status, body) = server.get("/metrics", Some(admin));
    if status != 200 {
        return 0;
    }
    body.lines()
        .find_map(|l| l.strip_prefix("bongsu_agent_items_total{unit=\"lines\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Every log line and metric family in the stream of a stopped server's data directory.
fn read_topics(data: &Path) -> (HashMap<String, usize>, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = EmbeddedStream::open(&data.join("stream"), StreamOptions::default()).unwrap();
        let mut lines: HashMap<String, usize> = HashMap::new();
        let mut families = Vec::new();
        for topic in ["logs", "metrics"] {
            let desc = stream.describe_topic(topic).await.unwrap();
            for p in desc.partitions {
                let mut offset = p.log_start_offset;
                while offset < p.high_watermark {
                    let r = stream
                        .fetch(topic, p.partition, offset, FetchOptions::no_wait())
                        .await
                        .unwrap();
                    let Some(last) = r.records.last() else { break };
                    offset = last.offset + 1;
                    for rec in r.records {
                        if topic == "logs" {
                            for s in LogsRecord::decode(&rec.value).unwrap().streams {
                                for e in s.entries {
                                    *lines.entry(e.line).or_default() += 1;
                                }
                            }
                        } else {
                            for s in MetricsRecord::decode(&rec.value).unwrap().series {
                                families.push(s.labels.metric_name().unwrap_or("").to_owned());
                            }
                        }
                    }
                }
            }
        }
        stream.shutdown().await;
        (lines, families)
    })
}

fn assert_each_line_once(lines: &HashMap<String, usize>, total: usize) {
    let dups: Vec<_> = lines.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated lines: {dups:?}");
    for i in 0..total {
        let l = format!("line {i:06} of the e2e agent test");
        assert!(lines.contains_key(&l), "missing {l:?}");
    }
    assert_eq!(lines.len(), total);
}

#[test]
fn server_down_and_back_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("app.log");
    let server = Running::start(&data);
    let admin = server.admin_token.clone().unwrap();
    server.wait_ready();
    let addr = server.addr;
    let token = enroll(&data, "e2e-host");
    let config = agent_config(dir.path(), &log);
    append_lines(&log, 0, 100);
    let mut agent = start_agent(addr, &token, &config);
    wait_for("100 lines at the server", || {
        lines_appended(&server, &admin) >= 100
    });
    wait_for("the agent listed with its inventory", || {
        let (_, body) = server.get("/api/v1/agents", Some(&admin));
        body.contains("\"lastSeen\":\"") && body.contains("\"hostname\"")
    });
    let (status, _, _) = server.terminate();
    assert!(status.success());

    // The agent keeps tailing into its queue while the server is away.
    append_lines(&log, 100, 300);
    let queue = dir.path().join("queue");
    let queued = || {
        std::fs::read_dir(&queue)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "q"))
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>()
    };
    let before = queued();
    wait_for("lines queued while the server is down", || {
        queued() > before
    });

    let server = Running::start_on(&data, &addr.to_string());
    server.wait_ready();
    wait_for("the other 200 lines after the server came back", || {
        lines_appended(&server, &admin) >= 200
    });
    sigkill(&mut agent);
    let (status, _, _) = server.terminate();
    assert!(status.success());

    let (lines, families) = read_topics(&data);
    assert_each_line_once(&lines, 300);
    assert!(
        families.iter().any(|f| f == "node_load1"),
        "no host metrics shipped"
    );
    assert!(
        families.iter().any(|f| f == "bongsu_agent_queue_bytes"),
        "no self-metrics shipped"
    );
}

#[test]
fn sigkill_while_shipping_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("app.log");
    let server = Running::start(&data);
    let admin = server.admin_token.clone().unwrap();
    server.wait_ready();
    let token = enroll(&data, "e2e-kill");
    let config = agent_config(dir.path(), &log);
    let mut agent = start_agent(server.addr, &token, &config);
    let rounds = 6;
    let per_round = 400;
    for round in 0..rounds {
        append_lines(&log, round * per_round, (round + 1) * per_round);
        // Kill it once it is part-way through this round's lines, at varying points.
        let target = (round * per_round + per_round / (round + 2)) as u64;
        wait_for("shipping under way", || {
            lines_appended(&server, &admin) >= target
        });
        sigkill(&mut agent);
        agent = start_agent(server.addr, &token, &config);
    }
    let total = rounds * per_round;
    wait_for("every line at the server", || {
        lines_appended(&server, &admin) >= total as u64
    });
    sigkill(&mut agent);
    let (status, _, _) = server.terminate();
    assert!(status.success());
    let (lines, _) = read_topics(&data);
    assert_each_line_once(&lines, total);
}
