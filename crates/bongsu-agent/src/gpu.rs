//! NVIDIA GPUs through the NVIDIA management library (NVML), loaded at run time by the safe
//! `nvml-wrapper` crate: on a host without the library (or without a GPU) the collector is
//! silently disabled and adds nothing.

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::Nvml;

use crate::metrics::Metrics;

/// Collects per-GPU utilization, memory, temperature and power when NVML is present.
pub struct GpuCollector {
    nvml: Option<Nvml>,
}

impl std::fmt::Debug for GpuCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCollector")
            .field("available", &self.available())
            .finish()
    }
}

impl GpuCollector {
    /// Loads NVML if the host has it; otherwise the collector is disabled, without error.
    pub fn new() -> Self {
        Self {
            nvml: Nvml::init().ok(),
        }
    }

    /// Whether NVML was found.
    pub fn available(&self) -> bool {
        self.nvml.is_some()
    }

    /// Adds `bongsu_gpu_*` gauges with `gpu` (index), `uuid` and `name` labels.
    pub fn collect(&self, out: &mut Metrics) {
        let Some(nvml) = &self.nvml else {
            return;
        };
        let Ok(count) = nvml.device_count() else {
            return;
        };
        for i in 0..count {
            let Ok(d) = nvml.device_by_index(i) else {
                continue;
            };
            let index = i.to_string();
            let uuid = d.uuid().unwrap_or_default();
            let name = d.name().unwrap_or_default();
            let labels = [
                ("gpu", index.as_str()),
                ("uuid", uuid.as_str()),
                ("name", name.as_str()),
            ];
            if let Ok(u) = d.utilization_rates() {
                out.gauge(
                    "bongsu_gpu_utilization_ratio",
                    "Fraction of time a kernel ran on the GPU over the last sample period.",
                    &labels,
                    f64::from(u.gpu) / 100.0,
                );
                out.gauge(
                    "bongsu_gpu_memory_utilization_ratio",
                    "Fraction of time GPU memory was read or written over the last sample period.",
                    &labels,
                    f64::from(u.memory) / 100.0,
                );
            }
            if let Ok(m) = d.memory_info() {
                out.gauge(
                    "bongsu_gpu_memory_used_bytes",
                    "GPU memory in use.",
                    &labels,
                    m.used as f64,
                );
                out.gauge(
                    "bongsu_gpu_memory_total_bytes",
                    "GPU memory installed.",
                    &labels,
                    m.total as f64,
                );
            }
            if let Ok(t) = d.temperature(TemperatureSensor::Gpu) {
                out.gauge(
                    "bongsu_gpu_temperature_celsius",
                    "GPU die temperature.",
                    &labels,
                    f64::from(t),
                );
            }
            if let Ok(p) = d.power_usage() {
                out.gauge(
                    "bongsu_gpu_power_watts",
                    "GPU power draw.",
                    &labels,
                    f64::from(p) / 1000.0,
                );
            }
        }
    }
}

impl Default for GpuCollector {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_nvml_the_collector_adds_nothing_and_does_not_fail() {
        let g = GpuCollector::new();
        let mut m = Metrics::new(1);
        g.collect(&mut m);
        if g.available() {
            // A host with NVIDIA's library: whatever it has, names are ours.
            assert!(m.samples().iter().all(|(l, _)| l
                .metric_name()
                .is_some_and(|n| n.starts_with("bongsu_gpu_"))));
        } else {
            assert!(m.is_empty());
        }
    }
}
