//! Integration tests of the store through its public API.

mod golden;
mod model;
mod snapshot;
mod store;
