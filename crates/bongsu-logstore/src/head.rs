//! A stream's head: the entries not yet cut into a chunk, their lines and structured metadata
//! copied into one buffer (no allocation per entry), kept in time order.

use bongsu_model::{LogEntry, LogEntryRef, LogsRecordView};

/// Entries a chunk is encoded from or a head is appended from, by position: a slice of
/// [`LogEntry`], a [`Head`], or a stream of a [`LogsRecordView`].
pub(crate) trait Entries {
    fn count(&self) -> usize;
    fn timestamp_ns(&self, i: usize) -> i64;
    fn line(&self, i: usize) -> &str;
    /// Number of structured metadata pairs of entry `i`.
    fn metadata_len(&self, i: usize) -> usize;
    /// Calls `f` with each structured metadata pair (name, value) of entry `i`.
    fn for_each_metadata(&self, i: usize, f: impl FnMut(&str, &str));

    /// Whether any entry has structured metadata.
    fn has_metadata(&self) -> bool {
        (0..self.count()).any(|i| self.metadata_len(i) > 0)
    }
}

impl Entries for [LogEntry] {
    fn count(&self) -> usize {
        self.len()
    }
    fn timestamp_ns(&self, i: usize) -> i64 {
        self[i].timestamp_ns
    }
    fn line(&self, i: usize) -> &str {
        &self[i].line
    }
    fn metadata_len(&self, i: usize) -> usize {
        self[i].structured_metadata.len()
    }
    fn for_each_metadata(&self, i: usize, mut f: impl FnMut(&str, &str)) {
        for l in &self[i].structured_metadata {
            f(&l.name, &l.value);
        }
    }
}

/// The entries of one stream of a [`LogsRecordView`].
pub(crate) struct ViewEntries<'v, 'a> {
    pub(crate) view: &'v LogsRecordView<'a>,
    pub(crate) entries: &'v [LogEntryRef<'a>],
}

impl Entries for ViewEntries<'_, '_> {
    fn count(&self) -> usize {
        self.entries.len()
    }
    fn timestamp_ns(&self, i: usize) -> i64 {
        self.entries[i].timestamp_ns
    }
    fn line(&self, i: usize) -> &str {
        self.entries[i].line
    }
    fn metadata_len(&self, i: usize) -> usize {
        self.view.metadata(&self.entries[i]).len()
    }
    fn for_each_metadata(&self, i: usize, mut f: impl FnMut(&str, &str)) {
        for &(n, v) in self.view.metadata(&self.entries[i]) {
            f(n, v);
        }
    }
}

/// Bytes of one page of a head's text: pages are filled and never grown, so no line is
/// copied again when the head grows (a growing buffer would copy everything on each
/// doubling).
const PAGE_BYTES: usize = 64 << 10;

/// Where a string is in a head's text: its page and its bytes there.
#[derive(Debug, Clone, Copy)]
struct Span {
    page: u32,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy)]
struct HeadEntry {
    timestamp_ns: i64,
    line: Span,
    /// A range of the head's `metadata`.
    metadata: (usize, usize),
}

/// One entry of a [`Head`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEntryRef<'h> {
    pub(crate) timestamp_ns: i64,
    pub(crate) line: &'h str,
}

/// Entries not yet cut into a chunk, sorted by time (stable: entries of equal time keep their
/// arrival order).
#[derive(Debug, Default)]
pub(crate) struct Head {
    entries: Vec<HeadEntry>,
    /// Text pages of [`PAGE_BYTES`] (or one string's length, if longer); only the last one has
    /// room left.
    pages: Vec<String>,
    metadata: Vec<(Span, Span)>,
    line_bytes: usize,
}

impl Head {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of line text held.
    pub(crate) fn line_bytes(&self) -> usize {
        self.line_bytes
    }

    /// The oldest and newest timestamps (`(i64::MAX, i64::MIN)` when empty).
    pub(crate) fn time_range(&self) -> (i64, i64) {
        (
            self.entries.first().map_or(i64::MAX, |e| e.timestamp_ns),
            self.entries.last().map_or(i64::MIN, |e| e.timestamp_ns),
        )
    }

    /// The entries in time order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = HeadEntryRef<'_>> + '_ {
        self.entries.iter().map(|e| HeadEntryRef {
            timestamp_ns: e.timestamp_ns,
            line: self.str(e.line),
        })
    }

    /// Forgets every entry and frees the buffers (an idle stream keeps no memory).
    pub(crate) fn clear(&mut self) {
        *self = Head::default();
    }

    /// The page with room for `len` more bytes (a new one if the last is full).
    fn page_for(&mut self, len: usize) -> (u32, &mut String) {
        let full = self
            .pages
            .last()
            .is_none_or(|p| p.capacity() - p.len() < len);
        if full {
            self.pages.push(String::with_capacity(PAGE_BYTES.max(len)));
        }
        let i = self.pages.len() - 1;
        // A head holds at most a few chunks' worth of text: far fewer than 2^32 pages.
        (i as u32, &mut self.pages[i])
    }

    /// Copies `parts` (one after another) into one page; returns where each is.
    fn put<const N: usize>(&mut self, parts: [&str; N]) -> [Span; N] {
        let len = parts.iter().map(|p| p.len()).sum();
        let (page, text) = self.page_for(len);
        parts.map(|p| {
            let start = text.len() as u32;
            text.push_str(p);
            Span {
                page,
                start,
                end: text.len() as u32,
            }
        })
    }

    fn str(&self, s: Span) -> &str {
        &self.pages[s.page as usize][s.start as usize..s.end as usize]
    }

    /// Adds every entry of `from`, each after every entry of the same or an earlier time: the
    /// result is the stable sort by time of the old entries followed by the new ones. In-order
    /// entries are pushes; when some arrive out of order, only the entries from the first one
    /// they precede on are sorted, once per call (inserting each one would shift the tail of
    /// the head once per entry: a quadratic cost when a batch overlaps the head's times).
    pub(crate) fn extend<E: Entries + ?Sized>(&mut self, from: &E) {
        let n = from.count();
        let old = self.entries.len();
        self.entries.reserve(n);
        let mut last = self.entries.last().map_or(i64::MIN, |e| e.timestamp_ns);
        let mut sorted = true;
        let mut lowest = i64::MAX;
        for i in 0..n {
            let line = from.line(i);
            self.line_bytes += line.len();
            let [line] = self.put([line]);
            let first = self.metadata.len();
            from.for_each_metadata(i, |n, v| {
                let [name, value] = self.put([n, v]);
                self.metadata.push((name, value));
            });
            let ts = from.timestamp_ns(i);
            sorted &= ts >= last;
            last = ts;
            lowest = lowest.min(ts);
            self.entries.push(HeadEntry {
                timestamp_ns: ts,
                line,
                metadata: (first, self.metadata.len()),
            });
        }
        if !sorted {
            // Old entries up to `lowest` (equal times included: they arrived first) stay put.
            let from = self.entries[..old].partition_point(|x| x.timestamp_ns <= lowest);
            self.entries[from..].sort_by_key(|e| e.timestamp_ns);
        }
    }
}

impl Entries for Head {
    fn count(&self) -> usize {
        self.entries.len()
    }
    fn timestamp_ns(&self, i: usize) -> i64 {
        self.entries[i].timestamp_ns
    }
    fn line(&self, i: usize) -> &str {
        self.str(self.entries[i].line)
    }
    fn metadata_len(&self, i: usize) -> usize {
        let (a, b) = self.entries[i].metadata;
        b - a
    }
    fn for_each_metadata(&self, i: usize, mut f: impl FnMut(&str, &str)) {
        let (a, b) = self.entries[i].metadata;
        for &(n, v) in &self.metadata[a..b] {
            f(self.str(n), self.str(v));
        }
    }
    fn has_metadata(&self) -> bool {
        !self.metadata.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::Label;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = LogEntry> {
        (
            0i64..50,
            "\\PC{0,20}",
            proptest::collection::vec(("[a-z]{1,5}", "\\PC{0,6}"), 0..3),
        )
            .prop_map(|(ts, line, md)| LogEntry {
                timestamp_ns: ts,
                line,
                structured_metadata: md.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
            })
    }

    fn owned<E: Entries + ?Sized>(e: &E) -> Vec<LogEntry> {
        (0..e.count())
            .map(|i| {
                let mut md = Vec::new();
                e.for_each_metadata(i, |n, v| md.push(Label::new(n, v)));
                assert_eq!(md.len(), e.metadata_len(i));
                LogEntry {
                    timestamp_ns: e.timestamp_ns(i),
                    line: e.line(i).to_owned(),
                    structured_metadata: md,
                }
            })
            .collect()
    }

    #[test]
    fn text_spans_pages_and_lines_longer_than_a_page() {
        let lines: Vec<String> = (0..40)
            .map(|i| {
                let len = if i == 7 {
                    PAGE_BYTES * 2 + 3
                } else {
                    5_000 + i
                };
                char::from(b'a' + (i % 26) as u8).to_string().repeat(len)
            })
            .collect();
        let entries: Vec<LogEntry> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut e = LogEntry::new(i as i64, l.clone());
                e.structured_metadata = vec![Label::new("k", format!("v{i}"))];
                e
            })
            .collect();
        let mut head = Head::default();
        head.extend(&entries[..]);
        assert!(head.pages.len() > 3, "{} pages", head.pages.len());
        assert_eq!(owned(&head), entries);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// A head holds what was inserted, sorted by time with arrival order kept among equal
        /// times (a stable sort of the input).
        #[test]
        fn head_keeps_entries_in_stable_time_order(
            entries in proptest::collection::vec(entry(), 0..40),
            cuts in proptest::collection::vec(0usize..40, 0..4),
        ) {
            // The entries arrive in batches (cut at `cuts`), each batch added at once.
            let mut head = Head::default();
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c < entries.len()).collect();
            bounds.push(0);
            bounds.push(entries.len());
            bounds.sort_unstable();
            for w in bounds.windows(2) {
                head.extend(&entries[w[0]..w[1]]);
            }
            let mut expected = entries.clone();
            expected.sort_by_key(|e| e.timestamp_ns);
            prop_assert_eq!(owned(&head), expected.clone());
            prop_assert_eq!(head.has_metadata(), entries.has_metadata());
            prop_assert_eq!(head.line_bytes(), entries.iter().map(|e| e.line.len()).sum::<usize>());
            let lines: Vec<&str> = head.iter().map(|e| e.line).collect();
            prop_assert_eq!(lines, expected.iter().map(|e| e.line.as_str()).collect::<Vec<_>>());
            let (lo, hi) = head.time_range();
            if let (Some(f), Some(l)) = (expected.first(), expected.last()) {
                prop_assert_eq!((lo, hi), (f.timestamp_ns, l.timestamp_ns));
            } else {
                prop_assert!(head.is_empty());
            }
            head.clear();
            prop_assert!(head.is_empty());
            prop_assert_eq!(head.line_bytes(), 0);
        }
    }
}
