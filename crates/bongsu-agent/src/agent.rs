use std::sync::Arc;

use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::gpu::GpuCollector;
use crate::host::HostCollector;
use crate::metrics::Metrics;
use crate::ports::PortCollector;
use crate::processes::ProcessCollector;
use crate::Result;

/// One full metric collection pass over the host: host collectors, processes and ports.
/// Blocking (it reads /proc and calls statvfs): run it on its own thread or in
/// `spawn_blocking`, never directly on the async runtime.
#[derive(Debug)]
pub struct Collector {
    host: HostCollector,
    processes: ProcessCollector,
    ports: PortCollector,
    gpu: GpuCollector,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Collector {
    pub fn new(config: &AgentConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let paths = config.host_paths();
        Ok(Self {
            host: HostCollector::new(paths.clone(), &config.collectors)?,
            processes: ProcessCollector::new(paths.clone(), &config.processes)?,
            ports: PortCollector::new(paths, config.ports.clone()),
            gpu: GpuCollector::new(),
            clock,
        })
    }

    /// Collects everything; parts that fail report `node_scrape_collector_success 0`
    /// (collector `processes` or `ports` for the agent's own parts).
    pub fn collect(&mut self) -> Metrics {
        let mut out = Metrics::new(self.clock.now_ms());
        self.host.collect(&mut out);
        let ok = self.processes.collect(&mut out).is_ok();
        out.gauge(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            &[("collector", "processes")],
            if ok { 1.0 } else { 0.0 },
        );
        let ok = self.ports.collect(&mut out).is_ok();
        out.gauge(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            &[("collector", "ports")],
            if ok { 1.0 } else { 0.0 },
        );
        self.gpu.collect(&mut out);
        out
    }
}
