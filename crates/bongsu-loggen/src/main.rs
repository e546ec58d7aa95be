//! `bongsu-loggen`: writes generated logs to files or stdout, or sends them over syslog TCP or
//! the Loki push API.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use bongsu_loggen::{parse_size, Config, FileSink, Generator, Line, LokiSender, SyslogSender};
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
    /// Loki push API (JSON) to ADDR (`host:port`).
    Loki {
        addr: String,
        /// Bearer token.
        #[arg(long, env = "BONGSU_TOKEN")]
        token: Option<String>,
        /// Bytes of lines per push request.
        #[arg(long, default_value = "1M")]
        batch: String,
    },
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
            let mut tx = SyslogSender::connect(&addr)?;
            while next(&mut g, &mut line) {
                tx.send(&streams[line.stream], &line)?;
            }
            tx.flush()?;
        }
        Cmd::Loki { addr, token, batch } => {
            let batch = usize::try_from(parse_size(&batch)?).context("batch size")?;
            let mut tx = LokiSender::connect(&addr, streams.len(), token, batch)?;
            while next(&mut g, &mut line) {
                tx.send(&streams, &line)?;
            }
            tx.flush(&streams)?;
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
