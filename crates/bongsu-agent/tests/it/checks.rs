//! Checks against servers started in the test, on 127.0.0.1 only.

use std::sync::Arc;

use bongsu_agent::{
    CheckConfig, CheckRunner, DnsCheck, DnsFamily, HttpCheck, ManualClock, Metrics, TcpCheck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn check(name: &str) -> CheckConfig {
    CheckConfig {
        name: name.into(),
        interval_seconds: 30,
        timeout_ms: 3000,
        tcp: None,
        http: None,
        dns: None,
    }
}

fn http(url: String) -> HttpCheck {
    HttpCheck {
        url,
        method: "GET".into(),
        valid_status_codes: vec![],
        body_regex: None,
        body_not_regex: None,
        ca_file: None,
        insecure_skip_verify: false,
        follow_redirects: true,
        max_body_bytes: 1 << 20,
    }
}

/// A tiny HTTP/1.1 server: `/ok` 200 "all good", `/fail` 500, `/moved` 302 to `/ok`.
async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let req = String::from_utf8_lossy(&got);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = match path.as_str() {
                    "/ok" => "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nall good".to_string(),
                    "/moved" => "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops".to_string(),
                };
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn value(m: &Metrics, name: &str, check: &str) -> Option<f64> {
    m.find(name, &[("check", check)])
}

#[tokio::test]
async fn tcp_check_against_a_local_listener() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let mut up = check("up");
    up.tcp = Some(TcpCheck {
        target: open.local_addr().unwrap().to_string(),
    });
    let mut down = check("down");
    down.tcp = Some(TcpCheck {
        target: closed_addr.to_string(),
    });
    let r = CheckRunner::new(&[up, down], Arc::new(ManualClock::new(7_000_000))).unwrap();
    let m = r.run_all().await;
    assert_eq!(m.timestamp_ms(), 7);
    assert_eq!(value(&m, "probe_success", "up"), Some(1.0));
    assert_eq!(value(&m, "probe_ip_protocol", "up"), Some(4.0));
    assert_eq!(value(&m, "probe_success", "down"), Some(0.0));
    assert!(value(&m, "probe_duration_seconds", "down").is_some());
    assert_eq!(
        m.meta("probe_success").unwrap().help,
        "Displays whether or not the probe was a success"
    );
}

#[tokio::test]
async fn http_checks_status_body_and_redirects() {
    let addr = serve().await;
    let mut ok = check("ok");
    let mut h = http(format!("http://{addr}/ok"));
    h.body_regex = Some("good$".into());
    ok.http = Some(h);
    let mut fail = check("fail");
    fail.http = Some(http(format!("http://{addr}/fail")));
    let mut fail_ok = check("fail-accepted");
    let mut h = http(format!("http://{addr}/fail"));
    h.valid_status_codes = vec![500];
    fail_ok.http = Some(h);
    let mut regex_bad = check("regex");
    let mut h = http(format!("http://{addr}/ok"));
    h.body_not_regex = Some("good".into());
    regex_bad.http = Some(h);
    let mut moved = check("moved");
    moved.http = Some(http(format!("http://{addr}/moved")));

    let r = CheckRunner::new(
        &[ok, fail, fail_ok, regex_bad, moved],
        Arc::new(bongsu_agent::SystemClock),
    )
    .unwrap();
    let m = r.run_all().await;
    assert_eq!(value(&m, "probe_success", "ok"), Some(1.0));
    assert_eq!(value(&m, "probe_http_status_code", "ok"), Some(200.0));
    assert_eq!(value(&m, "probe_http_content_length", "ok"), Some(8.0));
    assert_eq!(value(&m, "probe_failed_due_to_regex", "ok"), Some(0.0));
    assert_eq!(value(&m, "probe_http_ssl", "ok"), Some(0.0));
    assert_eq!(value(&m, "probe_http_version", "ok"), Some(1.1));
    assert_eq!(value(&m, "probe_success", "fail"), Some(0.0));
    assert_eq!(value(&m, "probe_http_status_code", "fail"), Some(500.0));
    assert_eq!(value(&m, "probe_success", "fail-accepted"), Some(1.0));
    assert_eq!(value(&m, "probe_success", "regex"), Some(0.0));
    assert_eq!(value(&m, "probe_failed_due_to_regex", "regex"), Some(1.0));
    assert_eq!(value(&m, "probe_success", "moved"), Some(1.0));
    assert_eq!(value(&m, "probe_http_redirects", "moved"), Some(1.0));
    assert!(m
        .find(
            "probe_http_duration_seconds",
            &[("check", "ok"), ("phase", "processing")]
        )
        .is_some());
}

#[tokio::test]
async fn http_check_to_nothing_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut c = check("nothing");
    c.http = Some(http(format!("http://{addr}/")));
    let m = bongsu_agent::run_check(&c).await.unwrap();
    assert_eq!(value(&m, "probe_success", "nothing"), Some(0.0));
    assert!(value(&m, "probe_http_status_code", "nothing").is_none());
}

#[tokio::test]
async fn dns_check_resolves_localhost() {
    let mut c = check("dns");
    c.dns = Some(DnsCheck {
        name: "localhost".into(),
        family: DnsFamily::Any,
    });
    let m = bongsu_agent::run_check(&c).await.unwrap();
    assert_eq!(value(&m, "probe_success", "dns"), Some(1.0));
    assert!(value(&m, "probe_dns_answer_rrs", "dns").unwrap() >= 1.0);
    let mut bad = check("bad");
    bad.dns = Some(DnsCheck {
        name: "name.invalid".into(),
        family: DnsFamily::Ipv4,
    });
    let m = bongsu_agent::run_check(&bad).await.unwrap();
    assert_eq!(value(&m, "probe_success", "bad"), Some(0.0));
}

/// An HTTPS server with the checked-in self-signed certificate (valid until 2126).
async fn serve_tls() -> std::net::SocketAddr {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cert = CertificateDer::from_pem_file(data.join("tls-cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(data.join("tls-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let resp =
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure";
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_check_reports_certificate_expiry() {
    let addr = serve_tls().await;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut trusted = check("tls");
    let mut h = http(format!("https://localhost:{}/", addr.port()));
    h.ca_file = Some(data.join("tls-cert.pem"));
    h.body_regex = Some("^secure$".into());
    trusted.http = Some(h);
    let mut untrusted = check("untrusted");
    untrusted.http = Some(http(format!("https://localhost:{}/", addr.port())));
    let r = CheckRunner::new(&[trusted, untrusted], Arc::new(bongsu_agent::SystemClock)).unwrap();
    let m = r.run_all().await;
    assert_eq!(value(&m, "probe_success", "tls"), Some(1.0));
    assert_eq!(value(&m, "probe_http_ssl", "tls"), Some(1.0));
    // `openssl x509 -enddate`: Oct 29 00:15:51 2126 GMT
    assert_eq!(
        value(&m, "probe_ssl_earliest_cert_expiry", "tls"),
        Some(4_948_906_551.0)
    );
    assert_eq!(
        value(&m, "probe_success", "untrusted"),
        Some(0.0),
        "an unknown CA fails the check"
    );
}
