//! `bongsu logs query|tail`: LogQL against a running server's Loki API.

use std::io::Write as _;

use anyhow::{bail, Context as _};
use bongsu_state::format_rfc3339_ms;
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "BONGSU_URL",
        default_value = "http://127.0.0.1:9700",
        global = true
    )]
    server: String,
    /// An API token with the read scope (see `bongsu token create`).
    #[arg(long, env = "BONGSU_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    cmd: LogsCommand,
}

/// `bongsu logs` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LogsCommand {
    /// Run a LogQL query over a time range and print the entries (or the metric series).
    Query {
        /// The LogQL query, e.g. '{app="api"} |= "error"'.
        query: String,
        /// How far back to look, e.g. 15m, 1h, 2d (default 1h; not with --from).
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Start: RFC 3339, unix seconds or nanoseconds.
        #[arg(long)]
        from: Option<String>,
        /// End: RFC 3339, unix seconds or nanoseconds (default now).
        #[arg(long)]
        to: Option<String>,
        /// Most entries to return (default: the server's logs.default_limit).
        #[arg(long)]
        limit: Option<usize>,
        /// Oldest entries first (default: newest first).
        #[arg(long)]
        forward: bool,
        /// Step of a metric query, e.g. 1m (default: about 250 points).
        #[arg(long)]
        step: Option<String>,
        /// Print the server's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Follow new entries matching a LogQL log query (WebSocket live tail) until interrupted.
    Tail {
        /// The LogQL log query, e.g. '{app="api"} |= "error"'.
        query: String,
        /// Entries of history to show first (default: the server's logs.default_limit).
        #[arg(long)]
        limit: Option<usize>,
        /// Start of the history, e.g. 10m back (default 1h).
        #[arg(long)]
        since: Option<String>,
        /// Seconds to hold back entries so slow senders catch up (0-5).
        #[arg(long, default_value_t = 0)]
        delay_for: u32,
        /// Print each frame's JSON as it is.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: LogsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        match args.cmd {
            LogsCommand::Query {
                query,
                since,
                from,
                to,
                limit,
                forward,
                step,
                json,
            } => {
                let mut params: Vec<(&str, String)> = vec![("query", query)];
                if let Some(s) = since {
                    params.push(("since", s));
                }
                if let Some(f) = from {
                    params.push(("start", f));
                }
                if let Some(t) = to {
                    params.push(("end", t));
                }
                if let Some(l) = limit {
                    params.push(("limit", l.to_string()));
                }
                if let Some(s) = step {
                    params.push(("step", s));
                }
                let direction = if forward { "forward" } else { "backward" };
                params.push(("direction", direction.to_owned()));
                let body = get(&args.server, args.token.as_deref(), &params).await?;
                if json {
                    println!("{body}");
                    return Ok(());
                }
                let v: Value = serde_json::from_str(&body)
                    .context("the server's answer is not JSON: is --server a bongsu server?")?;
                print_result(&v["data"], forward)
            }
            LogsCommand::Tail {
                query,
                limit,
                since,
                delay_for,
                json,
            } => {
                tail(
                    &args.server,
                    args.token.as_deref(),
                    query,
                    limit,
                    since,
                    delay_for,
                    json,
                )
                .await
            }
        }
    })
}

fn base(server: &str) -> &str {
    server.trim_end_matches('/')
}

async fn get(
    server: &str,
    token: Option<&str>,
    params: &[(&str, String)],
) -> anyhow::Result<String> {
    let url = format!("{}/loki/api/v1/query_range", base(server));
    let client = reqwest::Client::new();
    let mut req = client.get(&url).query(params);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}: is the server running? (--server)"))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .context("cannot read the server's answer")?;
    if !status.is_success() {
        bail!("{}: {}", status, error_text(&body));
    }
    Ok(body)
}

/// The message of an error body: Loki's plain text, or bongsu's JSON `error`.
fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

fn labels_text(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return "{}".into();
    };
    let pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").to_owned())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn ts_text(ns: i64) -> String {
    format_rfc3339_ms(ns.div_euclid(1_000_000))
}

/// Entries of a `streams` result as `(ns, labels, line)`.
fn entries(result: &Value) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    for s in result.as_array().into_iter().flatten() {
        let labels = labels_text(&s["stream"]);
        for v in s["values"].as_array().into_iter().flatten() {
            let ns = v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            let line = v[1].as_str().unwrap_or("").to_owned();
            out.push((ns, labels.clone(), line));
        }
    }
    out
}

fn print_result(data: &Value, forward: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match data["resultType"].as_str() {
        Some("streams") => {
            let mut e = entries(&data["result"]);
            e.sort_by_key(|x| x.0);
            if !forward {
                e.reverse();
            }
            for (ns, labels, line) in e {
                writeln!(out, "{} {labels} {line}", ts_text(ns))?;
            }
        }
        Some("matrix") | Some("vector") => {
            for s in data["result"].as_array().into_iter().flatten() {
                let labels = labels_text(&s["metric"]);
                let points: Vec<&Value> = match s.get("values") {
                    Some(v) => v.as_array().into_iter().flatten().collect(),
                    None => vec![&s["value"]],
                };
                for p in points {
                    let secs = p[0].as_f64().unwrap_or(0.0);
                    let ms = (secs * 1000.0).round() as i64;
                    writeln!(
                        out,
                        "{} {labels} {}",
                        format_rfc3339_ms(ms),
                        p[1].as_str().unwrap_or("")
                    )?;
                }
            }
        }
        other => bail!("unexpected result type {other:?} in the server's answer"),
    }
    Ok(())
}

async fn tail(
    server: &str,
    token: Option<&str>,
    query: String,
    limit: Option<usize>,
    since: Option<String>,
    delay_for: u32,
    json: bool,
) -> anyhow::Result<()> {
    let ws_base = if let Some(rest) = base(server).strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base(server).strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        bail!("--server must start with http:// (got {server:?})");
    };
    let mut params: Vec<(&str, String)> =
        vec![("query", query), ("delay_for", delay_for.to_string())];
    if let Some(l) = limit {
        params.push(("limit", l.to_string()));
    }
    if let Some(s) = since {
        let ns = since_ns(&s)?;
        params.push(("start", ns.to_string()));
    }
    let url = reqwest::Url::parse_with_params(&format!("{ws_base}/loki/api/v1/tail"), &params)
        .context("invalid --server URL")?;
    let mut req = url
        .as_str()
        .into_client_request()
        .context("invalid --server URL")?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}")
                .parse()
                .context("the token is not a valid header value")?,
        );
    }
    let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(c) => c,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            bail!("{}: {}", resp.status(), error_text(&body));
        }
        Err(e) => bail!("cannot open the live tail at {url}: {e}"),
    };
    while let Some(msg) = ws.next().await {
        let text = match msg.context("the live tail connection failed")? {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{text}")?;
        } else {
            let v: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) => bail!("{text}"),
            };
            let mut e = entries(&v["streams"]);
            e.sort_by_key(|x| x.0);
            for (ns, labels, line) in e {
                writeln!(out, "{} {labels} {line}", ts_text(ns))?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// `--since` of a tail as a start timestamp in nanoseconds.
fn since_ns(s: &str) -> anyhow::Result<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .with_context(|| format!("invalid --since {s:?}: write e.g. 30s, 10m, 1h, 2d"))?;
    let per: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid --since {s:?}: write e.g. 30s, 10m, 1h, 2d"),
    };
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Ok(now_ns - n.saturating_mul(per).saturating_mul(1_000_000_000))
}
