//! `stagger status`: a rollout's progress, read off its journal without taking its lock.

use crate::cli::StatusArgs;
use crate::error::Failure;
use crate::live::journal;
use crate::live::status::{progress, State};
use crate::scenario::InputError;

pub fn run(args: &StatusArgs) -> Result<(), Failure> {
    let name = args.journal.display().to_string();
    let text = std::fs::read_to_string(&args.journal)
        .map_err(|e| InputError::new(format!("cannot read journal: {e}")).in_file(&name))?;
    let parsed = journal::parse(&text).map_err(|e| e.in_file(&name))?;
    let p = progress(&parsed, text.len());
    if args.json {
        let line = serde_json::to_string(&p).map_err(|e| Failure::Runtime(e.to_string()))?;
        println!("{line}");
        return Ok(());
    }
    println!(
        "rollout of {} ({} gateways, firmware {}) on {} at {}",
        p.plan, p.devices, p.firmware_version, p.backend, p.endpoint
    );
    let state = match (&p.halted, p.finished) {
        (Some(h), _) => format!("HALTED ({h})"),
        (None, false) if p.paused.is_some() => format!(
            "PAUSED after stage `{}`: approve with `stagger approve --journal {}`",
            p.paused.as_deref().unwrap_or_default(),
            args.journal.display()
        ),
        (None, true) => "finished".into(),
        (None, false) => "running, or stopped before the end (re-run the rollout to resume)".into(),
    };
    println!(
        "{state}; plan time {:.0} s ({:.2} h) since the first start",
        p.plan_time_s,
        p.plan_time_s / 3600.0
    );
    match &p.refit {
        Some((stage, Some(pace))) => {
            println!("re-tuned after stage `{stage}`: going on at {pace:.2}× the plan's pace")
        }
        Some((stage, None)) => println!("re-tuning after stage `{stage}`"),
        None => {}
    }
    println!("waves released: {}", p.waves.len());
    for w in &p.waves {
        println!(
            "  {:>3}  {:<10} {:>6} gateways, at {:.0} s",
            w.wave,
            w.stage.as_deref().unwrap_or(""),
            w.size,
            w.released_s
        );
    }
    println!("gateways:");
    for s in [
        State::Succeeded,
        State::InFlight,
        State::Checking,
        State::Failed,
    ] {
        println!(
            "  {:<22} {:>6}",
            s.name(),
            p.states.get(&s).copied().unwrap_or(0)
        );
    }
    println!("  {:<22} {:>6}", "not started", p.not_started);
    println!("attempts started: {}", p.attempts);
    if p.partial_last_line {
        println!("(the journal's last line is being written; it is left out)");
    }
    Ok(())
}
