//! A deterministic generator of realistic mixed logs for bongsu's benchmarks and load tests.
//!
//! [`Generator`] yields [`Line`]s of syslog daemons, web access logs, JSON application logs and
//! multi-line Java and Python stack traces, with Zipf-distributed vocabularies and random rare
//! ids, from a seed. [`FileSink`] writes them to one file per stream, [`SyslogSender`] sends them
//! as RFC 5424 over TCP with octet counting, and [`LokiSender`] pushes them to a Loki-compatible
//! push endpoint. The `bongsu-loggen` binary drives all three.

mod error;
mod gen;
mod rng;
mod sink;
mod time;

pub use error::{Error, Result};
pub use gen::{Config, Generator, Line, Source, Stream};
pub use sink::{rfc5424, FileSink, LokiSender, SyslogSender};

/// Parses a size such as `1500`, `64K`, `10M`, `10G` (powers of 1000) or `1GiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        Error::Invalid(format!(
            "size {s:?}: expected a number and a unit such as 10G"
        ))
    })?;
    let mul: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        _ => {
            return Err(Error::Invalid(format!(
                "size {s:?}: unknown unit, use K, M, G (powers of 1000) or KiB, MiB, GiB"
            )))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| Error::Invalid(format!("size {s:?} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("64k").unwrap(), 64_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
    }
}
