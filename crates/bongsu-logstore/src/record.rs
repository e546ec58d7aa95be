//! Applying a whole record of the `logs` topic, whose streams all share one offset.

use bongsu_model::LogStream;

use crate::error::Error;
use crate::store::LogStore;

/// A stream of a record that [`LogStore::append_record`] left out, and why.
#[derive(Debug)]
pub struct RejectedStream {
    /// Its position in the record's `streams`.
    pub index: usize,
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
        if self
            .applied
            .get(&partition)
            .is_some_and(|&next| offset < next)
        {
            return None;
        }
        let mut rejected = Vec::new();
        for (index, s) in streams.iter().enumerate() {
            // The streams share the record's offset: `append` must not take the second one
            // for a replay of the first.
            self.applied.insert(partition, offset);
            if let Err(error) = self.append(partition, offset, &s.labels, &s.entries) {
                rejected.push(RejectedStream { index, error });
            }
        }
        self.applied.insert(partition, offset + 1);
        Some(rejected)
    }

    /// The label sets of every stream the store holds (in memory or in segments).
    pub fn stream_labels(&self) -> Vec<bongsu_model::Labels> {
        self.streams.iter().map(|s| s.labels.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use bongsu_model::{Labels, LogEntry};

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
        assert!(matches!(
            rejected[0].error,
            Error::TooManyStreams { limit: 1 }
        ));
        assert_eq!(lines(&s, r#"{app=~"a|b"}"#), ["a1"]);
        s.flush().unwrap();
        assert_eq!(s.applied_offsets(), vec![(3, 8)]);
    }
}
