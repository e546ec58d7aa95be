//! Integration tests of bongsu-logstore: golden queries, a model-based store test, recovery,
//! corruption, limits and filter skipping.

mod fixture;
mod golden;
mod model;
mod store;

use bongsu_model::{Label, Labels};

/// Parses `{a="x", b="y"}` (values without quotes or commas) into labels.
pub(crate) fn labels(s: &str) -> Labels {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let pairs = inner
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').expect("label pair has =");
            Label::new(n.trim(), v.trim().trim_matches('"'))
        })
        .collect();
    Labels::new(pairs).expect("valid labels")
}
