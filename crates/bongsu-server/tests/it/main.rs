//! Router and server tests: requests go through the real router with `oneshot` (no socket),
//! or through `run` on a real loopback listener.

mod agents;
mod ingest;
mod scrape;
mod syslog;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bongsu_server::{
    router, run, AppState, Config, ManualClock, MetricKind, MetricsSource, MetricsWriter,
};
use bongsu_state::{Scope, StateStore};
use tower::ServiceExt as _;

const T0: i64 = 1_795_305_806_000;

struct Fixture {
    state: AppState,
    clock: Arc<ManualClock>,
    admin: String,
    write: String,
    read: String,
}

fn fixture_with(config: Config) -> Fixture {
    let store = Arc::new(StateStore::open_in_memory().unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let state = AppState::with_clock(config, store.clone(), clock.clone());
    let admin = store
        .create_token("admin", Scope::Admin, T0)
        .unwrap()
        .secret;
    let write = store
        .create_token("writer", Scope::Write, T0)
        .unwrap()
        .secret;
    let read = store
        .create_token("reader", Scope::Read, T0)
        .unwrap()
        .secret;
    Fixture {
        state,
        clock,
        admin,
        write,
        read,
    }
}

fn fixture() -> Fixture {
    fixture_with(Config::default())
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn assert_error(&self, status: StatusCode, error_type: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let j = self.json();
        assert_eq!(j["status"], "error", "{}", self.body);
        assert_eq!(j["errorType"], error_type, "{}", self.body);
        assert!(j["error"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(self.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn health_needs_no_auth_and_ready_follows_the_state() {
    let f = fixture();
    let app = router(f.state.clone());
    assert_eq!(
        call(&app, "GET", "/-/healthy", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/-/ready", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    f.state.set_ready(true);
    assert_eq!(
        call(&app, "GET", "/-/ready", None, None).await.status,
        StatusCode::OK
    );
    f.state.set_ready(false);
    assert_eq!(
        call(&app, "GET", "/-/ready", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn missing_or_bad_token_is_401_with_a_bearer_challenge() {
    let f = fixture();
    let app = router(f.state.clone());
    let bad_shape = "nonsense".to_owned();
    let well_formed_unknown = format!("bsu_{}", "A".repeat(43));
    for token in [
        None,
        Some(bad_shape.as_str()),
        Some(well_formed_unknown.as_str()),
    ] {
        for path in ["/metrics", "/api/v1/tokens"] {
            let a = call(&app, "GET", path, token, None).await;
            a.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
    }
    // A non-bearer scheme is refused the same way.
    let req = Request::get("/metrics")
        .header(header::AUTHORIZATION, format!("Basic {}", f.read))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn insufficient_scope_is_403() {
    let f = fixture();
    let app = router(f.state.clone());
    for token in [&f.read, &f.write] {
        call(&app, "GET", "/api/v1/tokens", Some(token), None)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
        call(
            &app,
            "POST",
            "/api/v1/tokens",
            Some(token),
            Some(r#"{"name":"x","scope":"read"}"#),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    // Every scope may read metrics.
    for token in [&f.read, &f.write, &f.admin] {
        assert_eq!(
            call(&app, "GET", "/metrics", Some(token), None)
                .await
                .status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn metrics_are_in_the_text_format_with_the_expected_families() {
    let f = fixture();
    let app = router(f.state.clone());
    // One refused request, so the counters have something to show.
    call(&app, "GET", "/metrics", None, None).await;
    let a = call(&app, "GET", "/metrics", Some(&f.read), None).await;
    assert_eq!(a.status, StatusCode::OK);
    let ct = a.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    for family in [
        "# TYPE bongsu_build_info gauge",
        "# TYPE bongsu_http_requests_total counter",
        "# TYPE bongsu_http_request_duration_seconds histogram",
        "# TYPE bongsu_http_auth_failures_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_start_time_seconds gauge",
        "# TYPE process_open_fds gauge",
    ] {
        assert!(a.body.contains(family), "{family} missing:\n{}", a.body);
    }
    assert!(
        a.body.contains(
            "bongsu_http_requests_total{route=\"/metrics\",method=\"GET\",code=\"401\"} 1\n"
        ),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("bongsu_http_auth_failures_total{reason=\"missing\"} 1\n"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains(
            "bongsu_http_request_duration_seconds_count{route=\"/metrics\",method=\"GET\"} 1\n"
        ),
        "{}",
        a.body
    );
    // Every non-comment line is `name{labels} value` with a parsable value.
    for line in a.body.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
    }
}

#[tokio::test]
async fn metrics_may_be_anonymous_when_configured() {
    let mut config = Config::default();
    config.auth.metrics_anonymous = true;
    let f = fixture_with(config);
    let app = router(f.state.clone());
    assert_eq!(
        call(&app, "GET", "/metrics", None, None).await.status,
        StatusCode::OK
    );
    // Other routes still need a token.
    call(&app, "GET", "/api/v1/tokens", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn added_metrics_sources_are_scraped() {
    #[derive(Debug)]
    struct Fake;
    impl MetricsSource for Fake {
        fn collect(&self, out: &mut MetricsWriter) {
            out.family(
                "bongsu_stream_records_total",
                "Records appended.",
                MetricKind::Counter,
            );
            out.sample("bongsu_stream_records_total", &[("topic", "metrics")], 42.0);
        }
    }
    let f = fixture();
    f.state.add_metrics_source(Arc::new(Fake));
    let app = router(f.state.clone());
    let a = call(&app, "GET", "/metrics", Some(&f.read), None).await;
    assert!(
        a.body
            .contains("bongsu_stream_records_total{topic=\"metrics\"} 42\n"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn tokens_can_be_created_listed_and_revoked_over_the_api() {
    let f = fixture();
    let app = router(f.state.clone());

    let a = call(
        &app,
        "POST",
        "/api/v1/tokens",
        Some(&f.admin),
        Some(r#"{"name":"grafana","scope":"read"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let j = a.json();
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["name"], "grafana");
    assert_eq!(j["data"]["scope"], "read");
    assert_eq!(j["data"]["revoked"], false);
    assert_eq!(j["data"]["createdAt"], "2026-11-22T00:03:26.000Z");
    let secret = j["data"]["token"].as_str().unwrap().to_owned();
    let id = j["data"]["id"].as_i64().unwrap();
    assert!(secret.starts_with("bsu_"));

    // The new token works, within its scope.
    assert_eq!(
        call(&app, "GET", "/metrics", Some(&secret), None)
            .await
            .status,
        StatusCode::OK
    );
    call(&app, "GET", "/api/v1/tokens", Some(&secret), None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    // Listing shows it, without any secret.
    let a = call(&app, "GET", "/api/v1/tokens", Some(&f.admin), None).await;
    assert_eq!(a.status, StatusCode::OK);
    let list = a.json()["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|t| t.get("token").is_none()));
    let g = list.iter().find(|t| t["id"] == id).unwrap();
    assert_eq!(g["name"], "grafana");
    assert!(g["lastUsedAt"].is_string(), "{g}");
    assert!(!a.body.contains(&secret));

    // Revoking over the API takes effect at once, even though the token is cached.
    let a = call(
        &app,
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        Some(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["revoked"], true);
    call(&app, "GET", "/metrics", Some(&secret), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn token_api_rejects_bad_requests_with_clear_errors() {
    let f = fixture();
    let app = router(f.state.clone());
    let post = |body: &'static str| {
        let app = app.clone();
        let admin = f.admin.clone();
        async move { call(&app, "POST", "/api/v1/tokens", Some(&admin), Some(body)).await }
    };
    let a = post(r#"{"name":"x","scope":"root"}"#).await;
    a.assert_error(StatusCode::BAD_REQUEST, "bad_data");
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("read, write or admin"));
    post(r#"{"name":"","scope":"read"}"#)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    post(r#"{"name":"x","scope":"read","extra":1}"#)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    post("not json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    let big = Box::leak(
        format!(r#"{{"name":"{}","scope":"read"}}"#, "x".repeat(100_000)).into_boxed_str(),
    );
    post(big)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");

    call(&app, "DELETE", "/api/v1/tokens/999", Some(&f.admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    call(&app, "DELETE", "/api/v1/tokens/abc", Some(&f.admin), None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    call(&app, "GET", "/no/such/route", Some(&f.admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    call(&app, "GET", "/no/such/route", Some(&f.read), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // Without a token, an unknown route looks like any other protected one.
    call(&app, "GET", "/no/such/route", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn revocation_by_another_process_takes_effect_within_the_cache_ttl() {
    let f = fixture();
    let app = router(f.state.clone());
    let t = f
        .state
        .store()
        .create_token("cli-made", Scope::Read, T0)
        .unwrap();
    assert_eq!(
        call(&app, "GET", "/metrics", Some(&t.secret), None)
            .await
            .status,
        StatusCode::OK
    );
    // Revoked behind the server's back (as `bongsu token revoke` does).
    f.state.store().revoke_token(t.info.id).unwrap();
    let ttl = f.state.config().auth.token_cache_ttl.as_millis() as i64;
    f.clock.advance(ttl);
    call(&app, "GET", "/metrics", Some(&t.secret), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Waits for `cond` with a deadline.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn run_serves_until_shutdown_then_runs_hooks() {
    let f = fixture();
    let hooks_run = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let n = hooks_run.clone();
        f.state.add_shutdown_hook("count", move || async move {
            n.fetch_add(1, Ordering::SeqCst);
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, f.state.clone(), async move {
        let _ = rx.await;
    }));
    let state = f.state.clone();
    wait_until("ready", || state.is_ready()).await;

    // A real request over TCP.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(!f.state.is_ready());
    assert_eq!(hooks_run.load(Ordering::SeqCst), 2);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_hook_that_hangs_is_cut_off_by_the_shutdown_timeout() {
    let mut config = Config::default();
    config.server.shutdown_timeout = Duration::from_millis(200);
    let f = fixture_with(config);
    f.state
        .add_shutdown_hook("stuck", std::future::pending::<()>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(listener, f.state.clone(), async {}),
    )
    .await
    .unwrap();
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("stuck") && err.contains("shutdown_timeout"),
        "{err}"
    );
}
