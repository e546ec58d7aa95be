//! Tests of the load generator.

mod diff_prometheus;
mod workload;
