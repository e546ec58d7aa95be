//! The HTTP routes.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bongsu_state::{format_rfc3339_ms, Scope, TokenInfo};
use serde::{Deserialize, Serialize};

use crate::api_error::{ApiError, ErrorCode};
use crate::auth;
use crate::ingest;
use crate::metrics::{render, TEXT_CONTENT_TYPE};
use crate::state::AppState;

/// The largest request body accepted by the JSON API.
const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// Builds the router over `state`. Tests call it directly with `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    let scoped =
        |scope: Scope| middleware::from_fn_with_state((state.clone(), scope), auth::require);

    let metrics = Router::new().route("/metrics", get(metrics));
    let metrics = if state.config().auth.metrics_anonymous {
        metrics
    } else {
        metrics.route_layer(scoped(Scope::Read))
    };

    let admin = Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route_layer(scoped(Scope::Admin));

    // Receivers read their body themselves within ingest.max_body_bytes.
    let receivers = Router::new()
        .route("/api/v1/write", post(ingest::remote_write))
        .route("/loki/api/v1/push", post(ingest::loki_push))
        .route_layer(scoped(Scope::Write));

    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .merge(metrics)
        .merge(admin)
        .merge(receivers)
        .merge(crate::prom_api::router(&state))
        .merge(crate::loki_api::router().route_layer(scoped(Scope::Read)))
        .merge(crate::agents::routes(&state))
        .merge(crate::tsdb_admin::routes(&state))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts every request and its duration by matched route, method and status.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = state.http_metrics();
    m.requests
        .with(&[&route, &method, resp.status().as_str()])
        .inc();
    m.durations
        .with(&[&route, &method])
        .observe(start.elapsed().as_secs_f64());
    resp
}

async fn healthy() -> &'static str {
    "bongsu is healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "bongsu is ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "bongsu is not ready.\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let sources = state.metrics_sources();
    // Sources may read files (/proc) or take locks: keep that off the async workers.
    let text = tokio::task::spawn_blocking(move || render(&sources)).await?;
    Ok(([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response())
}

/// Unknown routes need a token too, so probing without one learns nothing about which exist.
async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> ApiError {
    if let Err((failure, err)) = state.auth().check(&headers, Scope::Read).await {
        state.count_auth_failure(failure);
        return err;
    }
    ApiError::new(ErrorCode::NotFound, "no such route: see docs/http-api.md")
}

/// `{"status":"success","data":...}`
#[derive(Debug, Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

fn success<T: Serialize>(data: T) -> Json<Success<T>> {
    Json(Success {
        status: "success",
        data,
    })
}

/// A token as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenView {
    id: i64,
    name: String,
    scope: &'static str,
    created_at: String,
    last_used_at: Option<String>,
    revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenView {
    fn new(info: &TokenInfo, secret: Option<String>) -> TokenView {
        TokenView {
            id: info.id,
            name: info.name.clone(),
            scope: info.scope.as_str(),
            created_at: format_rfc3339_ms(info.created_at_ms),
            last_used_at: info.last_used_ms.map(format_rfc3339_ms),
            revoked: info.revoked,
            token: secret,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    scope: String,
}

async fn list_tokens(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = state.store().clone();
    let tokens = tokio::task::spawn_blocking(move || store.list_tokens()).await??;
    let views: Vec<TokenView> = tokens.iter().map(|t| TokenView::new(t, None)).collect();
    Ok(success(views))
}

async fn create_token(
    State(state): State<AppState>,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    let scope: Scope = req.scope.parse()?;
    let store = state.store().clone();
    let now = state.clock().now_ms();
    let created =
        tokio::task::spawn_blocking(move || store.create_token(&req.name, scope, now)).await??;
    tracing::info!(id = created.info.id, name = %created.info.name, scope = %scope, "token created");
    Ok((
        StatusCode::CREATED,
        success(TokenView::new(&created.info, Some(created.secret))),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadData,
            format!("token id {id:?} is not an integer: use an id from GET /api/v1/tokens"),
        )
    })?;
    let store = state.store().clone();
    let info = tokio::task::spawn_blocking(move || store.revoke_token(id)).await??;
    state.auth().forget(id);
    tracing::info!(id, name = %info.name, "token revoked");
    Ok(success(TokenView::new(&info, None)))
}
