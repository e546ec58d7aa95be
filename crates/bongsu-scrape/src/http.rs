//! The HTTP side of a scrape: the request Prometheus sends (Accept preferring OpenMetrics,
//! `X-Prometheus-Scrape-Timeout-Seconds`, gzip, credentials) and a bounded body read.

use std::io::Read;
use std::time::Duration;

use bongsu_ingest::ExpositionFormat;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE,
};

use crate::config::{Auth, JobConfig, Secret};
use crate::scrape::Fetched;

/// The Accept header Prometheus 2.x sends: OpenMetrics first, then the text format.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// An HTTP client for one job's targets.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    auth: Option<Auth>,
    /// Largest body, compressed and decompressed.
    max_body: usize,
}

impl Fetcher {
    pub(crate) fn new(job: &JobConfig, default_max_body: usize) -> Result<Fetcher, String> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let client = reqwest::Client::builder()
            .user_agent(concat!("bongsu/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher {
            client,
            auth: job.auth.clone(),
            max_body: if job.body_size_limit > 0 {
                job.body_size_limit
            } else {
                default_max_body
            },
        })
    }

    /// Fetches `url` within `timeout`. Errors are messages for `up == 0` and the log.
    pub(crate) async fn fetch(&self, url: &str, timeout: Duration) -> Fetched {
        match tokio::time::timeout(timeout, self.fetch_inner(url, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "scrape timed out after {}: raise scrape_timeout or make the target answer faster",
                crate::duration::format_duration(timeout)
            )),
        }
    }

    async fn fetch_inner(&self, url: &str, timeout: Duration) -> Fetched {
        let mut req = self.client.get(url).header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        );
        match &self.auth {
            Some(Auth::Basic { username, password }) => {
                req = req.basic_auth(username, Some(read_secret(password).await?));
            }
            Some(Auth::Bearer(token)) => req = req.bearer_auth(read_secret(token).await?),
            None => {}
        }
        let mut resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("server returned HTTP status {status}"));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let gzip = header(CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let too_large = || {
            format!(
                "body size limit exceeded ({} bytes): raise body_size_limit or ingest.max_body_bytes",
                self.max_body
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if gzip {
            let max = self.max_body;
            body = tokio::task::spawn_blocking(move || gunzip(&body, max))
                .await
                .map_err(|e| format!("decompression task failed: {e}"))?
                .map_err(|e| e.unwrap_or_else(too_large))?;
        }
        Ok((
            body,
            ExpositionFormat::from_content_type(content_type.as_deref()),
        ))
    }
}

/// Decompresses at most `max` bytes; `Err(None)` when the body is larger.
fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Option<String>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Some(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(None);
    }
    Ok(out)
}

async fn read_secret(s: &Secret) -> Result<String, String> {
    match s {
        Secret::Inline(v) => Ok(v.clone()),
        Secret::File(p) => tokio::fs::read_to_string(p)
            .await
            .map(|t| t.trim().to_owned())
            .map_err(|e| format!("cannot read credentials file {}: {e}", p.display())),
    }
}

/// A reqwest error with its causes, without the URL repeated.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "cannot read the response body"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gunzip_is_bounded() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert_eq!(gunzip(&gz, 9_999), Err(None));
        assert!(gunzip(b"not gzip", 100)
            .unwrap_err()
            .unwrap()
            .contains("invalid gzip"));
    }
}
