//! Service checks reported with blackbox_exporter's metric names: TCP connect, HTTP(S)
//! (status, body regex, TLS certificate expiry) and DNS resolution.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::clock::{Clock, SystemClock};
use crate::config::{CheckConfig, DnsCheck, DnsFamily, HttpCheck, TcpCheck};
use crate::metrics::Metrics;
use crate::{Error, Result};

struct HttpProbe {
    client: reqwest::Client,
    redirects: Arc<AtomicU32>,
    body: Option<Regex>,
    body_not: Option<Regex>,
    method: reqwest::Method,
}

struct Prepared {
    config: CheckConfig,
    http: Option<HttpProbe>,
}

/// Runs configured checks; HTTP clients and regexes are built once.
pub struct CheckRunner {
    checks: Vec<Arc<Prepared>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CheckRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckRunner")
            .field("checks", &self.checks.len())
            .finish()
    }
}

fn regex(field: &'static str, p: &Option<String>) -> Result<Option<Regex>> {
    p.as_ref()
        .map(|p| {
            Regex::new(p).map_err(|source| Error::Regex {
                field,
                pattern: p.clone(),
                source,
            })
        })
        .transpose()
}

fn http_probe(c: &HttpCheck, timeout: Duration) -> Result<HttpProbe> {
    let redirects = Arc::new(AtomicU32::new(0));
    let counter = redirects.clone();
    let follow = c.follow_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let n = attempt.previous().len();
        counter.store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
        if !follow {
            attempt.stop()
        } else if n > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .tls_info(true)
        .danger_accept_invalid_certs(c.insecure_skip_verify)
        .user_agent(concat!("bongsu-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &c.ca_file {
        let pem = std::fs::read(path).map_err(|e| Error::read(path, e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Config(format!("ca_file {}: {e}", path.display())))?;
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    let client = b.build().map_err(|e| Error::Http(e.to_string()))?;
    let method = reqwest::Method::from_bytes(c.method.as_bytes())
        .map_err(|_| Error::Config(format!("invalid http method {:?}", c.method)))?;
    Ok(HttpProbe {
        client,
        redirects,
        body: regex("checks.http.body_regex", &c.body_regex)?,
        body_not: regex("checks.http.body_not_regex", &c.body_not_regex)?,
        method,
    })
}

impl CheckRunner {
    pub fn new(checks: &[CheckConfig], clock: Arc<dyn Clock>) -> Result<Self> {
        let mut out = Vec::new();
        for c in checks {
            let timeout = Duration::from_millis(c.timeout_ms.max(1));
            let http = c
                .http
                .as_ref()
                .map(|h| http_probe(h, timeout))
                .transpose()?;
            out.push(Arc::new(Prepared {
                config: c.clone(),
                http,
            }));
        }
        Ok(Self { checks: out, clock })
    }

    pub fn len(&self) -> usize {
        self.checks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Runs check `index` (in configuration order) once.
    pub async fn run(&self, index: usize) -> Metrics {
        let mut out = Metrics::new(self.clock.now_ms());
        if let Some(p) = self.checks.get(index) {
            probe(p, &mut out).await;
        }
        out
    }

    /// Runs every check once, concurrently.
    pub async fn run_all(&self) -> Metrics {
        let mut out = Metrics::new(self.clock.now_ms());
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in self.checks.iter().enumerate() {
            let p = p.clone();
            let ts = out.timestamp_ms();
            set.spawn(async move {
                let mut m = Metrics::new(ts);
                probe(&p, &mut m).await;
                (i, m)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        results.sort_by_key(|(i, _)| *i);
        for (_, m) in results {
            out.extend(m);
        }
        out
    }
}

/// Builds and runs one check once; for ad-hoc use (the agent keeps a [`CheckRunner`]).
pub async fn run_check(config: &CheckConfig) -> Result<Metrics> {
    let r = CheckRunner::new(std::slice::from_ref(config), Arc::new(SystemClock))?;
    Ok(r.run(0).await)
}

async fn probe(p: &Prepared, out: &mut Metrics) {
    let name = p.config.name.as_str();
    let l = [("check", name)];
    let timeout = Duration::from_millis(p.config.timeout_ms.max(1));
    let start = Instant::now();
    let ok = if let Some(t) = &p.config.tcp {
        tcp(t, timeout, &l, out).await
    } else if let (Some(h), Some(probe)) = (&p.config.http, &p.http) {
        http(h, probe, &l, out).await
    } else if let Some(d) = &p.config.dns {
        dns(d, timeout, &l, out).await
    } else {
        false
    };
    out.gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        &l,
        start.elapsed().as_secs_f64(),
    );
    out.gauge(
        "probe_success",
        "Displays whether or not the probe was a success",
        &l,
        if ok { 1.0 } else { 0.0 },
    );
}

async fn resolve(target: &str) -> Option<(std::net::SocketAddr, f64)> {
    let t = Instant::now();
    let addr = tokio::net::lookup_host(target).await.ok()?.next()?;
    Some((addr, t.elapsed().as_secs_f64()))
}

async fn tcp(c: &TcpCheck, timeout: Duration, l: &[(&str, &str)], out: &mut Metrics) -> bool {
    let work = async {
        let (addr, lookup) = resolve(&c.target).await?;
        out.gauge(
            "probe_dns_lookup_time_seconds",
            "Returns the time taken for probe dns lookup in seconds",
            l,
            lookup,
        );
        out.gauge(
            "probe_ip_protocol",
            "Specifies whether probe ip protocol is IP4 or IP6",
            l,
            if addr.is_ipv4() { 4.0 } else { 6.0 },
        );
        tokio::net::TcpStream::connect(addr).await.ok()
    };
    matches!(tokio::time::timeout(timeout, work).await, Ok(Some(_)))
}

async fn http(c: &HttpCheck, p: &HttpProbe, l: &[(&str, &str)], out: &mut Metrics) -> bool {
    p.redirects.store(0, Ordering::Relaxed);
    let t0 = Instant::now();
    let resp = p.client.request(p.method.clone(), &c.url).send().await;
    let processing = t0.elapsed().as_secs_f64();
    let resp = match resp {
        Ok(r) => r,
        Err(_) => return false,
    };
    let status = resp.status().as_u16();
    let version = match resp.version() {
        reqwest::Version::HTTP_09 => 0.9,
        reqwest::Version::HTTP_10 => 1.0,
        reqwest::Version::HTTP_2 => 2.0,
        reqwest::Version::HTTP_3 => 3.0,
        _ => 1.1,
    };
    let tls = resp.url().scheme() == "https";
    let expiry = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .and_then(cert_not_after);
    let content_length = resp.content_length();
    let t1 = Instant::now();
    let mut body = Vec::new();
    let mut resp = resp;
    let mut too_big = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > c.max_body_bytes {
                    too_big = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    let transfer = t1.elapsed().as_secs_f64();
    out.gauge(
        "probe_http_status_code",
        "Response HTTP status code",
        l,
        f64::from(status),
    );
    out.gauge(
        "probe_http_content_length",
        "Length of http content response",
        l,
        content_length.map_or(-1.0, |n| n as f64),
    );
    out.gauge(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        l,
        body.len() as f64,
    );
    out.gauge(
        "probe_http_redirects",
        "The number of redirects",
        l,
        f64::from(p.redirects.load(Ordering::Relaxed)),
    );
    out.gauge(
        "probe_http_ssl",
        "Indicates if SSL was used for the final redirect",
        l,
        if tls { 1.0 } else { 0.0 },
    );
    out.gauge(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        l,
        version,
    );
    for (phase, v) in [("processing", processing), ("transfer", transfer)] {
        let mut labels = l.to_vec();
        labels.push(("phase", phase));
        out.gauge(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            &labels,
            v,
        );
    }
    if let Some(e) = expiry {
        out.gauge(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            l,
            e as f64,
        );
    }
    let status_ok = if c.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        c.valid_status_codes.contains(&status)
    };
    let text = String::from_utf8_lossy(&body);
    let regex_ok = p.body.as_ref().is_none_or(|re| re.is_match(&text))
        && p.body_not.as_ref().is_none_or(|re| !re.is_match(&text));
    if p.body.is_some() || p.body_not.is_some() {
        out.gauge(
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            l,
            if regex_ok { 0.0 } else { 1.0 },
        );
    }
    status_ok && regex_ok && !too_big
}

async fn dns(c: &DnsCheck, timeout: Duration, l: &[(&str, &str)], out: &mut Metrics) -> bool {
    let t = Instant::now();
    // lookup_host wants a port; it is not used for the query.
    let target = format!("{}:0", c.name);
    let res = tokio::time::timeout(timeout, tokio::net::lookup_host(target)).await;
    let elapsed = t.elapsed().as_secs_f64();
    out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        l,
        elapsed,
    );
    let Ok(Ok(addrs)) = res else { return false };
    let n = addrs
        .filter(|a| match c.family {
            DnsFamily::Any => true,
            DnsFamily::Ipv4 => a.is_ipv4(),
            DnsFamily::Ipv6 => a.is_ipv6(),
        })
        .count();
    out.gauge(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        l,
        n as f64,
    );
    n > 0
}

/// The `notAfter` of an X.509 certificate in DER, as Unix seconds. A small DER walk:
/// Certificate → tbsCertificate → (version?) serial, signature, issuer, validity.
pub(crate) fn cert_not_after(der: &[u8]) -> Option<i64> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let first = *b.get(1)?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let end = hdr.checked_add(len)?;
        Some((tag, b.get(hdr..end)?, b.get(end..)?))
    }
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serial, signature algorithm, issuer
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after) = tlv(validity)?;
    let (tag, t, _) = tlv(after)?;
    let s = std::str::from_utf8(t).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(0..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |a: usize| rest.get(a..a + 2).and_then(|x| x.parse::<i64>().ok());
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    Some(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_not_after_of_a_real_certificate() {
        let der = include_bytes!("../tests/data/cert-localhost.der");
        // `openssl x509 -enddate`: Dec 22 00:10:10 2026 GMT
        assert_eq!(cert_not_after(der), Some(1_797_898_210));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_der_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = cert_not_after(&b);
        }
    }
}
