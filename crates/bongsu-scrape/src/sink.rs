//! Where scrapes go: one [`MetricsRecord`] per scrape, appended by a [`MetricsSink`].

use async_trait::async_trait;
use bongsu_model::MetricsRecord;

use crate::error::Result;

/// Appends scraped records durably (the server's implementation appends to the `metrics`
/// topic of its stream). Called once per scrape, from the target's task; an error is logged
/// and counted, and the scrape counts as failed.
#[async_trait]
pub trait MetricsSink: Send + Sync + 'static {
    /// Appends one record; returns once it is durable.
    async fn append(&self, record: MetricsRecord) -> Result<()>;
}
