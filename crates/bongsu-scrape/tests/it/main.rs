//! Integration tests of the scraper: real HTTP targets, file discovery, staleness, and
//! node_exporter as a real peer.

mod common;
mod node_exporter;
mod scrape_loop;
