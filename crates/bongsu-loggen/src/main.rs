//! `bongsu-loggen`: writes generated logs to files or stdout, or sends them over syslog TCP or
//! the Loki push API.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use bongsu_loggen::{
    parse_size, Config, FileSink, Generator, Line, LokiSender, Stream, SyslogSender,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bongsu-loggen",
    about = "Generate realistic mixed logs, deterministic from a seed"
)]
struct Args {
    /// Seed: the same seed gives the same lines.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Lines per second of log time.
    #[arg(long, default_value_t = 20_000, global = true)]
    rate: u32,
    /// How much to generate: bytes of raw text (10G, 500M, 1GiB) ...
    #[arg(long, global = true)]
    bytes: Option<String>,
    /// ... or a number of lines.
    #[arg(long, global = true)]
    lines: Option<u64>,
    /// Senders (`syslog`, `loki`): this many connections at once, each on its own thread, a
    /// stream's lines all on one of them (stream number modulo connections).
    #[arg(long, default_value_t = 1, global = true)]
    connections: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One file per stream in DIR (`<host>.<source>.<app>.log`).
    Files { dir: std::path::PathBuf },
    /// All lines to standard output.
    Stdout,
    /// RFC 5424 over TCP with octet counting to ADDR (`host:port`).
    Syslog { addr: String },
    /// Loki push API to ADDR (`host:port`): JSON, or protobuf with snappy.
    Loki {
        addr: String,
        /// Protobuf bodies with snappy (what Loki clients send by default) instead of JSON.
        #[arg(long)]
        protobuf: bool,
        /// Bearer token.
        #[arg(long, env = "BONGSU_TOKEN")]
        token: Option<String>,
        /// Bytes of lines per push request.
        #[arg(long, default_value = "1M")]
        batch: String,
    },
}

/// Lines handed to a sender thread at a time.
const HANDOFF_LINES: usize = 1024;

/// Generates every line on this thread and sends them over `n` connections, each driven by
/// its own thread: `open(i)` connects sender `i` and returns its send function, which gets
/// batches of lines and, at the end, one empty batch (flush what is pending) — except with one
/// connection, where everything runs on this thread (no handoff).
fn fan_out<S>(
    n: usize,
    streams: &[Stream],
    g: &mut Generator,
    line: &mut Line,
    next: &mut impl FnMut(&mut Generator, &mut Line) -> bool,
    open: impl Fn(usize) -> Result<S>,
) -> Result<()>
where
    S: FnMut(&[Stream], &[Line]) -> Result<()> + Send + 'static,
{
    if n == 1 {
        let mut send = open(0)?;
        while next(g, line) {
            send(streams, std::slice::from_ref(line))?;
        }
        return send(streams, &[]);
    }
    let mut txs = Vec::with_capacity(n);
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let mut send = open(i)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Line>>(8);
        let streams = streams.to_vec();
        threads.push(std::thread::spawn(move || -> Result<()> {
            for batch in rx {
                send(&streams, &batch)?;
            }
            send(&streams, &[])
        }));
        txs.push(tx);
    }
    let mut pending: Vec<Vec<Line>> = vec![Vec::with_capacity(HANDOFF_LINES); n];
    let mut failed = false;
    while !failed && next(g, line) {
        let c = line.stream % n;
        pending[c].push(line.clone());
        if pending[c].len() >= HANDOFF_LINES {
            let full = std::mem::replace(&mut pending[c], Vec::with_capacity(HANDOFF_LINES));
            // A closed channel means that sender failed: its error is reported below.
            failed = txs[c].send(full).is_err();
        }
    }
    for (tx, rest) in txs.into_iter().zip(pending) {
        if !rest.is_empty() {
            let _ = tx.send(rest);
        }
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let max_bytes = match &args.bytes {
        Some(b) => parse_size(b)?,
        None if args.lines.is_some() => u64::MAX,
        None => 100_000_000,
    };
    let max_lines = args.lines.unwrap_or(u64::MAX);
    let mut g = Generator::new(Config {
        seed: args.seed,
        lines_per_sec: args.rate,
        ..Config::default()
    });
    let streams = g.streams().to_vec();
    let mut line = Line::default();
    let (mut n, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut next = |g: &mut Generator, line: &mut Line| {
        if n >= max_lines || bytes >= max_bytes {
            return false;
        }
        g.next_line(line);
        n += 1;
        bytes += line.text.len() as u64 + 1;
        true
    };
    match args.cmd {
        Cmd::Files { dir } => {
            let mut sink = FileSink::new(&dir, &streams)?;
            while next(&mut g, &mut line) {
                sink.write(&streams, &line)?;
            }
            sink.finish()?;
        }
        Cmd::Stdout => {
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, out.lock());
            while next(&mut g, &mut line) {
                if writeln!(out, "{}", line.text).is_err() {
                    // A closed pipe (`| head`) ends the run quietly.
                    return Ok(());
                }
            }
            let _ = out.flush();
        }
        Cmd::Syslog { addr } => {
            let n_conn = args.connections.max(1);
            fan_out(n_conn, &streams, &mut g, &mut line, &mut next, |_| {
                let mut tx = SyslogSender::connect(&addr)?;
                Ok(move |streams: &[Stream], lines: &[Line]| -> Result<()> {
                    if lines.is_empty() {
                        return Ok(tx.flush()?);
                    }
                    for l in lines {
                        tx.send(&streams[l.stream], l)?;
                    }
                    Ok(())
                })
            })?;
        }
        Cmd::Loki {
            addr,
            protobuf,
            token,
            batch,
        } => {
            let batch = usize::try_from(parse_size(&batch)?).context("batch size")?;
            let n_conn = args.connections.max(1);
            let n_streams = streams.len();
            fan_out(n_conn, &streams, &mut g, &mut line, &mut next, |_| {
                let mut tx = LokiSender::connect(&addr, n_streams, token.clone(), batch)?;
                if protobuf {
                    tx = tx.protobuf();
                }
                Ok(move |streams: &[Stream], lines: &[Line]| -> Result<()> {
                    if lines.is_empty() {
                        return Ok(tx.flush(streams)?);
                    }
                    for l in lines {
                        tx.send(streams, l)?;
                    }
                    Ok(())
                })
            })?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "bongsu-loggen: {n} lines, {bytes} bytes in {secs:.2} s ({:.0} lines/s, {:.1} MB/s); rare token {}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        g.last_rare_token()
    );
    Ok(())
}
