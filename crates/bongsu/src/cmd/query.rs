//! `bongsu query 'EXPR' [--at T | --start T --end T --step D]`: evaluates PromQL on a running
//! server through its Prometheus API and prints a table (or, with `--json`, the raw answer).

use anyhow::{bail, Context as _};
use bongsu_state::format_rfc3339_ms;
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The PromQL expression, e.g. 'sum by (job) (rate(http_requests_total[5m]))'.
    expr: String,
    /// Evaluation time of an instant query: RFC 3339 or Unix seconds (default: now).
    #[arg(long, value_name = "TIME", conflicts_with_all = ["start", "end", "step"])]
    at: Option<String>,
    /// Start of a range query: RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", requires = "end")]
    start: Option<String>,
    /// End of a range query: RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", requires = "start")]
    end: Option<String>,
    /// Step of a range query: seconds or a duration like 30s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    step: String,
    /// The server's base URL.
    #[arg(long, env = "BONGSU_SERVER", default_value = "http://127.0.0.1:9700")]
    server: String,
    /// An API token with read scope (`bongsu token create --scope read`).
    #[arg(long, env = "BONGSU_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON answer as it came.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: QueryArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, body) = runtime.block_on(send(&args))?;
    if args.json {
        println!("{body}");
        if !status.is_success() {
            bail!("the server answered {status}");
        }
        return Ok(());
    }
    let v: Value = serde_json::from_str(&body)
        .with_context(|| format!("the server answered {status} with a body that is not JSON"))?;
    if v["status"] != "success" {
        bail!(
            "query failed ({status}, {}): {}",
            v["errorType"].as_str().unwrap_or("unknown"),
            v["error"].as_str().unwrap_or("no message")
        );
    }
    if let Some(w) = v["warnings"].as_array() {
        for w in w {
            eprintln!("warning: {}", w.as_str().unwrap_or_default());
        }
    }
    print!("{}", render(&v["data"]));
    Ok(())
}

async fn send(args: &QueryArgs) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let base = args.server.trim_end_matches('/');
    let mut form: Vec<(&str, &str)> = vec![("query", &args.expr)];
    let path = match (&args.start, &args.end) {
        (Some(s), Some(e)) => {
            form.extend([
                ("start", s.as_str()),
                ("end", e.as_str()),
                ("step", &args.step),
            ]);
            "query_range"
        }
        _ => {
            if let Some(t) = &args.at {
                form.push(("time", t));
            }
            "query"
        }
    };
    let url = format!("{base}/api/v1/{path}");
    let mut req = reqwest::Client::new().post(&url).form(&form);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}: is the server running? (--server)"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "the server refused the request (401): give a read token with --token or BONGSU_TOKEN"
        );
    }
    let body = resp.text().await.context("cannot read the answer")?;
    Ok((status, body))
}

fn labels(m: &Value) -> String {
    let Some(obj) = m.as_object() else {
        return "{}".into();
    };
    let name = obj.get("__name__").and_then(Value::as_str).unwrap_or("");
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

fn point(p: &Value) -> (String, String) {
    let t = p[0].as_f64().map_or_else(String::new, |s| {
        format_rfc3339_ms((s * 1000.0).round() as i64)
    });
    (t, p[1].as_str().unwrap_or_default().to_owned())
}

/// The `data` of an answer as a table.
fn render(data: &Value) -> String {
    let mut out = String::new();
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let rows: Vec<(String, String, String)> = result
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            let (t, v) = point(&s["value"]);
                            (labels(&s["metric"]), v, t)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                out.push_str("(no series)\n");
                return out;
            }
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(6).max(6);
            let wv = rows.iter().map(|r| r.1.len()).max().unwrap_or(5).max(5);
            out.push_str(&format!("{:<w$}  {:>wv$}  TIME\n", "SERIES", "VALUE"));
            for (l, v, t) in rows {
                out.push_str(&format!("{l:<w$}  {v:>wv$}  {t}\n"));
            }
        }
        Some("matrix") => {
            let series = result.as_array().cloned().unwrap_or_default();
            if series.is_empty() {
                out.push_str("(no series)\n");
            }
            for s in series {
                out.push_str(&labels(&s["metric"]));
                out.push('\n');
                for p in s["values"].as_array().cloned().unwrap_or_default() {
                    let (t, v) = point(&p);
                    out.push_str(&format!("  {t}  {v}\n"));
                }
            }
        }
        Some("scalar") | Some("string") => {
            let (t, v) = point(result);
            out.push_str(&format!("{v}  {t}\n"));
        }
        _ => out.push_str(&format!("{data}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_labels_values_and_times() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]}]}"#,
        )
        .unwrap();
        let t = render(&v);
        assert!(t.starts_with("SERIES"), "{t}");
        assert!(t.contains(r#"up{job="a"}"#), "{t}");
        assert!(t.contains("2023-11-14T22:13:20"), "{t}");
        let m: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"2"],[2,"3"]]}]}"#,
        )
        .unwrap();
        let t = render(&m);
        assert_eq!(t.lines().count(), 3, "{t}");
        let e: Value = serde_json::from_str(r#"{"resultType":"vector","result":[]}"#).unwrap();
        assert_eq!(render(&e), "(no series)\n");
    }
}
