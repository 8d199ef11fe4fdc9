//! The dry run of `stagger rollout`: what a rollout would do, for change review. Built once
//! as data, printed as text or (with `--json`) as one JSON object.

use serde::Serialize;

use super::rollout::{backend_name, signals_of};
use crate::cli::RolloutArgs;
use crate::engine::{Engine, Policy, Release};
use crate::live::inventory::Inventory;
use crate::live::signals::{self, Signal};
use crate::simulate::{self, Options as SimOptions};
use crate::stats::{mean_ci95, wilson95};
use crate::time::Time;
use crate::tune::plan::PlanFile;

/// Seeds of the dry run's prediction.
const SEEDS: u64 = 10;
/// Gateways listed per wave in the text form (`--json` lists all).
const SHOWN: usize = 10;

#[derive(Debug, Serialize)]
pub struct Review {
    pub plan: String,
    pub family: String,
    pub scenario: String,
    pub tuned_for_gateways: u32,
    pub devices: usize,
    pub regions: usize,
    pub hw_classes: usize,
    /// None: no cap.
    pub max_concurrent: Option<u32>,
    pub max_attempts: u32,
    pub retry: String,
    pub backend: String,
    pub endpoint: String,
    pub waves: Vec<Wave>,
    pub canaries: Vec<Canary>,
    pub canary_regions: usize,
    pub canary_hw_classes: usize,
    pub prediction: Option<Prediction>,
    /// Why there is no prediction (the plan's scenario could not be loaded).
    pub prediction_error: Option<String>,
    pub rules: Vec<RuleState>,
    pub can_cancel: bool,
    pub queue_timeout_s: Option<f64>,
    /// Stages after which the rollout waits for `stagger approve`.
    pub pause_after: Vec<String>,
    /// The stage after which the rollout is re-tuned, with the paces it may choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refit: Option<RefitPlan>,
    /// Maintenance windows, as `regions: HH:MM–HH:MM UTC` lines.
    pub maintenance_windows: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RefitPlan {
    pub stage: String,
    pub slower: Vec<f64>,
    pub faster: Vec<f64>,
    pub replications: u32,
}

#[derive(Debug, Serialize)]
pub struct Wave {
    pub wave: usize,
    pub stage: Option<String>,
    pub release: String,
    pub gateways: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Canary {
    pub id: String,
    pub region: String,
    pub hw: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub seeds: u64,
    pub makespan_h: Interval,
    /// Pooled over the seeds' gateways, with a Wilson interval.
    pub success_rate: Interval,
    pub peak_mgmt_cpu_pct: f64,
}

#[derive(Debug, Serialize)]
pub struct RuleState {
    pub rule: String,
    pub signal: Option<&'static str>,
    pub live: bool,
    /// Blind, and accepted with --accept-missing.
    pub accepted: bool,
}

fn release_text(r: &Release) -> String {
    let t = |x: Time| {
        let s = x.secs();
        if s >= 3600.0 {
            format!("{:.1} h", s / 3600.0)
        } else {
            format!("{:.0} min", s / 60.0)
        }
    };
    match r {
        Release::Now => "at once".into(),
        Release::WithPrevious => "with the previous wave".into(),
        Release::AfterComplete(w) if w.millis() == 0 => "when the previous wave completes".into(),
        Release::AfterComplete(w) => format!("{} after the previous wave completes", t(*w)),
        Release::AfterGate {
            fraction,
            state,
            timeout,
            gap,
            min_gap,
        } => {
            let mut s = format!(
                "when {:.0}% of the previous wave {}",
                fraction * 100.0,
                match state {
                    crate::engine::GateState::Downloaded => "has downloaded",
                    crate::engine::GateState::Succeeded => "has succeeded",
                    crate::engine::GateState::Final => "is final",
                }
            );
            if let Some(to) = timeout {
                s += &format!(" (or after {})", t(*to));
            }
            if gap.millis() > 0 {
                s += &format!(", then {}", t(*gap));
            }
            if min_gap.millis() > 0 {
                s += &format!(", at least {} after it started", t(*min_gap));
            }
            s
        }
    }
}

pub fn review(args: &RolloutArgs, plan: &PlanFile, policy: &Policy, inv: &Inventory) -> Review {
    let n = inv.devices.len();
    let engine = Engine::new(policy.clone(), &inv.infos(), 0);
    let p = engine.plan();
    let waves = p
        .waves
        .iter()
        .enumerate()
        .map(|(w, wave)| Wave {
            wave: w + 1,
            stage: wave.stage.clone(),
            release: release_text(&wave.release),
            gateways: p.order[wave.start..wave.start + wave.len]
                .iter()
                .map(|&g| inv.devices[g as usize].id.clone())
                .collect(),
        })
        .collect();
    let canaries: Vec<Canary> = p.order[..p.canaries]
        .iter()
        .map(|&g| {
            let d = &inv.devices[g as usize];
            Canary {
                id: d.id.clone(),
                region: d.region.clone(),
                hw: d.hw.clone(),
            }
        })
        .collect();
    let distinct = |f: fn(&Canary) -> &str| {
        canaries
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let provided = signals_of(args.backend);
    let prediction = predict(plan, policy, n);
    let rules = signals::rules(policy)
        .into_iter()
        .map(|r| RuleState {
            live: r.needs.is_none_or(|s| provided.contains(&s)),
            accepted: r.needs.is_some_and(|s| args.accept_missing.contains(&s)),
            signal: r.needs.map(Signal::name),
            rule: r.name,
        })
        .collect();
    Review {
        plan: plan.name.clone(),
        family: policy.family.name().to_string(),
        scenario: plan.scenario.name.clone(),
        tuned_for_gateways: plan.scenario.gateways,
        devices: n,
        regions: inv.regions.len(),
        hw_classes: inv.hw_classes.len(),
        max_concurrent: (policy.max_concurrent != u32::MAX).then_some(policy.max_concurrent),
        max_attempts: policy.retry.max_attempts,
        retry: format!(
            "min({:.0}·{}^n, {:.0}) s ±{:.0}%",
            policy.retry.base.secs(),
            policy.retry.factor,
            policy.retry.cap.secs(),
            policy.retry.jitter * 100.0
        ),
        backend: backend_name(args.backend).to_string(),
        endpoint: args.endpoint.clone(),
        waves,
        canary_regions: distinct(|c| &c.region),
        canary_hw_classes: distinct(|c| &c.hw),
        canaries,
        prediction: prediction.as_ref().ok().cloned(),
        prediction_error: prediction.err(),
        rules,
        can_cancel: provided.contains(&Signal::Cancel),
        queue_timeout_s: policy.queue_timeout.map(Time::secs),
        pause_after: policy.pause_after.clone(),
        refit: policy.refit_after.clone().map(|stage| RefitPlan {
            stage,
            slower: crate::refit::SLOWER.to_vec(),
            faster: crate::refit::FASTER.to_vec(),
            replications: args.refit_replications,
        }),
        maintenance_windows: policy
            .maintenance
            .iter()
            .flat_map(|m| m.windows.iter())
            .map(|w| {
                let hm = |ms: u64| format!("{:02}:{:02}", ms / 3_600_000 % 24, ms / 60_000 % 60);
                format!(
                    "{}: {}–{} UTC",
                    if w.regions.is_empty() {
                        "all regions".into()
                    } else {
                        w.regions.join(", ")
                    },
                    hm(w.open_ms),
                    hm(w.open_ms + w.duration_ms)
                )
            })
            .collect(),
    }
}

/// The plan simulated on the scenario it was tuned on, at this fleet size.
fn predict(plan: &PlanFile, policy: &Policy, n: usize) -> Result<Prediction, String> {
    let s = plan
        .scenario(&[format!("fleet.gateways={n}")])
        .map_err(|e| e.to_string())?;
    let runs: Vec<_> = (1..=SEEDS)
        .map(|seed| simulate::run(&s, "plan", policy, seed, &SimOptions::default()).summary)
        .collect();
    let m = mean_ci95(
        &runs
            .iter()
            .map(|r| r.makespan_s / 3600.0)
            .collect::<Vec<_>>(),
    );
    let (ok, all) = runs.iter().fold((0.0, 0.0), |(k, t), r| {
        (k + f64::from(r.succeeded), t + f64::from(r.gateways))
    });
    let (lo, hi) = wilson95(ok, all);
    let cpu = mean_ci95(&runs.iter().map(|r| r.peak_mgmt_cpu_pct).collect::<Vec<_>>());
    Ok(Prediction {
        seeds: SEEDS,
        makespan_h: Interval {
            mean: m.mean,
            lo: m.lo.max(0.0),
            hi: m.hi,
        },
        success_rate: Interval {
            mean: ok / all.max(1.0),
            lo,
            hi,
        },
        peak_mgmt_cpu_pct: cpu.mean,
    })
}

pub fn print(r: &Review, args: &RolloutArgs) {
    println!("DRY RUN: nothing will be changed. Add --execute to run this rollout.\n");
    println!(
        "plan `{}` ({} family), tuned on scenario {} for {} gateways; inventory {} devices in {} regions, {} hardware classes.",
        r.plan, r.family, r.scenario, r.tuned_for_gateways, r.devices, r.regions, r.hw_classes
    );
    println!(
        "concurrency cap {}; up to {} attempts per gateway, retry after {}; backend {} at {}\n",
        r.max_concurrent.map_or("none".into(), |c| c.to_string()),
        r.max_attempts,
        r.retry,
        r.backend,
        r.endpoint
    );
    for w in &r.waves {
        let shown: Vec<&str> = w.gateways.iter().take(SHOWN).map(String::as_str).collect();
        let more = if w.gateways.len() > SHOWN {
            format!(
                " … (+{} more; --json lists every gateway)",
                w.gateways.len() - SHOWN
            )
        } else {
            String::new()
        };
        println!(
            "wave {:>3}{}: {:>5} gateways, released {}: {}{more}",
            w.wave,
            w.stage
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default(),
            w.gateways.len(),
            w.release,
            shown.join(", ")
        );
    }
    if !r.canaries.is_empty() {
        let list: Vec<String> = r
            .canaries
            .iter()
            .map(|c| format!("{} ({}, {})", c.id, c.region, c.hw))
            .collect();
        println!(
            "\ncanaries: {}\n  why: chosen to cover {} of {} regions and {} of {} hardware classes before anything else is touched.",
            list.join(", "),
            r.canary_regions,
            r.regions,
            r.canary_hw_classes,
            r.hw_classes
        );
    }
    match (&r.prediction, &r.prediction_error) {
        (Some(p), _) => {
            println!(
                "\npredicted (scenario {} at {} gateways, {} seeds): makespan {:.2} h [{:.2} – {:.2}], success {:.1}% [{:.1} – {:.1}], peak management CPU {:.0}%",
                r.scenario,
                r.devices,
                p.seeds,
                p.makespan_h.mean,
                p.makespan_h.lo,
                p.makespan_h.hi,
                p.success_rate.mean * 100.0,
                p.success_rate.lo * 100.0,
                p.success_rate.hi * 100.0,
                p.peak_mgmt_cpu_pct
            );
            if args.time_scale != 1.0 {
                println!(
                    "  with --time-scale {}: about {:.1} min of wall-clock time",
                    args.time_scale,
                    p.makespan_h.mean * 60.0 / args.time_scale
                );
            }
        }
        (None, e) => println!(
            "\nprediction unavailable: {}",
            e.as_deref().unwrap_or("unknown")
        ),
    }
    println!("\nsafety rules on {}:", r.backend);
    if r.rules.is_empty() {
        println!("  none");
    }
    for rule in &r.rules {
        match rule.signal {
            None => println!("  live   {}", rule.rule),
            Some(s) if rule.live => println!("  live   {} (signal: {s})", rule.rule),
            Some(s) if rule.accepted => println!(
                "  BLIND  {} (the backend gives no `{s}` signal; accepted with --accept-missing {s})",
                rule.rule
            ),
            Some(s) => println!(
                "  BLIND  {} (the backend gives no `{s}` signal: --execute refuses this plan unless --accept-missing {s})",
                rule.rule
            ),
        }
    }
    if !r.can_cancel {
        println!("  a halt stops issuing and observes in-flight operations to their end (no cancel on this backend)");
    }
    for stage in &r.pause_after {
        println!("  approval gate after stage `{stage}`: the rollout waits for `stagger approve --journal J` (the prediction leaves that wait out)");
    }
    if let Some(f) = &r.refit {
        let list = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  refit after stage `{}`: when it completes, its observations are fitted (`stagger fit`), and the rest of the rollout goes on at the fastest pace as safe as this plan under its scenario ({} replications per pace and release); paces {} if the stage looks worse than the scenario assumed, else {}. The choice is journaled.",
            f.stage, f.replications, list(&f.slower), list(&f.faster)
        );
    }
    for w in &r.maintenance_windows {
        println!("  maintenance window {w}: installs start only inside it (on AWS, the job's schedulingConfig carries it too)");
    }
    if r.queue_timeout_s.is_none() {
        println!("  note: no queue_timeout_s in the plan: an offline device's queued operation is waited for as long as the platform keeps it");
    }
}
