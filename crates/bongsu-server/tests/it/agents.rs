//! Agents through the real router: enrollment, the push receiver, de-duplication of re-sent
//! batches (also across a restart that lost the shipping mark), malformed and revoked pushes.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bongsu_agent::{Batch, Heartbeat, BATCH_CONTENT_TYPE, FOLLOWS_HEADER, PART_METRICS};
use bongsu_model::{Labels, LogEntry, LogStream, LogsRecord, MetricsRecord, Sample, Series};
use bongsu_server::{recover_agents, router, AppState, Config, ManualClock, BUILTIN_TOPICS};
use bongsu_state::StateStore;
use bongsu_stream::{FetchOptions, MemoryStream, Record, Stream, StreamOptions, TopicConfig};
use tower::ServiceExt as _;

use super::{call, fixture, Answer, T0};

async fn stream_with_topics() -> Arc<MemoryStream> {
    let stream = MemoryStream::new(StreamOptions::default());
    for topic in BUILTIN_TOPICS {
        stream
            .create_topic(
                topic,
                TopicConfig {
                    partitions: 2,
                    ..TopicConfig::default()
                },
            )
            .await
            .unwrap();
    }
    stream
}

/// Every record of a topic, all partitions.
async fn records(stream: &MemoryStream, topic: &str) -> Vec<(Option<Bytes>, Bytes)> {
    let mut out = Vec::new();
    for p in 0..2 {
        let r = stream
            .fetch(topic, p, 0, FetchOptions::no_wait())
            .await
            .unwrap();
        out.extend(r.records.into_iter().map(|r| (r.key, r.value)));
    }
    out
}

fn batch(epoch: u64, seq: u64, line: &str) -> Vec<u8> {
    Batch {
        epoch,
        seq,
        created_ms: T0,
        heartbeat: Some(Heartbeat {
            host: "web-1".into(),
            version: "9.9.9".into(),
            started_ms: T0 - 1000,
        }),
        inventory: Some(r#"{"os":{"id":"debian"}}"#.into()),
        metrics: Some(MetricsRecord {
            series: vec![Series {
                labels: Labels::from_pairs([("__name__", "node_load1"), ("host", "web-1")])
                    .unwrap(),
                samples: vec![Sample::new(T0, 0.25)],
            }],
            metadata: vec![],
        }),
        logs: Some(LogsRecord {
            streams: vec![LogStream {
                labels: Labels::from_pairs([("host", "web-1")]).unwrap(),
                entries: vec![LogEntry::new(T0 * 1_000_000, line)],
            }],
        }),
    }
    .encode(1)
    .unwrap()
}

async fn push(app: &Router, token: &str, body: Vec<u8>) -> Answer {
    push_following(app, token, body, None).await
}

/// A push that names the batch it follows (a pipelined agent's second and later pushes).
async fn push_following(app: &Router, token: &str, body: Vec<u8>, follows: Option<u64>) -> Answer {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/agent/push")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, BATCH_CONTENT_TYPE);
    if let Some(f) = follows {
        req = req.header(FOLLOWS_HEADER, f.to_string());
    }
    let req = req.body(Body::from(body)).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[tokio::test]
async fn enroll_push_dedup_list_revoke() {
    let f = fixture();
    let stream = stream_with_topics().await;
    assert!(f.state.attach_stream(stream.clone()));
    let app = router(f.state.clone());
    // Before recovery the receiver refuses with 503 (retry), not 4xx (drop).
    let enrolled = call(
        &app,
        "POST",
        "/api/v1/agents",
        Some(&f.admin),
        Some(r#"{"name":"web-1"}"#),
    )
    .await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.body);
    let token = enrolled.json()["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("bsa_"));
    push(&app, &token, batch(7, 1, "a"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    recover_agents(&f.state).await.unwrap();

    // Enrolling needs admin; the same name twice is refused.
    call(
        &app,
        "POST",
        "/api/v1/agents",
        Some(&f.write),
        Some(r#"{"name":"x"}"#),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    call(
        &app,
        "POST",
        "/api/v1/agents",
        Some(&f.admin),
        Some(r#"{"name":"web-1"}"#),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    // An API token is not an agent token.
    push(&app, &f.admin, batch(7, 1, "a"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let a = push(&app, &token, batch(7, 1, "line-1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["data"]["duplicate"], false);
    assert_eq!(records(&stream, "metrics").await.len(), 1);
    let logs = records(&stream, "logs").await;
    assert_eq!(logs.len(), 1);
    let rec = LogsRecord::decode(&logs[0].1).unwrap();
    assert_eq!(rec.streams[0].entries[0].line, "line-1");
    assert_eq!(logs[0].0.as_ref().unwrap().len(), 26);

    // The same batch again (the agent never saw the answer): acknowledged, not appended.
    let again = push(&app, &token, batch(7, 1, "line-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["data"]["duplicate"], true);
    assert_eq!(records(&stream, "logs").await.len(), 1);
    assert_eq!(records(&stream, "metrics").await.len(), 1);
    push(&app, &token, batch(7, 2, "line-2")).await;
    assert_eq!(records(&stream, "logs").await.len(), 2);

    // Malformed: 400, nothing appended, counted.
    let mut bad = batch(7, 3, "x");
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    push(&app, &token, bad)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_data");
    assert_eq!(records(&stream, "logs").await.len(), 2);

    let list = call(&app, "GET", "/api/v1/agents", Some(&f.read), None).await;
    assert_eq!(list.status, StatusCode::OK);
    let a = &list.json()["data"][0];
    assert_eq!(a["name"], "web-1");
    assert_eq!(a["host"], "web-1");
    assert_eq!(a["version"], "9.9.9");
    assert_eq!(a["inventory"]["os"]["id"], "debian");
    assert!(a["lastSeen"].as_str().is_some());
    assert!(a.get("token").is_none());

    let metrics = call(&app, "GET", "/metrics", Some(&f.read), None)
        .await
        .body;
    assert!(
        metrics.contains("bongsu_agent_pushes_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("bongsu_agent_pushes_total{outcome=\"malformed\"} 1"));
    assert!(metrics.contains("bongsu_agent_items_total{unit=\"lines\"} 2"));

    let id = a["id"].as_i64().unwrap();
    let r = call(
        &app,
        "DELETE",
        &format!("/api/v1/agents/{id}"),
        Some(&f.admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    push(&app, &token, batch(7, 4, "late"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(records(&stream, "logs").await.len(), 2);
}

/// A crash after the appends but before the mark was stored: the restarted server finds the
/// records by their keys and still refuses the re-sent batch.
#[tokio::test]
async fn a_mark_lost_in_a_crash_is_recovered_from_the_stream() {
    let store = Arc::new(StateStore::open_in_memory().unwrap());
    let stream = stream_with_topics().await;
    let agent = store.enroll_agent("db-1", T0).unwrap();
    let new_state = || {
        let s = AppState::with_clock(
            Config::default(),
            store.clone(),
            Arc::new(ManualClock::new(T0)),
        );
        assert!(s.attach_stream(stream.clone()));
        s
    };
    let first = new_state();
    recover_agents(&first).await.unwrap();
    let app = router(first.clone());
    assert_eq!(
        push(&app, &agent.secret, batch(3, 10, "ten")).await.status,
        StatusCode::OK
    );

    // What a crash between the append of batch 11's metrics and its mark update leaves: the
    // record (key: 'A', agent id, epoch, seq, part; docs/formats/agent.md) but not the mark.
    let mut key = vec![b'A'];
    key.extend_from_slice(&agent.info.id.to_le_bytes());
    key.extend_from_slice(&3u64.to_le_bytes());
    key.extend_from_slice(&11u64.to_le_bytes());
    key.push(PART_METRICS);
    stream
        .append(
            "metrics",
            None,
            vec![Record::with_key(key, b"m".to_vec(), T0)],
        )
        .await
        .unwrap();
    assert_eq!(store.get_agent(agent.info.id).unwrap().mark.seq, 10);

    let second = new_state();
    recover_agents(&second).await.unwrap();
    let mark = store.get_agent(agent.info.id).unwrap().mark;
    assert_eq!((mark.epoch, mark.seq, mark.parts), (3, 11, PART_METRICS));
    let app = router(second);
    let a = push(&app, &agent.secret, batch(3, 11, "eleven")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Only the logs part was still missing.
    assert_eq!(records(&stream, "metrics").await.len(), 2);
    let logs = records(&stream, "logs").await;
    assert_eq!(logs.len(), 2);
    let again = push(&app, &agent.secret, batch(3, 11, "eleven")).await;
    assert_eq!(again.json()["data"]["duplicate"], true);
    assert_eq!(records(&stream, "logs").await.len(), 2);
    assert_eq!(records(&stream, "metrics").await.len(), 2);
}

/// Enrolls one agent on a recovered receiver; returns the app, the stream and its token.
async fn enrolled(name: &str) -> (Router, Arc<MemoryStream>, String) {
    let f = fixture();
    let stream = stream_with_topics().await;
    assert!(f.state.attach_stream(stream.clone()));
    let app = router(f.state.clone());
    recover_agents(&f.state).await.unwrap();
    let enrolled = call(
        &app,
        "POST",
        "/api/v1/agents",
        Some(&f.admin),
        Some(&format!(r#"{{"name":"{name}"}}"#)),
    )
    .await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.body);
    let token = enrolled.json()["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, stream, token)
}

/// The log lines of the `logs` topic in stream order.
async fn logged_lines(stream: &MemoryStream) -> Vec<String> {
    records(stream, "logs")
        .await
        .iter()
        .flat_map(|(_, v)| LogsRecord::decode(v).unwrap().streams)
        .flat_map(|s| s.entries.into_iter().map(|e| e.line))
        .collect()
}

/// Two pushes in flight arrive in the wrong order: the second waits for the first and both
/// reach the stream in queue order, once each; re-sending both after a lost answer appends
/// nothing.
#[tokio::test]
async fn pipelined_pushes_arriving_out_of_order_apply_in_queue_order() {
    let (app, stream, token) = enrolled("pipe").await;
    let mut second = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { push_following(&app, &token, batch(9, 2, "two"), Some(1)).await })
    };
    // Alone, the follower is not applied (it waits for batch 1, up to 5 s).
    let alone = tokio::time::timeout(std::time::Duration::from_millis(300), &mut second).await;
    assert!(alone.is_err(), "the follower must wait for batch 1");
    assert!(logged_lines(&stream).await.is_empty());
    let first = push(&app, &token, batch(9, 1, "one")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = second.await.unwrap();
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.json()["data"]["duplicate"], false);
    assert_eq!(logged_lines(&stream).await, ["one", "two"]);

    // Both answers lost: the agent starts over from batch 1 (no follows), then 2 follows 1.
    let again = push(&app, &token, batch(9, 1, "one")).await;
    assert_eq!(again.json()["data"]["duplicate"], true);
    let again = push_following(&app, &token, batch(9, 2, "two"), Some(1)).await;
    assert_eq!(again.json()["data"]["duplicate"], true);
    // A follower of an applied batch is applied at once.
    let third = push_following(&app, &token, batch(9, 5, "three"), Some(2)).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    assert_eq!(logged_lines(&stream).await, ["one", "two", "three"]);
    assert_eq!(records(&stream, "metrics").await.len(), 3);

    // A garbled follows header is refused as malformed.
    push_following(&app, &token, batch(9, 6, "x"), None).await;
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/agent/push")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
        .header(FOLLOWS_HEADER, "six")
        .body(Body::from(batch(9, 7, "y")))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(logged_lines(&stream).await, ["one", "two", "three", "x"]);
}

/// The batch a push follows never arrives (its push failed, or the server restarted): after
/// a bounded wait the follower is answered 503 with nothing appended, and the agent's restart
/// from its first unacknowledged batch (no follows) goes through.
#[tokio::test(start_paused = true)]
async fn a_follower_whose_predecessor_never_arrives_is_refused_for_retry() {
    let (app, stream, token) = enrolled("lost").await;
    push_following(&app, &token, batch(3, 8, "eight"), Some(7))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(logged_lines(&stream).await.is_empty());
    let a = push(&app, &token, batch(3, 8, "eight")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(logged_lines(&stream).await, ["eight"]);
}
