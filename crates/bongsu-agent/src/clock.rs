use std::time::{SystemTime, UNIX_EPOCH};

/// Where the agent gets wall-clock time, so tests can drive timers (multi-line flush
/// timeouts, sample timestamps) without sleeping.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now_ns().div_euclid(1_000_000)
    }
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(now_ns: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now_ns))
    }

    pub fn set_ns(&self, now_ns: i64) {
        self.0.store(now_ns, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0
            .fetch_add(ms * 1_000_000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
