//! The timex collector: the kernel clock discipline state from `adjtimex(2)` (read only),
//! with node_exporter 1.5's names, HELP texts and arithmetic (its `timex.go`).

use crate::metrics::Metrics;
use crate::{Error, Result};

/// `adjtimex` returns this state when the clock is not synchronized (TIME_ERROR).
const TIME_ERROR: i32 = 5;
/// `status` bit: `offset` and `jitter` are in nanoseconds instead of microseconds.
const STA_NANO: i64 = 0x2000;
const NANOSECONDS: f64 = 1e9;
const MICROSECONDS: f64 = 1e6;
/// `freq`, `ppsfreq` and `stabil` are ppm with a 16-bit binary fraction (adjtimex(2), NOTES).
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

/// The `struct timex` fields node_exporter reports, as read from the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timex {
    /// What `adjtimex` returned: the clock state (TIME_OK … TIME_ERROR).
    pub(crate) state: i32,
    pub(crate) offset: i64,
    pub(crate) freq: i64,
    pub(crate) maxerror: i64,
    pub(crate) esterror: i64,
    pub(crate) status: i64,
    pub(crate) constant: i64,
    pub(crate) tick: i64,
    pub(crate) ppsfreq: i64,
    pub(crate) jitter: i64,
    pub(crate) shift: i64,
    pub(crate) stabil: i64,
    pub(crate) jitcnt: i64,
    pub(crate) calcnt: i64,
    pub(crate) errcnt: i64,
    pub(crate) stbcnt: i64,
    pub(crate) tai: i64,
}

/// Reads the kernel clock state without changing it (`modes == 0`).
pub(crate) fn read() -> Result<Timex> {
    let mut tx = rtime_clock::adjtime::Timex::new();
    let state = rtime_clock::adjtime::adjtimex(&mut tx).map_err(|source| Error::Syscall {
        call: "adjtimex",
        collector: "timex",
        source,
    })?;
    let t = &tx.0;
    Ok(Timex {
        state,
        offset: wide(t.offset),
        freq: wide(t.freq),
        maxerror: wide(t.maxerror),
        esterror: wide(t.esterror),
        status: wide(t.status),
        constant: wide(t.constant),
        tick: wide(t.tick),
        ppsfreq: wide(t.ppsfreq),
        jitter: wide(t.jitter),
        shift: wide(t.shift),
        stabil: wide(t.stabil),
        jitcnt: wide(t.jitcnt),
        calcnt: wide(t.calcnt),
        errcnt: wide(t.errcnt),
        stbcnt: wide(t.stbcnt),
        tai: wide(t.tai),
    })
}

/// A `struct timex` field (C `long` or `int`, by platform) as i64.
fn wide<T: Into<i64>>(v: T) -> i64 {
    v.into()
}

/// node_exporter's `node_timex_*` families from one reading.
pub(crate) fn metrics(t: &Timex, out: &mut Metrics) {
    let divisor = if t.status & STA_NANO != 0 {
        NANOSECONDS
    } else {
        MICROSECONDS
    };
    let sync = if t.state == TIME_ERROR { 0.0 } else { 1.0 };
    let gauges: [(&str, &str, f64); 13] = [
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            sync,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            t.offset as f64 / divisor,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + t.freq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            t.maxerror as f64 / MICROSECONDS,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            t.esterror as f64 / MICROSECONDS,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            t.status as f64,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            t.constant as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            t.tick as f64 / MICROSECONDS,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            t.ppsfreq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            t.jitter as f64 / divisor,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            t.shift as f64,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            t.stabil as f64 / PPM16FRAC,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            t.tai as f64,
        ),
    ];
    for (name, help, v) in gauges {
        out.gauge(name, help, &[], v);
    }
    let counters: [(&str, &str, i64); 4] = [
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            t.jitcnt,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            t.calcnt,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            t.errcnt,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            t.stbcnt,
        ),
    ];
    for (name, help, v) in counters {
        out.counter(name, help, &[], v as f64);
    }
}

pub(crate) fn collect(out: &mut Metrics) -> Result<()> {
    metrics(&read()?, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Metrics, name: &str) -> f64 {
        let text = m.to_exposition();
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{name} missing in {text}"));
        line[name.len() + 1..].parse().unwrap()
    }

    fn assert_close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{got} != {want}"
        );
    }

    #[test]
    fn arithmetic_follows_node_exporter() {
        let t = Timex {
            state: 0,
            offset: -1500,
            freq: 655_360, // 10 ppm
            maxerror: 16_000,
            esterror: 250,
            status: 0x0001,
            constant: 7,
            tick: 10_000,
            ppsfreq: 65_536,
            jitter: 3000,
            shift: 4,
            stabil: 131_072,
            jitcnt: 1,
            calcnt: 2,
            errcnt: 3,
            stbcnt: 4,
            tai: 37,
        };
        let mut m = Metrics::default();
        metrics(&t, &mut m);
        assert_close(value(&m, "node_timex_sync_status"), 1.0);
        assert_close(value(&m, "node_timex_offset_seconds"), -0.0015);
        assert_close(value(&m, "node_timex_frequency_adjustment_ratio"), 1.00001);
        assert_close(value(&m, "node_timex_maxerror_seconds"), 0.016);
        assert_close(value(&m, "node_timex_estimated_error_seconds"), 0.00025);
        assert_close(value(&m, "node_timex_tick_seconds"), 0.01);
        assert_close(value(&m, "node_timex_pps_frequency_hertz"), 1e-6);
        assert_close(value(&m, "node_timex_pps_jitter_seconds"), 0.003);
        assert_close(value(&m, "node_timex_pps_stability_hertz"), 2e-6);
        assert_close(value(&m, "node_timex_pps_shift_seconds"), 4.0);
        assert_close(value(&m, "node_timex_tai_offset_seconds"), 37.0);
        assert_close(value(&m, "node_timex_pps_stability_exceeded_total"), 4.0);
        // STA_NANO: offset and jitter in nanoseconds; TIME_ERROR: not synchronized.
        let nano = Timex {
            state: TIME_ERROR,
            status: STA_NANO,
            offset: 2_000_000,
            jitter: 500,
            ..t
        };
        let mut m = Metrics::default();
        metrics(&nano, &mut m);
        assert_close(value(&m, "node_timex_sync_status"), 0.0);
        assert_close(value(&m, "node_timex_offset_seconds"), 0.002);
        assert_close(value(&m, "node_timex_pps_jitter_seconds"), 5e-7);
        assert_close(value(&m, "node_timex_status"), 8192.0);
    }

    #[test]
    fn the_kernel_answers_a_read_only_query() {
        let t = read().unwrap();
        // USER_HZ ticks: the tick length is 1e6 / HZ microseconds, never zero.
        assert!(t.tick > 0, "{t:?}");
        let mut m = Metrics::default();
        metrics(&t, &mut m);
        assert!(value(&m, "node_timex_tick_seconds") > 0.0);
    }
}
