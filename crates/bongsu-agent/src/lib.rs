//! bongsu's host agent as a library: host collectors with node_exporter's metric names,
//! process and port watch, inventory, a log tailer and blackbox-style service checks.
//!
//! Everything produces `(bongsu_model::Labels, Sample)` metrics ([`Metrics`]) or
//! `(Labels, LogEntry)` log records ([`Tailer::poll`]). `/proc`, `/sys` and the root file
//! system come from [`HostPaths`], so tests point collectors at fixture trees. [`run_agent`] runs it all
//! and ships batches ([`Batch`], docs/formats/agent.md) through a bounded [`DiskQueue`].

mod agent;
mod checks;
mod clock;
mod config;
mod error;
mod exposition;
mod gpu;
mod host;
mod inventory;
mod journal;
mod metrics;
mod paths;
mod ports;
mod processes;
mod protocol;
mod queue;
mod run;
mod state_file;
mod tail;

pub use agent::Collector;
pub use checks::{run_check, CheckRunner};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    AgentConfig, CheckConfig, CollectorsConfig, DnsCheck, DnsFamily, HttpCheck, InventoryConfig,
    JournalConfig, LogSourceConfig, MultilineConfig, PortProto, PortWatch, PortsConfig,
    ProcessWatch, ProcessesConfig, ReadFrom, ShippingConfig, TailerConfig, TcpCheck,
};
pub use error::{Error, Result};
pub use exposition::{
    compare_exposition, parse_exposition, ExpositionSample, LabelMismatch, Overlap,
};
pub use gpu::GpuCollector;
pub use host::{HostCollector, HOST_COLLECTORS};
pub use inventory::{
    CpuInfo, Group, InterfaceAddress, Inventory, KernelInfo, OsInfo, Package, User,
};
pub use journal::JournalReader;
pub use metrics::{MetricKind, MetricMeta, Metrics};
pub use paths::HostPaths;
pub use ports::{listening_sockets, ListeningSocket, PortCollector};
pub use processes::ProcessCollector;
pub use protocol::{
    decode_batch, decode_header, Batch, BatchHeader, BatchLimits, DecodedBatch, Heartbeat,
    BATCH_CONTENT_TYPE, BATCH_HEADER_LEN, BATCH_MAGIC, BATCH_VERSION, FOLLOWS_HEADER, PART_LOGS,
    PART_METRICS,
};
pub use queue::{DiskQueue, QueueConfig, QueueStats, QueuedBatch};
pub use run::{run_agent, ShipStats, ShipTarget};
pub use tail::{Tailer, TailerStats};
