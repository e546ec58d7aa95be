//! Integration tests of bongsu-ingest's public API.

mod exposition;
mod loki;
mod never_panic;
mod openmetrics_conformance;
mod remote_write;
mod syslog;
