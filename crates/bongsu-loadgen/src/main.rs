//! `bongsu-loadgen`: generate the metrics workload, send it by remote_write, benchmark and
//! compare query APIs. Argument parsing only; the work is in the library.

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bongsu_loadgen::{
    client, compare_answers, encode_body, run_query, sample_count, send_bodies, write_openmetrics,
    Body, Query, SendOptions, Workload, QUERIES,
};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bongsu-loadgen", about = "bongsu's metrics workload generator")]
struct Cli {
    /// Bearer token sent with every request.
    #[arg(long, global = true, env = "BONGSU_LOADGEN_TOKEN")]
    token: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct WorkloadArgs {
    /// Seed every value derives from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of hosts (about 340 series each).
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Scrape interval, e.g. 15s.
    #[arg(long, default_value = "15s")]
    interval: String,
    /// Keep only the first N series of each host.
    #[arg(long)]
    max_series_per_host: Option<usize>,
}

#[derive(Args, Clone)]
struct RangeArgs {
    /// End of the range: unix seconds or `now`.
    #[arg(long, default_value = "now")]
    end: String,
    /// Length of the range ending at --end, e.g. 1h, 180d.
    #[arg(long, default_value = "1h")]
    duration: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the number of series of the workload.
    Series(WorkloadArgs),
    /// Send the samples of a time range by remote_write to each URL, one after another.
    Backfill {
        #[command(flatten)]
        w: WorkloadArgs,
        #[command(flatten)]
        r: RangeArgs,
        /// remote_write endpoint (repeat for several receivers).
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// Hosts per request.
        #[arg(long, default_value_t = 4)]
        hosts_per_request: usize,
        /// Scrape intervals per request.
        #[arg(long, default_value_t = 8)]
        steps_per_request: usize,
        /// Requests in flight per receiver.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Encode every body before sending, so the measured rate is the receiver's alone.
        #[arg(long)]
        pregenerate: bool,
    },
    /// Write the samples of a time range as OpenMetrics text.
    Openmetrics {
        #[command(flatten)]
        w: WorkloadArgs,
        #[command(flatten)]
        r: RangeArgs,
        #[arg(long)]
        out: String,
    },
    /// Run the query set (or one --expr) against a query API and print latency percentiles.
    QueryBench {
        #[command(flatten)]
        r: RangeArgs,
        /// Base URL of the API, e.g. http://127.0.0.1:9090.
        #[arg(long)]
        url: String,
        /// Step of range queries, e.g. 60s.
        #[arg(long, default_value = "60s")]
        step: String,
        /// Times the set runs.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// One expression instead of the set (run as a range query only).
        #[arg(long)]
        expr: Option<String>,
        /// Also print the N slowest queries (median over the rounds), slowest first.
        #[arg(long, default_value_t = 0)]
        slowest: usize,
    },
    /// Run the query set against two APIs and compare the answers.
    Diff {
        #[command(flatten)]
        r: RangeArgs,
        /// The reference API.
        #[arg(long)]
        expected: String,
        /// The API under test.
        #[arg(long)]
        actual: String,
        #[arg(long, default_value = "60s")]
        step: String,
    },
}

/// The `n` queries with the highest median time over the rounds, slowest first.
fn slowest_queries(
    per_query: Vec<Vec<Duration>>,
    queries: &[Query],
    n: usize,
) -> Vec<(Duration, &Query)> {
    let mut medians: Vec<(Duration, &Query)> = per_query
        .into_iter()
        .zip(queries)
        .filter(|(t, _)| !t.is_empty())
        .map(|(mut t, q)| {
            t.sort();
            (t[t.len() / 2], q)
        })
        .collect();
    medians.sort_by_key(|b| std::cmp::Reverse(b.0));
    medians.truncate(n);
    medians
}

fn parse_duration_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .with_context(|| format!("duration {s:?} needs a unit: ms, s, m, h, d"))?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().with_context(|| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("unknown unit in duration {s:?}: use ms, s, m, h or d"),
    };
    Ok(n * mult)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl RangeArgs {
    fn range(&self) -> Result<(i64, i64)> {
        let end = if self.end == "now" {
            now_ms()
        } else {
            let s: f64 = self
                .end
                .parse()
                .context("--end must be unix seconds or now")?;
            (s * 1000.0) as i64
        };
        Ok((end - parse_duration_ms(&self.duration)?, end))
    }
}

impl WorkloadArgs {
    fn workload(&self) -> Result<Workload> {
        let w = Workload {
            seed: self.seed,
            hosts: self.hosts,
            interval_ms: parse_duration_ms(&self.interval)?,
            max_series_per_host: self.max_series_per_host,
            ..Workload::default()
        };
        w.validate()?;
        Ok(w)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Series(w) => {
            let w = w.workload()?;
            println!("series={}", w.series_count());
        }
        Cmd::Backfill {
            w,
            r,
            urls,
            hosts_per_request,
            steps_per_request,
            concurrency,
            pregenerate,
        } => {
            let w = w.workload()?;
            let (start, end) = r.range()?;
            let opts = SendOptions {
                concurrency,
                ..SendOptions::default()
            };
            let http = client(cli.token.as_deref())?;
            let gen = || {
                let mut reqs = w.requests(start, end, hosts_per_request, steps_per_request);
                std::iter::from_fn(move || reqs.next_with_lane()).map(|(lane, req)| Body {
                    samples: sample_count(&req),
                    bytes: encode_body(&req).into(),
                    lane,
                })
            };
            let pre: Option<Vec<Body>> = if pregenerate {
                let t = Instant::now();
                let v: Vec<Body> = gen().collect();
                let bytes: usize = v.iter().map(|b| b.bytes.len()).sum();
                eprintln!(
                    "generated {} requests, {} bytes in {:.1}s",
                    v.len(),
                    bytes,
                    t.elapsed().as_secs_f64()
                );
                Some(v)
            } else {
                None
            };
            for url in &urls {
                let report = rt.block_on(async {
                    match &pre {
                        Some(v) => send_bodies(&http, url, v.iter().cloned(), &opts).await,
                        None => send_bodies(&http, url, gen(), &opts).await,
                    }
                })?;
                println!(
                    "url={url} series={} samples={} requests={} retries={} seconds={:.3} samples_per_s={:.0}",
                    w.series_count(),
                    report.samples,
                    report.requests,
                    report.retries,
                    report.elapsed.as_secs_f64(),
                    report.samples_per_second()
                );
            }
        }
        Cmd::Openmetrics { w, r, out } => {
            let w = w.workload()?;
            let (start, end) = r.range()?;
            let mut f =
                BufWriter::new(File::create(&out).with_context(|| format!("create {out}"))?);
            let n = write_openmetrics(&w, start, end, &mut f)?;
            std::io::Write::flush(&mut f)?;
            println!("samples={n}");
        }
        Cmd::QueryBench {
            r,
            url,
            step,
            rounds,
            expr,
            slowest,
        } => {
            let (start, end) = r.range()?;
            let step = parse_duration_ms(&step)?;
            let http = client(cli.token.as_deref())?;
            let mut queries = Vec::new();
            match expr {
                Some(e) => queries.push(Query::Range {
                    expr: e,
                    start_ms: start,
                    end_ms: end,
                    step_ms: step,
                }),
                None => {
                    for d in QUERIES {
                        queries.push(Query::Instant {
                            expr: d.expr.to_owned(),
                            time_ms: end,
                        });
                        queries.push(Query::Range {
                            expr: d.expr.to_owned(),
                            start_ms: start,
                            end_ms: end,
                            step_ms: step,
                        });
                    }
                }
            }
            let mut times = Vec::new();
            let mut per_query: Vec<Vec<Duration>> = vec![Vec::new(); queries.len()];
            let mut errors = 0;
            let mut points = 0usize;
            rt.block_on(async {
                for _ in 0..rounds.max(1) {
                    for (i, q) in queries.iter().enumerate() {
                        let t = Instant::now();
                        let ans = run_query(&http, &url, q).await;
                        let took = t.elapsed();
                        times.push(took);
                        per_query[i].push(took);
                        match ans {
                            Ok(a) if a["status"] == "success" => {
                                points += a["data"]["result"].as_array().map_or(1, |s| s.len());
                            }
                            Ok(a) => {
                                errors += 1;
                                eprintln!("error: {q:?}: {}", a["error"]);
                            }
                            Err(e) => {
                                errors += 1;
                                eprintln!("error: {q:?}: {e}");
                            }
                        }
                    }
                }
            });
            times.sort();
            println!(
                "url={url} queries={} errors={errors} series_returned={points} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
                times.len(),
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3,
                times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
            for (median, q) in slowest_queries(per_query, &queries, slowest) {
                let (kind, expr) = match q {
                    Query::Instant { expr, .. } => ("instant", expr),
                    Query::Range { expr, .. } => ("range", expr),
                };
                println!("slow {:9.2} ms {kind:7} {expr}", median.as_secs_f64() * 1e3);
            }
        }
        Cmd::Diff {
            r,
            expected,
            actual,
            step,
        } => {
            let (start, end) = r.range()?;
            let step = parse_duration_ms(&step)?;
            let http = client(cli.token.as_deref())?;
            let mut pass = 0;
            let mut total = 0;
            rt.block_on(async {
                for d in QUERIES {
                    for q in [
                        Query::Instant {
                            expr: d.expr.to_owned(),
                            time_ms: end,
                        },
                        Query::Range {
                            expr: d.expr.to_owned(),
                            start_ms: start,
                            end_ms: end,
                            step_ms: step,
                        },
                    ] {
                        total += 1;
                        let kind = if matches!(q, Query::Instant { .. }) {
                            "instant"
                        } else {
                            "range"
                        };
                        let e = run_query(&http, &expected, &q).await;
                        let a = run_query(&http, &actual, &q).await;
                        let verdict = match (e, a) {
                            (Ok(e), Ok(a)) => compare_answers(&e, &a).map_err(|m| m.to_string()),
                            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                        };
                        match verdict {
                            Ok(n) => {
                                pass += 1;
                                println!("PASS {kind:7} {:22} ({n} points)", d.name);
                            }
                            Err(m) => println!("FAIL {kind:7} {:22} {m}", d.name),
                        }
                    }
                }
            });
            println!("passed {pass}/{total}");
        }
    }
    Ok(())
}
