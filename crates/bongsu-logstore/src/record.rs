//! Applying a whole record of the `logs` topic, whose streams all share one offset.

use bongsu_model::{Labels, LogStream, LogsRecordView};

use crate::error::{Error, Result};
use crate::head::ViewEntries;
use crate::store::{LogStore, Source};

/// A stream of a record that [`LogStore::append_record`] left out, and why.
#[derive(Debug)]
pub struct RejectedStream {
    /// Its position in the record's `streams`.
    pub index: usize,
    /// Its label set.
    pub labels: Labels,
    /// How many entries it had.
    pub entries: usize,
    /// The limit it broke.
    pub error: Error,
}

impl LogStore {
    /// Applies one record of the `logs` topic: every stream of it, read at `offset` of
    /// `partition`. Returns `None` (and changes nothing) when the record was already applied.
    ///
    /// Each stream is applied or left out whole: a stream breaking a limit (too many streams,
    /// an entry outside the out-of-order window, a line too long) is left out and listed in the
    /// answer, the record's other streams are applied. Replaying a record after a restart
    /// applies only the streams whose entries did not reach a segment.
    pub fn append_record(
        &mut self,
        partition: u32,
        offset: u64,
        streams: &[LogStream],
    ) -> Option<Vec<RejectedStream>> {
        if self.is_applied(partition, offset) {
            return None;
        }
        let mut rejected = Vec::new();
        for (index, s) in streams.iter().enumerate() {
            // The streams share the record's offset: `append` must not take the second one
            // for a replay of the first.
            self.applied.insert(partition, offset);
            if let Err(error) = self.append(partition, offset, &s.labels, &s.entries) {
                rejected.push(RejectedStream {
                    index,
                    labels: s.labels.clone(),
                    entries: s.entries.len(),
                    error,
                });
            }
        }
        self.applied.insert(partition, offset + 1);
        Some(rejected)
    }

    /// [`LogStore::append_record`] of a record read in place (the logs consumer's path): the
    /// lines are copied from the record's bytes into the streams' heads, with no allocation
    /// per line.
    pub fn append_record_view(
        &mut self,
        partition: u32,
        offset: u64,
        record: &LogsRecordView<'_>,
    ) -> Option<Vec<RejectedStream>> {
        if self.is_applied(partition, offset) {
            return None;
        }
        let mut rejected = Vec::new();
        for (index, s) in record.streams().iter().enumerate() {
            self.applied.insert(partition, offset);
            let entries = ViewEntries {
                view: record,
                entries: record.entries(s),
            };
            if let Err(error) = self.append_entries(partition, offset, &s.labels, &entries) {
                rejected.push(RejectedStream {
                    index,
                    labels: s.labels.clone(),
                    entries: entries.entries.len(),
                    error,
                });
            }
        }
        self.applied.insert(partition, offset + 1);
        Some(rejected)
    }

    fn is_applied(&self, partition: u32, offset: u64) -> bool {
        self.applied
            .get(&partition)
            .is_some_and(|&next| offset < next)
    }

    /// The label sets of every stream the store holds (in memory or in segments).
    pub fn stream_labels(&self) -> Vec<bongsu_model::Labels> {
        self.streams.iter().map(|s| s.labels.clone()).collect()
    }

    /// Index statistics of the streams selected by `query`'s stream selector (the first
    /// `{...}` in it, so a log or metric query works too) in `[start, end]`: streams with data
    /// there, and the chunks (and heads) overlapping the range with their entries and bytes of
    /// line text. Whole chunks count, as in Loki: an estimate of what a query would read.
    pub fn index_stats(&self, query: &str, start_ns: i64, end_ns: i64) -> Result<IndexStats> {
        let selector = selector_text(query).ok_or_else(|| {
            Error::Query("no stream selector in the query: give one such as {app=\"api\"}".into())
        })?;
        let matchers = crate::logql::parser::parse_selector(selector)?;
        let mut st = IndexStats::default();
        for id in self.select(&matchers) {
            let sources = self.sources(id, start_ns, end_ns);
            if sources.is_empty() {
                continue;
            }
            st.streams += 1;
            for src in sources {
                st.chunks += 1;
                match src {
                    Source::Head(h) => {
                        for e in h.iter() {
                            st.entries += 1;
                            st.bytes += e.line.len() as u64;
                        }
                    }
                    other => {
                        if let Some(m) = other.meta() {
                            st.entries += u64::from(m.entries);
                            st.bytes += m.line_bytes;
                        }
                    }
                }
            }
        }
        Ok(st)
    }
}

/// What [`LogStore::index_stats`] counts (Loki's `/index/stats` fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The first `{...}` of a query, skipping braces inside quoted strings.
fn selector_text(query: &str) -> Option<&str> {
    let start = query.find('{')?;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in query[start..].char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '`' => quote = Some(c),
                '}' => return Some(&query[start..=start + i]),
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use bongsu_model::LogEntry;

    use super::*;
    use crate::{Config, Direction, ResultData};

    fn stream(app: &str, lines: &[(i64, &str)]) -> LogStream {
        LogStream {
            labels: Labels::from_pairs([("app", app)]).unwrap(),
            entries: lines.iter().map(|&(t, l)| LogEntry::new(t, l)).collect(),
        }
    }

    fn lines(store: &LogStore, q: &str) -> Vec<String> {
        let r = store
            .query_range(q, 0, 1_000_000, 0, 1000, Direction::Forward)
            .unwrap();
        let ResultData::Streams(s) = r.data else {
            panic!("not streams")
        };
        let mut out: Vec<String> = s
            .into_iter()
            .flat_map(|s| s.entries.into_iter().map(|e| e.1))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_stream_of_a_record_is_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let rec = vec![stream("a", &[(10, "a1")]), stream("b", &[(11, "b1")])];
        {
            let mut s = LogStore::open(dir.path(), Config::default()).unwrap();
            assert!(s.append_record(0, 0, &rec).unwrap().is_empty());
            assert!(s.append_record(0, 0, &rec).is_none(), "replay in memory");
            assert_eq!(lines(&s, r#"{app=~"a|b"}"#), ["a1", "b1"]);
            s.flush().unwrap();
            assert_eq!(s.applied_offsets(), vec![(0, 1)]);
        }
        let mut s = LogStore::open(dir.path(), Config::default()).unwrap();
        assert!(
            s.append_record(0, 0, &rec).is_none(),
            "replay after restart"
        );
        assert!(s
            .append_record(0, 1, &[stream("b", &[(12, "b2")])])
            .unwrap()
            .is_empty());
        assert_eq!(lines(&s, r#"{app=~"a|b"}"#), ["a1", "b1", "b2"]);
        let mut names: Vec<String> = s.stream_labels().iter().map(|l| l.to_string()).collect();
        names.sort();
        assert_eq!(names, [r#"{app="a"}"#, r#"{app="b"}"#]);
    }

    #[test]
    fn record_views_apply_like_borrowed_records() {
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let cfg = Config {
            max_streams: 2,
            ..Config::default()
        };
        let mut a = LogStore::open(dir_a.path(), cfg.clone()).unwrap();
        let mut b = LogStore::open(dir_b.path(), cfg).unwrap();
        let records = [
            vec![
                stream("a", &[(10, "a1"), (12, "a3")]),
                stream("b", &[(11, "b1")]),
            ],
            // Out of order within the window: sorted into the head.
            vec![stream("a", &[(11, "a2")])],
            // A third stream breaks max_streams: left out, counted.
            vec![
                stream("c", &[(13, "c1"), (14, "c2")]),
                stream("b", &[(15, "b2")]),
            ],
        ];
        let bytes: Vec<Vec<u8>> = records
            .iter()
            .map(|r| bongsu_model::LogsRecord { streams: r.clone() }.encode())
            .collect();
        let view = |i: usize| LogsRecordView::parse(&bytes[i]).unwrap();
        for (offset, rec) in records.iter().enumerate() {
            let ra = a.append_record(1, offset as u64, rec).unwrap();
            let rb = b
                .append_record_view(1, offset as u64, &view(offset))
                .unwrap();
            let key = |r: &[RejectedStream]| -> Vec<(usize, usize, String)> {
                r.iter()
                    .map(|r| (r.index, r.entries, r.labels.to_string()))
                    .collect()
            };
            assert_eq!(key(&ra), key(&rb));
        }
        assert!(b.append_record_view(1, 1, &view(1)).is_none());
        let q = r#"{app=~"a|b|c"}"#;
        assert_eq!(lines(&a, q), ["a1", "a2", "a3", "b1", "b2"]);
        assert_eq!(lines(&b, q), lines(&a, q));
        let r = b
            .query_range(r#"{app="a"}"#, 0, 100, 0, 10, Direction::Forward)
            .unwrap();
        let ResultData::Streams(s) = r.data else {
            panic!("not streams")
        };
        let order: Vec<&str> = s[0].entries.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(order, ["a1", "a2", "a3"], "head kept in time order");
        assert_eq!(a.stats().pending_line_bytes, b.stats().pending_line_bytes);
    }

    #[test]
    fn index_stats_count_streams_chunks_entries_and_bytes_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), Config::default()).unwrap();
        let rec = vec![
            stream("a", &[(10, "abc"), (20, "de")]),
            stream("b", &[(15, "x")]),
        ];
        s.append_record(0, 0, &rec).unwrap();
        let all = s.index_stats(r#"{app=~"a|b"}"#, 0, 100).unwrap();
        assert_eq!(
            all,
            IndexStats {
                streams: 2,
                chunks: 2,
                entries: 3,
                bytes: 6
            }
        );
        s.flush().unwrap();
        assert_eq!(s.index_stats(r#"{app=~"a|b"}"#, 0, 100).unwrap(), all);
        let q = r#"sum(count_over_time({app="a"} |= "}" [5m]))"#;
        let a = s.index_stats(q, 0, 100).unwrap();
        assert_eq!((a.streams, a.entries, a.bytes), (1, 2, 5));
        assert_eq!(
            s.index_stats(r#"{app="a"}"#, 50, 100).unwrap(),
            IndexStats::default()
        );
        assert!(s.index_stats("count_over_time(x)", 0, 100).is_err());
        assert_eq!(selector_text(r#"{a="}"} |= "{""#), Some(r#"{a="}"}"#));
    }

    #[test]
    fn a_stream_over_a_limit_is_left_out_and_the_others_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            max_streams: 1,
            ..Config::default()
        };
        let mut s = LogStore::open(dir.path(), cfg).unwrap();
        let rec = vec![stream("a", &[(10, "a1")]), stream("b", &[(11, "b1")])];
        let rejected = s.append_record(3, 7, &rec).unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].index, 1);
        assert_eq!(rejected[0].entries, 1);
        assert!(matches!(
            rejected[0].error,
            Error::TooManyStreams { limit: 1 }
        ));
        assert_eq!(lines(&s, r#"{app=~"a|b"}"#), ["a1"]);
        s.flush().unwrap();
        assert_eq!(s.applied_offsets(), vec![(3, 8)]);
    }
}
