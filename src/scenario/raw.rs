//! The scenario file as written: serde structs with `deny_unknown_fields`, no meaning yet.
//! Distribution-valued keys stay `toml::Value` here; `validate` turns them into `Dist`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Value;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    #[serde(default)]
    pub meta: RawMeta,
    pub fleet: RawFleet,
    pub firmware: RawFirmware,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub install: RawInstall,
    #[serde(default)]
    pub service: RawService,
    #[serde(default)]
    pub failures: RawFailures,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    pub sweep: Option<RawSweep>,
    /// Maintenance windows: every policy without its own `maintenance` takes these, and the
    /// simulated gateways hold installs until their window.
    pub maintenance: Option<RawMaintenance>,
    /// Model uncertainty: dotted keys of numeric scenario values, each with a distribution
    /// drawn once per replication (the same draw for every policy on that seed).
    #[schemars(with = "Option<BTreeMap<String, DistSchema>>")]
    pub uncertainty: Option<BTreeMap<String, Value>>,
}

/// Daily maintenance windows per region, in which installs may start.
#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// Simulation only (scenario level): the UTC time of day, `HH:MM`, at which a simulated
    /// rollout starts. Live rollouts start at the wall clock's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_utc: Option<String>,
    /// Hours before a window opens that a gateway may start downloading (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_h: Option<f64>,
    pub windows: Vec<RawWindow>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Region names it covers; absent or empty: every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Local opening time, `HH:MM`.
    pub start: String,
    /// The region's offset from UTC in hours (e.g. 1, -5, 5.5).
    #[serde(default)]
    pub utc_offset_h: f64,
    pub duration_h: f64,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: Option<String>,
    pub description: Option<String>,
    pub default_policy: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub gateways: i64,
    pub regions: Option<Vec<String>>,
    pub hw_classes: Option<Vec<String>>,
    #[schemars(with = "Option<DistSchema>")]
    pub baseline_cpu_pct: Option<Value>,
    #[schemars(with = "Option<DistSchema>")]
    pub busy_fraction: Option<Value>,
    #[schemars(with = "Option<DistSchema>")]
    pub busy_period_s: Option<Value>,
    pub busy_cpu_pct: Option<f64>,
    #[schemars(with = "Option<DistSchema>")]
    pub free_disk_mb: Option<Value>,
    pub battery_fraction: Option<f64>,
    #[schemars(with = "Option<DistSchema>")]
    pub battery_pct: Option<Value>,
    pub battery_charge_pct_per_h: Option<f64>,
    #[schemars(with = "Option<DistSchema>")]
    pub flakiness: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFirmware {
    pub size_mb: f64,
    pub chunk_mb: Option<f64>,
    pub defect_rate: Option<f64>,
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub origin_mbps: Option<f64>,
    pub region_uplink_mbps: Option<f64>,
    #[schemars(with = "Option<DistSchema>")]
    pub gateway_mbps: Option<Value>,
    pub rate_limit_mbps: Option<f64>,
    pub regional_caches: Option<bool>,
    pub cache_mbps: Option<f64>,
    pub tcp_window_kb: Option<f64>,
    #[schemars(with = "Option<DistSchema>")]
    pub origin_rtt_ms: Option<Value>,
    #[schemars(with = "Option<DistSchema>")]
    pub cache_rtt_ms: Option<Value>,
    pub chunk_retry_s: Option<f64>,
    pub max_chunk_retries: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInstall {
    #[schemars(with = "Option<DistSchema>")]
    pub seconds: Option<Value>,
    pub cpu_spike_pct: Option<f64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub max_concurrent_ops: Option<i64>,
    pub queue_depth: Option<i64>,
    pub op_timeout_s: Option<f64>,
    pub reboot_grace_s: Option<f64>,
    pub base_latency_ms: Option<f64>,
    pub cores: Option<i64>,
    pub cpu_base_pct: Option<f64>,
    pub op_request_ms: Option<f64>,
    pub status_poll_ms: Option<f64>,
    pub progress_ms: Option<f64>,
    pub heartbeat_ms: Option<f64>,
    pub reconnect_ms: Option<f64>,
    pub heartbeat_interval_s: Option<f64>,
    pub heartbeat_deadline_s: Option<f64>,
    pub missed_heartbeats: Option<i64>,
    pub progress_msgs_per_chunk: Option<f64>,
    pub tick_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFailures {
    pub enabled: Option<bool>,
    pub chunk_failure_rate: Option<f64>,
    pub verify_failure_rate: Option<f64>,
    pub install_failure_rate: Option<f64>,
    pub install_brick_fraction: Option<f64>,
    pub overheat_failure_rate: Option<f64>,
    pub low_battery_pct: Option<f64>,
    pub low_battery_brick_rate: Option<f64>,
    pub link_disconnects_per_h: Option<f64>,
}

/// The device agent on each gateway: how it polls, reconnects and survives a dropped session.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub status_poll_s: Option<f64>,
    pub reconnect_timeout_s: Option<f64>,
    pub reconnect: Option<RawReconnect>,
    pub wedge_on_drop: Option<f64>,
    pub brick_on_reissue: Option<f64>,
}

/// The agent's reconnect schedule: min(base·factor^n, cap), shortened by up to `jitter`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReconnect {
    pub base_s: Option<f64>,
    pub factor: Option<f64>,
    pub cap_s: Option<f64>,
    pub jitter: Option<f64>,
    pub max_attempts: Option<i64>,
}

/// One named policy. Flat on purpose: validation checks which keys each family takes,
/// which gives clearer errors than serde's tagged enums.
#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_gap_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<RawGate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<RawStage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<RawCanary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_timeout_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_timeout_s: Option<f64>,
    /// Approval gates: stages (`canary`, or a staged plan's stage names) after which the
    /// rollout waits for `stagger approve`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_after: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prechecks: Option<RawPrechecks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RawRollback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defect_halt: Option<RawDefectHalt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<RawAdaptive>,
    /// Daily windows in which installs may start (default: the scenario's `[maintenance]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<RawMaintenance>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub name: String,
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak_s: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak_s: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrechecks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_disk_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_battery_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_link_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_idle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defer_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deferrals: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_offline_deferrals: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollback {
    pub below: f64,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefectHalt {
    pub health_failures: i64,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub increase: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrease: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failure_rate: Option<f64>,
}

/// `[sweep]`: one grid per policy family, each listing the values of a parameter.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    pub replications: Option<i64>,
    pub defect_rate: Option<f64>,
    pub seed: Option<i64>,
    #[serde(default)]
    pub grids: BTreeMap<String, RawGrid>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGrid {
    /// The policy whose knobs are the base for this grid.
    pub base: String,
    /// Fixed overrides applied to the base before the swept values (not swept, not labelled).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub with: BTreeMap<String, Value>,

    /// Parameter path inside the policy (e.g. `batch_size`, `gate.fraction`) → values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>")]
    pub params: BTreeMap<String, Vec<Value>>,
}

/// The schema of a distribution-valued key: a number, or a table naming the distribution
/// (`{ dist = "lognormal", median = 20, sigma = 0.4 }`). `validate` checks the parameters
/// each distribution needs.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum DistSchema {
    Constant(f64),
    Distribution(DistTable),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct DistTable {
    dist: DistKind,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    sd: Option<f64>,
    median: Option<f64>,
    sigma: Option<f64>,
    mode: Option<f64>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum DistKind {
    Uniform,
    Normal,
    Lognormal,
    Exponential,
    Triangular,
}

/// The JSON Schema of scenario files, for editors (taplo, Even Better TOML).
pub fn schema() -> serde_json::Value {
    let mut s = schemars::schema_for!(RawScenario);
    s.insert("title".into(), "stagger scenario".into());
    serde_json::to_value(s).unwrap_or_default()
}
