//! End-to-end tests: the real `bongsu` binary on a temporary data directory and port 0,
//! spoken to over real TCP with a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod agent;
mod logs_api;
mod metrics_api;
mod metrics_diff;
mod receivers;
mod stream_cli;
mod syslog;

const BIN: &str = env!("CARGO_BIN_EXE_bongsu");
const DEADLINE: Duration = Duration::from_secs(30);

/// A `bongsu` command with a clean environment for configuration.
fn bongsu() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BONGSU_") {
            c.env_remove(k);
        }
    }
    c.env("BONGSU_LOG", "info");
    c
}

/// Runs `cmd` with `stdin` as its standard input and collects its output.
fn output_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run_ok(args: &[&str]) -> Output {
    let out = bongsu().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "bongsu {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running server process whose output is read by background threads.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stdout_seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    addr: SocketAddr,
    admin_token: Option<String>,
}

impl Running {
    fn start(data_dir: &Path) -> Running {
        Running::start_with(data_dir, "127.0.0.1:0", &[])
    }

    /// Like [`Running::start`] with extra environment variables (e.g. `BONGSU_TSDB_*`).
    fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Running {
        Running::start_with(data_dir, "127.0.0.1:0", env)
    }

    /// Starts a server listening on `listen` (a fixed address to restart on the same port).
    fn start_on(data_dir: &Path, listen: &str) -> Running {
        Running::start_with(data_dir, listen, &[])
    }

    fn start_with(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Running {
        let mut child = bongsu()
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut r = Running {
            child,
            lines,
            stdout_seen: Vec::new(),
            stderr,
            addr: "0.0.0.0:0".parse().unwrap(),
            admin_token: None,
        };
        // The token line, if any, comes before the listening line.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = r.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no listening line; stderr:\n{}", r.stderr.lock().unwrap())
            });
            r.stdout_seen.push(line.clone());
            if let Some(t) = line.strip_prefix("bongsu: admin token (shown once): ") {
                r.admin_token = Some(t.trim().to_owned());
            }
            if let Some(a) = line.strip_prefix("bongsu: listening on http://") {
                r.addr = a.trim().parse().unwrap();
                break;
            }
        }
        r
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http(self.addr, "GET", path, token).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn wait_ready(&self) {
        wait_for("server ready", || {
            matches!(http(self.addr, "GET", "/-/ready", None), Ok((200, _)))
        });
    }

    fn terminate(mut self) -> (ExitStatus, SocketAddr, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.lock().unwrap().clone();
        (status, self.addr, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn server_tokens_and_graceful_shutdown_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // First start: an admin token is printed once.
    let server = Running::start(&data);
    let admin = server
        .admin_token
        .clone()
        .expect("first start prints an admin token");
    assert!(admin.starts_with("bsu_") && admin.len() == 47, "{admin}");
    let notice = server.stderr.clone();
    wait_for("the token notice on stderr", || {
        notice.lock().unwrap().contains(&admin)
    });
    assert!(data.join("state.db").exists());
    server.wait_ready();

    assert_eq!(server.get("/-/healthy", None).0, 200);
    let (status, body) = server.get("/metrics", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"errorType\":\"unauthorized\""), "{body}");
    let (status, body) = server.get("/metrics", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE process_resident_memory_bytes gauge"),
        "{body}"
    );
    assert!(body.contains("bongsu_build_info{"), "{body}");

    // A token made by the command-line tool while the server runs works at once...
    let out = run_ok(&[
        "token",
        "create",
        "--name",
        "e2e-reader",
        "--scope",
        "read",
        "--data-dir",
        data_s,
    ]);
    let reader = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(reader.starts_with("bsu_"), "{reader}");
    assert_eq!(server.get("/metrics", Some(&reader)).0, 200);
    assert_eq!(server.get("/api/v1/tokens", Some(&reader)).0, 403);

    let out = run_ok(&["token", "list", "--data-dir", data_s]);
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        !list.contains("bsu_"),
        "list must not show secrets:\n{list}"
    );
    let line = list
        .lines()
        .find(|l| l.contains("e2e-reader"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("read") && line.contains("active"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_owned();

    // ...and revoking it takes effect within the token cache time.
    run_ok(&["token", "revoke", &id, "--data-dir", data_s]);
    wait_for("revoked token refused", || {
        server.get("/metrics", Some(&reader)).0 == 401
    });
    let list = String::from_utf8(run_ok(&["token", "list", "--data-dir", data_s]).stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("e2e-reader") && l.contains("revoked")),
        "{list}"
    );

    // SIGTERM: exit status 0, and nothing answers afterwards.
    let (status, addr, stderr) = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
    assert!(stderr.contains("shutdown complete"), "{stderr}");
    match http(addr, "GET", "/-/ready", None) {
        Err(_) => {}
        Ok((code, _)) => assert_eq!(code, 503),
    }

    // Second start on the same data dir: no new token, the old one still works.
    let server = Running::start(&data);
    assert_eq!(server.admin_token, None, "stdout: {:?}", server.stdout_seen);
    assert!(server.stdout_seen.iter().all(|l| !l.contains("bsu_")));
    server.wait_ready();
    assert_eq!(server.get("/api/v1/tokens", Some(&admin)).0, 200);
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn config_check_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(&["config", "default"]);
    let default = String::from_utf8(out.stdout).unwrap();
    assert!(default.contains("[stream]"));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &default).unwrap();
    let out = run_ok(&["config", "check", good.to_str().unwrap()]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:9700\"\nlisten_port = 1\n",
    )
    .unwrap();
    let out = bongsu()
        .args(["config", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("[server]") && err.contains("`listen_port`"),
        "{err}"
    );
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = bongsu()
        .args(["server", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot listen on") && err.contains(&addr),
        "{err}"
    );
    // Nothing was created before the bind failed, so no token was lost.
    assert!(!dir.path().join("state.db").exists());
}

#[test]
fn server_opens_the_stream_and_reports_consumer_lag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    let server = Running::start(&data);
    let admin = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();
    // The running server holds the stream's lock: the command-line tool is refused, clearly.
    let out = bongsu()
        .args(["stream", "--data-dir", data_s, "topics", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another bongsu process"), "{err}");
    let (status, body) = server.get("/metrics", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE bongsu_stream_fsyncs_total counter"),
        "{body}"
    );
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");

    // The server created its built-in topics under <data_dir>/stream.
    assert_eq!(
        stream_cli::ok(&data, &["topics", "list"], ""),
        "logs\nmetrics\n"
    );

    // A group that consumed 3 of 5 records has a lag of 2, shown on the next start.
    stream_cli::ok(&data, &["topics", "create", "e2e", "-p", "1"], "");
    stream_cli::ok(&data, &["produce", "-t", "e2e"], "a\nb\nc\n");
    let out = stream_cli::ok(&data, &["consume", "-t", "e2e", "-g", "g1", "-e"], "");
    assert_eq!(out, "a\nb\nc\n");
    stream_cli::ok(&data, &["produce", "-t", "e2e"], "d\ne\n");

    let server = Running::start(&data);
    server.wait_ready();
    let (status, body) = server.get("/metrics", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(
            "bongsu_stream_consumer_lag_records{group=\"g1\",topic=\"e2e\",partition=\"0\"} 2\n"
        ),
        "{body}"
    );
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}
