//! Tests of the load generator.

mod workload;
