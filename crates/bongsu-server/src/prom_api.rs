//! The Prometheus HTTP API, read side: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`, `/api/v1/metadata`,
//! `/api/v1/status/buildinfo` and `/api/v1/status/tsdb`, over GET and POST (form-encoded),
//! with Prometheus's parameter names, time and duration formats, JSON shapes, `errorType`s
//! and status codes (400 `bad_data`, 422 `execution`, 503 `timeout`, 500 `internal`).
//! Queries run on the blocking pool.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bongsu_model::Labels;
use bongsu_promql::{Engine, EngineOptions};
use bongsu_state::Scope;
use promql_parser::parser::Expr;
use serde_json::{json, Value as Json};

use crate::auth;
use crate::metrics_storage::{rollup_safe, TsdbStorage};
use crate::state::AppState;
use crate::tsdb_consumer::MetricsStore;

/// Largest form body of a POST.
const MAX_FORM_BYTES: usize = 1 << 20;
/// Most steps of a range query (Prometheus's limit).
const MAX_POINTS: i64 = 11_000;
/// Timestamps stand for "no bound" when a client leaves `start` or `end` out.
const MIN_TIME_MS: i64 = i64::MIN / 2;
const MAX_TIME_MS: i64 = i64::MAX / 2;

/// The query API routes, all needing a read token.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/tsdb", get(status_tsdb))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Scope::Read),
            auth::require,
        ))
}

/// An error in Prometheus's shape.
#[derive(Debug)]
pub(crate) struct PromError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl PromError {
    fn bad_data(message: impl Into<String>) -> PromError {
        PromError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }

    fn param(name: &str, message: impl std::fmt::Display) -> PromError {
        PromError::bad_data(format!("invalid parameter {name:?}: {message}"))
    }

    fn internal() -> PromError {
        PromError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "internal",
            message: "internal error: the server log has the details".into(),
        }
    }

    fn unavailable() -> PromError {
        PromError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_type: "unavailable",
            message: "the time-series store is not open: retry once the server is ready".into(),
        }
    }
}

impl From<bongsu_promql::Error> for PromError {
    fn from(e: bongsu_promql::Error) -> PromError {
        use bongsu_promql::Error as E;
        let (status, error_type) = match &e {
            E::Parse(_) | E::Range(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            E::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            E::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            E::Eval(_) | E::TooManySamples { .. } | E::TooManySeries { .. } | E::Labels(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "execution")
            }
        };
        PromError {
            status,
            error_type,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": "error",
            "errorType": self.error_type,
            "error": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

fn join_error(e: tokio::task::JoinError) -> PromError {
    tracing::error!(error = %e, "query task failed");
    PromError::internal()
}

type ApiResult = Result<Response, PromError>;

/// A success answer; `data` is JSON text.
fn success_raw(data: &str, warnings: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str("{\"status\":\"success\",\"data\":");
    body.push_str(data);
    if !warnings.is_empty() {
        body.push_str(",\"warnings\":");
        body.push_str(&serde_json::to_string(warnings).unwrap_or_else(|_| "[]".into()));
    }
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn success(data: Json) -> Response {
    success_raw(&data.to_string(), &[])
}

// ---- parameters ----

/// The request's parameters: the URL query, then a form body of a POST.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    async fn from_request(req: Request) -> Result<Params, PromError> {
        let mut pairs = Vec::new();
        if let Some(q) = req.uri().query() {
            parse_form(q.as_bytes(), &mut pairs)?;
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let body = to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|_| {
                    PromError::bad_data(format!(
                        "cannot read the form body (at most {MAX_FORM_BYTES} bytes): send fewer parameters"
                    ))
                })?;
            parse_form(&body, &mut pairs)?;
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn parse_form(raw: &[u8], out: &mut Vec<(String, String)>) -> Result<(), PromError> {
    for part in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(())
}

fn percent_decode(s: &[u8]) -> Result<String, PromError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        PromError::bad_data("malformed percent-encoding in the parameters")
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| PromError::bad_data("parameters are not valid UTF-8"))
}

/// Parses a Prometheus timestamp: Unix seconds (with fraction) or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let ms = (f * 1000.0).round();
        return Some(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    parse_rfc3339(s)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // An optional sign and more than four year digits appear in Prometheus's min/max times.
    let neg = b.first() == Some(&b'-');
    let body = if neg { &s[1..] } else { s };
    let dash = body.find('-')?;
    let year: i64 = body[..dash].parse().ok()?;
    let year = if neg { -year } else { year };
    let rest = &body[dash + 1..];
    let rb = rest.as_bytes();
    if rb.len() < 14 || rb[2] != b'-' || !(rb[5] == b'T' || rb[5] == b't' || rb[5] == b' ') {
        return None;
    }
    let num = |a: usize, n: usize| -> Option<i64> {
        let t = rest.get(a..a + n)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (month, day) = (num(0, 2)?, num(3, 2)?);
    if rb[8] != b':' || rb[11] != b':' {
        return None;
    }
    let (hour, min, sec) = (num(6, 2)?, num(9, 2)?, num(12, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 14;
    let mut frac_ms = 0i64;
    if rb.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while rb.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &rest[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_s = match rb.get(i) {
        Some(b'Z' | b'z') if i + 1 == rb.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == rb.len() && rb[i + 3] == b':' => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            let o = h * 3600 + m * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + min * 60 + sec - offset_s)?;
    Some(
        secs.checked_mul(1000)
            .and_then(|ms| ms.checked_add(frac_ms))
            .map_or(if neg { MIN_TIME_MS } else { MAX_TIME_MS }, |ms| {
                ms.clamp(MIN_TIME_MS, MAX_TIME_MS)
            }),
    )
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

/// Parses a Prometheus duration: float seconds or `1h30m`-style units (ms, s, m, h, d, w, y).
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
            return None;
        }
        return Some(ms.round() as i64);
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let per = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(per)?)?;
    }
    Some(total)
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, PromError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            PromError::param(name, format!("cannot parse {v:?} to a valid timestamp"))
        }),
    }
}

fn now_ms(state: &AppState) -> i64 {
    state.clock().now_ms()
}

fn store(state: &AppState) -> Result<std::sync::Arc<MetricsStore>, PromError> {
    state
        .metrics_store()
        .cloned()
        .ok_or_else(PromError::unavailable)
}

fn engine(store: &MetricsStore, p: &Params) -> Result<Engine, PromError> {
    let q = &store.query;
    let mut timeout = q.timeout;
    if let Some(t) = p.get("timeout").filter(|t| !t.is_empty()) {
        let ms = parse_duration(t).filter(|&ms| ms > 0).ok_or_else(|| {
            PromError::param("timeout", format!("cannot parse {t:?} to a valid duration"))
        })?;
        timeout = timeout.min(Duration::from_millis(ms as u64));
    }
    Ok(Engine::new(EngineOptions {
        lookback_delta: q.lookback_delta,
        max_samples: q.max_samples,
        max_series: q.max_series,
        timeout,
        ..EngineOptions::default()
    }))
}

fn query_param(p: &Params) -> Result<String, PromError> {
    match p.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(q.to_owned()),
        _ => Err(PromError::param(
            "query",
            "parameter is missing or empty: give a PromQL expression",
        )),
    }
}

// ---- handlers ----

async fn query(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    let store = store(&state)?;
    let q = query_param(&p)?;
    let t = time_param(&p, "time", now_ms(&state))?;
    let engine = engine(&store, &p)?;
    let r = tokio::task::spawn_blocking(move || {
        let st = TsdbStorage::new(&store, rollup_safe(&q));
        engine.instant_query(&st, &q, t)
    })
    .await
    .map_err(join_error)??;
    Ok(success_raw(
        &bongsu_promql::to_prometheus_json(&r.value),
        &r.warnings,
    ))
}

async fn query_range(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    let store = store(&state)?;
    let q = query_param(&p)?;
    let need = |name: &str| -> Result<&str, PromError> {
        p.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PromError::param(name, "parameter is missing"))
    };
    let start_s = need("start")?;
    let start = parse_time(start_s).ok_or_else(|| {
        PromError::param(
            "start",
            format!("cannot parse {start_s:?} to a valid timestamp"),
        )
    })?;
    let end_s = need("end")?;
    let end = parse_time(end_s).ok_or_else(|| {
        PromError::param(
            "end",
            format!("cannot parse {end_s:?} to a valid timestamp"),
        )
    })?;
    if end < start {
        return Err(PromError::param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_s = need("step")?;
    let step = parse_duration(step_s).ok_or_else(|| {
        PromError::param(
            "step",
            format!("cannot parse {step_s:?} to a valid duration"),
        )
    })?;
    if step <= 0 {
        return Err(PromError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step >= MAX_POINTS {
        return Err(PromError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine(&store, &p)?;
    let r = tokio::task::spawn_blocking(move || {
        let st = TsdbStorage::new(&store, rollup_safe(&q));
        engine.range_query(&st, &q, start, end, step)
    })
    .await
    .map_err(join_error)??;
    Ok(success_raw(
        &bongsu_promql::to_prometheus_json(&r.value),
        &r.warnings,
    ))
}

/// The matchers of a `match[]` selector.
fn selector_matchers(s: &str) -> Result<Vec<bongsu_tsdb::Matcher>, PromError> {
    let bad = |m: String| PromError::param("match[]", m);
    let expr = promql_parser::parser::parse(s).map_err(bad)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(bad(format!(
            "{s:?} is not a series selector: write e.g. up{{job=\"api\"}}"
        )));
    };
    if !vs.matchers.or_matchers.is_empty() {
        return Err(bad(
            "\"or\" inside a selector is not supported here: send one match[] per alternative"
                .into(),
        ));
    }
    let mut out = Vec::new();
    if let Some(name) = &vs.name {
        out.push(bongsu_tsdb::Matcher::equal(
            bongsu_model::METRIC_NAME,
            name.clone(),
        ));
    }
    for m in &vs.matchers.matchers {
        use promql_parser::label::MatchOp as P;
        let op = match m.op {
            P::Equal => bongsu_tsdb::MatchOp::Equal,
            P::NotEqual => bongsu_tsdb::MatchOp::NotEqual,
            P::Re(_) => bongsu_tsdb::MatchOp::Regex,
            P::NotRe(_) => bongsu_tsdb::MatchOp::NotRegex,
        };
        out.push(
            bongsu_tsdb::Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| bad(e.to_string()))?,
        );
    }
    Ok(out)
}

fn tsdb_error(e: bongsu_tsdb::Error) -> PromError {
    tracing::error!(error = %e, "time-series store failed");
    PromError::internal()
}

/// The series of every `match[]` (all series when there is none and `required` is false).
async fn matched_series(
    state: &AppState,
    p: &Params,
    required: bool,
) -> Result<Vec<Labels>, PromError> {
    let store = store(state)?;
    let selectors = p.all("match[]");
    if required && selectors.is_empty() {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let groups: Vec<Vec<bongsu_tsdb::Matcher>> = selectors
        .iter()
        .map(|s| selector_matchers(s))
        .collect::<Result<_, _>>()?;
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    tokio::task::spawn_blocking(move || {
        let mut all = BTreeSet::new();
        if groups.is_empty() {
            all.extend(store.tsdb.series(&[], start, end).map_err(tsdb_error)?);
        }
        for g in &groups {
            all.extend(store.tsdb.series(g, start, end).map_err(tsdb_error)?);
        }
        Ok(all.into_iter().collect())
    })
    .await
    .map_err(join_error)?
}

fn labels_json(l: &Labels) -> Json {
    let mut m = serde_json::Map::new();
    for p in l.iter() {
        m.insert(p.name.clone(), Json::String(p.value.clone()));
    }
    Json::Object(m)
}

async fn series(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    let all = matched_series(&state, &p, true).await?;
    Ok(success(Json::Array(all.iter().map(labels_json).collect())))
}

/// Label names (`name` None) or values of every series in the `start`/`end` range, read
/// from the store's indexes without visiting series (when no `match[]` narrows them).
async fn index_strings(
    state: &AppState,
    p: &Params,
    name: Option<String>,
) -> Result<Vec<String>, PromError> {
    let store = store(state)?;
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    tokio::task::spawn_blocking(move || match name {
        None => store.tsdb.label_names(&[], start, end),
        Some(n) => store.tsdb.label_values(&n, &[], start, end),
    })
    .await
    .map_err(join_error)?
    .map_err(tsdb_error)
}

async fn labels(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    if p.all("match[]").is_empty() {
        return Ok(success(json!(index_strings(&state, &p, None).await?)));
    }
    let all = matched_series(&state, &p, false).await?;
    let names: BTreeSet<&str> = all
        .iter()
        .flat_map(|l| l.iter().map(|p| p.name.as_str()))
        .collect();
    Ok(success(json!(names)))
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    if !valid_label_name(&name) {
        return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
    }
    let p = Params::from_request(req).await?;
    if p.all("match[]").is_empty() {
        return Ok(success(json!(index_strings(&state, &p, Some(name)).await?)));
    }
    let all = matched_series(&state, &p, false).await?;
    let values: BTreeSet<&str> = all.iter().filter_map(|l| l.get(&name)).collect();
    Ok(success(json!(values)))
}

async fn metadata(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    let store = store(&state)?;
    let limit =
        match p.get("limit").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                PromError::param("limit", format!("cannot parse {v:?} to an integer"))
            })?),
        };
    let metric = p.get("metric").filter(|v| !v.is_empty());
    let md = store.metadata.read().unwrap_or_else(|e| e.into_inner());
    let mut out = serde_json::Map::new();
    for (family, m) in md.iter() {
        if metric.is_some_and(|want| want != family) {
            continue;
        }
        if limit.is_some_and(|l| l >= 0 && out.len() as i64 >= l) {
            break;
        }
        out.insert(
            family.clone(),
            json!([{ "type": m.kind.as_str(), "help": m.help, "unit": m.unit }]),
        );
    }
    Ok(success(Json::Object(out)))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

async fn status_tsdb(State(state): State<AppState>, req: Request) -> ApiResult {
    let p = Params::from_request(req).await?;
    let store = store(&state)?;
    let limit =
        match p.get("limit").filter(|v| !v.is_empty()) {
            None => 10,
            Some(v) => v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                PromError::param("limit", format!("{v:?} is not a positive integer"))
            })?,
        };
    let s = tokio::task::spawn_blocking(move || {
        let stats = store.tsdb.stats(limit);
        let oow = store
            .counters
            .samples_out_of_window
            .load(std::sync::atomic::Ordering::Relaxed);
        (stats, oow, store.tsdb.head_memory().total())
    })
    .await
    .map_err(join_error)?;
    let (stats, out_of_window, head_bytes) = s;
    let pairs = |v: &[(String, u64)]| -> Json {
        Json::Array(
            v.iter()
                .map(|(n, c)| json!({"name": n, "value": c}))
                .collect(),
        )
    };
    Ok(success(json!({
        "headStats": {
            "numSeries": stats.num_series,
            "numLabelPairs": stats.num_label_pairs,
            "chunkCount": stats.chunk_count,
            "minTime": stats.min_time_ms.unwrap_or(i64::MAX),
            "maxTime": stats.max_time_ms.unwrap_or(i64::MIN),
        },
        "seriesCountByMetricName": pairs(&stats.series_count_by_metric_name),
        "labelValueCountByLabelName": pairs(&stats.label_value_count_by_label_name),
        "memoryInBytesByLabelName": pairs(&stats.memory_in_bytes_by_label_name),
        "seriesCountByLabelValuePair": pairs(&stats.series_count_by_label_value_pair),
        "outOfWindowSamplesTotal": out_of_window,
        "headMemoryBytes": head_bytes,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.123"), Some(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5+01:00"),
            Some(1_700_000_000_500 - 3_600_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Some(-1000));
        // Prometheus's min and max times, as its clients send them.
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z"), Some(MIN_TIME_MS));
        assert_eq!(
            parse_time("292277025-08-18T07:12:54.999999999Z"),
            Some(MAX_TIME_MS)
        );
        for bad in [
            "",
            "abc",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13",
            "NaN",
            "inf",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("0.5"), Some(500));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("100ms"), Some(100));
        for bad in ["", "1x", "h", "1h30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn forms_decode() {
        let mut out = Vec::new();
        parse_form(b"query=rate(x%5B5m%5D)&match[]=up+1&empty", &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                ("query".into(), "rate(x[5m])".into()),
                ("match[]".into(), "up 1".into()),
                ("empty".into(), String::new()),
            ]
        );
        assert!(parse_form(b"a=%zz", &mut out).is_err());
    }

    #[test]
    fn promql_errors_map_to_prometheus_codes() {
        let e: PromError = bongsu_promql::Error::Parse("x".into()).into();
        assert_eq!((e.status.as_u16(), e.error_type), (400, "bad_data"));
        let e: PromError = bongsu_promql::Error::TooManySamples {
            loaded: 2,
            limit: 1,
        }
        .into();
        assert_eq!((e.status.as_u16(), e.error_type), (422, "execution"));
        let e: PromError = bongsu_promql::Error::Timeout(Duration::from_secs(1)).into();
        assert_eq!((e.status.as_u16(), e.error_type), (503, "timeout"));
    }
}
