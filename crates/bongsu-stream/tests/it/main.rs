//! Integration tests of bongsu-stream (one test binary).

mod common;
mod conformance;
mod corruption;
mod crash;
mod embedded;
mod golden;
mod groups;
mod model;
mod retention;
