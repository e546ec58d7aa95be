//! Closed head chunks, packed back to back into large pages.
//!
//! A head closes one chunk per series every 64 samples. Kept as one small allocation each
//! (plus a growing list per series), they cost the allocator's per-block overhead and, worse,
//! leave the heap riddled with small holes: closed chunks, open chunks growing, request
//! buffers and decoded batches all come from the same arena, so after a burst most pages
//! hold a few live bytes and cannot be handed back. Here every closed chunk is appended to
//! the current page of [`ChunkArena`], with a small header that links it to the series'
//! previous closed chunk, so a series holds one position and no list. A page is freed when
//! the last chunk in it is released: chunks close at about the same time for every series
//! and a cut drops them all, so whole pages die together.
//!
//! Entry layout (memory only, never written to disk), little-endian, 18 bytes before the
//! chunk's: the series' previous closed chunk as `u32` page (`u32::MAX`: none) and `u16`
//! offset (pages are 64 KiB; an entry in a page of its own is at offset 0), `u32` length of
//! the chunk bytes with the top bit set when they are packed (see `packed.rs`) rather than
//! XOR, `i64` max_t, then the bytes. A chunk's min_t is its first timestamp, read from its
//! bytes by the head.

/// Bytes of a page; a larger entry gets a page of its own. Offsets in a page fit a `u16`.
pub(crate) const PAGE_BYTES: usize = 64 * 1024;
/// Bytes of an entry's header.
pub(crate) const HEADER_BYTES: usize = 4 + 2 + 4 + 8;
const NO_PAGE: u32 = u32::MAX;
const PACKED_BIT: u32 = 1 << 31;

/// Where a closed chunk's entry lives: page index plus one (high 32 bits, never 0, so an
/// `Option<ChunkPos>` takes 8 bytes) and offset in the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkPos(std::num::NonZeroU64);

impl ChunkPos {
    fn new(page: u32, off: u32) -> Self {
        let raw = ((u64::from(page) + 1) << 32) | u64::from(off);
        // the page part is at least 1 << 32
        Self(std::num::NonZeroU64::new(raw).unwrap_or(std::num::NonZeroU64::MIN))
    }

    fn page(self) -> usize {
        ((self.0.get() >> 32) - 1) as usize
    }

    fn off(self) -> usize {
        (self.0.get() & 0xffff_ffff) as usize
    }
}

/// A closed chunk read from the arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed<'a> {
    pub(crate) max_t: i64,
    pub(crate) packed: bool,
    pub(crate) bytes: &'a [u8],
    /// The series' previous closed chunk.
    pub(crate) prev: Option<ChunkPos>,
}

#[derive(Default)]
struct Page {
    /// Allocated once with the page's full capacity; entries are appended, never moved.
    bytes: Vec<u8>,
    /// Bytes of entries not yet released.
    live: usize,
}

/// Pages of closed chunks (see the module docs).
#[derive(Default)]
pub(crate) struct ChunkArena {
    pages: Vec<Page>,
    /// Indexes of freed pages, reused before new ones.
    free: Vec<u32>,
    /// The page new entries go to.
    current: Option<u32>,
    /// Sum of the pages' capacities.
    held: usize,
}

impl std::fmt::Debug for ChunkArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkArena")
            .field("pages", &(self.pages.len() - self.free.len()))
            .field("held_bytes", &self.held)
            .field("live_bytes", &self.live_bytes())
            .finish()
    }
}

impl ChunkArena {
    /// Appends a closed chunk (under 2 GiB) whose series' previous closed chunk is `prev`.
    pub(crate) fn push(
        &mut self,
        prev: Option<ChunkPos>,
        max_t: i64,
        packed: bool,
        bytes: &[u8],
    ) -> ChunkPos {
        let need = HEADER_BYTES + bytes.len();
        let fits = |p: &Page| p.bytes.capacity() - p.bytes.len() >= need;
        let page = match self.current {
            Some(c) if self.pages.get(c as usize).is_some_and(fits) => c,
            _ => {
                let p = self.new_page(need.max(PAGE_BYTES));
                // An oversized entry does not take the current page's place.
                if need <= PAGE_BYTES {
                    self.current = Some(p);
                }
                p
            }
        };
        let pg = &mut self.pages[page as usize];
        let off = pg.bytes.len();
        // A page of PAGE_BYTES has offsets below 2^16; an oversized page holds one entry.
        debug_assert!(off <= usize::from(u16::MAX));
        debug_assert!(bytes.len() < PACKED_BIT as usize);
        let (prev_page, prev_off) =
            prev.map_or((NO_PAGE, 0), |p| (p.page() as u32, p.off() as u16));
        pg.bytes.extend_from_slice(&prev_page.to_le_bytes());
        pg.bytes.extend_from_slice(&prev_off.to_le_bytes());
        let len = bytes.len() as u32 | if packed { PACKED_BIT } else { 0 };
        pg.bytes.extend_from_slice(&len.to_le_bytes());
        pg.bytes.extend_from_slice(&max_t.to_le_bytes());
        pg.bytes.extend_from_slice(bytes);
        pg.live += need;
        ChunkPos::new(page, off as u32)
    }

    fn new_page(&mut self, capacity: usize) -> u32 {
        self.held += capacity;
        let page = Page {
            bytes: Vec::with_capacity(capacity),
            live: 0,
        };
        match self.free.pop() {
            Some(i) => {
                self.pages[i as usize] = page;
                i
            }
            None => {
                self.pages.push(page);
                (self.pages.len() - 1) as u32
            }
        }
    }

    /// The entry at `pos`; `None` only if `pos` was never returned by `push` or was
    /// released (a broken invariant of the head).
    pub(crate) fn get(&self, pos: ChunkPos) -> Option<Closed<'_>> {
        let page = self.pages.get(pos.page())?;
        let h = page.bytes.get(pos.off()..pos.off() + HEADER_BYTES)?;
        let mut w4 = [0u8; 4];
        let mut w8 = [0u8; 8];
        w4.copy_from_slice(&h[0..4]);
        let prev_page = u32::from_le_bytes(w4);
        let prev_off = u16::from_le_bytes([h[4], h[5]]);
        w4.copy_from_slice(&h[6..10]);
        let len = u32::from_le_bytes(w4);
        w8.copy_from_slice(&h[10..18]);
        let start = pos.off() + HEADER_BYTES;
        let bytes = page
            .bytes
            .get(start..start + (len & !PACKED_BIT) as usize)?;
        Some(Closed {
            prev: (prev_page != NO_PAGE).then(|| ChunkPos::new(prev_page, u32::from(prev_off))),
            max_t: i64::from_le_bytes(w8),
            packed: len & PACKED_BIT != 0,
            bytes,
        })
    }

    /// Releases the entry at `pos` (each entry exactly once) and returns its `prev`. A page
    /// whose entries are all released is freed, or emptied for reuse if it is the current one.
    pub(crate) fn release(&mut self, pos: ChunkPos) -> Option<ChunkPos> {
        let (prev, len) = match self.get(pos) {
            Some(c) => (c.prev, HEADER_BYTES + c.bytes.len()),
            None => {
                debug_assert!(false, "released a chunk that is not in the arena");
                return None;
            }
        };
        let i = pos.page();
        let page = &mut self.pages[i];
        debug_assert!(page.live >= len, "a chunk was released twice");
        page.live = page.live.saturating_sub(len);
        if page.live == 0 {
            if self.current == Some(i as u32) {
                page.bytes.clear();
            } else {
                self.held -= page.bytes.capacity();
                *page = Page::default();
                self.free.push(i as u32);
            }
        }
        prev
    }

    /// Releases a series' whole list of closed chunks, newest first.
    pub(crate) fn release_list(&mut self, last: Option<ChunkPos>) {
        let mut next = last;
        while let Some(p) = next {
            next = self.release(p);
        }
    }

    /// A series' closed chunks, oldest first.
    pub(crate) fn list(&self, last: Option<ChunkPos>) -> Vec<Closed<'_>> {
        let mut out: Vec<Closed<'_>> = self.iter_back(last).collect();
        out.reverse();
        out
    }

    /// A series' closed chunks, newest first.
    pub(crate) fn iter_back(&self, last: Option<ChunkPos>) -> impl Iterator<Item = Closed<'_>> {
        let mut next = last;
        std::iter::from_fn(move || {
            let c = self.get(next?)?;
            next = c.prev;
            Some(c)
        })
    }

    /// Bytes of the pages held.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held
    }

    /// Bytes of entries not yet released.
    pub(crate) fn live_bytes(&self) -> usize {
        self.pages.iter().map(|p| p.live).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `n` chunks of `len` bytes to one series' list; returns its last position.
    fn series(a: &mut ChunkArena, n: usize, len: usize, tag: u8) -> Option<ChunkPos> {
        let mut last = None;
        for i in 0..n {
            let t = i as i64 * 100;
            last = Some(a.push(last, t + 99, i % 2 == 0, &vec![tag; len]));
        }
        last
    }

    #[test]
    fn lists_read_back_in_order_with_their_headers() {
        let mut a = ChunkArena::default();
        let x = series(&mut a, 5, 70, 1);
        let y = series(&mut a, 3, 3000, 2);
        let xs = a.list(x);
        assert_eq!(xs.len(), 5);
        for (i, c) in xs.iter().enumerate() {
            assert_eq!(c.max_t, i as i64 * 100 + 99);
            assert_eq!(c.packed, i % 2 == 0);
            assert_eq!(c.bytes, &[1u8; 70][..]);
        }
        assert!(a.list(y).iter().all(|c| c.bytes == &[2u8; 3000][..]));
        assert_eq!(a.iter_back(y).next().map(|c| c.max_t), Some(299));
        assert_eq!(
            a.live_bytes(),
            5 * (HEADER_BYTES + 70) + 3 * (HEADER_BYTES + 3000)
        );
        assert!(a.list(None).is_empty());
    }

    #[test]
    fn pages_are_freed_when_their_chunks_are_released_and_reused() {
        let mut a = ChunkArena::default();
        // Enough 1 000-byte chunks over 100 series for several pages.
        let lists: Vec<_> = (0..100).map(|s| series(&mut a, 3, 1000, s as u8)).collect();
        let pages = a.held_bytes() / PAGE_BYTES;
        assert!(pages >= 4, "{pages} pages");
        // Releasing every other series frees nothing whole: each page is half live.
        for l in lists.iter().step_by(2) {
            a.release_list(*l);
        }
        assert!(a.held_bytes() >= (pages - 1) * PAGE_BYTES);
        for (i, l) in lists.iter().enumerate().skip(1).step_by(2) {
            assert!(a.list(*l).iter().all(|c| c.bytes == &[i as u8; 1000][..]));
        }
        // Releasing the rest frees every page but the current (emptied) one.
        for l in lists.iter().skip(1).step_by(2) {
            a.release_list(*l);
        }
        assert_eq!(a.live_bytes(), 0);
        assert_eq!(a.held_bytes(), PAGE_BYTES);
        // New chunks reuse the current page and then freed slots.
        let again: Vec<_> = (0..100).map(|s| series(&mut a, 3, 1000, s as u8)).collect();
        assert_eq!(a.held_bytes() / PAGE_BYTES, pages);
        assert_eq!(a.pages.len(), pages);
        assert_eq!(a.list(again[7]).len(), 3);
    }

    #[test]
    fn an_entry_larger_than_a_page_gets_its_own() {
        let mut a = ChunkArena::default();
        let small = a.push(None, 1, false, &[7; 10]);
        let big = a.push(None, 1, true, &vec![9; PAGE_BYTES * 2]);
        let after = a.push(Some(small), 3, false, &[8; 10]);
        assert!(a.get(big).is_some_and(|c| c.packed && c.prev.is_none()));
        assert_eq!(a.get(after).and_then(|c| c.prev), Some(small));
        assert_eq!(small.page(), after.page());
        assert_ne!(big.page(), small.page());
        assert_eq!(a.get(big).map(|c| c.bytes.len()), Some(PAGE_BYTES * 2));
        a.release(big);
        assert_eq!(a.held_bytes(), PAGE_BYTES);
        assert_eq!(a.list(Some(after)).len(), 2);
    }
}
