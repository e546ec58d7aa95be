//! Tests of the load generator.

mod compare;
mod diff_prometheus;
mod workload;
