//! A real Prometheus started for a test or a run, stopped on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A Prometheus process with its remote_write receiver, on a free loopback port.
#[derive(Debug)]
pub struct PrometheusPeer {
    child: Child,
    /// Base URL of its HTTP API.
    pub base: String,
}

impl Drop for PrometheusPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusPeer {
    /// Whether a `prometheus` executable is on the PATH.
    pub fn installed() -> bool {
        Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts Prometheus with its data, configuration and log under `dir`, and waits (at
    /// most 30 s) until it is ready.
    pub async fn start(dir: &Path, client: &reqwest::Client) -> Result<PrometheusPeer> {
        let io = |what: &str, e: std::io::Error| {
            Error::Config(format!(
                "{what}: {e}: check that {} is writable",
                dir.display()
            ))
        };
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n")
            .map_err(|e| io("write prometheus.yml", e))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| io("find a free port", e))?
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log"))
            .map_err(|e| io("create prometheus.log", e))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| io("start prometheus (apt-get install prometheus)", e))?;
        let peer = PrometheusPeer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/-/ready", peer.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(peer);
            }
            if Instant::now() > deadline {
                return Err(Error::Config(format!(
                    "prometheus not ready within 30 s: see {}",
                    dir.join("prometheus.log").display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
