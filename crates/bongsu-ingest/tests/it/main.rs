//! Integration tests of bongsu-ingest's public API.

mod openmetrics_conformance;
