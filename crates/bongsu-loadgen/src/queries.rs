//! The dashboard and alert-rule query set run by the differential test and the benchmark.

/// One query of the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryDef {
    /// A short name for reports.
    pub name: &'static str,
    /// The PromQL expression.
    pub expr: &'static str,
}

const fn q(name: &'static str, expr: &'static str) -> QueryDef {
    QueryDef { name, expr }
}

/// Queries typical of node_exporter dashboards and alerting rules, over the series of
/// [`crate::Workload`].
pub const QUERIES: &[QueryDef] = &[
    // Selectors and simple functions.
    q("selector", "node_load1"),
    q("selector_regex", r#"node_filesystem_avail_bytes{mountpoint=~"/|/var/.*"}"#),
    q("selector_neg", r#"node_network_up{device!="lo"}"#),
    q("offset", "node_load5 offset 10m"),
    q("abs_delta", "abs(delta(node_load15[10m]))"),
    // Rates.
    q("rate_cpu", r#"rate(node_cpu_seconds_total{mode="user"}[5m])"#),
    q("irate_net", r#"irate(node_network_receive_bytes_total{device="eth0"}[2m])"#),
    q("increase_http", "increase(http_requests_total[10m])"),
    q("rate_resets", "resets(process_cpu_seconds_total[30m])"),
    q("rate_disk_io", "rate(node_disk_io_time_seconds_total[5m])"),
    // Aggregations.
    q(
        "cpu_busy_by_instance",
        r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#,
    ),
    q("sum_by_mode", "sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
    q("sum_without", "sum without (cpu) (rate(node_cpu_seconds_total[5m]))"),
    q("count_by", "count by (mode) (node_cpu_seconds_total)"),
    q("max_by", "max by (instance) (node_hwmon_temp_celsius)"),
    q("min_avg", "min(avg by (instance) (node_load1))"),
    q("stddev", "stddev by (job) (node_load1)"),
    q("stdvar", "stdvar(node_load5)"),
    q("quantile_agg", "quantile(0.9, node_load1)"),
    q("count_values", "count_values(\"mtu\", node_network_mtu_bytes)"),
    q("topk", "topk(3, rate(node_network_transmit_bytes_total[5m]))"),
    q("bottomk", "bottomk(2, node_filesystem_avail_bytes)"),
    q("group", "group by (device) (node_disk_io_now)"),
    // Histograms.
    q(
        "p99_latency",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    q(
        "p50_by_handler",
        "histogram_quantile(0.5, sum by (handler, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    q(
        "mean_latency",
        "sum by (handler) (rate(http_request_duration_seconds_sum[5m])) / sum by (handler) (rate(http_request_duration_seconds_count[5m]))",
    ),
    // Arithmetic and comparisons (alert rules).
    q(
        "mem_used_pct",
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    ),
    q(
        "fs_almost_full",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 30",
    ),
    q("load_gt_bool", "node_load1 > bool 1"),
    q("temp_high", "node_hwmon_temp_celsius >= 50"),
    q(
        "error_ratio",
        r#"sum by (instance) (rate(http_requests_total{code="500"}[5m])) / sum by (instance) (rate(http_requests_total[5m])) > 0.005"#,
    ),
    q("net_errors", "rate(node_network_receive_errs_total[5m]) > 0"),
    q("and_unless", "node_load1 > 0.5 and node_load5 > 0.5 unless node_load15 > 3"),
    q("or", "node_procs_blocked > 1 or node_procs_running > 4"),
    q("scalar_math", "node_memory_MemFree_bytes / 1024 / 1024 - 10 * 2 ^ 2 % 7"),
    // Joins.
    q(
        "join_group_left",
        "node_filesystem_avail_bytes * on (instance) group_left (nodename) node_uname_info",
    ),
    q(
        "join_on",
        "rate(node_network_receive_bytes_total[5m]) / on (instance, device) node_network_mtu_bytes",
    ),
    q(
        "ignoring",
        "node_filesystem_free_bytes - ignoring (fstype) node_filesystem_avail_bytes",
    ),
    // *_over_time.
    q("avg_over_time", "avg_over_time(node_load1[10m])"),
    q("max_over_time", "max_over_time(node_hwmon_temp_celsius[15m])"),
    q("min_over_time", "min_over_time(node_memory_MemAvailable_bytes[10m])"),
    q("sum_count_over_time", "sum_over_time(node_procs_running[5m]) / count_over_time(node_procs_running[5m])"),
    q("quantile_over_time", "quantile_over_time(0.95, node_load1[15m])"),
    q("stddev_over_time", "stddev_over_time(node_load5[10m])"),
    q("last_over_time", "last_over_time(node_boot_time_seconds[5m])"),
    q("changes", "changes(node_boot_time_seconds[30m])"),
    // Absence and prediction.
    q("absent_present", r#"absent(up{job="node"})"#),
    q("absent_missing", r#"absent(up{job="missing"})"#),
    q("absent_over_time", r#"absent_over_time(nonexistent_metric[5m])"#),
    q(
        "predict_linear",
        r#"predict_linear(node_filesystem_avail_bytes{fstype!="tmpfs"}[30m], 4 * 3600) < 0"#,
    ),
    q("deriv", "deriv(node_memory_MemAvailable_bytes[15m])"),
    // Subqueries.
    q("subquery_max_rate", r#"max_over_time(rate(node_cpu_seconds_total{mode="system"}[2m])[10m:1m])"#),
    q("subquery_avg", "avg_over_time(sum by (instance) (node_load1)[15m:30s])"),
    // Label manipulation, time functions, sorting.
    q(
        "label_replace",
        r#"label_replace(node_load1, "host", "$1", "instance", "([^:]+):.*")"#,
    ),
    q(
        "label_join",
        r#"label_join(node_network_up, "id", "/", "instance", "device")"#,
    ),
    q("uptime", "time() - node_boot_time_seconds"),
    q("clamp", "clamp(node_load1, 0.2, 1.5)"),
    q("round_ceil", "round(node_load1, 0.5) + ceil(node_load5) - floor(node_load15)"),
    q("vector_scalar", "scalar(sum(up)) * vector(2)"),
    q("sort_desc", "sort_desc(sum by (instance) (rate(node_context_switches_total[5m])))"),
    q("timestamp", "timestamp(up)"),
    q("exp_ln", "ln(node_memory_MemTotal_bytes) + exp(-node_load1)"),
    q("sgn_neg", "-sgn(node_load1 - 1)"),
];
