//! Scenario files: TOML in, a validated `Scenario` out. Raw (serde) → validated, with every
//! error naming the file, the key and the line. Nothing downstream re-validates.

pub mod dist;
pub mod error;
pub mod grid;
pub mod locate;
pub mod overrides;
pub mod raw;
pub mod uncertainty;
pub mod validate;

use std::collections::BTreeMap;

pub use dist::Dist;
pub use error::InputError;

use crate::engine::Policy;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Hex digest of the scenario after overrides; plans carry it.
    pub fingerprint: String,
    pub fleet: Fleet,
    pub firmware: Firmware,
    pub network: Network,
    pub install: Install,
    pub service: Service,
    pub failures: Failures,
    pub agent: Agent,
    pub policies: BTreeMap<String, Policy>,
    /// The fleet's maintenance windows, bound to its regions and the simulated start time:
    /// simulated gateways hold installs until their window.
    pub maintenance: Option<crate::engine::maintenance::Maintenance>,
    pub raw_policies: BTreeMap<String, raw::RawPolicy>,
    pub default_policy: String,
    pub sweep: Option<raw::RawSweep>,
    /// The merged document (after `--set`), for sweeps that vary it.
    pub document: toml::Table,
    /// Values the scenario is unsure of, drawn per replication (`[uncertainty]`).
    pub uncertainty: Vec<uncertainty::Uncertain>,
    /// The values drawn for this run, when this scenario is one draw of its uncertainty.
    pub drawn: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub gateways: u32,
    pub regions: Vec<String>,
    pub hw_classes: Vec<String>,
    pub baseline_cpu_pct: Dist,
    pub busy_fraction: Dist,
    pub busy_period_s: Dist,
    pub busy_cpu_pct: f64,
    pub free_disk_mb: Dist,
    pub battery_fraction: f64,
    pub battery_pct: Dist,
    pub battery_charge_pct_per_h: f64,
    pub flakiness: Dist,
}

#[derive(Debug, Clone)]
pub struct Firmware {
    pub size_mb: f64,
    pub chunk_mb: f64,
    pub defect_rate: f64,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub origin_mbps: f64,
    pub region_uplink_mbps: f64,
    pub gateway_mbps: Dist,
    pub rate_limit_mbps: f64,
    pub regional_caches: bool,
    pub cache_mbps: f64,
    pub tcp_window_kb: f64,
    pub origin_rtt_ms: Dist,
    pub cache_rtt_ms: Dist,
    pub chunk_retry_s: f64,
    pub max_chunk_retries: u32,
}

#[derive(Debug, Clone)]
pub struct Install {
    pub seconds: Dist,
    pub cpu_spike_pct: f64,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub max_concurrent_ops: u32,
    pub queue_depth: u32,
    pub op_timeout_s: f64,
    pub reboot_grace_s: f64,
    /// Network round trip to the service, outside its CPU (ms).
    pub base_latency_ms: f64,
    /// Worker cores serving requests first come, first served.
    pub cores: u32,
    /// CPU the service spends with no fleet traffic (% of all cores).
    pub cpu_base_pct: f64,
    /// Mean CPU ms per request of each class (exponentially distributed).
    pub op_request_ms: f64,
    pub status_poll_ms: f64,
    pub progress_ms: f64,
    pub heartbeat_ms: f64,
    pub reconnect_ms: f64,
    pub heartbeat_interval_s: f64,
    pub heartbeat_deadline_s: f64,
    pub missed_heartbeats: u32,
    pub progress_msgs_per_chunk: f64,
    pub tick_s: f64,
}

/// Fault rates. With `failures.enabled = false` every rate is zero and timeouts are off.
#[derive(Debug, Clone)]
pub struct Failures {
    pub enabled: bool,
    pub chunk_failure_rate: f64,
    pub verify_failure_rate: f64,
    pub install_failure_rate: f64,
    pub install_brick_fraction: f64,
    pub overheat_failure_rate: f64,
    pub low_battery_pct: f64,
    pub low_battery_brick_rate: f64,
    pub link_disconnects_per_h: f64,
}

/// The device agent. Its probabilities are zero with `failures.enabled = false`.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Each gateway with an outstanding operation polls its state this often (s).
    pub status_poll_s: f64,
    /// A reconnect (TLS, authentication, session) not answered within this fails (s).
    pub reconnect_timeout_s: f64,
    pub reconnect: Reconnect,
    /// Probability that an agent in the middle of an update (operation outstanding, not yet
    /// flashing) wedges when its session drops and needs a power cycle, instead of
    /// reconnecting and resuming from the chunks on disk.
    pub wedge_on_drop: f64,
    /// Probability that a second update command arriving during flashing bricks the gateway.
    pub brick_on_reissue: f64,
}

/// The agent's reconnect backoff; after `max_attempts` failed tries it gives up until
/// power-cycled (a reboot after an install restarts it).
#[derive(Debug, Clone)]
pub struct Reconnect {
    pub base_s: f64,
    pub factor: f64,
    pub cap_s: f64,
    pub jitter: f64,
    pub max_attempts: u32,
}

impl Reconnect {
    /// Wait before try `n` (0-based), with `u` uniform in [0, 1) for the jitter.
    pub fn delay_s(&self, n: u32, u: f64) -> f64 {
        let d = (self.base_s * self.factor.powi(n.min(64) as i32)).min(self.cap_s);
        d * (1.0 - self.jitter * u)
    }
}

impl Scenario {
    /// The same scenario with one value overridden in its document. Edit a scenario this way,
    /// never through its validated fields: each run's draw of `[uncertainty]` rebuilds the
    /// scenario from its document, and would silently drop a field edit.
    pub fn with_value(&self, key: &str, value: toml::Value) -> Result<Scenario, InputError> {
        let mut doc = self.document.clone();
        overrides::apply(&mut doc, key, value)?;
        let raw: raw::RawScenario = overrides::deserialize(&doc)?;
        let mut out = validate::scenario(raw, doc)?;
        out.fingerprint = self.fingerprint.clone();
        Ok(out)
    }

    /// Looks a policy up by name, with the list of names in the error.
    pub fn policy(&self, name: &str) -> Result<&Policy, InputError> {
        self.policies.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.policies.keys().map(String::as_str).collect();
            InputError::new(format!(
                "no policy named `{name}` in the scenario (it has: {})",
                names.join(", ")
            ))
        })
    }
}

/// Loads a scenario file and applies `--set KEY=VALUE` overrides.
pub fn load(path: &str, sets: &[String]) -> Result<Scenario, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read scenario: {e}")).in_file(path))?;
    from_text(&text, path, sets)
}

pub fn from_text(text: &str, path: &str, sets: &[String]) -> Result<Scenario, InputError> {
    let (table, set_keys) = overrides::merge(text, sets).map_err(|e| e.in_file(path))?;
    let locator = locate::Locator::new(text);
    let attach = |mut e: InputError| -> InputError {
        if let Some(key) = e.key.clone() {
            if let Some(set) = set_keys
                .iter()
                .find(|s| key == **s || key.starts_with(&format!("{s}.")))
            {
                e.origin = Some(format!("--set {set}"));
            } else if e.line.is_none() {
                if let Some((line, col)) = locator.line_of(&key) {
                    e.line = Some(line);
                    e.column = Some(col);
                }
            }
        }
        e.in_file(path)
    };
    if table.contains_key("policy") && table.contains_key("scenario") {
        let plan_name = table
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("a plan");
        return Err(InputError::new(format!(
            "this is a plan written by `stagger tune` ({plan_name}), not a scenario: pass it with --plan (e.g. `stagger simulate --plan {path}`)"
        ))
        .in_file(path));
    }
    let raw: raw::RawScenario = overrides::deserialize(&table).map_err(attach)?;
    let s = validate::scenario(raw, table).map_err(attach)?;
    uncertainty::check_extremes(&s).map_err(attach)?;
    Ok(s)
}
