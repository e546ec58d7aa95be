//! Integration tests of bongsu-agent: real-host agreement, fixture trees, the tailer,
//! checks against local servers, and the (ignored) side-by-side with node_exporter.

mod checks;
mod host;
mod journal;
mod peer;
mod tail;
mod tail_model;
