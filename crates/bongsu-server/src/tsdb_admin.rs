//! `POST /api/v1/admin/tsdb/snapshot` (admin token): writes a consistent copy of the metrics
//! store under `<data_dir>/tsdb/snapshots/<name>/`, with the head's samples written as a
//! block, like Prometheus's endpoint of the same name. The answer has Prometheus's shape
//! (`{"status":"success","data":{"name":...}}`) plus what the snapshot holds, with the raw
//! blocks' index and sample bytes apart.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use bongsu_state::Scope;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ErrorCode};
use crate::auth;
use crate::state::AppState;

/// The tsdb admin routes, all needing an admin token.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), Scope::Admin),
            auth::require,
        ))
}

async fn snapshot(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.metrics_store().cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "the metrics store is not open yet: retry once /-/ready answers 200",
        )
    })?;
    // Writing blocks means compression and fsyncs: keep it off the async workers.
    let r = tokio::task::spawn_blocking(move || store.tsdb.snapshot())
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(name = %r.name, samples = r.samples, bytes = r.raw_bytes(), "tsdb snapshot written");
    Ok(Json(json!({
        "status": "success",
        "data": {
            "name": r.name,
            "blocks": r.blocks,
            "samples": r.samples,
            "headSamples": r.head_samples,
            "headSeries": r.head_series,
            "rawIndexBytes": r.raw_index_bytes,
            "rawDataBytes": r.raw_data_bytes,
            "rawMetaBytes": r.raw_meta_bytes,
            "rawBytes": r.raw_bytes(),
            "rollupBytes": r.rollup_bytes,
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::tsdb_consumer::MetricsStore;

    #[tokio::test]
    async fn snapshot_writes_the_head_as_a_block_and_reports_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(bongsu_state::StateStore::open(dir.path()).unwrap());
        let token = store.bootstrap_admin_token(0).unwrap().unwrap().secret;
        let state = AppState::new(crate::config::Config::default(), store);
        let db = bongsu_tsdb::Tsdb::open(dir.path().join("tsdb"), bongsu_tsdb::Options::default())
            .unwrap();
        let labels = bongsu_model::Labels::from_pairs([("__name__", "up"), ("job", "x")]).unwrap();
        let samples: Vec<_> = (0..100)
            .map(|i| bongsu_model::Sample::new(1_700_000_000_000 + i * 15_000, 1.0))
            .collect();
        db.append(&labels, &samples).unwrap();
        let store = std::sync::Arc::new(MetricsStore::over(db, &Default::default()));
        assert!(state.attach_metrics_store(store));
        let app = Router::new().merge(routes(&state)).with_state(state);
        let req = |auth: Option<&str>| {
            let mut b = Request::post("/api/v1/admin/tsdb/snapshot");
            if let Some(t) = auth {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            b.body(Body::empty()).unwrap()
        };
        let resp = app.clone().oneshot(req(None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = app.oneshot(req(Some(&token))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value =
            serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
        assert_eq!(body["data"]["samples"], 100);
        assert_eq!(body["data"]["headSeries"], 1);
        let name = body["data"]["name"].as_str().unwrap();
        let snap = dir.path().join("tsdb/snapshots").join(name);
        let copy = bongsu_tsdb::Tsdb::open(&snap, bongsu_tsdb::Options::default()).unwrap();
        let got = copy.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, samples);
    }
}
