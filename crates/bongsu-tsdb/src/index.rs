//! Symbol table and inverted index (label pair -> postings), shared by the head and blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bongsu_model::{Label, Labels};
use roaring::RoaringBitmap;

use crate::matcher::{MatchOp, Matcher};

/// Interned strings; a series' labels are stored as pairs of symbol ids.
#[derive(Debug, Default, Clone)]
pub(crate) struct SymbolTable {
    ids: HashMap<Arc<str>, u32>,
    strs: Vec<Arc<str>>,
}

impl SymbolTable {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strs.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.strs.push(a.clone());
        self.ids.insert(a, id);
        id
    }

    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn get(&self, id: u32) -> &str {
        self.strs.get(id as usize).map(|s| &**s).unwrap_or("")
    }

    pub(crate) fn len(&self) -> usize {
        self.strs.len()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.strs.iter().map(|s| s.len() + 16 + 8 + 24).sum()
    }

    /// Labels for symbol pairs.
    pub(crate) fn labels(&self, pairs: &[(u32, u32)]) -> Labels {
        let v: Vec<Label> = pairs
            .iter()
            .map(|&(n, v)| Label::new(self.get(n), self.get(v)))
            .collect();
        // Pairs come from a valid label set, so construction cannot fail; fall back to
        // empty rather than panic if an on-disk block held garbage that passed its CRC.
        Labels::new(v).unwrap_or_default()
    }

    /// Symbol pairs for labels, interning new strings.
    pub(crate) fn intern_labels(&mut self, labels: &Labels) -> Box<[(u32, u32)]> {
        labels
            .iter()
            .map(|l| (self.intern(&l.name), self.intern(&l.value)))
            .collect()
    }

    /// Symbol pairs for labels if every string is already known.
    pub(crate) fn lookup_labels(&self, labels: &Labels) -> Option<Box<[(u32, u32)]>> {
        labels
            .iter()
            .map(|l| Some((self.lookup(&l.name)?, self.lookup(&l.value)?)))
            .collect()
    }
}

/// Postings for every label pair of a set of series.
#[derive(Debug, Default, Clone)]
pub(crate) struct MemIndex {
    postings: HashMap<u32, HashMap<u32, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl MemIndex {
    pub(crate) fn add(&mut self, id: u32, pairs: &[(u32, u32)]) {
        self.all.insert(id);
        for &(n, v) in pairs {
            self.postings
                .entry(n)
                .or_default()
                .entry(v)
                .or_default()
                .insert(id);
        }
    }

    pub(crate) fn remove(&mut self, id: u32, pairs: &[(u32, u32)]) {
        self.all.remove(id);
        for &(n, v) in pairs {
            if let Some(vals) = self.postings.get_mut(&n) {
                if let Some(p) = vals.get_mut(&v) {
                    p.remove(id);
                    if p.is_empty() {
                        vals.remove(&v);
                    }
                }
                if vals.is_empty() {
                    self.postings.remove(&n);
                }
            }
        }
    }

    pub(crate) fn postings(&self, name: u32, value: u32) -> Option<&RoaringBitmap> {
        self.postings.get(&name)?.get(&value)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = (&u32, &HashMap<u32, RoaringBitmap>)> {
        self.postings.iter()
    }

    /// Union of the postings of `name`'s values that satisfy `pred`.
    fn union_where(
        &self,
        syms: &SymbolTable,
        name: Option<u32>,
        pred: impl Fn(&str) -> bool,
    ) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let Some(vals) = name.and_then(|n| self.postings.get(&n)) {
            for (v, p) in vals {
                if pred(syms.get(*v)) {
                    out |= p;
                }
            }
        }
        out
    }

    /// Series ids selected by all matchers (an empty list selects every series).
    pub(crate) fn select(&self, syms: &SymbolTable, matchers: &[Matcher]) -> RoaringBitmap {
        let mut include: Option<RoaringBitmap> = None;
        let mut exclude = RoaringBitmap::new();
        // Cheapest, most selective matchers first.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| match m.op {
            MatchOp::Equal => 0,
            MatchOp::Regex => 1,
            _ => 2,
        });
        for m in order {
            if include.as_ref().is_some_and(|i| i.is_empty()) {
                return RoaringBitmap::new();
            }
            let name = syms.lookup(&m.name);
            if m.matches("") {
                // Selects series without the label plus those whose value matches: remove
                // the series whose value does not match.
                exclude |= self.union_where(syms, name, |v| !m.matches(v));
                continue;
            }
            let set = match (m.op, m.literal_set()) {
                (MatchOp::Equal, _) => match (name, syms.lookup(&m.value)) {
                    (Some(n), Some(v)) => self.postings(n, v).cloned().unwrap_or_default(),
                    _ => RoaringBitmap::new(),
                },
                (_, Some(lits)) => {
                    let mut u = RoaringBitmap::new();
                    if let Some(n) = name {
                        for l in lits {
                            if let Some(p) = syms.lookup(l).and_then(|v| self.postings(n, v)) {
                                u |= p;
                            }
                        }
                    }
                    u
                }
                _ => self.union_where(syms, name, |v| m.matches(v)),
            };
            include = Some(match include {
                Some(i) => i & set,
                None => set,
            });
        }
        let mut out = include.unwrap_or_else(|| self.all.clone());
        out -= exclude;
        out
    }
}

/// A standalone label index: label sets in, series ids out for matchers. The head and
/// every block use the same structure internally.
#[derive(Debug, Default, Clone)]
pub struct LabelIndex {
    syms: SymbolTable,
    index: MemIndex,
    next: u32,
}

impl LabelIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a series and returns its id (ids are assigned 0, 1, 2, ...).
    pub fn insert(&mut self, labels: &Labels) -> u32 {
        let pairs = self.syms.intern_labels(labels);
        let id = self.next;
        self.index.add(id, &pairs);
        self.next += 1;
        id
    }

    /// Ids of the series selected by all matchers, ascending.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        self.index.select(&self.syms, matchers).iter().collect()
    }

    /// Number of series selected by all matchers.
    pub fn count(&self, matchers: &[Matcher]) -> u64 {
        self.index.select(&self.syms, matchers).len()
    }
}

/// Cardinality statistics of the head, in the shape of Prometheus's `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardinalityStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub num_symbols: u64,
    pub chunk_count: u64,
    pub min_time_ms: Option<i64>,
    pub max_time_ms: Option<i64>,
    /// Top metric names by series count, largest first.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Top label names by number of distinct values, largest first.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Top label names by bytes of their values summed over distinct values, largest first.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Top `name=value` pairs by series count, largest first.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

pub(crate) fn top_n(map: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Label pair count and the four top lists of [`CardinalityStats`].
pub(crate) type Cardinality = (u64, [Vec<(String, u64)>; 4]);

pub(crate) fn cardinality(syms: &SymbolTable, index: &MemIndex, top: usize) -> Cardinality {
    let mut by_metric = BTreeMap::new();
    let mut value_counts = BTreeMap::new();
    let mut memory = BTreeMap::new();
    let mut pairs = BTreeMap::new();
    let mut num_pairs = 0u64;
    for (n, vals) in index.names() {
        let name = syms.get(*n).to_owned();
        value_counts.insert(name.clone(), vals.len() as u64);
        let mut mem = 0u64;
        for (v, p) in vals {
            let value = syms.get(*v);
            mem += value.len() as u64;
            num_pairs += 1;
            if name == bongsu_model::METRIC_NAME {
                by_metric.insert(value.to_owned(), p.len());
            }
            pairs.insert(format!("{name}={value}"), p.len());
        }
        memory.insert(name, mem);
    }
    (
        num_pairs,
        [
            top_n(by_metric, top),
            top_n(value_counts, top),
            top_n(memory, top),
            top_n(pairs, top),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::MatchOp;

    fn build(series: &[&[(&str, &str)]]) -> (SymbolTable, MemIndex, Vec<Labels>) {
        let mut syms = SymbolTable::default();
        let mut idx = MemIndex::default();
        let mut all = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let l = Labels::from_pairs(s.iter().copied()).unwrap();
            let pairs = syms.intern_labels(&l);
            idx.add(i as u32, &pairs);
            all.push(l);
        }
        (syms, idx, all)
    }

    fn sel(syms: &SymbolTable, idx: &MemIndex, ms: &[Matcher]) -> Vec<u32> {
        idx.select(syms, ms).iter().collect()
    }

    #[test]
    fn matcher_semantics() {
        let (syms, idx, _) = build(&[
            &[("__name__", "up"), ("job", "a")],
            &[("__name__", "up"), ("job", "b"), ("env", "prod")],
            &[("__name__", "up"), ("job", "foo")],
            &[("__name__", "down")],
        ]);
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        use MatchOp::*;
        assert_eq!(sel(&syms, &idx, &[m(Equal, "job", "a")]), [0]);
        assert_eq!(sel(&syms, &idx, &[m(Equal, "env", "")]), [0, 2, 3]);
        assert_eq!(sel(&syms, &idx, &[m(NotEqual, "env", "")]), [1]);
        assert_eq!(sel(&syms, &idx, &[m(NotEqual, "job", "a")]), [1, 2, 3]);
        // fully anchored
        assert_eq!(
            sel(&syms, &idx, &[m(Regex, "job", "fo")]),
            Vec::<u32>::new()
        );
        assert_eq!(sel(&syms, &idx, &[m(Regex, "job", "fo.*")]), [2]);
        assert_eq!(sel(&syms, &idx, &[m(Regex, "job", "a|b")]), [0, 1]);
        // a regex matching "" also selects series without the label
        assert_eq!(sel(&syms, &idx, &[m(Regex, "job", "a|")]), [0, 3]);
        assert_eq!(sel(&syms, &idx, &[m(NotRegex, "job", "a|b")]), [2, 3]);
        assert_eq!(
            sel(&syms, &idx, &[m(NotRegex, "job", ".*")]),
            Vec::<u32>::new()
        );
        assert_eq!(sel(&syms, &idx, &[m(NotRegex, "job", "")]), [0, 1, 2]);
        assert_eq!(
            sel(
                &syms,
                &idx,
                &[m(Equal, "__name__", "up"), m(NotRegex, "job", "b|foo")]
            ),
            [0]
        );
        assert_eq!(sel(&syms, &idx, &[]), [0, 1, 2, 3]);
        assert_eq!(
            sel(&syms, &idx, &[m(Equal, "nope", "x")]),
            Vec::<u32>::new()
        );
        assert_eq!(sel(&syms, &idx, &[m(Regex, "nope", ".*")]), [0, 1, 2, 3]);
        assert!(Matcher::new(Regex, "a", "(").is_err());
    }

    #[test]
    fn index_agrees_with_direct_matching() {
        let (syms, idx, all) = build(&[
            &[("a", "1"), ("b", "x")],
            &[("a", "2")],
            &[("b", "y"), ("c", "z")],
            &[("a", "12"), ("c", "z")],
        ]);
        let cases = [
            Matcher::new(MatchOp::Regex, "a", "1.*").unwrap(),
            Matcher::new(MatchOp::NotRegex, "c", "z").unwrap(),
            Matcher::new(MatchOp::Regex, "b", "x|y|").unwrap(),
            Matcher::not_equal("a", "2"),
            Matcher::equal("c", ""),
        ];
        for m in &cases {
            let want: Vec<u32> = (0..all.len() as u32)
                .filter(|&i| m.matches_labels(&all[i as usize]))
                .collect();
            assert_eq!(sel(&syms, &idx, std::slice::from_ref(m)), want, "{m}");
        }
    }

    #[test]
    fn remove_drops_postings() {
        let (syms, mut idx, all) = build(&[&[("a", "1")], &[("a", "1"), ("b", "2")]]);
        let p = syms.lookup_labels(&all[1]).unwrap();
        idx.remove(1, &p);
        assert_eq!(sel(&syms, &idx, &[Matcher::equal("a", "1")]), [0]);
        assert!(!idx.postings.contains_key(&syms.lookup("b").unwrap()));
    }
}
