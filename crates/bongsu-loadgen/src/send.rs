//! Sending remote_write bodies, concurrently and bounded, and asking the query API.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};

/// How bodies are sent.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Requests in flight at once per receiver.
    pub concurrency: usize,
    /// Retries of one request answered 429/503 or failed to connect, before giving up.
    pub max_retries: u32,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_retries: 50,
        }
    }
}

/// What one run of [`send_bodies`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub requests: u64,
    pub samples: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

impl SendReport {
    /// Samples per second of wall time.
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A remote_write body ready to send, with the number of samples it carries.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub samples: usize,
    /// Bodies of the same lane carry the same series and are sent in order.
    pub lane: usize,
}

/// Builds the HTTP client used for sending and querying; with a token, every request
/// carries `Authorization: Bearer <token>`.
pub fn client(token: Option<&str>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| Error::Config("the token must be printable ASCII".to_owned()))?;
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64)
        .default_headers(headers)
        .build()
        .map_err(|e| Error::Http {
            url: String::new(),
            source: e,
        })
}

/// Posts every body to `url` (a remote_write endpoint) with `opts.concurrency` workers,
/// retrying 429 and 503 answers (after `Retry-After`, at most 1 s) and refused connections.
/// Bodies of one lane are sent one after another in order (a receiver refuses a series'
/// samples out of order); lanes are spread over the workers. Stops at the first request
/// that fails for good.
pub async fn send_bodies(
    client: &reqwest::Client,
    url: &str,
    bodies: impl Iterator<Item = Body>,
    opts: &SendOptions,
) -> Result<SendReport> {
    let started = Instant::now();
    let workers = opts.concurrency.max(1);
    let mut txs = Vec::with_capacity(workers);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Body>(4);
        txs.push(tx);
        let client = client.clone();
        let url = url.to_owned();
        let retries = opts.max_retries;
        tasks.push(tokio::spawn(async move {
            let mut report = SendReport::default();
            while let Some(b) = rx.recv().await {
                let (samples, r) = post_one(&client, &url, b, retries).await?;
                report.requests += 1;
                report.samples += samples as u64;
                report.retries += u64::from(r);
            }
            Ok::<SendReport, Error>(report)
        }));
    }
    for b in bodies {
        let i = b.lane % workers;
        // A closed channel means that worker stopped on an error, reported below.
        if txs[i].send(b).await.is_err() {
            break;
        }
    }
    drop(txs);
    let mut report = SendReport::default();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                report.requests += r.requests;
                report.samples += r.samples;
                report.retries += r.retries;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::Config(format!("sender task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn post_one(
    client: &reqwest::Client,
    url: &str,
    body: Body,
    max_retries: u32,
) -> Result<(usize, u32)> {
    let mut attempt = 0u32;
    loop {
        let res = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header("User-Agent", "bongsu-loadgen")
            .body(body.bytes.clone())
            .send()
            .await;
        let wait = match res {
            Ok(r) if r.status().is_success() => return Ok((body.samples, attempt)),
            Ok(r) if matches!(r.status().as_u16(), 429 | 503) => r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_millis(100), |s| {
                    Duration::from_secs(s).min(Duration::from_secs(1))
                }),
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                return Err(Error::Status {
                    url: url.to_owned(),
                    status,
                    body: text.chars().take(500).collect(),
                });
            }
            Err(e) if e.is_connect() || e.is_timeout() => Duration::from_millis(200),
            Err(e) => {
                return Err(Error::Http {
                    url: url.to_owned(),
                    source: e,
                })
            }
        };
        attempt += 1;
        if attempt > max_retries {
            return Err(Error::Status {
                url: url.to_owned(),
                status: 503,
                body: format!("still refused after {max_retries} retries: slow the sender down"),
            });
        }
        tokio::time::sleep(wait).await;
    }
}

/// A query against a Prometheus-compatible HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `/api/v1/query` at `time_ms`.
    Instant { expr: String, time_ms: i64 },
    /// `/api/v1/query_range`.
    Range {
        expr: String,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Runs `q` against the API at `base` (e.g. `http://127.0.0.1:9090`) with a POST form and
/// returns the whole JSON answer, error answers included (their `status` is `"error"`).
pub async fn run_query(
    client: &reqwest::Client,
    base: &str,
    q: &Query,
) -> Result<serde_json::Value> {
    let base = base.trim_end_matches('/');
    let (url, form): (String, Vec<(&str, String)>) = match q {
        Query::Instant { expr, time_ms } => (
            format!("{base}/api/v1/query"),
            vec![("query", expr.clone()), ("time", secs(*time_ms))],
        ),
        Query::Range {
            expr,
            start_ms,
            end_ms,
            step_ms,
        } => (
            format!("{base}/api/v1/query_range"),
            vec![
                ("query", expr.clone()),
                ("start", secs(*start_ms)),
                ("end", secs(*end_ms)),
                ("step", secs(*step_ms)),
            ],
        ),
    };
    let res = client
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| Error::Http {
            url: url.clone(),
            source: e,
        })?;
    let text = res.text().await.map_err(|e| Error::Http {
        url: url.clone(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Malformed {
        url,
        reason: format!("{e}: {}", text.chars().take(200).collect::<String>()),
    })
}
