//! Which of a plan's safety rules a backend can feed. A rule that works in simulation must
//! work live, or be refused loudly: `rollout` refuses a plan whose rules need a signal the
//! backend lacks, unless the operator accepts each missing signal by name.

use crate::engine::Policy;

/// What a backend can tell the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Signal {
    /// Pre-update facts per device (CPU, disk, battery, busy, link stability).
    Prechecks,
    /// A post-update health verdict per device.
    Health,
    /// Throttling answers and measured API latency.
    Throttling,
    /// Stopping operations that were sent but have not started.
    Cancel,
    /// A device reports its download finished before it installs (gates on `downloaded`).
    DownloadProgress,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Prechecks => "prechecks",
            Signal::Health => "health",
            Signal::Throttling => "throttling",
            Signal::Cancel => "cancel",
            Signal::DownloadProgress => "download-progress",
        }
    }
}

/// One safety rule of a plan and the signal it runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub needs: Option<Signal>,
}

/// The plan's rules, each with the signal it needs (None: outcomes alone suffice).
pub fn rules(policy: &Policy) -> Vec<Rule> {
    let mut r = Vec::new();
    if let Some(pc) = &policy.prechecks {
        let mut parts = Vec::new();
        if let Some(v) = pc.max_cpu_pct {
            parts.push(format!("CPU ≤ {v}%"));
        }
        if let Some(v) = pc.min_disk_mb {
            parts.push(format!("disk ≥ {v} MB"));
        }
        if let Some(v) = pc.min_battery_pct {
            parts.push(format!("battery ≥ {v}%"));
        }
        if let Some(v) = pc.stable_link {
            parts.push(format!("link up ≥ {:.0} s", v.secs()));
        }
        if pc.require_idle {
            parts.push("idle".into());
        }
        r.push(Rule {
            name: format!("pre-checks ({})", parts.join(", ")),
            needs: Some(Signal::Prechecks),
        });
    }
    if let Some(n) = policy.defect_halt_after {
        r.push(Rule {
            name: format!("defect halt after {n} post-update health failure(s)"),
            needs: Some(Signal::Health),
        });
    }
    if policy.adaptive.is_some() {
        r.push(Rule {
            name: "adaptive concurrency window (latency and throttling)".into(),
            needs: Some(Signal::Throttling),
        });
    }
    if let Some(g) = policy
        .gate
        .as_ref()
        .filter(|g| g.state == crate::engine::policy::GateState::Downloaded)
    {
        r.push(Rule {
            name: format!(
                "next batch when {:.0}% of the current one has downloaded",
                g.fraction * 100.0
            ),
            needs: Some(Signal::DownloadProgress),
        });
    }
    if let Some(b) = policy.rollback_below {
        r.push(Rule {
            name: format!("rollback below {:.0}% wave success", b * 100.0),
            needs: None,
        });
    }
    r
}

/// Rules that would run blind on a backend with `provided`, and are not accepted.
pub fn refused(policy: &Policy, provided: &[Signal], accepted: &[Signal]) -> Vec<(Rule, Signal)> {
    rules(policy)
        .into_iter()
        .filter_map(|r| {
            let s = r.needs?;
            (!provided.contains(&s) && !accepted.contains(&s)).then_some((r, s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_policy(name: &str) -> Policy {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
        crate::scenario::load(path, &[])
            .unwrap()
            .policy(name)
            .unwrap()
            .clone()
    }

    #[test]
    fn a_gate_on_downloads_needs_a_backend_that_reports_them() {
        // pipelined gates on `downloaded`: AWS IoT Jobs sees one job per device, start to end.
        let pipelined = seed_policy("pipelined");
        let blind = refused(&pipelined, crate::live::aws::AwsJobs::SIGNALS, &[]);
        assert!(
            blind
                .iter()
                .any(|(r, s)| *s == Signal::DownloadProgress && r.name.contains("downloaded")),
            "{blind:?}"
        );
        assert!(refused(
            &pipelined,
            crate::live::aws::AwsJobs::SIGNALS,
            &[Signal::DownloadProgress]
        )
        .is_empty());
        // Watson's firmware/download finishes before firmware/update is sent.
        assert!(
            !refused(&pipelined, crate::live::watson::Watson::SIGNALS, &[])
                .iter()
                .any(|(_, s)| *s == Signal::DownloadProgress)
        );
        // seed-staged gates on `succeeded`: nothing to report beyond outcomes.
        assert!(!rules(&seed_policy("seed-staged"))
            .iter()
            .any(|r| r.needs == Some(Signal::DownloadProgress)));
    }
}
