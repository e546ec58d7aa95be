//! Calendar arithmetic and the timestamp styles real log formats use (all UTC).

use std::fmt::Write;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down UTC time of one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) min: u32,
    pub(crate) sec: u32,
}

impl Civil {
    /// From seconds since the Unix epoch (Howard Hinnant's `civil_from_days`).
    pub(crate) fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: rem / 3600,
            min: (rem / 60) % 60,
            sec: rem % 60,
        }
    }

    /// `Nov 22 02:53:21` (the BSD syslog / RFC 3164 file style).
    pub(crate) fn bsd(&self, out: &mut String) {
        let _ = write!(
            out,
            "{} {:2} {:02}:{:02}:{:02}",
            MONTHS[(self.month - 1) as usize],
            self.day,
            self.hour,
            self.min,
            self.sec
        );
    }

    /// `22/Nov/2026:02:53:21 +0000` (the common/combined access log style).
    pub(crate) fn clf(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            self.day,
            MONTHS[(self.month - 1) as usize],
            self.year,
            self.hour,
            self.min,
            self.sec
        );
    }

    /// `2026-11-22T02:53:21` (ISO 8601 without fraction or zone); `sep` replaces the `T`.
    pub(crate) fn iso(&self, sep: char, out: &mut String) {
        let _ = write!(
            out,
            "{}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.min, self.sec
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2026-11-22T02:53:21Z
        let c = Civil::from_unix(1_795_316_001);
        assert_eq!(
            c,
            Civil {
                year: 2026,
                month: 11,
                day: 22,
                hour: 2,
                min: 53,
                sec: 21
            }
        );
        let mut s = String::new();
        c.bsd(&mut s);
        s.push('|');
        c.clf(&mut s);
        s.push('|');
        c.iso('T', &mut s);
        assert_eq!(
            s,
            "Nov 22 02:53:21|22/Nov/2026:02:53:21 +0000|2026-11-22T02:53:21"
        );
        assert_eq!(
            Civil::from_unix(951_782_400),
            Civil {
                year: 2000,
                month: 2,
                day: 29,
                hour: 0,
                min: 0,
                sec: 0
            }
        );
        assert_eq!(Civil::from_unix(0).year, 1970);
    }
}
