//! Timestamp formatting without a calendar dependency.

/// Formats Unix milliseconds as RFC 3339 in UTC with millisecond precision, e.g.
/// `2026-11-22T00:03:26.123Z`.
///
/// ```
/// assert_eq!(bongsu_state::format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(bongsu_state::format_rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
/// ```
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let h = in_day / 3_600_000;
    let min = (in_day / 60_000) % 60;
    let s = (in_day / 1000) % 60;
    let milli = in_day % 1000;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::format_rfc3339_ms;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_795_305_806_123),
            "2026-11-22T00:03:26.123Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339_ms(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
