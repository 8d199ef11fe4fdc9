//! `stagger rollout`: a dry run by default (waves, canaries, prediction; no calls that change
//! anything), or with --execute the live driver with its journal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::{BackendKind, LogFormatArg, RolloutArgs};
use crate::engine::Policy;
use crate::error::Failure;
use crate::live::clock::{Clock, WallClock};
use crate::live::executor::{Live, Options};
use crate::live::http::Http;
use crate::live::inventory::Inventory;
use crate::live::journal::{self, Header, Journal, JournalError};
use crate::live::log::Log;
use crate::live::signals::{self, Signal};
use crate::scenario::InputError;
use crate::time::Time;
use crate::tune::plan::PlanFile;

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

pub(super) fn signals_of(b: BackendKind) -> &'static [Signal] {
    match b {
        BackendKind::WatsonIot => crate::live::watson::Watson::SIGNALS,
        BackendKind::AwsIotJobs => crate::live::aws::AwsJobs::SIGNALS,
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

/// The backend client for `args.backend`; credentials come from the environment.
pub(super) fn backend(
    args: &RolloutArgs,
    policy: &Policy,
) -> Result<Box<dyn crate::live::backend::Backend>, Failure> {
    Ok(match args.backend {
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
                args.facts_max_age_s,
                policy,
            )
            .map_err(Failure::input)?,
        ),
    })
}

/// Device ids listed in an `--exclude` file: one per line; blank lines and `#` comments
/// are skipped.
fn excluded(path: Option<&std::path::Path>) -> Result<Vec<String>, Failure> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError::new(format!("cannot read the --exclude file: {e}")).in_file(&name)
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

pub(super) fn backend_name(b: BackendKind) -> &'static str {
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
    if !(args.facts_max_age_s.is_finite() && args.facts_max_age_s > 0.0) {
        return Err(Failure::input("--facts-max-age-s must be positive"));
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
    let (plan, mut policy) = PlanFile::load(&plan_path)?;
    for stage in &args.pause_after {
        let names = policy.stage_names();
        if !names.contains(&stage.as_str()) {
            return Err(Failure::input(format!(
                "--pause-after `{stage}`: the plan has no such stage (it has: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        if !policy.pause_after.contains(stage) {
            policy.pause_after.push(stage.clone());
        }
    }
    let prior = plan.tuned_scenario().map_err(|e| e.in_file(&plan_path))?;
    let refitter = match &args.refit_after {
        Some(stage) => {
            crate::refit::check(
                &policy,
                prior.fleet.gateways as usize,
                stage,
                args.refit_replications,
            )
            .map_err(|e| e.in_file(&plan_path))?;
            let r = crate::refit::Refitter {
                prior,
                policy: policy.clone(),
                name: plan.name.clone(),
                constraints: (&plan.constraints).into(),
                replications: args.refit_replications,
                seed: 1,
            };
            policy.refit_after = Some(stage.clone());
            Some(r)
        }
        None => None,
    };
    let inv = Inventory::load(
        &args.inventory.display().to_string(),
        args.backend == BackendKind::WatsonIot,
    )?;
    if let Some(m) = &policy.maintenance {
        if let Some(r) = m.unknown_regions(&inv.regions).first() {
            return Err(Failure::input(format!(
                "the plan's maintenance windows name region `{r}`, which the inventory does not have (it has: {}); fix the plan or the inventory's region column",
                inv.regions.join(", ")
            )));
        }
    }
    let inv = if args.only.is_empty() && args.exclude.is_none() {
        inv
    } else {
        inv.narrowed(&args.only, &excluded(args.exclude.as_deref())?)?
    };
    if args.preflight {
        return super::preflight::run(args, &policy, &inv);
    }
    if args.json && args.execute {
        return Err(Failure::input(
            "--json prints the dry run's review; drop --execute to get it",
        ));
    }
    if !args.execute {
        let r = super::review::review(args, &plan, &policy, &inv);
        if args.json {
            let line = serde_json::to_string(&r).map_err(|e| Failure::Runtime(e.to_string()))?;
            println!("{line}");
        } else {
            super::review::print(&r, args);
        }
        return Ok(());
    }
    check_signals(args, &policy)?;
    let mut backend = backend(args, &policy)?;
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| format!("rollout-{}.journal.jsonl", args.firmware_version).into());
    let (journal, header, records) =
        Journal::open(&journal_path, &header(args, &plan, &policy, &inv)).map_err(|e| match e {
            JournalError::Input(i) => Failure::Input(i),
            other => Failure::Runtime(other.to_string()),
        })?;
    // JSON logs are for pipelines: no bar frames among them.
    let bar = if args.log_format == LogFormatArg::Json {
        indicatif::ProgressBar::hidden()
    } else {
        crate::progress::bar(inv.devices.len() as u64, "gateways final")
    };
    let mut log = Log::new(args.log_format.into());
    log.above(&bar);
    let journal_shown = journal_path.display().to_string();
    log.event(
        "journal",
        &format!("journal {journal_shown}"),
        &[("journal", journal_shown.as_str().into())],
    );
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
        log: log.clone(),
        refit: refitter.map(|r| -> Box<crate::live::executor::Refit> {
            Box::new(move |journal: &std::path::Path, t: Time, stage: &str| {
                let observed = crate::fit::observe::load(journal, None)?;
                r.decide(&observed, stage, t.secs())
            })
        }),
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
        log.event(
            "metrics",
            &format!("metrics on http://{bound}/metrics"),
            &[("addr", bound.to_string().into())],
        );
    }
    let replayed = live.replay(&records)?;
    if replayed.records > 0 {
        log.event(
            "resumed",
            &format!(
                "resumed from {journal_shown}: replayed {} records, {} commands",
                replayed.records, replayed.commands
            ),
            &[
                ("records", replayed.records.into()),
                ("commands", replayed.commands.into()),
            ],
        );
    }
    if let Some((kind, reason)) = &replayed.halted {
        match &args.override_halt {
            Some(k) if k == kind => {
                log.event(
                    "halt_overridden",
                    &format!("overriding the halt ({reason}) as asked; the override is journaled"),
                    &[("reason", k.as_str().into())],
                );
                live.override_halt(k)?;
            }
            Some(k) => {
                return Err(Failure::input(format!(
                    "--override-halt {k} does not name this rollout's halt, which is `{kind}`: {reason}"
                )))
            }
            None => {
                let in_flight = live.in_flight();
                log.event(
                    "halted_earlier",
                    &format!(
                        "this rollout halted earlier: {reason}. Nothing new will be issued; {} still in flight{}{}. To go on, re-run with --override-halt {kind}, or start a new journal.",
                        in_flight.len(),
                        if in_flight.is_empty() { "" } else { ": " },
                        in_flight.join(", ")
                    ),
                    &[("reason", kind.as_str().into())],
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
