//! Raw → validated: ranges, defaults, cross-field rules and per-family policy keys.
//! Every error names its key path; `mod.rs` adds the file and line.

use std::collections::BTreeMap;

use super::dist::{self, Bounds, Dist};
use super::error::InputError;
use super::raw::*;
use super::*;
use crate::engine::policy::{
    Adaptive, Canary, DeferMode, Family, Gate, GateState, Policy, Prechecks, Retry, Stage,
};
use crate::time::Time;

type R<T> = Result<T, InputError>;

fn num(v: Option<f64>, default: f64, key: &str, lo: f64, hi: f64) -> R<f64> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v < lo || v > hi {
        let range = if hi.is_infinite() {
            format!("at least {lo}")
        } else {
            format!("between {lo} and {hi}")
        };
        return Err(InputError::at_key(
            key,
            format!("must be {range} (got {v})"),
        ));
    }
    Ok(v)
}

fn int(v: Option<i64>, default: i64, key: &str, lo: i64, hi: i64) -> R<u32> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(InputError::at_key(
            key,
            format!("must be a whole number from {lo} to {hi} (got {v})"),
        ));
    }
    Ok(v as u32)
}

fn dist_or(v: Option<&toml::Value>, default: f64, key: &str, bounds: Bounds) -> R<Dist> {
    match v {
        Some(v) => dist::parse(v, key, bounds),
        None => dist::parse(&toml::Value::Float(default), key, bounds),
    }
}

fn secs(v: Option<f64>, default: f64, key: &str) -> R<Time> {
    Ok(Time::from_secs(num(v, default, key, 0.0, 1e8)?))
}

pub fn scenario(raw: RawScenario, document: toml::Table) -> R<Scenario> {
    let fleet = fleet(&raw.fleet)?;
    let firmware = firmware(&raw.firmware)?;
    let network = network(&raw.network)?;
    let install = Install {
        seconds: dist_or(
            raw.install.seconds.as_ref(),
            240.0,
            "install.seconds",
            Bounds::NON_NEGATIVE,
        )?,
        cpu_spike_pct: num(
            raw.install.cpu_spike_pct,
            45.0,
            "install.cpu_spike_pct",
            0.0,
            100.0,
        )?,
    };
    let service = service(&raw.service)?;
    let failures = failures(&raw.failures)?;
    let agent = agent(&raw.agent, failures.enabled)?;
    if firmware.chunk_mb > firmware.size_mb {
        return Err(InputError::at_key(
            "firmware.chunk_mb",
            format!(
                "chunk ({} MB) is larger than the image ({} MB)",
                firmware.chunk_mb, firmware.size_mb
            ),
        ));
    }
    let maintenance_cfg = match &raw.maintenance {
        Some(m) => {
            let mut cfg = maintenance(m, "maintenance")?;
            cfg.epoch_ms_of_day = match &m.start_utc {
                Some(s) => clock_ms(s, "maintenance.start_utc")?,
                None => 0,
            };
            cfg.region_names = fleet.regions.clone();
            if let Some(r) = cfg.unknown_regions(&fleet.regions).first() {
                return Err(InputError::at_key(
                    "maintenance.windows",
                    format!(
                        "names region `{r}`, which the fleet does not have ({})",
                        fleet.regions.join(", ")
                    ),
                ));
            }
            Some(cfg)
        }
        None => None,
    };
    let mut raw_policies = raw.policies.clone();
    if let Some(m) = &raw.maintenance {
        for p in raw_policies.values_mut() {
            if p.maintenance.is_none() {
                p.maintenance = Some(crate::scenario::raw::RawMaintenance {
                    start_utc: None,
                    ..m.clone()
                });
            }
        }
    }
    let mut policies = BTreeMap::new();
    for (name, p) in &raw_policies {
        policies.insert(
            name.clone(),
            policy(p, &format!("policies.{name}"), fleet.gateways)?,
        );
    }
    if policies.is_empty() {
        return Err(InputError::at_key(
            "policies",
            "the scenario defines no policy; add a [policies.NAME] table",
        ));
    }
    let default_policy = match &raw.meta.default_policy {
        Some(p) if policies.contains_key(p) => p.clone(),
        Some(p) => {
            return Err(InputError::at_key(
                "meta.default_policy",
                format!("names `{p}`, which is not a policy here"),
            ))
        }
        None => policies.keys().next().cloned().unwrap_or_default(),
    };
    if let Some(sweep) = &raw.sweep {
        validate_sweep(sweep, &document, &raw_policies, fleet.gateways)?;
    }
    let fingerprint = fingerprint(&document);
    let uncertainty = super::uncertainty::parse(raw.uncertainty.as_ref(), &document)?;
    Ok(Scenario {
        name: raw.meta.name.clone().unwrap_or_else(|| "scenario".into()),
        description: raw.meta.description.clone().unwrap_or_default(),
        fingerprint,
        fleet,
        firmware,
        network,
        install,
        service,
        failures,
        agent,
        policies,
        raw_policies,
        maintenance: maintenance_cfg,
        default_policy,
        sweep: raw.sweep,
        document,
        uncertainty,
        drawn: Vec::new(),
    })
}

/// FNV-1a over the canonical (sorted-key) JSON of the merged document.
pub fn fingerprint(document: &toml::Table) -> String {
    let canonical = serde_json::to_string(document).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn names(v: &Option<Vec<String>>, default: &[&str], key: &str) -> R<Vec<String>> {
    let list = v
        .clone()
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    if list.is_empty() || list.len() > 10_000 {
        return Err(InputError::at_key(key, "needs between 1 and 10000 names"));
    }
    let unique: std::collections::BTreeSet<&String> = list.iter().collect();
    if unique.len() != list.len() {
        return Err(InputError::at_key(key, "names must be unique"));
    }
    Ok(list)
}

fn fleet(f: &RawFleet) -> R<Fleet> {
    let gateways = int(Some(f.gateways), 0, "fleet.gateways", 1, 10_000_000)?;
    Ok(Fleet {
        gateways,
        regions: names(&f.regions, &["default"], "fleet.regions")?,
        hw_classes: names(&f.hw_classes, &["standard"], "fleet.hw_classes")?,
        baseline_cpu_pct: dist_or(
            f.baseline_cpu_pct.as_ref(),
            20.0,
            "fleet.baseline_cpu_pct",
            Bounds::PERCENT,
        )?,
        busy_fraction: dist_or(
            f.busy_fraction.as_ref(),
            0.0,
            "fleet.busy_fraction",
            Bounds { lo: 0.0, hi: 1.0 },
        )?,
        busy_period_s: dist_or(
            f.busy_period_s.as_ref(),
            3600.0,
            "fleet.busy_period_s",
            Bounds::POSITIVE,
        )?,
        busy_cpu_pct: num(f.busy_cpu_pct, 40.0, "fleet.busy_cpu_pct", 0.0, 100.0)?,
        free_disk_mb: dist_or(
            f.free_disk_mb.as_ref(),
            2000.0,
            "fleet.free_disk_mb",
            Bounds::NON_NEGATIVE,
        )?,
        battery_fraction: num(f.battery_fraction, 0.0, "fleet.battery_fraction", 0.0, 1.0)?,
        battery_pct: dist_or(
            f.battery_pct.as_ref(),
            100.0,
            "fleet.battery_pct",
            Bounds::PERCENT,
        )?,
        battery_charge_pct_per_h: num(
            f.battery_charge_pct_per_h,
            10.0,
            "fleet.battery_charge_pct_per_h",
            0.0,
            100.0,
        )?,
        flakiness: dist_or(
            f.flakiness.as_ref(),
            1.0,
            "fleet.flakiness",
            Bounds::NON_NEGATIVE,
        )?,
    })
}

fn firmware(f: &RawFirmware) -> R<Firmware> {
    let size_mb = num(Some(f.size_mb), 0.0, "firmware.size_mb", 0.001, 1e6)?;
    Ok(Firmware {
        size_mb,
        chunk_mb: num(
            f.chunk_mb,
            size_mb.min(5.0),
            "firmware.chunk_mb",
            0.001,
            1e6,
        )?,
        defect_rate: num(f.defect_rate, 0.0, "firmware.defect_rate", 0.0, 1.0)?,
        version: f.version.clone().unwrap_or_else(|| "new".into()),
    })
}

fn network(n: &RawNetwork) -> R<Network> {
    let max_bw = 1e7;
    Ok(Network {
        origin_mbps: num(n.origin_mbps, 1000.0, "network.origin_mbps", 0.001, max_bw)?,
        region_uplink_mbps: num(
            n.region_uplink_mbps,
            1000.0,
            "network.region_uplink_mbps",
            0.001,
            max_bw,
        )?,
        gateway_mbps: dist_or(
            n.gateway_mbps.as_ref(),
            20.0,
            "network.gateway_mbps",
            Bounds {
                lo: 0.001,
                hi: max_bw,
            },
        )?,
        rate_limit_mbps: num(
            n.rate_limit_mbps,
            0.0,
            "network.rate_limit_mbps",
            0.0,
            max_bw,
        )?,
        regional_caches: n.regional_caches.unwrap_or(false),
        cache_mbps: num(n.cache_mbps, 1000.0, "network.cache_mbps", 0.001, max_bw)?,
        tcp_window_kb: num(n.tcp_window_kb, 0.0, "network.tcp_window_kb", 0.0, 1e6)?,
        origin_rtt_ms: dist_or(
            n.origin_rtt_ms.as_ref(),
            100.0,
            "network.origin_rtt_ms",
            Bounds::POSITIVE,
        )?,
        cache_rtt_ms: dist_or(
            n.cache_rtt_ms.as_ref(),
            10.0,
            "network.cache_rtt_ms",
            Bounds::POSITIVE,
        )?,
        chunk_retry_s: num(n.chunk_retry_s, 5.0, "network.chunk_retry_s", 0.0, 86_400.0)?,
        max_chunk_retries: int(n.max_chunk_retries, 5, "network.max_chunk_retries", 0, 1000)?,
    })
}

/// A request class's mean CPU cost in ms.
fn cost(v: Option<f64>, default: f64, key: &str) -> R<f64> {
    num(v, default, &format!("service.{key}"), 0.0, 600_000.0)
}

fn service(s: &RawService) -> R<Service> {
    Ok(Service {
        max_concurrent_ops: int(
            s.max_concurrent_ops,
            50,
            "service.max_concurrent_ops",
            1,
            100_000_000,
        )?,
        queue_depth: int(s.queue_depth, 100, "service.queue_depth", 0, 100_000_000)?,
        op_timeout_s: num(s.op_timeout_s, 1800.0, "service.op_timeout_s", 1.0, 1e7)?,
        reboot_grace_s: num(s.reboot_grace_s, 600.0, "service.reboot_grace_s", 0.0, 1e7)?,
        base_latency_ms: num(
            s.base_latency_ms,
            200.0,
            "service.base_latency_ms",
            0.0,
            600_000.0,
        )?,
        cores: int(s.cores, 2, "service.cores", 1, 4096)?,
        cpu_base_pct: num(s.cpu_base_pct, 10.0, "service.cpu_base_pct", 0.0, 100.0)?,
        op_request_ms: cost(s.op_request_ms, 50.0, "op_request_ms")?,
        status_poll_ms: cost(s.status_poll_ms, 20.0, "status_poll_ms")?,
        progress_ms: cost(s.progress_ms, 10.0, "progress_ms")?,
        heartbeat_ms: cost(s.heartbeat_ms, 3.0, "heartbeat_ms")?,
        reconnect_ms: cost(s.reconnect_ms, 200.0, "reconnect_ms")?,
        heartbeat_interval_s: num(
            s.heartbeat_interval_s,
            60.0,
            "service.heartbeat_interval_s",
            1.0,
            86_400.0,
        )?,
        heartbeat_deadline_s: num(
            s.heartbeat_deadline_s,
            30.0,
            "service.heartbeat_deadline_s",
            0.001,
            86_400.0,
        )?,
        missed_heartbeats: int(s.missed_heartbeats, 3, "service.missed_heartbeats", 1, 100)?,
        progress_msgs_per_chunk: num(
            s.progress_msgs_per_chunk,
            1.0,
            "service.progress_msgs_per_chunk",
            0.0,
            1000.0,
        )?,
        tick_s: num(s.tick_s, 10.0, "service.tick_s", 0.1, 60.0)?,
    })
}

fn agent(a: &RawAgent, faults: bool) -> R<Agent> {
    let p = |v: Option<f64>, d: f64, k: &str| -> R<f64> {
        let v = num(v, d, &format!("agent.{k}"), 0.0, 1.0)?;
        Ok(if faults { v } else { 0.0 })
    };
    let r = a.reconnect.as_ref();
    let base_s = num(
        r.and_then(|r| r.base_s),
        10.0,
        "agent.reconnect.base_s",
        0.0,
        1e7,
    )?;
    let cap_s = num(
        r.and_then(|r| r.cap_s),
        600.0,
        "agent.reconnect.cap_s",
        0.0,
        1e7,
    )?;
    if cap_s < base_s {
        return Err(InputError::at_key(
            "agent.reconnect.cap_s",
            "must not be below agent.reconnect.base_s",
        ));
    }
    Ok(Agent {
        status_poll_s: num(a.status_poll_s, 30.0, "agent.status_poll_s", 0.1, 86_400.0)?,
        reconnect_timeout_s: num(
            a.reconnect_timeout_s,
            30.0,
            "agent.reconnect_timeout_s",
            0.001,
            86_400.0,
        )?,
        reconnect: Reconnect {
            base_s,
            factor: num(
                r.and_then(|r| r.factor),
                2.0,
                "agent.reconnect.factor",
                1.0,
                100.0,
            )?,
            cap_s,
            jitter: num(
                r.and_then(|r| r.jitter),
                0.5,
                "agent.reconnect.jitter",
                0.0,
                1.0,
            )?,
            max_attempts: int(
                r.and_then(|r| r.max_attempts),
                1000,
                "agent.reconnect.max_attempts",
                1,
                1_000_000,
            )?,
        },
        wedge_on_drop: p(a.wedge_on_drop, 0.0, "wedge_on_drop")?,
        brick_on_reissue: p(a.brick_on_reissue, 0.0, "brick_on_reissue")?,
    })
}

fn failures(f: &RawFailures) -> R<Failures> {
    let enabled = f.enabled.unwrap_or(true);
    let p = |v: Option<f64>, d: f64, k: &str| -> R<f64> {
        let v = num(v, d, &format!("failures.{k}"), 0.0, 1.0)?;
        Ok(if enabled { v } else { 0.0 })
    };
    Ok(Failures {
        enabled,
        chunk_failure_rate: p(f.chunk_failure_rate, 0.0, "chunk_failure_rate")?,
        verify_failure_rate: p(f.verify_failure_rate, 0.0, "verify_failure_rate")?,
        install_failure_rate: p(f.install_failure_rate, 0.0, "install_failure_rate")?,
        install_brick_fraction: p(f.install_brick_fraction, 0.0, "install_brick_fraction")?,
        overheat_failure_rate: p(f.overheat_failure_rate, 0.0, "overheat_failure_rate")?,
        low_battery_pct: num(
            f.low_battery_pct,
            20.0,
            "failures.low_battery_pct",
            0.0,
            100.0,
        )?,
        low_battery_brick_rate: p(f.low_battery_brick_rate, 0.0, "low_battery_brick_rate")?,
        link_disconnects_per_h: {
            let v = num(
                f.link_disconnects_per_h,
                0.0,
                "failures.link_disconnects_per_h",
                0.0,
                1000.0,
            )?;
            if enabled {
                v
            } else {
                0.0
            }
        },
    })
}

/// Which optional keys each family takes; anything else is an error, not a silent no-op.
fn allowed_keys(family: Family) -> &'static [&'static str] {
    const SHARED: &[&str] = &[
        "retry",
        "op_timeout_s",
        "queue_timeout_s",
        "pause_after",
        "prechecks",
        "defect_halt",
        "max_concurrent",
    ];
    match family {
        Family::Bulk => SHARED,
        Family::Fixed => &[
            "retry",
            "op_timeout_s",
            "queue_timeout_s",
            "pause_after",
            "prechecks",
            "defect_halt",
            "max_concurrent",
            "batch_size",
            "delay_s",
            "canary",
            "rollback",
        ],
        Family::Backoff => &[
            "retry",
            "op_timeout_s",
            "queue_timeout_s",
            "pause_after",
            "prechecks",
            "defect_halt",
            "max_concurrent",
            "canary",
            "rollback",
        ],
        Family::Pipelined => &[
            "retry",
            "op_timeout_s",
            "queue_timeout_s",
            "pause_after",
            "prechecks",
            "defect_halt",
            "max_concurrent",
            "batch_size",
            "gate",
            "min_gap_s",
            "canary",
            "rollback",
        ],
        Family::Staged => &[
            "retry",
            "op_timeout_s",
            "queue_timeout_s",
            "pause_after",
            "prechecks",
            "defect_halt",
            "max_concurrent",
            "batch_size",
            "gate",
            "gap_s",
            "stages",
            "rollback",
        ],
        Family::Adaptive => &[
            "retry",
            "op_timeout_s",
            "queue_timeout_s",
            "pause_after",
            "prechecks",
            "defect_halt",
            "max_concurrent",
            "adaptive",
            "canary",
            "rollback",
        ],
    }
}

fn present_keys(p: &RawPolicy) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut add = |present: bool, k: &'static str| {
        if present {
            keys.push(k)
        }
    };
    add(p.max_concurrent.is_some(), "max_concurrent");
    add(p.batch_size.is_some(), "batch_size");
    add(p.delay_s.is_some(), "delay_s");
    add(p.min_gap_s.is_some(), "min_gap_s");
    add(p.gap_s.is_some(), "gap_s");
    add(p.gate.is_some(), "gate");
    add(p.stages.is_some(), "stages");
    add(p.canary.is_some(), "canary");
    add(p.retry.is_some(), "retry");
    add(p.op_timeout_s.is_some(), "op_timeout_s");
    add(p.queue_timeout_s.is_some(), "queue_timeout_s");
    add(p.pause_after.is_some(), "pause_after");
    add(p.prechecks.is_some(), "prechecks");
    add(p.rollback.is_some(), "rollback");
    add(p.defect_halt.is_some(), "defect_halt");
    add(p.adaptive.is_some(), "adaptive");
    keys
}

/// Validates one policy; `at` is its key path (e.g. `policies.fixed`), `gateways` the fleet size.
pub fn policy(p: &RawPolicy, at: &str, gateways: u32) -> R<Policy> {
    let k = |s: &str| format!("{at}.{s}");
    let family = Family::parse(&p.family).ok_or_else(|| {
        InputError::at_key(
            &k("family"),
            format!("unknown family `{}` (expected bulk, fixed, backoff, pipelined, staged or adaptive)", p.family),
        )
    })?;
    let allowed = allowed_keys(family);
    for key in present_keys(p) {
        if !allowed.contains(&key) {
            return Err(InputError::at_key(
                &k(key),
                format!(
                    "`{key}` does not apply to the {} family (it takes: {})",
                    family.name(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    let need = |present: bool, key: &str| -> R<()> {
        if present {
            Ok(())
        } else {
            Err(InputError::at_key(
                at,
                format!("the {} family needs `{key}`", family.name()),
            ))
        }
    };
    let mut out = Policy::bulk();
    out.family = family;
    let n = gateways.max(1);
    out.max_concurrent = match p.max_concurrent {
        Some(_) => int(p.max_concurrent, 0, &k("max_concurrent"), 1, 100_000_000)?,
        None => u32::MAX,
    };
    out.batch_size = match family {
        Family::Fixed | Family::Pipelined | Family::Staged => {
            need(p.batch_size.is_some(), "batch_size")?;
            int(p.batch_size, 0, &k("batch_size"), 1, 100_000_000)?
        }
        _ => u32::MAX,
    };
    if family == Family::Fixed {
        need(p.delay_s.is_some(), "delay_s")?;
    }
    out.delay = secs(p.delay_s, 0.0, &k("delay_s"))?;
    out.min_gap = secs(p.min_gap_s, 0.0, &k("min_gap_s"))?;
    out.gap = secs(p.gap_s, 0.0, &k("gap_s"))?;
    if matches!(family, Family::Pipelined | Family::Staged) {
        need(p.gate.is_some(), "gate")?;
    }
    if let Some(g) = &p.gate {
        let state_key = k("gate.state");
        let state = match g.state.as_deref() {
            None => {
                if family == Family::Pipelined {
                    GateState::Downloaded
                } else {
                    GateState::Succeeded
                }
            }
            Some(s) => GateState::parse(s).ok_or_else(|| {
                InputError::at_key(
                    &state_key,
                    format!("unknown gate state `{s}` (expected downloaded, succeeded or final)"),
                )
            })?,
        };
        out.gate = Some(Gate {
            fraction: num(Some(g.fraction), 0.0, &k("gate.fraction"), 0.0, 1.0)?,
            state,
            timeout: g
                .timeout_s
                .map(|t| secs(Some(t), 0.0, &k("gate.timeout_s")))
                .transpose()?,
        });
    }
    if family == Family::Staged {
        need(p.stages.is_some(), "stages")?;
        let stages = p.stages.as_deref().unwrap_or_default();
        if stages.is_empty() {
            return Err(InputError::at_key(&k("stages"), "needs at least one stage"));
        }
        for (i, s) in stages.iter().enumerate() {
            let sk = |f: &str| format!("{at}.stages.{i}.{f}");
            out.stages.push(Stage {
                name: s.name.clone(),
                size: int(Some(s.size), 0, &sk("size"), 1, 100_000_000)?,
                soak: secs(s.soak_s, 0.0, &sk("soak_s"))?,
            });
        }
    }
    if let Some(c) = &p.canary {
        out.canary = Some(Canary {
            // A canary larger than the fleet is the whole fleet: so that `--set
            // fleet.gateways=1` works whatever the policies ask for.
            size: int(Some(c.size), 0, &k("canary.size"), 1, 100_000_000)?.min(n),
            soak: secs(c.soak_s, 0.0, &k("canary.soak_s"))?,
        });
    }
    if family == Family::Backoff {
        need(p.retry.is_some(), "retry")?;
    }
    if let Some(r) = &p.retry {
        let base = secs(r.base_s, 60.0, &k("retry.base_s"))?;
        let cap = secs(r.cap_s, 3600.0, &k("retry.cap_s"))?;
        if cap < base {
            return Err(InputError::at_key(
                &k("retry.cap_s"),
                "must not be below retry.base_s",
            ));
        }
        out.retry = Retry {
            max_attempts: int(r.max_attempts, 3, &k("retry.max_attempts"), 1, 1000)?,
            base,
            factor: num(r.factor, 2.0, &k("retry.factor"), 1.0, 100.0)?,
            cap,
            jitter: num(r.jitter, 0.1, &k("retry.jitter"), 0.0, 1.0)?,
        };
    }
    out.op_timeout = p
        .op_timeout_s
        .map(|t| num(Some(t), 0.0, &k("op_timeout_s"), 1.0, 1e7).map(Time::from_secs))
        .transpose()?;
    out.queue_timeout = p
        .queue_timeout_s
        .map(|t| num(Some(t), 0.0, &k("queue_timeout_s"), 1.0, 1e7).map(Time::from_secs))
        .transpose()?;
    if let Some(pc) = &p.prechecks {
        let opt = |v: Option<f64>, key: &str, hi: f64| {
            v.map(|x| num(Some(x), 0.0, &k(key), 0.0, hi)).transpose()
        };
        let deferred = match pc.deferred.as_deref() {
            None | Some("next-wave") => DeferMode::NextWave,
            Some("hold") => DeferMode::Hold,
            Some(other) => {
                return Err(InputError::at_key(
                    &k("prechecks.deferred"),
                    format!("unknown mode `{other}` (expected next-wave or hold)"),
                ))
            }
        };
        let max_deferrals = int(
            pc.max_deferrals,
            12,
            &k("prechecks.max_deferrals"),
            0,
            100_000,
        )?;
        out.prechecks = Some(Prechecks {
            deferred,
            max_cpu_pct: opt(pc.max_cpu_pct, "prechecks.max_cpu_pct", 100.0)?,
            min_disk_mb: opt(pc.min_disk_mb, "prechecks.min_disk_mb", 1e9)?,
            min_battery_pct: opt(pc.min_battery_pct, "prechecks.min_battery_pct", 100.0)?,
            stable_link: pc
                .stable_link_s
                .map(|s| secs(Some(s), 0.0, &k("prechecks.stable_link_s")))
                .transpose()?,
            require_idle: pc.require_idle.unwrap_or(false),
            defer: secs(pc.defer_s, 900.0, &k("prechecks.defer_s"))?,
            max_deferrals,
            max_offline_deferrals: int(
                pc.max_offline_deferrals,
                i64::from(max_deferrals),
                &k("prechecks.max_offline_deferrals"),
                0,
                100_000,
            )?,
        });
    }
    if let Some(rb) = &p.rollback {
        out.rollback_below = Some(num(Some(rb.below), 0.0, &k("rollback.below"), 0.0, 1.0)?);
    }
    if let Some(d) = &p.defect_halt {
        // More failures than gateways could never be seen: the whole fleet, at most.
        out.defect_halt_after = Some(
            int(
                Some(d.health_failures),
                0,
                &k("defect_halt.health_failures"),
                1,
                100_000_000,
            )?
            .min(n),
        );
    }
    if family == Family::Adaptive {
        need(p.adaptive.is_some(), "adaptive")?;
        let a = p.adaptive.clone().unwrap_or_default();
        let min = num(a.min, 1.0, &k("adaptive.min"), 1.0, 1e8)?;
        let max = num(a.max, 100.0, &k("adaptive.max"), 1.0, 1e8)?;
        if max < min {
            return Err(InputError::at_key(
                &k("adaptive.max"),
                format!("must not be below adaptive.min ({min})"),
            ));
        }
        out.adaptive = Some(Adaptive {
            initial: num(a.initial, min, &k("adaptive.initial"), min, max)?,
            min,
            max,
            increase: num(a.increase, 1.0, &k("adaptive.increase"), 0.0, 1e6)?,
            decrease: num(a.decrease, 0.5, &k("adaptive.decrease"), 0.01, 1.0)?,
            interval: Time::from_secs(num(
                a.interval_s,
                60.0,
                &k("adaptive.interval_s"),
                1.0,
                86_400.0,
            )?),
            target_latency_ms: num(
                a.target_latency_ms,
                2000.0,
                &k("adaptive.target_latency_ms"),
                1.0,
                1e8,
            )?,
            max_failure_rate: num(
                a.max_failure_rate,
                0.2,
                &k("adaptive.max_failure_rate"),
                0.0,
                1.0,
            )?,
        });
    }
    if let Some(names) = &p.pause_after {
        // A gate names a stage this policy has: its canary, or one of its stages.
        let stages = out.stage_names();
        for (i, name) in names.iter().enumerate() {
            if !stages.contains(&name.as_str()) {
                return Err(InputError::at_key(
                    &format!("{at}.pause_after.{i}"),
                    format!(
                        "no stage `{name}` in this policy (it has: {})",
                        if stages.is_empty() {
                            "none".into()
                        } else {
                            stages.join(", ")
                        }
                    ),
                ));
            }
        }
        out.pause_after = names.clone();
    }
    if let Some(m) = &p.maintenance {
        if m.start_utc.is_some() {
            return Err(InputError::at_key(
                &k("maintenance.start_utc"),
                "a simulated start time belongs in the scenario's [maintenance], not in a policy",
            ));
        }
        out.maintenance = Some(maintenance(m, &k("maintenance"))?);
    }
    Ok(out)
}

/// `HH:MM` as milliseconds after midnight.
fn clock_ms(s: &str, at: &str) -> R<u64> {
    let bad = || {
        InputError::at_key(
            at,
            format!("`{s}` is not a time of day HH:MM (00:00 to 23:59)"),
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || s.len() != 5 {
        return Err(bad());
    }
    Ok((h * 60 + m) * 60_000)
}

/// Validates maintenance windows (region names are checked against a fleet where one is known).
pub fn maintenance(
    m: &crate::scenario::raw::RawMaintenance,
    at: &str,
) -> R<crate::engine::maintenance::Maintenance> {
    use crate::engine::maintenance::{DailyWindow, Maintenance};
    const DAY: i64 = 24 * 3600 * 1000;
    if m.windows.is_empty() {
        return Err(InputError::at_key(
            &format!("{at}.windows"),
            "needs at least one window (drop [maintenance] to allow installs at any time)",
        ));
    }
    let lead = num(m.lead_h, 2.0, &format!("{at}.lead_h"), 0.0, 24.0)?;
    let mut windows = Vec::new();
    for (i, w) in m.windows.iter().enumerate() {
        let k = |s: &str| format!("{at}.windows.{i}.{s}");
        let local = clock_ms(&w.start, &k("start"))? as i64;
        let offset = num(Some(w.utc_offset_h), 0.0, &k("utc_offset_h"), -12.0, 14.0)?;
        let duration = num(Some(w.duration_h), 0.0, &k("duration_h"), 0.0, 24.0)?;
        if duration <= 0.0 {
            return Err(InputError::at_key(
                &k("duration_h"),
                "must be more than 0 hours",
            ));
        }
        // Local = UTC + offset, so UTC = local − offset, wrapped into the day.
        let open = (local - (offset * 3_600_000.0).round() as i64).rem_euclid(DAY) as u64;
        windows.push(DailyWindow {
            regions: w.regions.clone(),
            open_ms: open,
            duration_ms: (duration * 3_600_000.0).round() as u64,
        });
    }
    Ok(Maintenance {
        windows,
        lead: Time::from_secs(lead * 3600.0),
        epoch_ms_of_day: 0,
        region_names: Vec::new(),
    })
}

fn validate_sweep(
    s: &RawSweep,
    document: &toml::Table,
    policies: &BTreeMap<String, RawPolicy>,
    gateways: u32,
) -> R<()> {
    int(s.replications, 10, "sweep.replications", 1, 1_000_000)?;
    num(s.defect_rate, 0.5, "sweep.defect_rate", 0.0, 1.0)?;
    for (name, grid) in &s.grids {
        let at = format!("sweep.grids.{name}");
        if !policies.contains_key(&grid.base) {
            return Err(InputError::at_key(
                &format!("{at}.base"),
                format!("names `{}`, which is not a policy here", grid.base),
            ));
        }
        let base = crate::scenario::grid::grid_base(document, grid)
            .map_err(|m| InputError::at_key(&format!("{at}.with"), m))?;

        for (param, values) in &grid.params {
            if values.is_empty() {
                return Err(InputError::at_key(
                    &format!("{at}.params.{param}"),
                    "needs at least one value",
                ));
            }
            for v in values {
                let varied = crate::scenario::grid::set_param(&base, param, v)
                    .map_err(|m| InputError::at_key(&format!("{at}.params.{param}"), m))?;
                policy(&varied, &format!("{at}.params.{param}"), gateways)?;
            }
        }
    }
    Ok(())
}
