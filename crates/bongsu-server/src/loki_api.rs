//! The Loki-compatible read API over the log store (`docs/http-api.md`, "Loki query API").
//!
//! Parameter names, time formats, response bodies and status codes follow Loki's HTTP API, so
//! Grafana's Loki data source and Loki clients work unchanged. Every endpoint answers GET and
//! POST (parameters in the query string and, for POST, in an
//! `application/x-www-form-urlencoded` body); `/loki/api/v1/tail` is a WebSocket.
//!
//! Errors are Loki's: a status code and a plain-text body (400 for a bad parameter, a query
//! that does not parse or a limit; 503 before the store is open; 500 with a generic text, the
//! details going to the server log).

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use bongsu_logstore::{
    series_to_loki_json, strings_to_loki_json, to_loki_json, Direction, LogStore, QueryResult,
    ResultData, StreamEntries, VolumeAggregation, VolumeQuery, VolumeSeries, DEFAULT_VOLUME_LIMIT,
};
use serde_json::{json, Map, Value};

use crate::logs_consumer::{Logs, ReadError};
use crate::state::AppState;

const NS_PER_SEC: i64 = 1_000_000_000;
/// Default range of `labels`, `label/<name>/values` and `series` (Loki's: the last 6 hours).
const DEFAULT_LABELS_RANGE_NS: i64 = 6 * 3600 * NS_PER_SEC;
/// Default range of `query_range` without `start` or `since` (Loki's: the last hour).
const DEFAULT_QUERY_RANGE_NS: i64 = 3600 * NS_PER_SEC;
/// Longest `delay_for` of a tail, seconds (Loki's limit).
const MAX_TAIL_DELAY_SECS: i64 = 5;
/// A live tail polls the store at least this often, and whenever records were applied.
const TAIL_POLL: Duration = Duration::from_secs(1);
/// How far past now a live tail looks for entries (senders' clocks run ahead).
const TAIL_FUTURE_NS: i64 = 3600 * NS_PER_SEC;

/// The routes of the Loki read API (the caller adds authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/api/v1/tail", get(tail))
}

/// A Loki API error: status code and plain-text message.
#[derive(Debug)]
pub(crate) struct LokiError {
    status: StatusCode,
    message: String,
}

impl LokiError {
    fn bad(message: impl Into<String>) -> LokiError {
        LokiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn internal(detail: &dyn std::fmt::Display) -> LokiError {
        tracing::error!(error = %detail, "internal error while serving a log query");
        LokiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error: the server log has the details".into(),
        }
    }

    fn unavailable() -> LokiError {
        LokiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the log store is not open: retry once the server is ready".into(),
        }
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

impl From<ReadError> for LokiError {
    fn from(e: ReadError) -> LokiError {
        use bongsu_logstore::Error as E;
        match e {
            ReadError::Store(
                e @ (E::Parse { .. } | E::Query(_) | E::Limit(_) | E::Pipeline(_)),
            ) => LokiError::bad(e.to_string()),
            ReadError::Store(e) => LokiError::internal(&e),
            ReadError::Task(e) => LokiError::internal(&e),
        }
    }
}

type ApiResult = Result<Response, LokiError>;

/// Request parameters: the query string, plus a form body for POST.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    async fn from_request(req: Request) -> Result<Params, LokiError> {
        let Query(mut pairs) = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map_err(|e| LokiError::bad(format!("invalid query string: {}", e.body_text())))?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let Form(body) = Form::<Vec<(String, String)>>::from_request(req, &())
                .await
                .map_err(|e| LokiError::bad(format!("invalid form body: {}", e.body_text())))?;
            pairs.extend(body);
        }
        Ok(Params(pairs))
    }

    /// The last value of `name`, if given and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str, default: i64) -> Result<i64, LokiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid {name} {v:?}: give nanoseconds since the epoch, unix seconds (\"1700000000.5\") or RFC 3339 (\"2024-01-02T15:04:05Z\")"
                ))
            }),
        }
    }

    fn query(&self) -> Result<&str, LokiError> {
        self.get("query")
            .ok_or_else(|| LokiError::bad("query parameter is required: give a LogQL query"))
    }

    fn limit(&self, logs: &Logs) -> Result<usize, LokiError> {
        let s = logs.settings();
        let Some(v) = self.get("limit") else {
            return Ok(s.default_limit);
        };
        let limit: i64 = v
            .parse()
            .map_err(|_| LokiError::bad(format!("invalid limit {v:?}: give a whole number")))?;
        if limit <= 0 {
            return Err(LokiError::bad("limit must be a positive value"));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if limit > s.max_entries_limit {
            return Err(LokiError::bad(format!(
                "max entries limit per query exceeded, limit > logs.max_entries_limit ({limit} > {})",
                s.max_entries_limit
            )));
        }
        Ok(limit)
    }

    fn direction(&self) -> Result<Direction, LokiError> {
        match self
            .get("direction")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("backward") => Ok(Direction::Backward),
            Some("forward") => Ok(Direction::Forward),
            Some(other) => Err(LokiError::bad(format!(
                "invalid direction {other:?}: use forward or backward"
            ))),
        }
    }

    /// `step`: a positive duration or number of seconds; default [`default_step`].
    fn step(&self, start: i64, end: i64) -> Result<i64, LokiError> {
        match self.get("step") {
            None => Ok(default_step(start, end)),
            Some(v) => match parse_duration(v) {
                Some(s) if s > 0 => Ok(s),
                _ => Err(LokiError::bad(format!(
                    "invalid step {v:?}: give a positive duration such as 15s or a number of seconds"
                ))),
            },
        }
    }

    /// `interval` of a log query: a duration or number of seconds, 0 (keep every entry) when
    /// absent.
    fn interval(&self) -> Result<i64, LokiError> {
        match self.get("interval") {
            None => Ok(0),
            Some(v) => parse_duration(v).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid interval {v:?}: give a duration such as 30s or a number of seconds"
                ))
            }),
        }
    }

    /// `limit` (series, default 100), `targetLabels` (comma-separated) and `aggregateBy`
    /// (`series` or `labels`) of the volume endpoints.
    fn volume_query(&self) -> Result<VolumeQuery, LokiError> {
        let limit = match self.get("limit") {
            None => DEFAULT_VOLUME_LIMIT,
            Some(v) => v.parse::<usize>().ok().filter(|&l| l > 0).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid limit {v:?}: give a positive whole number of series"
                ))
            })?,
        };
        let target_labels = self
            .get("targetLabels")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let aggregate_by = match self.get("aggregateBy") {
            None | Some("series") => VolumeAggregation::Series,
            Some("labels") => VolumeAggregation::Labels,
            Some(other) => {
                return Err(LokiError::bad(format!(
                    "invalid aggregateBy {other:?}: use series or labels"
                )))
            }
        };
        Ok(VolumeQuery {
            target_labels,
            aggregate_by,
            limit,
        })
    }

    /// `start`/`since` and `end`: end defaults to now, start to end minus `since` (or
    /// `default_range`).
    fn range(&self, now: i64, default_range: i64) -> Result<(i64, i64), LokiError> {
        let end = self.time("end", now)?;
        let since = match self.get("since") {
            None => default_range,
            Some(v) => parse_duration(v).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid since {v:?}: give a duration such as 1h or 30m"
                ))
            })?,
        };
        let start = self.time("start", end.saturating_sub(since))?;
        if end < start {
            return Err(LokiError::bad(
                "end timestamp must not be before or equal to start time",
            ));
        }
        Ok((start, end))
    }
}

/// Loki's timestamps: a number with a `.` is unix seconds; an integer of at most 10 digits is
/// unix seconds, a longer one nanoseconds; anything else RFC 3339.
pub(crate) fn parse_time(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            if !f.is_finite() {
                return None;
            }
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round() / 1000.0;
            return Some((secs as i64).saturating_mul(NS_PER_SEC) + (frac * 1e9) as i64);
        }
    }
    if let Ok(n) = v.parse::<i64>() {
        let digits = v.trim_start_matches('-').len();
        return Some(if digits <= 10 {
            n.saturating_mul(NS_PER_SEC)
        } else {
            n
        });
    }
    parse_rfc3339(v)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` as nanoseconds since the epoch.
fn parse_rfc3339(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = v.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = v.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut padded: String = digits.chars().take(9).collect();
        while padded.len() < 9 {
            padded.push('0');
        }
        frac_ns = padded.parse().ok()?;
    }
    let offset_s = match v.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if b[i + 3] != b':' {
                return None;
            }
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    secs.checked_mul(NS_PER_SEC)?.checked_add(frac_ns)
}

/// A duration as nanoseconds: a plain number is seconds (`"15"`, `"0.5"`), else a sequence of
/// numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, `d`, `w`, `y` (`"1h30m"`).
pub(crate) fn parse_duration(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(f) = v.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then_some((f * 1e9) as i64);
    }
    let mut total: f64 = 0.0;
    let mut rest = v;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 7.0 * 86_400e9,
            "y" => 365.0 * 86_400e9,
            _ => return None,
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    (total <= i64::MAX as f64).then_some(total as i64)
}

fn logs_of(state: &AppState) -> Result<std::sync::Arc<Logs>, LokiError> {
    state.logs().cloned().ok_or_else(LokiError::unavailable)
}

fn now_ns(state: &AppState) -> i64 {
    state.clock().now_ms().saturating_mul(1_000_000)
}

fn json_response(v: Value) -> Response {
    Json(v).into_response()
}

/// `GET|POST /loki/api/v1/query`: an instant query (`query`, `time`, `limit`, `direction`).
async fn query(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let q = p.query()?.to_owned();
    let time = p.time("time", now_ns(&state))?;
    p.limit(&logs)?;
    p.direction()?;
    let r = logs.read(move |s| s.query_instant(&q, time)).await?;
    Ok(json_response(to_loki_json(&r)))
}

/// Loki's default step: the range split into about 250 points, at least one second.
fn default_step(start: i64, end: i64) -> i64 {
    ((end - start) / NS_PER_SEC / 250).max(1) * NS_PER_SEC
}

/// `GET|POST /loki/api/v1/query_range`: `query`, `start`/`since`, `end`, `limit`, `step`,
/// `interval` (log queries: entries at least this far apart), `direction`.
async fn query_range(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let q = p.query()?.to_owned();
    let (start, end) = p.range(now_ns(&state), DEFAULT_QUERY_RANGE_NS)?;
    let limit = p.limit(&logs)?;
    let direction = p.direction()?;
    let step = p.step(start, end)?;
    let interval = p.interval()?;
    let r = logs
        .read(move |s| s.query_range_interval(&q, start, end, step, limit, direction, interval))
        .await?;
    Ok(json_response(to_loki_json(&r)))
}

/// `GET|POST /loki/api/v1/labels`: label names in `start`/`since`..`end`, optionally of the
/// streams matching `query`.
async fn labels(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let (start, end) = p.range(now_ns(&state), DEFAULT_LABELS_RANGE_NS)?;
    let selector = p.get("query").map(str::to_owned);
    let names = logs
        .read(move |s| match selector {
            None => s.label_names(start, end),
            Some(sel) => {
                let mut names: Vec<String> = s
                    .series(&[&sel], start, end)?
                    .iter()
                    .flat_map(|l| l.iter().map(|p| p.name.clone()))
                    .collect();
                names.sort();
                names.dedup();
                Ok(names)
            }
        })
        .await?;
    Ok(json_response(strings_to_loki_json(&names)))
}

/// `GET|POST /loki/api/v1/label/<name>/values`.
async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let (start, end) = p.range(now_ns(&state), DEFAULT_LABELS_RANGE_NS)?;
    let selector = p.get("query").map(str::to_owned);
    let values = logs
        .read(move |s| s.label_values(&name, start, end, selector.as_deref()))
        .await?;
    Ok(json_response(strings_to_loki_json(&values)))
}

/// `GET|POST /loki/api/v1/series`: `match[]` (repeatable, at least one), `start`, `end`.
async fn series(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let (start, end) = p.range(now_ns(&state), DEFAULT_LABELS_RANGE_NS)?;
    let mut selectors: Vec<String> = p.all("match[]").into_iter().map(str::to_owned).collect();
    selectors.extend(p.all("match").into_iter().map(str::to_owned));
    if selectors.is_empty() {
        return Err(LokiError::bad(
            "at least one match[] argument must be provided, e.g. match[]={app=\"api\"}",
        ));
    }
    let list = logs
        .read(move |s| {
            let refs: Vec<&str> = selectors.iter().map(String::as_str).collect();
            s.series(&refs, start, end)
        })
        .await?;
    Ok(json_response(series_to_loki_json(&list)))
}

/// `GET|POST /loki/api/v1/index/stats`: `query`, `start`/`since`, `end` (default the last
/// hour). Loki's body, without an envelope: `{"streams":..,"chunks":..,"entries":..,"bytes":..}`.
async fn index_stats(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let q = p.query()?.to_owned();
    let (start, end) = p.range(now_ns(&state), DEFAULT_QUERY_RANGE_NS)?;
    let st = logs.read(move |s| s.index_stats(&q, start, end)).await?;
    Ok(json_response(json!({
        "streams": st.streams,
        "chunks": st.chunks,
        "entries": st.entries,
        "bytes": st.bytes,
    })))
}

/// Unix seconds with millisecond precision, as a JSON number (Loki's sample timestamps).
fn unix_seconds(ns: i64) -> Value {
    let ms = ns.div_euclid(1_000_000);
    serde_json::Number::from_f64(ms as f64 / 1000.0).map_or(Value::Null, Value::Number)
}

fn volume_metric(s: &VolumeSeries) -> Value {
    let mut m = Map::new();
    for l in &s.labels {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

/// `GET|POST /loki/api/v1/index/volume`: `query` (label matchers, or `{}`), `start`/`since`,
/// `end` (default the last hour), `limit`, `targetLabels`, `aggregateBy`. Bytes of line text
/// per series, a vector stamped `end`.
async fn volume(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let q = p.query()?.to_owned();
    let (start, end) = p.range(now_ns(&state), DEFAULT_QUERY_RANGE_NS)?;
    let vq = p.volume_query()?;
    let series = logs.read(move |s| s.volume(&q, start, end, &vq)).await?;
    let result: Vec<Value> = series
        .iter()
        .filter_map(|s| {
            let &(t, bytes) = s.values.first()?;
            Some(json!({"metric": volume_metric(s), "value": [unix_seconds(t), bytes.to_string()]}))
        })
        .collect();
    Ok(json_response(
        json!({"status": "success", "data": {"resultType": "vector", "result": result}}),
    ))
}

/// `GET|POST /loki/api/v1/index/volume_range`: as `volume`, plus `step`: a matrix with one
/// point per step bucket, stamped with the bucket's last instant.
async fn volume_range(State(state): State<AppState>, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let q = p.query()?.to_owned();
    let (start, end) = p.range(now_ns(&state), DEFAULT_QUERY_RANGE_NS)?;
    let step = p.step(start, end)?;
    let vq = p.volume_query()?;
    let series = logs
        .read(move |s| s.volume_range(&q, start, end, step, &vq))
        .await?;
    let result: Vec<Value> = series
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .values
                .iter()
                .map(|&(t, bytes)| json!([unix_seconds(t), bytes.to_string()]))
                .collect();
            json!({"metric": volume_metric(s), "values": values})
        })
        .collect();
    Ok(json_response(
        json!({"status": "success", "data": {"resultType": "matrix", "result": result}}),
    ))
}

/// What a live tail asked for.
#[derive(Debug, Clone)]
struct TailRequest {
    query: String,
    delay_ns: i64,
    limit: usize,
    start: i64,
}

/// `GET /loki/api/v1/tail` (WebSocket): `query`, `delay_for` (seconds, at most 5), `limit`
/// (entries of history, default `logs.default_limit`), `start` (default one hour ago).
async fn tail(State(state): State<AppState>, ws: WebSocketUpgrade, req: Request) -> ApiResult {
    let logs = logs_of(&state)?;
    let p = Params::from_request(req).await?;
    let query = p.query()?.to_owned();
    bongsu_logstore::check_query(&query).map_err(|e| LokiError::bad(e.to_string()))?;
    let delay_for: i64 = match p.get("delay_for") {
        None => 0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|d| (0..=MAX_TAIL_DELAY_SECS).contains(d))
            .ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid delay_for {v:?}: give whole seconds from 0 to {MAX_TAIL_DELAY_SECS}"
                ))
            })?,
    };
    let now = now_ns(&state);
    let req = TailRequest {
        query,
        delay_ns: delay_for * NS_PER_SEC,
        limit: p.limit(&logs)?,
        start: p.time("start", now - DEFAULT_QUERY_RANGE_NS)?,
    };
    // A metric query cannot be tailed: find out before upgrading.
    let probe = req.query.clone();
    let is_log = logs
        .read(move |s| {
            s.query_range(&probe, now, now, 0, 1, Direction::Forward)
                .map(|r| matches!(r.data, ResultData::Streams(_)))
        })
        .await;
    if !matches!(is_log, Ok(true)) {
        return Err(LokiError::bad(
            "only log queries can be tailed: give a stream selector with optional filters",
        ));
    }
    Ok(ws.on_upgrade(move |socket| run_tail(state, logs, req, socket)))
}

/// Sends entries matching the tail's query as they are applied, in Loki's frames:
/// `{"streams":[{"stream":{...},"values":[["<ns>","<line>"]]}],"dropped_entries":null}`.
async fn run_tail(
    state: AppState,
    logs: std::sync::Arc<Logs>,
    req: TailRequest,
    mut ws: WebSocket,
) {
    let mut applied = logs.subscribe();
    let mut cursor = req.start;
    // Entries already sent whose timestamp equals `cursor` (the next query includes it).
    let mut sent_at_cursor: HashSet<(String, String)> = HashSet::new();
    let mut first = true;
    loop {
        let end = now_ns(&state) - req.delay_ns + if first { 0 } else { TAIL_FUTURE_NS };
        let limit = if first {
            req.limit
        } else {
            logs.settings().max_entries_limit
        };
        let (q, from) = (req.query.clone(), cursor);
        let direction = if first {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let r: Result<QueryResult, ReadError> = if end > from {
            logs.read(move |s: &LogStore| s.query_range(&q, from, end, 0, limit, direction))
                .await
        } else {
            Ok(QueryResult {
                data: ResultData::Streams(Vec::new()),
                stats: Default::default(),
            })
        };
        let streams = match r {
            Ok(QueryResult {
                data: ResultData::Streams(s),
                ..
            }) => s,
            Ok(_) => return,
            Err(e) => {
                let msg = LokiError::from(e).message;
                let _ = ws.send(Message::Text(msg.into())).await;
                return;
            }
        };
        first = false;
        let (frame, full) = tail_frame(streams, &mut cursor, &mut sent_at_cursor, limit);
        if let Some(frame) = frame {
            if ws
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = applied.changed() => {}
            _ = tokio::time::sleep(TAIL_POLL) => {}
            m = ws.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Builds one frame from `streams`, leaving out what was sent already, and moves the cursor
/// to the newest timestamp sent. Returns the frame (None when nothing is new) and whether the
/// query hit its limit (more may be waiting).
fn tail_frame(
    streams: Vec<StreamEntries>,
    cursor: &mut i64,
    sent_at_cursor: &mut HashSet<(String, String)>,
    limit: usize,
) -> (Option<Value>, bool) {
    let total: usize = streams.iter().map(|s| s.entries.len()).sum();
    let before = *cursor;
    let mut newest = *cursor;
    let mut out = Vec::new();
    let mut fresh: Vec<(i64, String, String)> = Vec::new();
    for s in streams {
        let key = s.labels.to_string();
        let mut values = Vec::new();
        for (ts, line) in s.entries {
            if ts == *cursor && sent_at_cursor.contains(&(key.clone(), line.clone())) {
                continue;
            }
            newest = newest.max(ts);
            fresh.push((ts, key.clone(), line.clone()));
            values.push(json!([ts.to_string(), line]));
        }
        if !values.is_empty() {
            let mut labels = Map::new();
            for p in &s.labels {
                labels.insert(p.name.clone(), Value::String(p.value.clone()));
            }
            // Entries in time order within the frame.
            values.sort_by_key(|v| v[0].as_str().and_then(|t| t.parse::<i64>().ok()));
            out.push(json!({"stream": labels, "values": values}));
        }
    }
    if newest != *cursor {
        sent_at_cursor.clear();
        *cursor = newest;
    }
    for (ts, key, line) in fresh {
        if ts == newest {
            sent_at_cursor.insert((key, line));
        }
    }
    // Only when the cursor moved: a limit's worth of entries at one timestamp must not spin.
    let full = total >= limit && newest != before;
    if out.is_empty() {
        return (None, full);
    }
    (Some(json!({"streams": out, "dropped_entries": null})), full)
}

#[cfg(test)]
mod tests {
    use bongsu_model::Labels;

    use super::*;

    #[test]
    fn loki_time_formats() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000 * NS_PER_SEC));
        assert_eq!(
            parse_time("1700000000000000001"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(parse_time("1700000000.25"), Some(1_700_000_000_250_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(NS_PER_SEC));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5+01:00"),
            Some((1_700_000_000 - 3600) * NS_PER_SEC + 500_000_000)
        );
        assert_eq!(
            parse_time("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * NS_PER_SEC)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn rfc3339_text_round_trips(ms in 0i64..4_102_444_800_000) {
            let text = bongsu_state::format_rfc3339_ms(ms);
            proptest::prop_assert_eq!(parse_time(&text), Some(ms * 1_000_000));
        }

        #[test]
        fn arbitrary_parameters_never_panic(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn nanosecond_and_second_integers(ns in 10_000_000_000i64..i64::MAX, secs in 0i64..9_000_000_000) {
            proptest::prop_assert_eq!(parse_time(&ns.to_string()), Some(ns));
            proptest::prop_assert_eq!(parse_time(&secs.to_string()), Some(secs * NS_PER_SEC));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Some(15 * NS_PER_SEC));
        assert_eq!(parse_duration("1h30m"), Some(5400 * NS_PER_SEC));
        assert_eq!(parse_duration("0.5"), Some(NS_PER_SEC / 2));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400 * NS_PER_SEC));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(default_step(0, 3600 * NS_PER_SEC), 14 * NS_PER_SEC);
        assert_eq!(default_step(0, 10 * NS_PER_SEC), NS_PER_SEC);
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    #[test]
    fn volume_and_interval_parameters() {
        let q = params(&[]).volume_query().unwrap();
        assert_eq!(q, VolumeQuery::default());
        assert_eq!(q.limit, 100);
        let q = params(&[
            ("targetLabels", " app, env ,,"),
            ("aggregateBy", "labels"),
            ("limit", "7"),
        ])
        .volume_query()
        .unwrap();
        assert_eq!(q.target_labels, ["app", "env"]);
        assert_eq!(q.aggregate_by, VolumeAggregation::Labels);
        assert_eq!(q.limit, 7);
        for bad in [
            &[("aggregateBy", "streams")][..],
            &[("limit", "0")],
            &[("limit", "-3")],
            &[("limit", "x")],
        ] {
            let e = params(bad).volume_query().unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert_eq!(params(&[]).interval().unwrap(), 0);
        assert_eq!(
            params(&[("interval", "1m")]).interval().unwrap(),
            60 * NS_PER_SEC
        );
        assert_eq!(
            params(&[("interval", "0.5")]).interval().unwrap(),
            NS_PER_SEC / 2
        );
        assert!(params(&[("interval", "-1s")]).interval().is_err());
        assert_eq!(
            params(&[]).step(0, 3600 * NS_PER_SEC).unwrap(),
            14 * NS_PER_SEC
        );
        assert!(params(&[("step", "0")]).step(0, 10).is_err());
    }

    #[test]
    fn tail_frames_skip_what_was_sent() {
        let labels = Labels::from_pairs([("app", "a")]).unwrap();
        let s = |entries: Vec<(i64, &str)>| {
            vec![StreamEntries {
                labels: labels.clone(),
                entries: entries
                    .into_iter()
                    .map(|(t, l)| (t, l.to_owned()))
                    .collect(),
            }]
        };
        let mut cursor = 0;
        let mut seen = HashSet::new();
        let (f, full) = tail_frame(s(vec![(5, "x"), (7, "y")]), &mut cursor, &mut seen, 10);
        let f = f.unwrap();
        assert_eq!(f["streams"][0]["values"], json!([["5", "x"], ["7", "y"]]));
        assert_eq!(f["dropped_entries"], Value::Null);
        assert!(!full);
        assert_eq!(cursor, 7);
        // The next query starts at the cursor: the entry at 7 comes again and is left out; a
        // new entry with the same timestamp is not.
        let (f, _) = tail_frame(s(vec![(7, "y"), (7, "z")]), &mut cursor, &mut seen, 10);
        assert_eq!(f.unwrap()["streams"][0]["values"], json!([["7", "z"]]));
        let (f, full) = tail_frame(s(vec![(7, "y"), (7, "z")]), &mut cursor, &mut seen, 2);
        assert!(f.is_none());
        assert!(
            !full,
            "nothing new at a full timestamp: wait instead of spinning"
        );
        let (_, full) = tail_frame(s(vec![(8, "a"), (9, "b")]), &mut cursor, &mut seen, 2);
        assert!(
            full,
            "the limit was hit and the cursor moved: query again at once"
        );
    }
}
