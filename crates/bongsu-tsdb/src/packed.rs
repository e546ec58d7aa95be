//! Packed head chunks: the in-memory form of a closed head chunk whose values are all
//! decimals with at most six digits after the point (counters, byte counts, gauges exported
//! with a few decimals: nearly all of node_exporter's series).
//!
//! A Gorilla/XOR chunk spends 20-50 bits per sample on such values: the XOR of two doubles
//! whose integer parts differ by a little noise still has most mantissa bits set. Here
//! timestamps and the values' integer mantissas `m` (value = `m / 10^e`) are stored as a
//! first value and deltas packed with a frame of reference: the smallest delta, then every
//! delta minus it in the bit width of the largest difference. A regular 15 s series costs
//! about nothing for its timestamps; a counter whose increments vary within `J` costs about
//! `log2(J) + 1` bits per sample. Packing and unpacking are a few nanoseconds per sample, so
//! the head can repack chunks when it rebuilds them.
//!
//! Layout (memory only, never written to disk): `u16` count (LE), `u8` decimal exponent `e`,
//! then the timestamp column, then the mantissa column, each as: zig-zag varint first
//! value, zig-zag varint smallest delta, `u8` width `w`, then `count - 1` values of `w` bits
//! packed least significant bit first. A column of one value stops after its first value.

use crate::codec::{put_varint, Cursor};

/// Largest decimal exponent tried.
const MAX_DECIMALS: u8 = 6;
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// Puts into `out` the mantissas when every value is exactly `m / 10^e` (bit for bit) with
/// `|m| < 2^53`; `false` when one is not.
fn as_decimals(v: &[(i64, f64)], e: u8, out: &mut Vec<i64>) -> bool {
    let scale = POW10[usize::from(e)];
    out.clear();
    for &(_, x) in v {
        let m = (x * scale).round();
        if !m.is_finite() || m.abs() >= 9_007_199_254_740_992.0 {
            return false;
        }
        let m = m as i64;
        if (m as f64 / scale).to_bits() != x.to_bits() {
            return false;
        }
        out.push(m);
    }
    true
}

/// Packs time-sorted samples; `None` when a value is not a short decimal (NaN, staleness
/// markers, full-precision floats) or there are no samples.
#[cfg(test)]
pub(crate) fn pack(samples: &[(i64, f64)]) -> Option<Box<[u8]>> {
    let mut out = Vec::new();
    pack_into(samples, &mut PackScratch::default(), &mut out).then(|| out.into_boxed_slice())
}

/// Buffers [`pack_into`] reuses: the head packs a chunk every 64 samples of every series.
#[derive(Debug, Default)]
pub(crate) struct PackScratch {
    mantissas: Vec<i64>,
    timestamps: Vec<i64>,
}

/// [`pack`] into `out` (cleared first) with reused buffers; `false` (and `out` unspecified)
/// when the samples cannot be packed.
pub(crate) fn pack_into(
    samples: &[(i64, f64)],
    scratch: &mut PackScratch,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    if samples.is_empty() || samples.len() > usize::from(u16::MAX) {
        return false;
    }
    // One buffer for every exponent tried.
    let m = &mut scratch.mantissas;
    let Some(e) = (0..=MAX_DECIMALS).find(|&e| as_decimals(samples, e, m)) else {
        return false;
    };
    out.extend_from_slice(&(samples.len() as u16).to_le_bytes());
    out.push(e);
    scratch.timestamps.clear();
    scratch.timestamps.extend(samples.iter().map(|s| s.0));
    put_column(out, &scratch.timestamps);
    put_column(out, m);
    true
}

fn put_column(out: &mut Vec<u8>, v: &[i64]) {
    put_varint(out, v[0]);
    if v.len() < 2 {
        return;
    }
    let deltas = v.windows(2).map(|w| w[1].wrapping_sub(w[0]));
    let min = deltas.clone().min().unwrap_or(0);
    let range = deltas
        .clone()
        .map(|d| d.wrapping_sub(min) as u64)
        .max()
        .unwrap_or(0);
    let width = (64 - range.leading_zeros()) as u8;
    put_varint(out, min);
    out.push(width);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for d in deltas {
        acc |= u128::from(d.wrapping_sub(min) as u64) << bits;
        bits += u32::from(width);
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

fn get_column(c: &mut Cursor<'_>, n: usize) -> Option<Vec<i64>> {
    let first = c.varint()?;
    let mut out = Vec::with_capacity(n);
    out.push(first);
    if n < 2 {
        return Some(out);
    }
    let min = c.varint()?;
    let width = u32::from(c.u8()?);
    if width > 64 {
        return None;
    }
    let nbytes = ((n - 1) * width as usize).div_ceil(8);
    let packed = c.bytes(nbytes)?;
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    let mut bytes = packed.iter();
    let mut prev = first;
    for _ in 1..n {
        while bits < width {
            acc |= u128::from(*bytes.next()?) << bits;
            bits += 8;
        }
        let d = ((acc as u64) & mask) as i64;
        acc = if width == 0 { acc } else { acc >> width };
        bits -= width;
        prev = prev.wrapping_add(min.wrapping_add(d));
        out.push(prev);
    }
    Some(out)
}

/// The first timestamp of bytes made by [`pack`] (the head keeps no other copy of it); `None`
/// if they are malformed.
pub(crate) fn first_timestamp(bytes: &[u8]) -> Option<i64> {
    let mut c = Cursor::new(bytes);
    c.u16()?;
    c.u8()?;
    c.varint()
}

/// Unpacks bytes made by [`pack`]; `None` if they are malformed. Never panics.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Vec<(i64, f64)>> {
    let mut c = Cursor::new(bytes);
    let n = usize::from(c.u16()?);
    let e = c.u8()?;
    if n == 0 || e > MAX_DECIMALS {
        return None;
    }
    let ts = get_column(&mut c, n)?;
    let m = get_column(&mut c, n)?;
    if c.remaining() != 0 {
        return None;
    }
    let scale = POW10[usize::from(e)];
    Some(
        ts.into_iter()
            .zip(m)
            .map(|(t, m)| (t, m as f64 / scale))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(v: &[(i64, f64)]) -> Vec<(i64, u64)> {
        v.iter().map(|&(t, x)| (t, x.to_bits())).collect()
    }

    #[test]
    fn regular_counter_is_small_and_exact() {
        // a CPU-seconds counter with two decimals and 15 s scrapes jittering by a few ms
        let s: Vec<(i64, f64)> = (0..120i64)
            .map(|i| {
                let t = 1_700_000_000_000 + i * 15_000 + (i * 7) % 5;
                (t, (123_456_789 + i * 1_000 + (i * 37) % 300) as f64 / 100.0)
            })
            .collect();
        let p = pack(&s).unwrap();
        // timestamps: 4 bits per delta; values: 10 bits (increments vary within 600)
        assert!(p.len() <= 3 + 8 + 3 + 60 + 8 + 3 + 149, "{} bytes", p.len());
        let mut xor = crate::chunk::XorChunk::new();
        for &(t, v) in &s {
            assert!(xor.append(t, v));
        }
        assert!(
            p.len() * 2 < xor.bytes().len(),
            "{} vs {}",
            p.len(),
            xor.bytes().len()
        );
        assert_eq!(bits(&unpack(&p).unwrap()), bits(&s));
        // a constant is a few bytes
        let c: Vec<(i64, f64)> = (0..120i64).map(|i| (i * 15_000, 4096.0)).collect();
        let p = pack(&c).unwrap();
        assert!(p.len() < 16, "{} bytes", p.len());
        assert_eq!(bits(&unpack(&p).unwrap()), bits(&c));
    }

    #[test]
    fn non_decimals_are_not_packed() {
        assert!(pack(&[(1, f64::NAN)]).is_none());
        assert!(pack(&[(1, 0.1), (2, std::f64::consts::PI)]).is_none());
        assert!(pack(&[]).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(start in any::<i64>(), steps in proptest::collection::vec(
                (prop_oneof![Just(15_000i64), 14_990i64..15_010, any::<i64>()],
                 prop_oneof![any::<i64>().prop_map(|m| (m >> 11) as f64),
                             (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 1000.0),
                             Just(0.0), Just(-0.0)]), 1..300)) {
            let mut t = start;
            let s: Vec<(i64, f64)> = steps.iter().map(|&(d, v)| { let x = (t, v); t = t.wrapping_add(d); x }).collect();
            if let Some(p) = pack(&s) {
                prop_assert_eq!(bits(&unpack(&p).unwrap()), bits(&s));
                prop_assert_eq!(first_timestamp(&p), s.first().map(|x| x.0));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(v) = unpack(&b) {
                prop_assert!(v.len() <= usize::from(u16::MAX));
            }
        }
    }
}
