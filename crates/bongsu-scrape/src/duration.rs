//! Prometheus's duration (`1m30s`, `100ms`, `2d`) and byte size (`10MB`) notations.

use std::time::Duration;

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration: units `y w d h m s ms` in this order, each at most once,
/// whole numbers only (`1h30m`, `15s`, `500ms`); `"0"` is zero.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {s:?}: write e.g. \"15s\", \"1m30s\", \"500ms\" (units y w d h m s ms)")
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let pos = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?;
        let (_, ms) = UNITS[next_unit + pos];
        next_unit += pos + 1;
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as Prometheus does (`1m30s`; years and weeks only when exact).
pub(crate) fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, mult) in UNITS {
        let exact_only = unit == "y" || unit == "w";
        if exact_only && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// Parses a byte size as Prometheus's `body_size_limit` does: a whole number and a unit
/// among `B KB MB GB TB` (or `KiB MiB GiB TiB`), all powers of 1024; `"0"` means no limit.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: write e.g. \"10MB\", \"512KiB\", \"0\"");
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match &s[digits..] {
        "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        let ms = |s: &str| parse_duration(s).map(|d| d.as_millis() as u64);
        assert_eq!(ms("15s"), Ok(15_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1h1ms"), Ok(3_600_001));
        assert_eq!(ms("2d"), Ok(2 * 86_400_000));
        assert_eq!(ms("0"), Ok(0));
        for bad in ["", "1", "s", "1x", "30s1m", "1s1s", "-1s", "1.5s", " 1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_like_prometheus() {
        let f = |ms: u64| format_duration(Duration::from_millis(ms));
        assert_eq!(f(15_000), "15s");
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(60_000), "1m");
        assert_eq!(f(100), "100ms");
        assert_eq!(f(0), "0s");
        assert_eq!(f(8 * 86_400_000), "8d");
        assert_eq!(f(14 * 86_400_000), "2w");
        for ms in [1, 999, 1500, 61_001, 3_600_000, 90 * 86_400_000] {
            assert_eq!(parse_duration(&f(ms)).unwrap().as_millis() as u64, ms);
        }
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("10MB"), Ok(10 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("100B"), Ok(100));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("10").is_err());
        assert!(parse_bytes("1.5MB").is_err());
        assert!(parse_bytes("10mb").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn format_then_parse_round_trips(ms in 0u64..(1 << 45)) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,12}") {
            let _ = parse_duration(&s);
            let _ = parse_bytes(&s);
        }
    }
}
