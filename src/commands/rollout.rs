//! `stagger rollout`: a dry run by default (waves, canaries, prediction; no calls that change
//! anything), or with --execute the live driver with its journal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::{BackendKind, RolloutArgs};
use crate::engine::{Engine, Policy, Release};
use crate::error::Failure;
use crate::live::clock::{Clock, WallClock};
use crate::live::executor::{Live, Options};
use crate::live::http::Http;
use crate::live::inventory::Inventory;
use crate::live::journal::{self, Header, Journal, JournalError};
use crate::live::signals::{self, Signal};
use crate::scenario::{self, InputError};
use crate::simulate::{self, Options as SimOptions};
use crate::stats::mean_ci95;
use crate::time::Time;
use crate::tune::plan::PlanFile;

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

fn dry_run(
    args: &RolloutArgs,
    plan: &PlanFile,
    policy: &Policy,
    inv: &Inventory,
) -> Result<(), Failure> {
    let n = inv.devices.len();
    println!("DRY RUN: nothing will be changed. Add --execute to run this rollout.\n");
    println!(
        "plan `{}` ({} family), tuned on scenario {} for {} gateways; inventory {} devices in {} regions, {} hardware classes.",
        plan.name,
        policy.family.name(),
        plan.scenario.name,
        plan.scenario.gateways,
        n,
        inv.regions.len(),
        inv.hw_classes.len()
    );
    let cap = if policy.max_concurrent == u32::MAX {
        "none".into()
    } else {
        policy.max_concurrent.to_string()
    };
    println!(
        "concurrency cap {cap}; up to {} attempts per gateway, retry after min({:.0}·{}^n, {:.0}) s ±{:.0}%; backend {:?} at {}\n",
        policy.retry.max_attempts,
        policy.retry.base.secs(),
        policy.retry.factor,
        policy.retry.cap.secs(),
        policy.retry.jitter * 100.0,
        args.backend,
        args.endpoint
    );
    let infos = inv.infos();
    let engine = Engine::new(policy.clone(), &infos, 0);
    let p = engine.plan();
    for (w, wave) in p.waves.iter().enumerate() {
        let ids: Vec<&str> = p.order[wave.start..wave.start + wave.len]
            .iter()
            .map(|&g| inv.devices[g as usize].id.as_str())
            .collect();
        let shown: Vec<&str> = ids.iter().take(10).copied().collect();
        let more = if ids.len() > 10 {
            format!(" … (+{})", ids.len() - 10)
        } else {
            String::new()
        };
        println!(
            "wave {:>3}{}: {:>5} gateways, released {}: {}{more}",
            w + 1,
            wave.stage
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default(),
            wave.len,
            release_text(&wave.release),
            shown.join(", ")
        );
    }
    if p.canaries > 0 {
        let canaries: Vec<String> = p.order[..p.canaries]
            .iter()
            .map(|&g| {
                let d = &inv.devices[g as usize];
                format!("{} ({}, {})", d.id, d.region, d.hw)
            })
            .collect();
        let regions: std::collections::BTreeSet<&str> = p.order[..p.canaries]
            .iter()
            .map(|&g| inv.devices[g as usize].region.as_str())
            .collect();
        let hws: std::collections::BTreeSet<&str> = p.order[..p.canaries]
            .iter()
            .map(|&g| inv.devices[g as usize].hw.as_str())
            .collect();
        println!(
            "\ncanaries: {}\n  why: chosen to cover {} of {} regions and {} of {} hardware classes before anything else is touched.",
            canaries.join(", "),
            regions.len(),
            inv.regions.len(),
            hws.len(),
            inv.hw_classes.len()
        );
    }
    // The prediction: the plan simulated on the scenario it was tuned on, at this fleet size.
    let mut sets = plan.scenario.sets.clone();
    sets.push(format!("fleet.gateways={n}"));
    match scenario::load(&plan.scenario.path, &sets) {
        Ok(s) => {
            let runs: Vec<_> = (1..=10)
                .map(|seed| simulate::run(&s, "plan", policy, seed, &SimOptions::default()).summary)
                .collect();
            let m = mean_ci95(
                &runs
                    .iter()
                    .map(|r| r.makespan_s / 3600.0)
                    .collect::<Vec<_>>(),
            );
            let q = mean_ci95(&runs.iter().map(|r| r.success_rate).collect::<Vec<_>>());
            let cpu = mean_ci95(&runs.iter().map(|r| r.peak_mgmt_cpu_pct).collect::<Vec<_>>());
            println!(
                "\npredicted (scenario {} at {n} gateways, 10 seeds): makespan {:.2} h [{:.2} – {:.2}], success {:.1}% [{:.1} – {:.1}], peak management CPU {:.0}%",
                plan.scenario.name,
                m.mean,
                m.lo,
                m.hi,
                q.mean * 100.0,
                q.lo * 100.0,
                q.hi * 100.0,
                cpu.mean
            );
            if args.time_scale != 1.0 {
                println!(
                    "  with --time-scale {}: about {:.1} min of wall-clock time",
                    args.time_scale,
                    m.mean * 60.0 / args.time_scale
                );
            }
        }
        Err(e) => println!("\nprediction unavailable: {e}"),
    }
    Ok(())
}

fn check_plan_scenario(plan: &PlanFile) -> Result<(), Failure> {
    let s = scenario::load(&plan.scenario.path, &plan.scenario.sets).map_err(|e| {
        InputError::new(format!(
            "the plan's scenario cannot be loaded (paths in a plan are relative to the plan file): {e}"
        ))
    })?;
    if s.fingerprint != plan.scenario.fingerprint {
        return Err(InputError::new(format!(
            "the plan was tuned on another version of scenario {} (fingerprint {}, now {}); sweep and tune again",
            plan.scenario.path, plan.scenario.fingerprint, s.fingerprint
        ))
        .into());
    }
    Ok(())
}

/// What identifies this rollout; a resumed journal must carry the same.
fn header(args: &RolloutArgs, plan: &PlanFile, policy: &Policy, inv: &Inventory) -> Header {
    let mut inventory = Vec::new();
    for d in &inv.devices {
        inventory.extend_from_slice(
            format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1e}",
                d.id,
                d.type_id.as_deref().unwrap_or(""),
                d.region,
                d.hw
            )
            .as_bytes(),
        );
    }
    Header {
        journal: "stagger".into(),
        version: journal::VERSION,
        plan: plan.name.clone(),
        plan_digest: journal::digest(&[format!("{policy:?}").as_bytes()]),
        inventory_digest: journal::digest(&[&inventory]),
        devices: inv.devices.len(),
        backend: backend_name(args.backend).into(),
        endpoint: args.endpoint.clone(),
        firmware_version: args.firmware_version.clone(),
        firmware_digest: journal::digest(&[
            args.firmware_version.as_bytes(),
            args.firmware_uri.as_bytes(),
        ]),
        seed: 1,
        started_unix_ms: WallClock.unix_ms(),
        time_scale: args.time_scale,
    }
}

fn signals_of(b: BackendKind) -> &'static [Signal] {
    match b {
        BackendKind::WatsonIot => crate::live::watson::Watson::SIGNALS,
        BackendKind::AwsIotJobs => crate::live::aws::AwsJobs::SIGNALS,
    }
}

/// Prints each safety rule as live or blind on this backend.
fn print_rules(args: &RolloutArgs, policy: &Policy) {
    let provided = signals_of(args.backend);
    println!("\nsafety rules on {}:", backend_name(args.backend));
    let rules = signals::rules(policy);
    if rules.is_empty() {
        println!("  none");
    }
    for r in rules {
        match r.needs {
            None => println!("  live   {}", r.name),
            Some(s) if provided.contains(&s) => println!("  live   {} (signal: {})", r.name, s.name()),
            Some(s) if args.accept_missing.contains(&s) => println!(
                "  BLIND  {} (the backend gives no `{}` signal; accepted with --accept-missing {})",
                r.name,
                s.name(),
                s.name()
            ),
            Some(s) => println!(
                "  BLIND  {} (the backend gives no `{}` signal: --execute refuses this plan unless --accept-missing {})",
                r.name,
                s.name(),
                s.name()
            ),
        }
    }
    if !provided.contains(&Signal::Cancel) {
        println!("  a halt stops issuing and observes in-flight operations to their end (no cancel on this backend)");
    }
    if policy.queue_timeout.is_none() {
        println!("  note: no queue_timeout_s in the plan: an offline device's queued operation is waited for as long as the platform keeps it");
    }
}

/// Refuses a plan whose rules would run blind, unless each missing signal is accepted.
fn check_signals(args: &RolloutArgs, policy: &Policy) -> Result<(), Failure> {
    let refused = signals::refused(policy, signals_of(args.backend), &args.accept_missing);
    if refused.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = refused
        .iter()
        .map(|(r, s)| format!("{} needs `{}`", r.name, s.name()))
        .collect();
    let mut flags: Vec<&str> = refused.iter().map(|(_, s)| s.name()).collect();
    flags.dedup();
    Err(Failure::input(format!(
        "the plan's safety rules need signals the {} backend does not provide: {}. They would run blind; to accept that, add {}",
        backend_name(args.backend),
        what.join("; "),
        flags
            .iter()
            .map(|f| format!("--accept-missing {f}"))
            .collect::<Vec<_>>()
            .join(" ")
    )))
}

fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::WatsonIot => "watson-iot",
        BackendKind::AwsIotJobs => "aws-iot-jobs",
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), Failure> {
    let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        && endpoint
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .is_some_and(|host| !host.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Failure::input(format!(
            "--endpoint `{endpoint}` is not an http:// or https:// URL with a host"
        )))
    }
}

pub fn run(args: &RolloutArgs) -> Result<(), Failure> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err(Failure::input(format!(
            "--time-scale must be a positive number (got {})",
            args.time_scale
        )));
    }
    if !(args.poll_s.is_finite() && args.poll_s > 0.0) {
        return Err(Failure::input("--poll-s must be positive"));
    }
    check_endpoint(&args.endpoint)?;
    let metrics_addr = args
        .metrics_addr
        .as_deref()
        .map(crate::live::metrics::parse_addr)
        .transpose()
        .map_err(Failure::input)?;
    if let Some(d) = &args.data_endpoint {
        check_endpoint(d).map_err(|_| {
            Failure::input(format!(
                "--data-endpoint `{d}` is not an http:// or https:// URL with a host"
            ))
        })?;
    }
    if let Some(k) = &args.override_halt {
        if k != "rollback" && k != "defect" {
            return Err(Failure::input(format!(
                "--override-halt takes the halt's kind: rollback or defect (got `{k}`)"
            )));
        }
    }
    let plan_path = args.plan.display().to_string();
    let (plan, policy) = PlanFile::load(&plan_path)?;
    check_plan_scenario(&plan).map_err(|e| match e {
        Failure::Input(i) => Failure::Input(i.in_file(&plan_path)),
        other => other,
    })?;
    let inv = Inventory::load(
        &args.inventory.display().to_string(),
        args.backend == BackendKind::WatsonIot,
    )?;
    if !args.execute {
        dry_run(args, &plan, &policy, &inv)?;
        print_rules(args, &policy);
        return Ok(());
    }
    check_signals(args, &policy)?;
    let mut backend: Box<dyn crate::live::backend::Backend> = match args.backend {
        BackendKind::WatsonIot => Box::new(
            crate::live::watson::Watson::from_env(
                &args.endpoint,
                &args.firmware_version,
                &args.firmware_uri,
                args.time_scale,
            )
            .map_err(Failure::input)?,
        ),
        BackendKind::AwsIotJobs => Box::new(
            crate::live::aws::AwsJobs::from_env(
                &args.endpoint,
                args.data_endpoint.as_deref().unwrap_or(&args.endpoint),
                &args.firmware_version,
                &args.firmware_uri,
                args.time_scale,
                &policy,
            )
            .map_err(Failure::input)?,
        ),
    };
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| format!("rollout-{}.journal.jsonl", args.firmware_version).into());
    let (journal, header, records) =
        Journal::open(&journal_path, &header(args, &plan, &policy, &inv)).map_err(|e| match e {
            JournalError::Input(i) => Failure::Input(i),
            other => Failure::Runtime(other.to_string()),
        })?;
    eprintln!("rollout: journal {}", journal_path.display());
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C is left to the default handler: the journal is consistent at any point.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let opts = Options {
        time_scale: args.time_scale,
        poll: Time::from_secs(args.poll_s),
        // Twice the client's timeout: a slow but accepted request has landed by then.
        settle_ms: (2.0 * Http::new(args.time_scale).timeout_s * 1000.0) as u64,
        log: true,
    };
    let clock = WallClock;
    let mut live = Live::new(
        policy,
        &inv,
        backend.as_mut(),
        journal,
        &header,
        &clock,
        opts,
    );
    if let Some(addr) = metrics_addr {
        let bound = crate::live::metrics::serve(addr, live.metrics()).map_err(Failure::Runtime)?;
        eprintln!("rollout: metrics on http://{bound}/metrics");
    }
    let replayed = live.replay(&records)?;
    if replayed.records > 0 {
        eprintln!(
            "rollout: resumed from {}: replayed {} records, {} commands",
            journal_path.display(),
            replayed.records,
            replayed.commands
        );
    }
    if let Some((kind, reason)) = &replayed.halted {
        match &args.override_halt {
            Some(k) if k == kind => {
                eprintln!("rollout: overriding the halt ({reason}) as asked; the override is journaled");
                live.override_halt(k)?;
            }
            Some(k) => {
                return Err(Failure::input(format!(
                    "--override-halt {k} does not name this rollout's halt, which is `{kind}`: {reason}"
                )))
            }
            None => {
                let in_flight = live.in_flight();
                eprintln!(
                    "rollout: this rollout halted earlier: {reason}. Nothing new will be issued; {} still in flight{}{}. To go on, re-run with --override-halt {kind}, or start a new journal.",
                    in_flight.len(),
                    if in_flight.is_empty() { "" } else { ": " },
                    in_flight.join(", ")
                );
            }
        }
    } else if args.override_halt.is_some() {
        return Err(Failure::input(
            "--override-halt: this rollout has no halt to override",
        ));
    }
    let resume = format!(
        "stagger rollout --plan {} --inventory {} --backend {} --endpoint {} --firmware-version {} --firmware-uri {} --execute --journal {}{}",
        args.plan.display(),
        args.inventory.display(),
        backend_name(args.backend),
        args.endpoint,
        args.firmware_version,
        args.firmware_uri,
        journal_path.display(),
        if args.time_scale != 1.0 { format!(" --time-scale {}", args.time_scale) } else { String::new() }
    );
    let bar = crate::progress::bar(inv.devices.len() as u64, "gateways final");
    let report = live.run(&stop, &bar).map_err(|e| match e {
        Failure::Runtime(m) => Failure::Runtime(format!("{m}. Resume with:\n  {resume}")),
        other => other,
    })?;
    bar.finish_and_clear();
    println!(
        "succeeded: {} of {}",
        report.succeeded.len(),
        inv.devices.len()
    );
    println!(
        "plan time: {:.0} s ({:.2} h) since the first start",
        report.plan_time_s,
        report.plan_time_s / 3600.0
    );
    for (id, attempts, why) in &report.failed {
        println!("failed: {id} after {attempts} attempt(s): {why}");
    }
    if !report.not_started.is_empty() {
        println!(
            "not started: {} gateways ({})",
            report.not_started.len(),
            report.not_started.join(", ")
        );
    }
    if !report.rollback_needed.is_empty() {
        println!(
            "roll back these gateways to the previous firmware: {}",
            report.rollback_needed.join(", ")
        );
    }
    if report.interrupted {
        return Err(Failure::Runtime(format!(
            "interrupted; nothing new was issued after Ctrl-C. Resume with:\n  {resume}"
        )));
    }
    if let Some(reason) = report.halted {
        return Err(Failure::Halted(format!(
            "{reason}; nothing new was issued and every in-flight operation was observed to its end"
        )));
    }
    Ok(())
}
