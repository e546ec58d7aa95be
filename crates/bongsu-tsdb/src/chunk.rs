//! Gorilla/XOR chunk: delta-of-delta timestamps and XOR-compressed float bits.
//!
//! Layout (see docs/formats/tsdb.md, "XOR chunk"): a little-endian `u16` sample count
//! followed by a bit stream written most-significant bit first. Values are stored as raw
//! `f64` bits, so NaN payloads, ±Inf and the staleness marker survive bit-exactly.

/// Samples per head chunk before it is closed (and packed, see `packed.rs`) and a new one
/// opened: 16 minutes at a 15 s interval, so that most of a 2-hour head is packed.
pub(crate) const MAX_CHUNK_SAMPLES: u16 = 64;
/// Bytes a new chunk allocates at once.
const INITIAL_BYTES: usize = 64;

/// Writes bits into a chunk's buffer. A borrowed view, so that the chunk keeps `used` beside
/// its other small fields (a struct of a `Vec` and a `u8` would take 32 bytes).
struct BitWriter<'a> {
    bytes: &'a mut Vec<u8>,
    /// Bits used in the last byte (0 means the last byte is full or there is none).
    used: &'a mut u8,
}

impl BitWriter<'_> {
    /// Adds a zero byte, growing the buffer in small steps: head chunks stay small and
    /// doubling would waste up to half of each open chunk.
    fn push_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(32);
        }
        self.bytes.push(0);
    }

    fn write_bit(&mut self, bit: bool) {
        if *self.used == 0 {
            self.push_byte();
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 0x80 >> *self.used;
            }
        }
        *self.used = (*self.used + 1) % 8;
    }

    /// Writes the low `n` bits of `v`, most significant first.
    fn write_bits(&mut self, v: u64, n: u8) {
        let mut n = n;
        while n > 0 {
            if *self.used == 0 {
                self.push_byte();
            }
            let free = 8 - *self.used;
            let take = free.min(n);
            let shift = n - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (free - take);
            }
            *self.used = (*self.used + take) % 8;
            n -= take;
        }
    }
}

pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    fn read_bits(&mut self, n: u8) -> Option<u64> {
        let mut v = 0u64;
        let mut n = n;
        while n > 0 {
            let byte = *self.bytes.get(self.pos / 8)?;
            let off = (self.pos % 8) as u8;
            let avail = 8 - off;
            let take = avail.min(n);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            v = (v << take) | u64::from(bits);
            self.pos += usize::from(take);
            n -= take;
        }
        Some(v)
    }
}

/// An appendable Gorilla/XOR chunk of `(timestamp ms, f64)` samples. Timestamps must be
/// strictly increasing; the head checks this before appending.
#[derive(Debug, Clone)]
pub struct XorChunk {
    bytes: Vec<u8>,
    /// Bits used in the last byte (see [`BitWriter`]).
    used: u8,
    count: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    pub fn new() -> Self {
        // Room for about 20 samples of a varying series (a constant one needs 2 bits per
        // sample) so that a new chunk does not grow 2, 4, 8, 16, 32 bytes one at a time.
        let mut bytes = Vec::with_capacity(INITIAL_BYTES);
        bytes.extend_from_slice(&[0, 0]);
        Self {
            bytes,
            ..Self::new_state()
        }
    }

    /// An empty chunk's state around a buffer that is set by the caller.
    fn new_state() -> Self {
        Self {
            bytes: Vec::new(),
            used: 0,
            count: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    fn writer(&mut self) -> BitWriter<'_> {
        BitWriter {
            bytes: &mut self.bytes,
            used: &mut self.used,
        }
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    /// Empties the chunk for reuse, keeping its buffer: the head closes a chunk every 64
    /// samples and the next one of the same series needs about as many bytes. A buffer
    /// more than twice what the closed chunk used is shrunk to that.
    pub(crate) fn reset(&mut self) {
        let used = self.bytes.len();
        self.bytes.clear();
        if self.bytes.capacity() > 2 * used.max(INITIAL_BYTES) {
            self.bytes.shrink_to(used.max(INITIAL_BYTES));
        }
        self.bytes.extend_from_slice(&[0, 0]);
        let bytes = std::mem::take(&mut self.bytes);
        *self = Self {
            bytes,
            ..Self::new_state()
        };
    }

    /// The first sample's timestamp (0 when empty): the first 64 bits of the stream, not a
    /// field, to keep the head's per-series struct small.
    pub(crate) fn min_t(&self) -> i64 {
        first_timestamp(&self.bytes).unwrap_or(0)
    }

    pub(crate) fn max_t(&self) -> i64 {
        self.t
    }

    /// The encoded bytes (header + bit stream).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bytes.capacity()
    }

    /// Appends one sample; returns `false` (and stores nothing) when the chunk already
    /// holds `u16::MAX` samples. Any timestamp sequence round-trips (arithmetic wraps), but
    /// chunks are only compact for increasing, regular timestamps.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        if self.count == u16::MAX {
            return false;
        }
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.writer().write_bits(t as u64, 64);
                self.writer().write_bits(vb, 64);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                self.write_dod(dod);
                self.write_xor(vb);
                self.delta = delta;
            }
        }
        self.t = t;
        self.v = vb;
        self.count += 1;
        let [a, b] = self.count.to_le_bytes();
        self.bytes[0] = a;
        self.bytes[1] = b;
        true
    }

    fn write_dod(&mut self, dod: i64) {
        let mut w = BitWriter {
            bytes: &mut self.bytes,
            used: &mut self.used,
        };
        let fits = |bits: u32| {
            let lim = 1i64 << (bits - 1);
            (-lim..lim).contains(&dod)
        };
        if dod == 0 {
            w.write_bit(false);
        } else if fits(7) {
            w.write_bits(0b10, 2);
            w.write_bits(dod as u64, 7);
        } else if fits(14) {
            w.write_bits(0b110, 3);
            w.write_bits(dod as u64, 14);
        } else if fits(20) {
            w.write_bits(0b1110, 4);
            w.write_bits(dod as u64, 20);
        } else {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }

    fn write_xor(&mut self, vb: u64) {
        let xor = vb ^ self.v;
        let mut w = BitWriter {
            bytes: &mut self.bytes,
            used: &mut self.used,
        };
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(xor >> self.trailing, sig);
        } else {
            w.write_bit(true);
            let sig = 64 - leading - trailing;
            w.write_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0 (they cannot be 0 otherwise).
            w.write_bits(u64::from(sig % 64), 6);
            w.write_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.bytes)
    }
}

/// The first timestamp of a chunk's bytes (the first 64 bits after the count); `None` when
/// the chunk is empty or too short.
pub(crate) fn first_timestamp(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [a, b, rest @ ..] if u16::from_le_bytes([*a, *b]) > 0 => {
            let mut w = [0u8; 8];
            w.copy_from_slice(rest.get(..8)?);
            Some(i64::from_be_bytes(w))
        }
        _ => None,
    }
}

/// Decodes a chunk's bytes. Stops (returning `None`) at the end or at the first malformed
/// bit; [`XorIter::is_corrupt`] tells the two apart. Never panics on arbitrary input.
pub struct XorIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    first: bool,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    corrupt: bool,
}

impl<'a> XorIter<'a> {
    /// Decodes chunk bytes as returned by [`XorChunk::bytes`].
    pub fn new(bytes: &'a [u8]) -> Self {
        let (count, corrupt) = match bytes {
            [a, b, ..] => (u16::from_le_bytes([*a, *b]), false),
            _ => (0, true),
        };
        Self {
            r: BitReader::new(bytes.get(2..).unwrap_or(&[])),
            remaining: count,
            first: true,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            corrupt,
        }
    }

    fn next_inner(&mut self) -> Option<(i64, f64)> {
        if self.first {
            self.first = false;
            self.t = self.r.read_bits(64)? as i64;
            self.v = self.r.read_bits(64)?;
            return Some((self.t, f64::from_bits(self.v)));
        }
        let dod = if !self.r.read_bit()? {
            0
        } else if !self.r.read_bit()? {
            sign_extend(self.r.read_bits(7)?, 7)
        } else if !self.r.read_bit()? {
            sign_extend(self.r.read_bits(14)?, 14)
        } else if !self.r.read_bit()? {
            sign_extend(self.r.read_bits(20)?, 20)
        } else {
            self.r.read_bits(64)? as i64
        };
        self.delta = self.delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.delta);
        if self.r.read_bit()? {
            if self.r.read_bit()? {
                self.leading = self.r.read_bits(5)? as u8;
                let sig = self.r.read_bits(6)? as u8;
                let sig = if sig == 0 { 64 } else { sig };
                if u32::from(self.leading) + u32::from(sig) > 64 {
                    return None;
                }
                self.trailing = 64 - self.leading - sig;
            }
            let sig = 64 - self.leading - self.trailing;
            let bits = self.r.read_bits(sig)?;
            let xor = if self.trailing >= 64 {
                0
            } else {
                bits << self.trailing
            };
            self.v ^= xor;
        }
        Some((self.t, f64::from_bits(self.v)))
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 || self.corrupt {
            return None;
        }
        match self.next_inner() {
            Some(s) => {
                self.remaining -= 1;
                Some(s)
            }
            None => {
                self.corrupt = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn encode(samples: &[(i64, u64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            assert!(c.append(t, f64::from_bits(v)));
        }
        c
    }

    #[test]
    fn special_values_survive_bit_exactly() {
        let vals = [
            STALE_NAN_BITS,
            f64::NAN.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            0,
            (-0.0f64).to_bits(),
            1.5f64.to_bits(),
            0x7ff8_dead_beef_0001,
        ];
        let samples: Vec<_> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (1_000 + 15_000 * i as i64, v))
            .collect();
        let c = encode(&samples);
        let got: Vec<_> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, samples);
        assert_eq!(c.min_t(), 1_000);
        assert_eq!(c.max_t(), 1_000 + 15_000 * 7);
    }

    #[test]
    fn regular_series_is_small() {
        let samples: Vec<_> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, (100.0 + i as f64).to_bits()))
            .collect();
        let c = encode(&samples);
        assert!(c.bytes().len() < 120 * 3, "{} bytes", c.bytes().len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(start in any::<i64>(), deltas in proptest::collection::vec(
            prop_oneof![Just(15_000i64), 14_990i64..15_010, 1i64..100_000, 1i64..i64::MAX / 200], 0..200),
            vals in proptest::collection::vec(prop_oneof![
                any::<u64>(), Just(STALE_NAN_BITS), Just(f64::INFINITY.to_bits()),
                (0u32..1000).prop_map(|x| f64::from(x).to_bits())], 200)) {
            let mut t = start;
            let mut samples = Vec::new();
            for (d, v) in deltas.iter().zip(vals) {
                samples.push((t, v));
                match t.checked_add(*d) { Some(n) => t = n, None => break }
            }
            let c = encode(&samples);
            let got: Vec<_> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(&got, &samples);
            // A chunk reset after other samples encodes the same bytes as a new one.
            let mut reused = encode(&[(7, 1.5f64.to_bits()), (9, u64::MAX), (1 << 40, 3)]);
            reused.reset();
            prop_assert_eq!(reused.count(), 0);
            for &(t, v) in &samples {
                prop_assert!(reused.append(t, f64::from_bits(v)));
            }
            prop_assert_eq!(reused.bytes(), c.bytes());
            prop_assert_eq!((reused.min_t(), reused.max_t()), (c.min_t(), c.max_t()));
            prop_assert_eq!(first_timestamp(c.bytes()), samples.first().map(|x| x.0));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let n = XorIter::new(&bytes).count();
            prop_assert!(n <= usize::from(u16::MAX));
        }
    }
}
