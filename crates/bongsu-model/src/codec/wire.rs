//! Primitive readers and writers shared by the record codecs.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::error::{RecordError, RecordResult};

/// Bounds applied while decoding untrusted record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most bytes of label names and values that symbol references may expand to in one
    /// record. Symbols are stored once but may be referenced many times; this bounds the
    /// memory a small record can make the decoder allocate. Default 256 MiB.
    pub max_expanded_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_expanded_bytes: 256 << 20,
        }
    }
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over untrusted bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    expanded: usize,
    limits: DecodeLimits,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], limits: DecodeLimits) -> Self {
        Self {
            buf,
            pos: 0,
            expanded: 0,
            limits,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> RecordResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(RecordError::Truncated {
                offset: self.pos,
                expected: n,
                found: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> RecordResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64_le(&mut self) -> RecordResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> RecordResult<u64> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(RecordError::BadVarint { offset: start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::BadVarint { offset: start })
    }

    /// Reads a count of elements that each take at least `min_size` bytes, refusing
    /// counts the remaining bytes cannot hold (so `Vec::with_capacity(count)` is bounded).
    pub(crate) fn count(&mut self, what: &'static str, min_size: usize) -> RecordResult<usize> {
        let offset = self.pos;
        let count = self.uvarint()?;
        let remaining = self.remaining();
        let fits = count
            .checked_mul(min_size.max(1) as u64)
            .is_some_and(|need| need <= remaining as u64);
        if !fits {
            return Err(RecordError::CountTooLarge {
                what,
                count,
                offset,
                remaining,
            });
        }
        Ok(count as usize)
    }

    pub(crate) fn str(&mut self, what: &'static str) -> RecordResult<&'a str> {
        let len = self.count(what, 1)?;
        let offset = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8 { what, offset })
    }

    /// Accounts for `n` bytes of strings materialized from symbol references.
    pub(crate) fn expand(&mut self, n: usize) -> RecordResult<()> {
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > self.limits.max_expanded_bytes {
            return Err(RecordError::ExpansionLimit {
                limit: self.limits.max_expanded_bytes,
            });
        }
        Ok(())
    }

    pub(crate) fn header(&mut self, magic: [u8; 4], version: u8) -> RecordResult<()> {
        let m = self.take(4)?;
        if m != magic {
            let mut found = [0u8; 4];
            found.copy_from_slice(m);
            return Err(RecordError::BadMagic {
                expected: magic,
                found,
            });
        }
        let v = self.u8()?;
        if v != version {
            return Err(RecordError::UnsupportedVersion {
                found: v,
                supported: version,
            });
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> RecordResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(RecordError::TrailingBytes(n)),
        }
    }
}

/// Hashes a string key in one call of xxh3 (`str`'s `Hash` writes its bytes, then a 0xff
/// terminator). The streaming `Xxh3Default` buffers every write and costs several times more
/// on label-sized strings, which every series of every request interns.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StrHasher(u64);

impl std::hash::Hasher for StrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.0 ^= u64::from(b);
    }
}

type StrMap<'a> = HashMap<&'a str, u32, std::hash::BuildHasherDefault<StrHasher>>;

/// Builds a record's symbol table while encoding: each distinct string gets one index, in
/// order of first use.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable<'a> {
    index: StrMap<'a>,
    symbols: Vec<&'a str>,
    /// Encoded size of the symbols so far, a capacity hint (length prefixes counted as 2).
    bytes: usize,
}

impl<'a> SymbolTable<'a> {
    pub(crate) fn with_capacity(symbols: usize) -> Self {
        Self {
            index: StrMap::with_capacity_and_hasher(symbols, Default::default()),
            symbols: Vec::with_capacity(symbols),
            bytes: 0,
        }
    }

    pub(crate) fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.symbols.len() as u32;
        self.symbols.push(s);
        self.bytes += s.len() + 2;
        self.index.insert(s, i);
        i
    }

    /// About how many bytes [`SymbolTable::write`] appends.
    pub(crate) fn encoded_len_hint(&self) -> usize {
        self.bytes + 10
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.symbols.len() as u64);
        for s in &self.symbols {
            put_bytes(out, s.as_bytes());
        }
    }
}

/// Reads a symbol table section.
pub(crate) fn read_symbols<'a>(r: &mut Reader<'a>) -> RecordResult<Vec<&'a str>> {
    let n = r.count("symbol", 1)?;
    let mut syms = Vec::with_capacity(n);
    for _ in 0..n {
        syms.push(r.str("symbol")?);
    }
    Ok(syms)
}

/// Reads one symbol reference; the string borrows the record's bytes.
pub(crate) fn read_symbol_ref<'a>(r: &mut Reader<'_>, syms: &[&'a str]) -> RecordResult<&'a str> {
    let index = r.uvarint()?;
    let s = usize::try_from(index)
        .ok()
        .and_then(|i| syms.get(i))
        .ok_or(RecordError::BadSymbol {
            index,
            len: syms.len(),
        })?;
    r.expand(s.len())?;
    Ok(s)
}

/// Reads one symbol reference and materializes it as an owned string.
pub(crate) fn read_symbol(r: &mut Reader<'_>, syms: &[&str]) -> RecordResult<String> {
    read_symbol_ref(r, syms).map(str::to_owned)
}

/// Reads one label pair (two symbol references) of the label set of series or stream
/// `index` and checks it keeps the set canonical: name non-empty and greater than `prev`
/// (the previous name of the set), value non-empty.
pub(crate) fn read_label<'a>(
    r: &mut Reader<'_>,
    syms: &[&'a str],
    index: usize,
    prev: Option<&str>,
) -> RecordResult<(&'a str, &'a str)> {
    let name = read_symbol_ref(r, syms)?;
    let value = read_symbol_ref(r, syms)?;
    let reason = if name.is_empty() {
        Some("empty label name".to_owned())
    } else if value.is_empty() {
        Some(format!("label {name:?} has an empty value"))
    } else if prev.is_some_and(|p| p >= name) {
        Some(format!("label {name:?} out of order or duplicated"))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RecordError::InvalidLabels { index, reason }),
        None => Ok((name, value)),
    }
}

/// Reads a label set section (`count`, then `count` pairs of symbol references) and checks
/// it is canonical: names strictly increasing, non-empty, values non-empty.
pub(crate) fn read_labels(
    r: &mut Reader<'_>,
    syms: &[&str],
    index: usize,
) -> RecordResult<crate::Labels> {
    let n = r.count("label", 2)?;
    let mut labels = Vec::with_capacity(n);
    let mut prev = None;
    for _ in 0..n {
        let (name, value) = read_label(r, syms, index, prev)?;
        prev = Some(name);
        labels.push(crate::Label::new(name, value));
    }
    crate::Labels::new(labels).map_err(|e| RecordError::InvalidLabels {
        index,
        reason: e.to_string(),
    })
}

pub(crate) fn write_labels(out: &mut Vec<u8>, labels: &crate::Labels, syms: &SymbolTable<'_>) {
    // Symbols are interned in a first pass by the caller; here they are looked up.
    put_uvarint(out, labels.len() as u64);
    for l in labels {
        put_uvarint(out, u64::from(syms.lookup(&l.name)));
        put_uvarint(out, u64::from(syms.lookup(&l.value)));
    }
}

impl SymbolTable<'_> {
    pub(crate) fn lookup(&self, s: &str) -> u32 {
        // Every string written by reference was interned in the caller's first pass.
        debug_assert!(self.index.contains_key(s), "symbol not interned");
        self.index.get(s).copied().unwrap_or(0)
    }
}
