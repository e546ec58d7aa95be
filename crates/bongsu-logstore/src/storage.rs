//! Where a store's bytes go, per stream (for benchmarks and capacity planning).

use bongsu_model::Labels;

use crate::store::LogStore;

/// Bytes one stream takes in segments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStorage {
    pub labels: Labels,
    /// Line text stored (without separators).
    pub line_bytes: u64,
    /// Compressed chunks, headers included.
    pub chunk_bytes: u64,
    /// Token filters.
    pub token_filter_bytes: u64,
    /// Substring (gram) filters.
    pub gram_filter_bytes: u64,
    pub chunks: u64,
}

impl LogStore {
    /// Per stream, the bytes its chunks in segments take (segment headers, stream tables and
    /// the rest of the index are not counted).
    pub fn storage_by_stream(&self) -> Vec<StreamStorage> {
        self.streams
            .iter()
            .map(|s| {
                let mut st = StreamStorage {
                    labels: s.labels.clone(),
                    ..StreamStorage::default()
                };
                for c in &s.chunks {
                    st.line_bytes += c.meta.line_bytes;
                    st.chunk_bytes += u64::from(c.len);
                    st.token_filter_bytes += c.meta.filter.encoded_len() as u64;
                    st.gram_filter_bytes +=
                        c.meta.grams.as_ref().map_or(0, |g| g.encoded_len() as u64);
                    st.chunks += 1;
                }
                st
            })
            .collect()
    }
}
