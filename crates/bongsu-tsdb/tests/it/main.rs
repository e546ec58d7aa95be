//! Integration tests of the store through its public API.

mod model;
mod store;
