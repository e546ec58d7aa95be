/// The bit pattern Prometheus uses for a staleness marker: a NaN that is not the
/// usual quiet NaN, so that a real NaN sample and "this series ended" stay distinct.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker (compares bits, not values: every NaN != NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One metric value at a millisecond Unix timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
}

impl Sample {
    pub fn new(timestamp_ms: i64, value: f64) -> Self {
        Self {
            timestamp_ms,
            value,
        }
    }

    /// A staleness marker at `timestamp_ms`.
    pub fn stale(timestamp_ms: i64) -> Self {
        Self::new(timestamp_ms, f64::from_bits(STALE_NAN_BITS))
    }

    pub fn is_stale(&self) -> bool {
        is_stale_nan(self.value)
    }
}

/// Samples are equal when timestamps match and values are bit-identical, so NaN
/// samples (and staleness markers) compare equal to themselves.
impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.timestamp_ms == other.timestamp_ms && self.value.to_bits() == other.value.to_bits()
    }
}

impl Eq for Sample {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_distinct_from_plain_nan() {
        assert!(Sample::stale(5).is_stale());
        assert!(!Sample::new(5, f64::NAN).is_stale());
        assert!(Sample::stale(5).value.is_nan());
        assert_eq!(Sample::stale(5), Sample::stale(5));
        assert_ne!(Sample::stale(5), Sample::new(5, f64::NAN));
    }
}
